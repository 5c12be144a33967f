"""A refund and its payment booked at the same moment by two replicas on one database.

Each replica books one of the two: the refund's desk asked the ledger "is there a payment to
take back?" and wrote its answer to the journal in a second step; the payment's desk credited
and then asked the journal "was a refund booked before?". A refund's desk that stalled between
its two steps (a slow process, a journal write waiting for the lock) left the payment's desk
reading no refund: the credit Telegram had given back was kept, and no one told the user. Now
the refund's answer is written in its own ledger transaction and the payment's transaction
reads it: SQLite's write lock orders the two, so whichever comes second takes the credit back.
A bot killed between the refund's two writes books the entry again after its restart, and the
payment that follows is taken back and told once. An admin's /refund whose report from Telegram
the bot booked first tells the admin the credit that went, not none. A refund of a payment
booked but not yet told (its thank-you waits for Telegram) is told after the thank-you.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

from bot.payments import PaymentDesk
from models import MasterKey, Store
from models.journal import Journal, JournalEntry
from services.credit import Credit
from services.journal import PaymentJournal
from services.prices import Prices
from services.shop import Pack, Shop
from tests.books import inconsistent_users
from tests.botstack import TOKEN, process_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.telegram import FakeTelegram
from tests.harness import Clock, ManagedProcess, wait_until
from tests.test_bot_payments import ADMIN, balance_units, buy_pack, paying_stack
from tests.test_journal import ledger_locked, messages_to

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
    from pathlib import Path

    from services.journal import Booking

USER = 9301
STAR = 1_000_000
PACKS = Pack.parse_list("50:50000000")


class Replica:
    """One bot replica's money side: its own connections to the shared database, a journal."""

    def __init__(self, store: Store, journal: Journal, journal_path: Path, clock: Clock) -> None:
        self.store = store
        self.journal = journal
        self.journal_path = journal_path
        self.clock = clock
        self.shop = Shop(store, PACKS, None, clock=clock)
        self.credit = Credit(store, Prices.parse("*=20/60"), 0, clock=clock)
        self.books = PaymentJournal(journal, self.shop, self.credit, clock)

    @classmethod
    async def open(cls, db: Path, key: MasterKey, journal: Path, clock: Clock) -> Replica:
        """A replica on the database ``db`` (a connection of its own) and ``journal``."""
        opened = await Journal.open(journal, busy_timeout=60)
        return cls(await Store.open(db, key), opened, journal, clock)

    async def close(self) -> None:
        """Close its connections."""
        await self.journal.close()
        await self.store.close()


@pytest.fixture
async def replicas(tmp_path: Path, master_key: MasterKey) -> AsyncIterator[tuple[Replica, Replica]]:
    clock = Clock(1_750_000_000)
    db = tmp_path / "veil.db"
    first = await Replica.open(db, master_key, tmp_path / "first-journal.db", clock)
    second = await Replica.open(db, master_key, tmp_path / "second-journal.db", clock)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()
    reopened = await Store.open(db, master_key)
    try:
        assert await inconsistent_users(reopened) == []
    finally:
        await reopened.close()


def entry(kind: str, charge_id: str, payload: str) -> JournalEntry:
    values: dict[str, Any] = {
        "kind": kind,
        "user_id": USER,
        "payload": payload,
        "currency": "XTR",
        "total_amount": 50,
        "charge_id": charge_id,
        "received_at": 1_750_000_000,
    }
    return JournalEntry(**values)


