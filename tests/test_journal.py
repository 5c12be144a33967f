"""No payment lost: the journal, a ledger locked past the handler's budget, a SIGKILL mid-way."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

from models import Database, MasterKey, StorageError, Store, migrations
from models.journal import JOURNAL_MIGRATION_SET, JOURNAL_MIGRATIONS, Journal, JournalEntry
from services.credit import Credit
from services.prices import Prices
from tests.books import inconsistent_users
from tests.botstack import TOKEN, Stack, process_stack, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.harness import ManagedProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from tests.fakes.telegram import FakeTelegram

USER, ADMIN = 9201, 9299
STAR = 1_000_000
THANKS = "Thank you! 50 ★ added. Balance: 50 ★."
LATE = "Your payment of 50 ⭐ is now credited: 50 ★ added. Balance: 50 ★. Sorry for the wait."
PENDING = "Payment received, thank you. Crediting it is taking longer than usual"


def payment(charge_id: str, **fields: object) -> JournalEntry:
    values: dict[str, Any] = {
        "kind": "payment",
        "user_id": USER,
        "payload": "order-1",
        "currency": "XTR",
        "total_amount": 50,
        "charge_id": charge_id,
        "received_at": 1_750_000_000,
    } | fields
    return JournalEntry(**values)


@contextlib.contextmanager
def ledger_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds the database's write lock until the block ends.

    It waits for the lock if the bot is writing just then (its upkeep's first pass, a
    look-up's write): taken at once or refused, the test failed "database is locked" by chance.
    """
    lock = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        yield lock
        lock.execute("ROLLBACK")
    finally:
        lock.close()


def messages_to(stack_or_telegram: Stack | FakeTelegram, user: int) -> list[str]:
    telegram = (
        stack_or_telegram.telegram if isinstance(stack_or_telegram, Stack) else stack_or_telegram
    )
    return [str(m.get("text", "")) for m in telegram.sent_messages(user)]