async def stalled_after_deciding(
    replica: Replica,
    booked: JournalEntry,
    decided: Callable[[list[MutableMapping[str, Any]]], Awaitable[bool]],
    meanwhile: Replica,
    other: JournalEntry,
) -> tuple[Booking, Booking]:
    """``replica`` books ``booked``, ``meanwhile`` books ``other`` while the first stalls.

    The first stalls before its journal write (its journal is locked) once ``decided`` (given
    the log lines so far) says the ledger has answered it; ``meanwhile`` books ``other`` to
    the end; then the stall ends. The two bookings, in that order.
    """
    await replica.books.record([booked])
    await meanwhile.books.record([other])
    with capture_logs() as logs, ledger_locked(replica.journal_path):
        stalled = asyncio.create_task(replica.books.book(booked))
        async with asyncio.timeout(30):
            while not await decided(logs) and not stalled.done():  # noqa: ASYNC110 -- a row or a log line, no event
                await asyncio.sleep(0.005)
        assert not stalled.done()
        second = await meanwhile.books.book(other)
    return await stalled, second


async def test_a_payment_booked_while_its_refunds_replica_stalls_is_taken_back_once(
    replicas: tuple[Replica, Replica],
) -> None:
    first, second = replicas
    order = await second.shop.create_order(USER, "50")
    refund = entry("refund", "stx-race-refund-first", order.id)
    paid = entry("payment", "stx-race-refund-first", order.id)

    async def refund_decided(logs: list[MutableMapping[str, Any]]) -> bool:
        return any(e["event"] == "journal.refund_unmatched" for e in logs)

    refund_booking, paid_booking = await stalled_after_deciding(
        first, refund, refund_decided, second, paid
    )
    # The refund came first: the payment's booking took the credit back and tells the refund;
    # the refund's booking tells nothing (one notice).
    assert paid_booking.new
    assert paid_booking.refunded
    assert not refund_booking.applies
    assert (await first.credit.balance(USER)).units == 0
    booked = await second.shop.payment(paid.charge_id)
    assert booked is not None
    assert booked.refunded
    # Booked again (a stop before either entry was finished): nothing moves, nobody is told twice.
    again = await first.books.book(refund)
    assert not again.applies
    assert not again.new
    paid_again = await second.books.book(paid)
    assert paid_again.refunded
    assert not paid_again.new
    assert (await second.credit.balance(USER)).units == 0


async def test_a_refund_booked_while_its_payments_replica_stalls_takes_the_credit_back_once(
    replicas: tuple[Replica, Replica],
) -> None:
    first, second = replicas
    order = await first.shop.create_order(USER, "50")
    paid = entry("payment", "stx-race-payment-first", order.id)
    refund = entry("refund", "stx-race-payment-first", order.id)

    async def credited(_logs: list[MutableMapping[str, Any]]) -> bool:
        return await second.shop.payment(paid.charge_id) is not None

    paid_booking, refund_booking = await stalled_after_deciding(
        first, paid, credited, second, refund
    )
    # The payment came first: it thanks, and the refund took the credit back and tells it.
    assert paid_booking.new
    assert not paid_booking.refunded
    assert refund_booking.applies
    assert refund_booking.new
    assert refund_booking.units == 50 * STAR
    assert (await first.credit.balance(USER)).units == 0


async def test_two_replicas_desks_tell_a_refund_booked_as_its_payment_is_once(
    tmp_path: Path,
) -> None:
    # As above, through the two replicas' payment desks: the user heard "Thank you" for
    # credit Telegram had given back, and never heard of the refund.
    async with paying_stack(tmp_path / "stack") as stack:
        veil = stack.veil
        invoice = await buy_pack(stack, USER)
        store = await Store.open(
            veil.settings.database_path, MasterKey.load_or_create(veil.settings.master_key_path)
        )
        journal_path = tmp_path / "first-journal.db"
        journal = await Journal.open(journal_path, busy_timeout=60)
        try:
            shop = Shop(store, veil.shop.packs, veil.shop.plan)
            credit = Credit(store, Prices.parse("*=1000/2000"), 0)
            first = PaymentDesk(PaymentJournal(journal, shop, credit), veil.bot, veil.catalogs)
            refund = JournalEntry(
                kind="refund",
                user_id=USER,
                payload=invoice["payload"],
                currency="XTR",
                total_amount=50,
                charge_id="stx-race-desks",
                received_at=1_750_000_000,
            )
            paid = replace(refund, kind="payment")
            await first.record([refund])
            await veil.desk.record([paid])
            with contextlib.ExitStack() as journal_locked, capture_logs() as logs:
                with ledger_locked(veil.settings.database_path):
                    stalled = asyncio.create_task(first.process(refund.key))
                    await wait_until(lambda: journal_claimed(journal_path, refund.key))
                    journal_locked.enter_context(ledger_locked(journal_path))
                # The refund's ledger write goes through; its journal write waits.
                await wait_until(
                    lambda: any(e["event"] == "journal.refund_unmatched" for e in logs)
                )
                assert await veil.desk.process(paid.key)
            assert await stalled
            assert (await credit.balance(USER)).units == 0
        finally:
            await journal.close()
            await store.close()
        texts = messages_to(stack.telegram, USER)
    told = [t for t in texts if t.startswith(("Thank you", "Your payment was refunded"))]
    assert told == ["Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."]