def journal_booked(path: Path, key: str) -> bool:
    """Whether the journal marks the entry booked."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT booked_at FROM payment_journal WHERE key = ?", [key]).fetchone()
    return row is not None and row[0] is not None


async def payments_in(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT charge_id, units FROM payments").fetchall()
    return [(str(charge_id), int(units)) for charge_id, units in rows]


# -- the journal file ------------------------------------------------------------------------


async def test_the_journal_keeps_one_entry_per_money_event_until_its_user_is_told(
    tmp_path: Path,
) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        first, refund = payment("stx1"), payment("stx1", kind="refund")
        assert await journal.record([first, refund]) == 2
        assert await journal.record([payment("stx1", total_amount=999)]) == 0  # redelivered
        assert [e.key for e in await journal.pending()] == ["payment:stx1", "refund:stx1"]

        await journal.mark_failed(first.key)
        await journal.mark_told(first.key)
        await journal.mark_booked(first.key, 10)
        await journal.mark_booked(first.key, 20)  # the first booking time stays
        await journal.mark_notified(first.key, 30)

        stored = await journal.get(first.key)
        assert stored is not None
        assert (stored.total_amount, stored.attempts, stored.told) == (50, 1, True)
        assert (stored.booked_at, stored.notified_at) == (10, 30)
        assert [e.key for e in await journal.pending()] == ["refund:stx1"]
        assert await journal.purge(notified_before=31) == 1
        assert await journal.get(first.key) is None
    finally:
        await journal.close()
    reopened = await Journal.open(tmp_path / "journal.db")
    try:
        assert [e.key for e in await reopened.pending()] == ["refund:stx1"]
    finally:
        await reopened.close()
    assert (tmp_path / "journal.db").stat().st_mode & 0o077 == 0


async def test_the_journal_remembers_who_was_told_of_a_flagged_payment(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        await journal.record([payment("stx2")])
        await journal.mark_thanked("payment:stx2")
        await journal.mark_admin_told("payment:stx2", 9999)
        await journal.mark_admin_told("payment:stx2", -1001)
    finally:
        await journal.close()
    reopened = await Journal.open(tmp_path / "journal.db")
    try:
        stored = await reopened.get("payment:stx2")
        assert stored is not None
        assert (stored.thanked, stored.admins_told) == (True, frozenset({9999, -1001}))
        assert stored.notified_at is None  # still open until everyone is told
        await reopened.record([payment("stx3", thanked=True, admins_told=frozenset({7, 8}))])
        copied = await reopened.get("payment:stx3")
        assert copied is not None
        assert (copied.thanked, copied.admins_told) == (True, frozenset({7, 8}))
    finally:
        await reopened.close()


async def test_a_journal_that_newer_code_migrated_is_not_written_by_older_code(
    tmp_path: Path,
) -> None:
    # A rolling upgrade: a replica of the older code kept running while the new version
    # migrated the journal file. It went on writing by its own rules (claims, marks, purges
    # the new schema may read otherwise): now it writes nothing, and says why once.
    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    try:
        await journal.record([payment("stxOLD")])
        with contextlib.closing(sqlite3.connect(path)) as newer:
            newer.execute("CREATE TABLE made_by_newer_code (id INTEGER)")
            newer.execute(f"PRAGMA user_version = {len(JOURNAL_MIGRATIONS) + 1:d}")
            newer.commit()
        with capture_logs() as logs:
            with pytest.raises(StorageError, match="newer code"):
                await journal.record([payment("stxNEW")])
            with pytest.raises(StorageError, match="newer code"):
                await journal.mark_notified("payment:stxOLD", 30)
            with pytest.raises(StorageError, match="newer code"):
                await journal.claim("payment:stxOLD", "older", now=1.0, lease=300.0)
        assert [e.key for e in await journal.pending()] == ["payment:stxOLD"]  # reads still go
    finally:
        await journal.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT key, notified_at, claimed_by FROM payment_journal").fetchall()
    assert rows == [("payment:stxOLD", None, None)]
    (said,) = [e for e in logs if e["event"] == "journal.schema_newer"]
    assert (said["applied"], said["known"], said["log_level"]) == (
        len(JOURNAL_MIGRATIONS) + 1,
        len(JOURNAL_MIGRATIONS),
        "error",
    )


async def test_a_journal_that_cannot_be_opened_says_so(tmp_path: Path) -> None:
    (tmp_path / "journal.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StorageError, match="payment journal"):
        await Journal.open(tmp_path / "journal.db")


# -- through the bot -------------------------------------------------------------------------


async def test_a_payment_while_the_ledger_is_locked_is_credited_once_after_the_lock_lifts(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, free_tokens_per_day=0, db_busy_timeout=0.2) as stack:
        with ledger_locked(tmp_path / "veil.db"):
            charge = stack.telegram.pay(USER, payload="order-gone", total_amount=50)
            await stack.telegram.wait_for(
                "sendMessage", lambda c: str(c.params["text"]).startswith(PENDING)
            )
            # Retried with backoff while the lock lasts, longer than the handler's budget.
            desk = stack.veil.desk
            async with asyncio.timeout(20):
                while (entry := await desk.journal.get(f"payment:{charge}")) is None or (  # noqa: ASYNC110 -- polls the journal
                    entry.attempts < 3
                ):
                    await asyncio.sleep(0.05)
            assert await payments_in(tmp_path / "veil.db") == []
        await stack.telegram.wait_for("sendMessage", lambda c: c.params["text"] == LATE, timeout=20)
        # Telegram delivers the update again: still one credit, no second message.
        stack.telegram.pay(USER, payload="order-gone", total_amount=50, charge_id=charge)
        await asyncio.sleep(0.5)
        assert (await stack.veil.credit.balance(USER)).units == 50 * STAR
        assert await inconsistent_users(stack.veil.store) == []
        texts = messages_to(stack, USER)
    assert [t for t in texts if t.startswith(PENDING)] == texts[:1]
    assert texts[1:] == [LATE]
    assert await payments_in(tmp_path / "veil.db") == [(charge, 50 * STAR)]


async def test_a_payment_update_is_journaled_before_its_offset_is_acknowledged(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        await stack.veil.desk.journal._journal.close()  # the journal file cannot be written
        charge = stack.telegram.pay(USER, payload="order-x", total_amount=50)
        # Not acknowledged: aiogram backs off and asks for the same update again and again.
        await stack.telegram.wait_for(
            "getUpdates", lambda c: c.params.get("offset") is None and c.answered == "ok"
        )
        await asyncio.sleep(1.5)
        assert [u for u in stack.telegram.updates.pending if "message" in u]
        assert await payments_in(tmp_path / "veil.db") == []
        assert messages_to(stack, USER) == []
        assert await inconsistent_users(stack.veil.store) == []
    assert charge.startswith("stx")


async def test_sigkill_between_the_journal_write_and_the_booking_credits_once_after_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with process_stack(data) as stack:
        telegram = stack.telegram
        env = stack.env | {
            "VEIL_FREE_TOKENS_PER_DAY": "0",
            "VEIL_DB_BUSY_TIMEOUT": "0.2",
        }
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        with ledger_locked(data / "veil.db"):
            charge = telegram.pay(USER, payload="order-kill", total_amount=50)
            await bot.wait_for_line("journal.recorded")
            await bot.wait_for_line("payments.booking_deferred")
            # The update is acknowledged (the next getUpdates moved past it): Telegram will
            # not send it again, so only the journal can still credit it.
            await wait_until(lambda: not [u for u in telegram.updates.pending if "message" in u])
            await bot.kill()
        assert await payments_in(data / "veil.db") == []
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            await telegram.wait_for("sendMessage", lambda c: c.params["text"] == LATE, timeout=20)
            await asyncio.sleep(0.3)
        finally:
            assert await bot.stop() == 0
        texts = messages_to(telegram, USER)
    assert await payments_in(data / "veil.db") == [(charge, 50 * STAR)]
    assert texts.count(LATE) == 1
    assert THANKS not in texts
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    try:
        credit = Credit(store, Prices.parse("*=20/60"), 0)
        assert (await credit.balance(USER)).units == 50 * STAR
        assert await inconsistent_users(store) == []
    finally:
        await store.close()


async def test_an_older_long_polling_bot_stops_when_newer_code_migrated_the_journal(
    tmp_path: Path,
) -> None:
    # A rolling upgrade: the newer version migrated the journal while this older bot still
    # long-polled. Every batch holding a payment was fetched again and again (the journal
    # refusing it), every update in it, and all after, unanswered until someone stopped the
    # bot by hand. It stops now, the payment not acknowledged: the newer bot gets the batch.
    data = tmp_path / "data"
    async with process_stack(data) as stack:
        telegram = stack.telegram
        bot = await ManagedProcess.start("-m", "bot", env=stack.env)
        try:
            await bot.wait_for_line("bot.started")
            with contextlib.closing(sqlite3.connect(data / "journal.db")) as newer:
                newer.execute(f"PRAGMA user_version = {len(JOURNAL_MIGRATIONS) + 1:d}")
                newer.commit()
            charge = telegram.pay(USER, payload="order-old", total_amount=50)
            telegram.send_text(USER, "hello")
            code = await bot.wait(within=60)
        finally:
            await bot.stop()
        pending = [u["message"] for u in telegram.updates.pending if "message" in u]
    assert code == 2
    assert "payments.journal_outdated" in bot.output
    assert "newer code has migrated the payment journal" in bot.output
    paid = [m["successful_payment"]["telegram_payment_charge_id"] for m in pending[:1]]
    assert paid == [charge]  # not acknowledged: still Telegram's to deliver
    assert [m.get("text") for m in pending[1:]] == ["hello"]
    assert await payments_in(data / "veil.db") == []


async def test_a_refund_that_overtakes_its_open_payment_still_takes_the_credit_back(
    tmp_path: Path,
) -> None:
    # The payment is journaled but not booked yet (deferred by a locked ledger, or journaled
    # just before a crash) when Telegram reports its refund: the refund's handler runs first.
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        desk = stack.veil.desk
        paid = payment("stxOVERTAKEN", payload="order-o")
        await desk.journal.record([paid])
        stack.telegram.refunded(USER, payload="order-o", total_amount=50, charge_id=paid.charge_id)
        notice = await stack.telegram.wait_for(
            "sendMessage", lambda c: "refunded" in str(c.params["text"]), timeout=20
        )
        assert await desk.process_pending()
        assert (await stack.veil.credit.balance(USER)).units == 0
        assert await inconsistent_users(stack.veil.store) == []
        texts = messages_to(stack, USER)
    # Booked in their order: the credit first, then the refund that took it back.
    assert texts == [THANKS, notice.params["text"]]
    assert notice.params["text"] == (
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."
    )


async def test_a_refund_reported_before_its_payment_takes_the_credit_back_once_booked(
    tmp_path: Path,
) -> None:
    # Telegram's updates overtook each other: the refund arrives first, finds no payment (in
    # the ledger or the journal) and is finished; the payment that follows was credited for
    # good, though Telegram had given the Stars back.
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        desk = stack.veil.desk
        # The refund's handler books it: no payment to take back, nothing to say, finished.
        with capture_logs() as logs:
            await desk.take(payment("stxREVERSED", kind="refund", payload="order-r"))
        assert [e["charge_id"] for e in logs if e["event"] == "journal.refund_unmatched"] == [
            "stxREVERSED"
        ]
        refund = await desk.journal.get("refund:stxREVERSED")
        assert refund is not None
        assert refund.notified_at is not None
        stack.telegram.pay(USER, payload="order-r", total_amount=50, charge_id="stxREVERSED")
        notice = await stack.telegram.wait_for(
            "sendMessage", lambda c: c.params["chat_id"] == USER, timeout=20
        )
        assert await desk.process_pending()
        assert (await stack.veil.credit.balance(USER)).units == 0
        assert await inconsistent_users(stack.veil.store) == []
        booked = await stack.veil.shop.payment("stxREVERSED")
        assert booked is not None
        assert booked.refunded
        texts = messages_to(stack, USER)
    # One message, the news that counts: no thank-you for credit that is already gone.
    assert texts == [notice.params["text"]]
    assert notice.params["text"] == (
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."
    )


async def test_a_flagged_payment_whose_refund_came_first_tells_the_admins_it_was_taken_back(
    tmp_path: Path,
) -> None:
    # The payment (for an order the bot never made: flagged) was credited and taken back in
    # one transaction, and its user told of the refund; the admins were told it was
    # "credited as 50 ★", credit that nobody had.
    async with running_stack(tmp_path, free_tokens_per_day=0, admins=str(ADMIN)) as stack:
        desk = stack.veil.desk
        await desk.take(payment("stxFLAGGED", kind="refund", payload="order-never-made"))
        await desk.take(payment("stxFLAGGED", payload="order-never-made"))
        assert await desk.process_pending()
        assert (await stack.veil.credit.balance(USER)).units == 0
        assert await inconsistent_users(stack.veil.store) == []
        to_admin, to_user = messages_to(stack, ADMIN), messages_to(stack, USER)
    assert to_user == ["Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."]
    (notice,) = to_admin
    assert notice == (
        "Payment flagged (unknown_order): user 9201, charge stxFLAGGED, 50 ⭐. Its refund came"
        " before it: the 50 ★ it credited were taken back at once."
    )


@contextlib.asynccontextmanager
async def holding_messages_to(
    chat_id: int, tmp_path: Path, *, admins: str = str(ADMIN)
) -> AsyncIterator[tuple[Stack, HostileTelegram]]:
    """A running bot whose Telegram holds each message to ``chat_id``.

    No free tokens; ``admins`` its admins ("": none, the settings' default). The race's
    setup: a message sent there waits (``answer_late``) while the test books what races it.
    """
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "late", when=lambda params: params.get("chat_id") == chat_id)
    async with running_stack(
        tmp_path, free_tokens_per_day=0, admins=admins, telegram_server=telegram
    ) as stack:
        yield stack, telegram


async def test_a_flagged_notice_owed_when_a_later_refund_took_the_credit_tells_the_admins_so(
    tmp_path: Path,
) -> None:
    # The flagged payment's user was thanked, its admin's notice not taken by Telegram; an
    # ordinary refund then took the credit back. The notice that went out later still said
    # "credited as 50 ★", credit that was gone by the time the admin read it.
    telegram = HostileTelegram(token=TOKEN)
    refunded = asyncio.Event()

    def to_admin_before_refund(params: dict[str, Any]) -> bool:
        return params.get("chat_id") == ADMIN and not refunded.is_set()

    for _ in range(50):  # whatever the desk's loop tries before the refund is booked
        telegram.misbehave("sendMessage", "page", when=to_admin_before_refund)
    async with running_stack(
        tmp_path, free_tokens_per_day=0, admins=str(ADMIN), telegram_server=telegram
    ) as stack:
        desk = stack.veil.desk
        await desk.take(payment("stxLATER", payload="order-never-made"))
        await desk.take(payment("stxLATER", kind="refund", payload="order-never-made"))
        refund = await desk.journal.get("refund:stxLATER")
        assert refund is not None
        assert refund.notified_at is not None  # booked and told while the notice was owed
        refunded.set()
        assert await desk.process_pending()
        assert (await stack.veil.credit.balance(USER)).units == 0
        to_admin, to_user = messages_to(stack, ADMIN), messages_to(stack, USER)
    assert telegram.misbehaved  # the notice Telegram did not take the first time
    assert to_user == [
        THANKS,
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★.",
    ]
    assert to_admin == [
        (
            "Payment flagged (unknown_order): user 9201, charge stxLATER, 50 ⭐ credited as"
            " 50 ★, then refunded: that credit was taken back."
        )
    ]


async def test_a_user_thanked_is_not_told_the_credit_is_delayed_while_the_notice_waits(
    tmp_path: Path,
) -> None:
    # The flagged payment was booked and its user thanked; the ledger went down before the
    # admins' notice (which reads the payment again) could go out. The desk's next tries could
    # not book the entry either, and told the user, already thanked for the credit, that
    # "crediting it is taking longer than usual".
    async with holding_messages_to(USER, tmp_path) as (stack, telegram):
        desk = stack.veil.desk
        paying = asyncio.create_task(desk.take(payment("stxDOWN", payload="order-never-made")))
        await wait_until(lambda: telegram.held == 1)  # the thank-you is out, its reply held
        await stack.veil.store.close()  # the ledger is down from here on
        telegram.answer_late()
        await paying
        key = "payment:stxDOWN"
        async with asyncio.timeout(20):
            while (entry := await desk.journal.get(key)) is None or entry.attempts < 2:  # noqa: ASYNC110 -- polls the journal
                await asyncio.sleep(0.05)
        assert entry.thanked
        assert entry.notified_at is None  # the admins' notice is still owed
        to_admin, to_user = messages_to(stack, ADMIN), messages_to(stack, USER)
    assert to_user == [THANKS]
    assert to_admin == []


async def test_a_flagged_notice_after_a_slow_thank_you_tells_the_refund_booked_meanwhile(
    tmp_path: Path,
) -> None:
    # The flagged payment's thank-you took its time (a slow Telegram: flood waits can hold it a
    # minute); its refund was booked meanwhile and took the credit back. The admins' notice,
    # written from the booking made before the thank-you, then said "credited as 50 ★".
    async with holding_messages_to(USER, tmp_path) as (stack, telegram):
        desk, credit = stack.veil.desk, stack.veil.credit
        paying = asyncio.create_task(desk.take(payment("stxSLOW", payload="order-never-made")))
        await wait_until(lambda: telegram.held == 1)  # the thank-you is out, its reply held
        refunding = asyncio.create_task(
            desk.take(payment("stxSLOW", kind="refund", payload="order-never-made"))
        )
        # The refund is booked (the credit taken back); it waits to be told after the thank-you.
        await wait_until(lambda: journal_booked(tmp_path / "journal.db", "refund:stxSLOW"))
        assert (await credit.balance(USER)).units == 0
        telegram.answer_late()
        await asyncio.gather(paying, refunding)
        assert await desk.process_pending()
        to_admin, to_user = messages_to(stack, ADMIN), messages_to(stack, USER)
    assert to_user == [
        "Thank you! 50 ★ added. Balance: 50 ★.",
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★.",
    ]
    assert to_admin == [
        (
            "Payment flagged (unknown_order): user 9201, charge stxSLOW, 50 ⭐ credited as"
            " 50 ★, then refunded: that credit was taken back."
        )
    ]


async def test_a_payment_booked_after_its_refund_and_booked_again_still_tells_the_refund(
    tmp_path: Path,
) -> None:
    # The payment after its refund was credited and taken back, then the bot stopped before
    # telling (the entry stays open): booked again, it tells the refund, never a thank-you.
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        desk = stack.veil.desk
        await desk.take(payment("stxAGAIN", kind="refund", payload="order-a"))
        paid = payment("stxAGAIN", payload="order-a")
        await desk.journal.record([paid])
        first = await desk.journal.book(paid)  # booked, and nobody told: then the stop
        assert first.refunded
        assert await desk.process(paid.key)
        assert (await stack.veil.credit.balance(USER)).units == 0
        assert await inconsistent_users(stack.veil.store) == []
        texts = messages_to(stack, USER)
    assert texts == ["Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."]


async def test_a_refund_booked_before_its_payment_and_booked_again_does_not_tell_it_twice(
    tmp_path: Path,
) -> None:
    # The refund came first and was booked (nothing to take back), then the bot stopped before
    # the entry was finished. Its payment came, was taken back and told as a refund; the
    # refund's entry, booked again, then found the payment refunded and told it a second time.
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        desk = stack.veil.desk
        refund = payment("stxSTOPPED", kind="refund", payload="order-s")
        await desk.journal.record([refund])
        first = await desk.journal.book(refund)  # booked, not finished: then the stop
        assert not first.applies
        await desk.take(payment("stxSTOPPED", payload="order-s"))
        assert await desk.process_pending()  # the refund's entry, booked again, is finished
        assert (await stack.veil.credit.balance(USER)).units == 0
        assert await inconsistent_users(stack.veil.store) == []
        texts = messages_to(stack, USER)
    assert texts == ["Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★."]


async def test_a_ledger_that_fails_at_once_is_retried_with_backoff_not_in_a_spin(
    tmp_path: Path,
) -> None:
    # A ledger that refuses at once (here: a lock waited for 10 ms; also a full disk or an
    # I/O error) must not turn the desk's loop into a spin of bookings, journal writes and
    # log lines: 0.5 s, then doubling.
    async with running_stack(tmp_path, free_tokens_per_day=0, db_busy_timeout=0.01) as stack:
        desk = stack.veil.desk
        with ledger_locked(tmp_path / "veil.db"):
            charge = stack.telegram.pay(USER, payload="order-spin", total_amount=50)
            await stack.telegram.wait_for(
                "sendMessage", lambda c: str(c.params["text"]).startswith(PENDING)
            )
            await asyncio.sleep(2.0)
            entry = await desk.journal.get(f"payment:{charge}")
            assert entry is not None
            # The handler's try and the loop's at once, then after 0.5 s, 1 s and 2 s.
            assert 2 <= entry.attempts <= 5
        await stack.telegram.wait_for("sendMessage", lambda c: c.params["text"] == LATE, timeout=20)
        assert (await stack.veil.credit.balance(USER)).units == 50 * STAR


async def test_an_entry_that_cannot_be_booked_never_stops_the_others(tmp_path: Path) -> None:
    # A journal entry whose booking fails with something other than a busy ledger (here an
    # empty charge id, which the shop refuses) went up and out of the desk's loop: the loop
    # stopped, and no deferred payment was booked again until a restart, where it stopped at
    # the same entry again.
    async with running_stack(tmp_path, free_tokens_per_day=0, db_busy_timeout=0.2) as stack:
        desk = stack.veil.desk
        await desk.journal.record([payment("", payload="order-poison")])
        with ledger_locked(tmp_path / "veil.db"):
            charge = stack.telegram.pay(USER, payload="order-after", total_amount=50)
            await stack.telegram.wait_for(
                "sendMessage", lambda c: str(c.params["text"]).startswith(PENDING)
            )
        await stack.telegram.wait_for("sendMessage", lambda c: c.params["text"] == LATE, timeout=20)
        assert await payments_in(tmp_path / "veil.db") == [(charge, 50 * STAR)]
        poison = await desk.journal.get("payment:")
        assert poison is not None
        assert poison.notified_at is None  # kept for a person to look at, never dropped


async def test_a_payment_the_journal_cannot_take_is_credited_and_its_user_thanked_once(
    tmp_path: Path,
) -> None:
    # The journal refused the handler's write (locked past its busy timeout), so the desk
    # booked the payment straight away; its booking then failed to mark the journal, after
    # the credit was written, and the desk gave up before the thank-you. The entry was never
    # journaled, so no later pass told the payer either.
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        desk = stack.veil.desk
        with ledger_locked(tmp_path / "journal.db"):
            await desk.take(payment("stxNOJOURNAL", payload="order-never-made"))
            assert messages_to(stack, USER) == [THANKS]
        assert await desk.process_pending()
        assert await desk.journal.get("payment:stxNOJOURNAL") is None
        assert (await stack.veil.credit.balance(USER)).units == 50 * STAR
        assert await inconsistent_users(stack.veil.store) == []
        texts = messages_to(stack, USER)
    assert texts == [THANKS]


async def test_a_payment_journaled_before_the_journal_failed_is_thanked_once(
    tmp_path: Path,
) -> None:
    # The middleware journaled the update; the journal then refused the handler's write. The
    # desk credits and thanks at once; its loop, once the journal is back, books the entry
    # again (no second credit) and must not thank a second time.
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        desk = stack.veil.desk
        paid = payment("stxJOURNALED", payload="order-never-made")
        await desk.journal.record([paid])
        with ledger_locked(tmp_path / "journal.db"):
            await desk.take(paid)
            assert messages_to(stack, USER) == [THANKS]
        assert await desk.process_pending()
        entry = await desk.journal.get(paid.key)
        assert entry is not None
        assert entry.notified_at is not None
        assert (await stack.veil.credit.balance(USER)).units == 50 * STAR
        texts = messages_to(stack, USER)
    assert texts == [THANKS]


async def test_a_payment_the_journal_refuses_while_the_loop_thanks_it_is_thanked_once(
    tmp_path: Path,
) -> None:
    # The loop's pass over the journaled entry was thanking its payer (Telegram slow to answer)
    # when the journal refused the handler's own write. The handler booked the payment (no
    # second credit) and thanked the payer a second time, beside the loop's pass: it took no
    # turn on the entry, and told whatever its booking found.
    async with holding_messages_to(USER, tmp_path, admins="") as (stack, telegram):
        desk = stack.veil.desk
        paid = payment("stxBESIDE", payload="order-never-made")
        await desk.journal.record([paid])
        passing = asyncio.create_task(desk.process(paid.key))
        await wait_until(lambda: telegram.held == 1)  # the loop's thank-you out, its reply held
        with capture_logs() as logs, ledger_locked(tmp_path / "journal.db"):
            taking = asyncio.create_task(desk.take(paid))
            await wait_until(
                lambda: any(e["event"] == "payments.journal_unavailable" for e in logs)
            )
        with contextlib.suppress(TimeoutError):  # the handler's own thank-you, if it sends one
            await wait_until(lambda: telegram.held > 1, within=3)
        telegram.answer_late()
        assert await passing
        await taking
        assert await desk.process_pending()
        assert (await stack.veil.credit.balance(USER)).units == 50 * STAR
        texts = messages_to(stack, USER)
    assert texts == [THANKS]


async def test_a_thank_you_owed_when_a_later_refund_took_the_credit_leaves_the_balance_out(
    tmp_path: Path,
) -> None:
    # The thank-you could not go out; the payment's refund was booked meanwhile (the credit
    # taken back), and the refund's notice waited for the thank-you. The thank-you then read
    # "50 ★ added. Balance: 0 ★." just before the refund's notice.
    telegram = HostileTelegram(token=TOKEN)
    refunded = asyncio.Event()

    def to_user_before_refund(params: dict[str, Any]) -> bool:
        return params.get("chat_id") == USER and not refunded.is_set()

    for _ in range(50):  # whatever the desk tries before the refund is booked
        telegram.misbehave("sendMessage", "page", when=to_user_before_refund)
    async with running_stack(tmp_path, free_tokens_per_day=0, telegram_server=telegram) as stack:
        desk = stack.veil.desk
        await desk.take(payment("stxODD", payload="order-never-made"))
        await desk.take(payment("stxODD", kind="refund", payload="order-never-made"))
        assert journal_booked(tmp_path / "journal.db", "refund:stxODD")
        assert messages_to(stack, USER) == []
        refunded.set()
        assert await desk.process_pending()
        assert (await stack.veil.credit.balance(USER)).units == 0
        texts = messages_to(stack, USER)
    assert telegram.misbehaved
    assert texts == [
        "Thank you! 50 ★ added.",
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★.",
    ]


async def test_a_refund_booked_while_the_flagged_notice_goes_out_is_told_to_the_admins(
    tmp_path: Path,
) -> None:
    # The notice read the payment (not refunded), then waited on Telegram; the refund was booked
    # meanwhile. The admin read "credited as 50 ★" of credit that was gone, and nobody told the
    # admin otherwise (only /stats showed it).
    async with holding_messages_to(ADMIN, tmp_path) as (stack, telegram):
        desk = stack.veil.desk
        paying = asyncio.create_task(desk.take(payment("stxRACED", payload="order-never-made")))
        await wait_until(lambda: telegram.held == 1)  # the admin's notice is out, its reply held
        refunding = asyncio.create_task(
            desk.take(payment("stxRACED", kind="refund", payload="order-never-made"))
        )
        await wait_until(lambda: journal_booked(tmp_path / "journal.db", "refund:stxRACED"))
        telegram.answer_late()
        await asyncio.gather(paying, refunding)
        assert await desk.process_pending()
        assert (await stack.veil.credit.balance(USER)).units == 0
        to_admin, to_user = messages_to(stack, ADMIN), messages_to(stack, USER)
    assert to_user == [
        THANKS,
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★.",
    ]
    assert to_admin == [
        "Payment flagged (unknown_order): user 9201, charge stxRACED, 50 ⭐ credited as 50 ★.",
        (
            "Payment flagged (unknown_order): user 9201, charge stxRACED, 50 ⭐ credited as"
            " 50 ★, then refunded: that credit was taken back."
        ),
    ]


async def correction_owed(tmp_path: Path, charge: str) -> tuple[list[str], list[str]]:
    """What the admin and the user were told of a flagged payment refunded as it was noticed.

    The refund of ``charge`` is booked while the admin's notice is out; the correction it owes
    is refused until the stack stops.
    """
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "late", when=lambda params: params.get("chat_id") == ADMIN)
    async with running_stack(
        tmp_path, free_tokens_per_day=0, admins=str(ADMIN), telegram_server=telegram
    ) as stack:
        desk = stack.veil.desk
        paying = asyncio.create_task(desk.take(payment(charge, payload="order-never-made")))
        await wait_until(lambda: telegram.held == 1)  # the admin's notice is out, its reply held
        refunding = asyncio.create_task(
            desk.take(payment(charge, kind="refund", payload="order-never-made"))
        )
        await wait_until(lambda: journal_booked(tmp_path / "journal.db", f"refund:{charge}"))
        for _ in range(50):  # the correction, and whatever the desk's loop tries before the stop
            telegram.misbehave("sendMessage", "page", when=lambda p: p.get("chat_id") == ADMIN)
        telegram.answer_late()
        await asyncio.gather(paying, refunding)
        assert (await stack.veil.credit.balance(USER)).units == 0
        return messages_to(stack, ADMIN), messages_to(stack, USER)


async def test_a_correction_owed_to_an_admin_is_sent_once_after_a_restart(tmp_path: Path) -> None:
    # The admin was told "credited as 50 ★" of a flagged payment refunded while that notice
    # went out; the correction Telegram could not take then, and the bot restarted. What the
    # admin was told lived in the desk's memory: the restarted bot finished the entry, and the
    # admin was left believing the payment credited.
    first_admin, first_user = await correction_owed(tmp_path, "stxLOST")
    flagged = "Payment flagged (unknown_order): user 9201, charge stxLOST, 50 ⭐ credited as 50 ★"
    assert first_admin == [f"{flagged}."]
    assert first_user == [
        THANKS,
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★.",
    ]
    async with running_stack(tmp_path, free_tokens_per_day=0, admins=str(ADMIN)) as restarted:
        desk = restarted.veil.desk
        assert await desk.process_pending()
        assert await desk.process_pending()  # nothing owed twice
        second_admin, second_user = messages_to(restarted, ADMIN), messages_to(restarted, USER)
    assert second_admin == [f"{flagged}, then refunded: that credit was taken back."]
    assert second_user == []


async def test_a_correction_is_not_sent_to_an_admin_removed_since(tmp_path: Path) -> None:
    # As above, but the operator took the admin off VEIL_ADMINS before the restart (someone who
    # left, or an account no longer trusted). The journal still names them among those told
    # "credited as 50 ★": the restarted bot sent them the user's payment and charge all the
    # same. Only the admins configured now are told, as every other notice is.
    await correction_owed(tmp_path, "stxGONE")
    successor = ADMIN - 1
    async with running_stack(tmp_path, free_tokens_per_day=0, admins=str(successor)) as restarted:
        assert await restarted.veil.desk.process_pending()
        assert await restarted.veil.desk.process_pending()  # nothing left owed
        removed, now = messages_to(restarted, ADMIN), messages_to(restarted, successor)
    assert removed == []
    flagged = "Payment flagged (unknown_order): user 9201, charge stxGONE, 50 ⭐ credited as 50 ★"
    # the admin configured now gets the notice, true as it goes out
    assert now == [f"{flagged}, then refunded: that credit was taken back."]


def _migrate_as_newer_code(path: Path) -> None:
    """Apply one migration more than this code knows, as newer code's ``Journal.open`` would."""

    def j9999_newer_code(db: Database) -> None:
        db.execute("CREATE TABLE made_by_newer_code (id INTEGER)")

    db = Database(sqlite3.connect(path, isolation_level=None))
    try:
        migrations.apply(db, [*JOURNAL_MIGRATIONS, j9999_newer_code], JOURNAL_MIGRATION_SET)
    finally:
        db.conn.close()


async def test_an_older_bot_started_on_a_journal_newer_code_migrated_says_so(
    tmp_path: Path,
) -> None:
    # A rolling upgrade: the older version (re)started after the newer one migrated the
    # journal. It was refused with "the database's applied migrations do not match this code's
    # list ... refusing to guess", which reads as a damaged file, not as a newer version
    # serving. It says what the older bot serving says when that happens under it.
    data = tmp_path / "data"
    async with process_stack(data) as stack:
        bot = await ManagedProcess.start("-m", "bot", env=stack.env)
        try:
            await bot.wait_for_line("bot.started")
        finally:
            await bot.stop()
        _migrate_as_newer_code(data / "journal.db")
        older = await ManagedProcess.start("-m", "bot", env=stack.env)
        try:
            code = await older.wait(within=60)
        finally:
            await older.stop()
    assert code == 2
    assert "newer code has migrated the payment journal" in older.output
    assert "a newer version serves this data: run that one" in older.output