def journal_claimed(path: Path, key: str) -> bool:
    """Whether a desk holds the entry's claim (it is about to book it)."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT claimed_by FROM payment_journal WHERE key = ?", [key]).fetchone()
    return row is not None and row[0] is not None


def journal_booked(path: Path, key: str) -> bool:
    """Whether the journal marks the entry booked."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT booked_at FROM payment_journal WHERE key = ?", [key]).fetchone()
    return row is not None and row[0] is not None


def early_refund_kept(path: Path, charge_id: str) -> bool:
    """Whether the ledger's database keeps the refund as come before its payment."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT 1 FROM early_refunds WHERE charge_id = ?", [charge_id]).fetchone()
    return row is not None


def entries_finished(path: Path) -> bool:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT notified_at FROM payment_journal").fetchall()
    return len(rows) == 2 and all(row[0] is not None for row in rows)


async def test_sigkill_between_a_refunds_ledger_write_and_its_journal_write(
    tmp_path: Path, master_key: MasterKey
) -> None:
    # A refund that came before its payment is kept in the ledger's database, then its
    # journal entry is marked booked: a bot killed between the two writes books the entry
    # again after the restart; the payment that follows is taken back and told once.
    data = tmp_path / "data"
    charge = "stx-kill-refund"
    async with process_stack(data) as stack:
        telegram = stack.telegram
        env = stack.env | {"VEIL_FREE_TOKENS_PER_DAY": "0", "VEIL_DB_BUSY_TIMEOUT": "60"}
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        with contextlib.ExitStack() as journal_locked:
            with ledger_locked(data / "veil.db"):
                telegram.refunded(USER, payload="order-k", total_amount=50, charge_id=charge)
                await wait_until(lambda: journal_claimed(data / "journal.db", f"refund:{charge}"))
                journal_locked.enter_context(ledger_locked(data / "journal.db"))
            # The ledger's write goes through; the journal's waits: then the kill.
            await wait_until(lambda: early_refund_kept(data / "veil.db", charge))
            await bot.kill()
        assert not journal_booked(data / "journal.db", f"refund:{charge}")  # between the two
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            telegram.pay(USER, payload="order-k", total_amount=50, charge_id=charge)
            await wait_until(lambda: entries_finished(data / "journal.db"))
        finally:
            assert await bot.stop() == 0
        texts = messages_to(telegram, USER)
    assert texts == ["Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."]
    store = await Store.open(data / "veil.db", master_key)
    try:
        credit = Credit(store, Prices.parse("*=20/60"), 0)
        assert (await credit.balance(USER)).units == 0
        assert await inconsistent_users(store) == []
    finally:
        await store.close()


class RefundReportingTelegram(FakeTelegram):
    """A fake Telegram whose refundStarPayment reports the refund before it answers.

    Telegram sends a refund's service message to the bot as well (``refunded_payment``;
    ``messageActionPaymentRefunded``: "received by both users and bots"), and the bot may
    book it before the answer to its own call arrives: this fake sends it, and answers once
    ``reported`` is set (by the test, when the bot has booked it).
    """

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.reported = asyncio.Event()
        self.refund_of: dict[str, tuple[str, int]] = {}  # charge id: payload, Stars
        self._refund = self._methods["refundStarPayment"]
        self._methods["refundStarPayment"] = self._refund_reported_first

    async def _refund_reported_first(self, p: dict[str, Any]) -> object:
        result = self._refund(p)
        charge = str(p["telegram_payment_charge_id"])
        payload, stars = self.refund_of[charge]
        self.refunded(int(p["user_id"]), payload=payload, total_amount=stars, charge_id=charge)
        await self.reported.wait()
        return result


async def test_an_admins_refund_the_bot_booked_from_telegrams_report_first_says_what_went(
    tmp_path: Path,
) -> None:
    # The refund's update was booked while /refund still waited for Telegram's answer: the
    # admin's own take-back then found it done and the admin read "0 ★ of credit taken
    # back", though the refund took back 50 ★.
    telegram = RefundReportingTelegram(token=TOKEN)
    async with paying_stack(tmp_path, telegram_server=telegram) as stack:
        invoice = await buy_pack(stack, USER)
        charge = telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        telegram.refund_of[charge] = (invoice["payload"], 50)
        await telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        telegram.send_text(ADMIN, f"/refund {charge}")
        await telegram.wait_for("sendMessage", lambda c: "refunded" in c.params["text"])
        telegram.reported.set()
        done = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN)
        texts = messages_to(telegram, USER)
    assert done.params["text"] == f"Refunded 50 ⭐ to user {USER}; 50 ★ of credit taken back."
    assert texts[-1] == "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."


async def test_a_refund_of_a_payment_whose_thank_you_is_owed_is_told_after_it(
    tmp_path: Path,
) -> None:
    # The payment was booked, but Telegram could not take its thank-you (the entry stayed open
    # for the desk's next pass); its refund came meanwhile. The refund's desk went ahead as
    # the payment was booked: the user read "refunded" first, then "Thank you! 50 ★ added"
    # for the payment the refund had just taken back. The credit goes back at once as before;
    # the refund is told after the thank-you, in the order things happened.
    telegram = HostileTelegram(token=TOKEN)
    refund_booked = False

    def thanking(params: dict[str, Any]) -> bool:
        return str(params.get("text", "")).startswith("Thank you") and not refund_booked

    for _ in range(50):  # the thank-you fails (a proxy's page) until the refund is booked
        telegram.misbehave("sendMessage", "page", when=thanking)
    async with paying_stack(tmp_path, telegram_server=telegram) as stack:
        journal = stack.veil.settings.journal_path
        invoice = await buy_pack(stack, USER)
        charge = telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await wait_until(lambda: bool(telegram.misbehaved))
        assert journal_booked(journal, f"payment:{charge}")  # booked; its thank-you owed
        telegram.refunded(USER, payload=invoice["payload"], total_amount=50, charge_id=charge)
        await wait_until(lambda: journal_booked(journal, f"refund:{charge}"))
        assert await balance_units(stack, USER) == 0  # taken back at once
        refund_booked = True
        await wait_until(lambda: entries_finished(journal))
        texts = messages_to(telegram, USER)
    told = [t for t in texts if t.startswith(("Thank you", "Your payment was refunded"))]
    assert told == [
        "Thank you! 50 ★ added.",
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★.",
    ]


async def test_a_refund_booked_again_after_its_payment_took_it_back_is_not_logged_unmatched(
    replicas: tuple[Replica, Replica],
) -> None:
    # The refund's ledger write went through and its bot died before the journal's; the payment
    # came (another replica) and was credited and taken back. The refund's entry, booked again
    # after the restart, was logged journal.refund_unmatched ("its payment, if it ever comes,
    # takes it back"): a warning for the operator about a refund whose payment had come and
    # was taken back already.
    first, second = replicas
    order = await second.shop.create_order(USER, "50")
    refund = entry("refund", "stx-kept-then-paid", order.id)
    paid = entry("payment", "stx-kept-then-paid", order.id)
    await first.books.record([refund])
    kept = await first.shop.book_refund(USER, refund.charge_id)  # the ledger's write, then death
    assert (kept.new, kept.applies) == (False, False)
    await second.books.record([paid])
    assert (await second.books.book(paid)).refunded
    with capture_logs() as logs:
        again = await first.books.book(refund)
    assert (again.new, again.applies) == (False, False)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []


async def test_a_refund_kept_before_its_payment_still_takes_it_back_months_later(
    replicas: tuple[Replica, Replica],
) -> None:
    # early_refunds is never purged (docs/money.md): a payment can be booked long after its
    # refund, from a journal entry kept open (a ledger down for days, an entry kept for a
    # person) or by reconcile --fix, and without the row it would be credited for good, for
    # Stars Telegram gave back, where the audit's check (which joins the row) cannot see it.
    first, _ = replicas
    order = await first.shop.create_order(USER, "50")
    refund = entry("refund", "stx-refund-months-before", order.id)
    paid = entry("payment", "stx-refund-months-before", order.id)
    await first.books.record([refund, paid])
    assert not (await first.books.book(refund)).applies  # kept: its payment is not booked
    await first.journal.mark_notified(refund.key, int(first.clock()))  # nothing to say: done
    first.clock.advance(90 * 86_400)  # a quarter later, past every purge the bot runs
    await first.shop.purge_expired_orders()  # its order, unpaid so far, goes
    assert await first.books.purge() == 1  # the refund's entry (and its unmatched mark) too
    booked = await first.books.book(paid)
    assert (booked.new, booked.refunded, booked.flag_reason) == (True, True, "unknown_order")
    assert (await first.credit.balance(USER)).units == 0


def credited_in(path: Path, charge_id: str) -> bool:
    """Whether the ledger's database has the payment (credited, and maybe taken back)."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT 1 FROM payments WHERE charge_id = ?", [charge_id]).fetchone()
    return row is not None


async def test_sigkill_between_a_payments_take_back_and_its_journal_write(
    tmp_path: Path, master_key: MasterKey
) -> None:
    # The refund came first and was kept; the payment's transaction credited it and took it
    # back, and the bot was killed before the journal recorded the booking: after the restart
    # the payment is booked again, nothing moves, and its user hears of the refund once.
    data = tmp_path / "data"
    charge = "stx-kill-payment"
    async with process_stack(data) as stack:
        telegram = stack.telegram
        env = stack.env | {"VEIL_FREE_TOKENS_PER_DAY": "0", "VEIL_DB_BUSY_TIMEOUT": "60"}
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        telegram.refunded(USER, payload="order-p", total_amount=50, charge_id=charge)
        await wait_until(lambda: early_refund_kept(data / "veil.db", charge))
        await wait_until(lambda: journal_booked(data / "journal.db", f"refund:{charge}"))
        with contextlib.ExitStack() as journal_locked:
            with ledger_locked(data / "veil.db"):
                telegram.pay(USER, payload="order-p", total_amount=50, charge_id=charge)
                await wait_until(lambda: journal_claimed(data / "journal.db", f"payment:{charge}"))
                journal_locked.enter_context(ledger_locked(data / "journal.db"))
            await wait_until(lambda: credited_in(data / "veil.db", charge))
            await bot.kill()
        assert not journal_booked(data / "journal.db", f"payment:{charge}")  # between the two
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            await wait_until(lambda: entries_finished(data / "journal.db"))
        finally:
            assert await bot.stop() == 0
        texts = messages_to(telegram, USER)
    assert texts == ["Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."]
    store = await Store.open(data / "veil.db", master_key)
    try:
        credit = Credit(store, Prices.parse("*=20/60"), 0)
        assert (await credit.balance(USER)).units == 0
        assert await inconsistent_users(store) == []
    finally:
        await store.close()
