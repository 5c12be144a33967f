"""Webhook replicas share one journal: each entry is told by one desk at a time, never twice.

Every replica runs the payment desk. Without a claim, the replica that took the payment was still
telling its user when another's pass over the open entries told them again: two thank-yous
for one payment (the booking itself is idempotent: no money moved twice). A desk now claims an
entry in the journal (an owner and a lease, taken in one write transaction) before it books and
tells; a claim left by a replica that died lapses after its lease, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from bot.app import running_veil
from bot.payments import PaymentDesk
from models.journal import Journal, JournalEntry
from services.errors import JournalUnavailable
from services.journal import CLAIM_LEASE_S, PaymentJournal
from services.shop import Shop
from tests.botstack import TOKEN
from tests.fakes.gated import GatedTelegram
from tests.harness import CLIENT_KEY, Clock
from tests.test_bot_payments import STAR, USER, balance_units, buy_pack, paying_stack
from tests.test_journal import ledger_locked

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack
    from tests.fakes.telegram import FakeTelegram

THANKS = "Thank you! 50 ★ added. Balance: 50 ★."


def thanks_to(telegram: FakeTelegram, user: int) -> list[str]:
    texts = [str(m.get("text", "")) for m in telegram.sent_messages(user)]
    return [text for text in texts if text.startswith("Thank you")]


async def finished(journal: PaymentJournal, key: str) -> bool:
    entry = await journal.get(key)
    return entry is not None and entry.notified_at is not None


async def test_two_replicas_on_one_database_thank_the_user_once(tmp_path: Path) -> None:
    telegram = GatedTelegram(token=TOKEN)
    async with (
        paying_stack(tmp_path, webhook=True, telegram_server=telegram) as stack,
        running_veil(stack.veil.settings, CLIENT_KEY, recover_all=False) as other,
    ):
        invoice = await buy_pack(stack, USER)
        telegram.hold_messages_to(USER)
        charge = telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        async with asyncio.timeout(10):
            await telegram.holding.wait()  # the replica that took it is telling the user now
        key = f"payment:{charge}"
        # The other replica's pass over the open entries, meanwhile: the entry is claimed.
        second = asyncio.create_task(other.desk.process_pending())
        await asyncio.wait({second}, timeout=5)
        telegram.release_messages()
        left = await asyncio.wait_for(second, 10)
        async with asyncio.timeout(10):
            while not await finished(stack.veil.desk.journal, key):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert thanks_to(telegram, USER) == [THANKS]
        assert left is False  # the other replica left it to the one telling the user
        assert await other.desk.process_pending() is True  # finished: nothing left to tell
        assert await balance_units(stack, USER) == 50 * STAR


def payment(charge_id: str, payload: str = "pack:0") -> JournalEntry:
    return JournalEntry(
        kind="payment",
        user_id=USER,
        payload=payload,
        currency="XTR",
        total_amount=50,
        charge_id=charge_id,
        received_at=1,
    )


async def test_a_claim_holds_for_its_owner_until_its_lease_ends(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    first, second = await Journal.open(path), await Journal.open(path)  # two processes' own
    try:
        await first.record([payment("stx1")])
        assert await first.claim("payment:stx1", "replica-a", now=100, lease=60) is True
        assert await second.claim("payment:stx1", "replica-b", now=130, lease=60) is False
        assert await first.claim("payment:stx1", "replica-a", now=130, lease=60) is True  # again
        # replica-a died holding it: its lease (renewed to 190) ends, and replica-b takes it.
        assert await second.claim("payment:stx1", "replica-b", now=189, lease=60) is False
        assert await second.claim("payment:stx1", "replica-b", now=191, lease=60) is True
        await first.release("payment:stx1", "replica-a")  # late: releases nothing of b's
        assert await first.claim("payment:stx1", "replica-a", now=200, lease=60) is False
        await second.release("payment:stx1", "replica-b")
        assert await first.claim("payment:stx1", "replica-a", now=200, lease=60) is True
        await first.mark_notified("payment:stx1", 201)
        # A finished (or unknown) entry holds nothing to claim: the caller finds it finished.
        assert await second.claim("payment:stx1", "replica-b", now=202, lease=60) is True
        assert await second.claim("payment:nothing", "replica-b", now=202, lease=60) is True
    finally:
        await first.close()
        await second.close()


def claimed_until(path: Path, key: str) -> float:
    """The end of the lease of the entry's claim, as the journal file has it now."""
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT claimed_until FROM payment_journal WHERE key = ?", [key]
        ).fetchone()
    return float(row[0])


def desk_on(journal: Journal, stack: Stack, lease: float) -> PaymentDesk:
    """A replica's payment desk on ``journal``, with the stack's ledger, bot and texts."""
    veil = stack.veil
    books = PaymentJournal(journal, veil.shop, veil.credit, claim_lease=lease)
    return PaymentDesk(books, veil.bot, veil.catalogs)


async def test_a_desk_waiting_out_a_flood_wait_longer_than_its_lease_keeps_its_claim(
    tmp_path: Path,
) -> None:
    # The desk that took the payment waits out Telegram's flood control (retry_after) for
    # longer than its claim's lease. Its claim was not renewed: it lapsed, the other replica's
    # pass took the entry and thanked the user, and then the first desk thanked them again.
    lease = 2.0  # renewed every 0.67 s: a beat late by more than 1.33 s would lose it
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        path = tmp_path / "replicas-journal.db"  # two replicas' desks on one journal file
        first, second = await Journal.open(path), await Journal.open(path)
        try:
            desks = desk_on(first, stack, lease), desk_on(second, stack, lease)
            entry = payment("stx-flood", payload=invoice["payload"])
            await desks[0].record([entry])
            stack.telegram.fail_next(
                "sendMessage",
                status=429,
                description="Too Many Requests: retry after 6",
                retry_after=6,  # three leases: the session waits it out, then sends again
            )
            telling = asyncio.create_task(desks[0].process(entry.key))
            await stack.telegram.wait_for(
                "sendMessage", lambda c: c.params["chat_id"] == USER and c.answered != "ok"
            )
            taken_until = claimed_until(path, entry.key)
            await asyncio.sleep(taken_until - time.time() + 0.05)  # its first lease has ended
            left = await desks[1].process(entry.key)  # the other replica's pass, meanwhile
            done = await asyncio.wait_for(telling, 30)
            assert (done, left) == (True, False)
            assert thanks_to(stack.telegram, USER) == [THANKS]
            assert await desks[1].process_pending() is True  # finished: nothing left to tell
        finally:
            await first.close()
            await second.close()
        assert await balance_units(stack, USER) == 50 * STAR


async def test_a_desk_that_lost_its_claim_writes_none_of_its_progress(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    first, second = await Journal.open(path), await Journal.open(path)
    key = "payment:stx2"
    try:
        await first.record([payment("stx2")])
        assert await first.claim(key, "replica-a", now=100, lease=60) is True
        # replica-a stalled past its lease; replica-b took the entry and is telling it now.
        assert await second.claim(key, "replica-b", now=161, lease=60) is True
        assert await first.mark_told(key, "replica-a") is False
        assert await first.mark_thanked(key, "replica-a") is False
        assert await first.mark_admin_told(key, 9999, "replica-a") is False
        assert await first.mark_notified(key, 170, "replica-a") is False
        entry = await second.get(key)
        assert entry is not None
        assert (entry.told, entry.thanked, entry.admins_told, entry.notified_at) == (
            False,
            False,
            frozenset(),
            None,
        )
        # The holder's own writes go through.
        assert await second.mark_thanked(key, "replica-b") is True
        assert await second.mark_admin_told(key, 9999, "replica-b") is True
        assert await second.mark_notified(key, 171, "replica-b") is True
        entry = await second.get(key)
        assert entry is not None
        assert (entry.thanked, entry.admins_told, entry.notified_at) == (
            True,
            frozenset({9999}),
            171,
        )
    finally:
        await first.close()
        await second.close()


async def test_a_thank_you_the_journal_could_not_record_is_not_sent_again(tmp_path: Path) -> None:
    # The thank-you went out, then the journal could not be written (locked past its busy
    # timeout): the entry stayed open, and the desk's next pass thanked the user again.
    telegram = GatedTelegram(token=TOKEN)
    async with paying_stack(tmp_path, telegram_server=telegram) as stack:
        invoice = await buy_pack(stack, USER)
        path = tmp_path / "desk-journal.db"
        journal = await Journal.open(path, busy_timeout=0.2)
        try:
            desk = desk_on(journal, stack, CLAIM_LEASE_S)
            entry = payment("stx-unrecorded", payload=invoice["payload"])
            await desk.record([entry])
            telegram.hold_messages_to(USER)
            telling = asyncio.create_task(desk.process(entry.key))
            async with asyncio.timeout(10):
                await telegram.holding.wait()  # the desk is thanking the user now
            with ledger_locked(path):  # and the journal cannot be written meanwhile
                telegram.release_messages()
                with pytest.raises(JournalUnavailable):
                    await asyncio.wait_for(telling, 10)
            assert thanks_to(telegram, USER) == [THANKS]
            assert await desk.process(entry.key) is True  # the journal is back: finished
            finished_entry = await journal.get(entry.key)
            assert finished_entry is not None
            assert finished_entry.notified_at is not None
            assert thanks_to(telegram, USER) == [THANKS]
        finally:
            await journal.close()
        assert await balance_units(stack, USER) == 50 * STAR


async def test_a_desk_forgets_what_it_sent_for_an_entry_another_replica_finished(
    tmp_path: Path,
) -> None:
    # A desk remembers what it sent for an open entry until it finishes the entry itself. One
    # that another replica's desk finished never came back to it: each such entry's memory
    # stayed for the life of the process, one more per payment a replica left to the other.
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        path = tmp_path / "replicas-journal.db"
        first, second = await Journal.open(path), await Journal.open(path)
        try:
            desks = desk_on(first, stack, CLAIM_LEASE_S), desk_on(second, stack, CLAIM_LEASE_S)
            entry = payment("stx-elsewhere", payload=invoice["payload"])
            await desks[0].record([entry])
            # Telegram cannot take the thank-you now (a 502, and the session's one retry too).
            stack.telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=2)
            assert await desks[0].process(entry.key) is False
            assert await desks[1].process(entry.key) is True  # the other replica tells the user
            assert await desks[0].process_pending() is True  # nothing left open
            assert dict(desks[0]._sent) == {}  # the memory the desk holds
            assert dict(desks[0]._locks) == dict(desks[1]._locks) == {}  # and its locks
        finally:
            await first.close()
            await second.close()
        assert thanks_to(stack.telegram, USER) == [THANKS]


async def test_passes_over_one_entry_in_one_desk_take_turns_however_many_wait(
    tmp_path: Path,
) -> None:
    # The desk kept a lock for every entry it ever processed (its "let go when free" check ran
    # while the lock was still held): one more lock a payment for the life of the process.
    # Letting go of a lock as soon as it is free is not enough: a pass still waiting on it and a
    # newcomer (the handler, the loop and a refund all book one payment) would hold two locks
    # at once and both thank the user. A lock goes when no pass holds or awaits it.
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        journal = await Journal.open(tmp_path / "desk-journal.db")
        try:
            desk = desk_on(journal, stack, CLAIM_LEASE_S)
            entry = payment("stx-turns", payload=invoice["payload"])
            await desk.record([entry])
            # The first pass cannot thank the user (a 502, and the session's one retry too).
            stack.telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=2)
            first = asyncio.create_task(desk.process(entry.key))
            await stack.telegram.wait_for("sendMessage", lambda c: c.answered != "ok")
            second = asyncio.create_task(desk.process(entry.key))  # waits for the first
            third: list[asyncio.Task[bool]] = []  # comes the moment the first is done
            first.add_done_callback(
                lambda _: third.append(asyncio.create_task(desk.process(entry.key)))
            )
            assert await first is False
            assert len(third) == 1
            results = await asyncio.wait_for(asyncio.gather(second, third[0]), 30)
            assert True in results
            assert dict(desk._locks) == {}  # each let go of once no pass needs it
        finally:
            await journal.close()
        assert thanks_to(stack.telegram, USER) == [THANKS]


async def test_a_desk_whose_claim_was_taken_does_not_thank_again_when_it_takes_it_back(
    tmp_path: Path,
) -> None:
    # The desk thanked the user; meanwhile its lease had lapsed and the other replica's desk
    # took the entry, so its final journal write ("finished") was refused. It forgot what it
    # sent; the other desk could not tell the user (Telegram failed it) and let go; and this
    # desk, taking the entry back, thanked the user a second time.
    telegram = GatedTelegram(token=TOKEN)
    async with paying_stack(tmp_path, telegram_server=telegram) as stack:
        invoice = await buy_pack(stack, USER)
        path = tmp_path / "replicas-journal.db"
        first, second = await Journal.open(path), await Journal.open(path)
        try:
            veil = stack.veil
            desk = desk_on(first, stack, CLAIM_LEASE_S)
            # The other replica's clock is past this desk's lease: it may take the entry.
            later = PaymentJournal(
                second, veil.shop, veil.credit, lambda: time.time() + 2 * CLAIM_LEASE_S
            )
            other = PaymentDesk(later, veil.bot, veil.catalogs)
            entry = payment("stx-taken", payload=invoice["payload"])
            await desk.record([entry])
            telegram.hold_messages_to(USER)
            telling = asyncio.create_task(desk.process(entry.key))
            async with asyncio.timeout(10):
                await telegram.holding.wait()  # the desk is thanking the user now
            assert await later.claim(entry.key) is True  # the other replica takes the entry
            telegram.release_messages()
            assert await asyncio.wait_for(telling, 10) is False  # "finished" refused
            # The other desk cannot thank the user (a 502, and the session's one retry too).
            telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=2)
            assert await other.process(entry.key) is False
            assert await desk.process(entry.key) is True  # taken back, and finished
            assert await finished(desk.journal, entry.key)
            assert thanks_to(telegram, USER) == [THANKS]
        finally:
            await first.close()
            await second.close()
        assert await balance_units(stack, USER) == 50 * STAR


async def test_a_refund_told_while_its_payments_thank_you_waits_leaves_the_thank_you(
    tmp_path: Path,
) -> None:
    # The payment was credited, but Telegram could not take its thank-you (the entry stays
    # open); its refund is then booked and told. The payment's next pass still owes the
    # thank-you: not a second refund notice (the refund came after its payment, not before).
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        journal = await Journal.open(tmp_path / "desk-journal.db")
        try:
            desk = desk_on(journal, stack, CLAIM_LEASE_S)
            paid = payment("stx-thanked-late", payload=invoice["payload"])
            await desk.record([paid])
            stack.telegram.fail_next(
                "sendMessage", status=500, description="Internal Server Error", count=2
            )
            assert await desk.process(paid.key) is False  # credited; the thank-you waits
            refund = JournalEntry(
                kind="refund",
                user_id=USER,
                payload=invoice["payload"],
                currency="XTR",
                total_amount=50,
                charge_id=paid.charge_id,
                received_at=2,
            )
            await desk.record([refund])
            assert await desk.process(refund.key) is True
            assert await desk.process(paid.key) is True
        finally:
            await journal.close()
        texts = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
        assert await balance_units(stack, USER) == 0
    told = [t for t in texts if t.startswith(("Thank you", "Your payment was refunded"))]
    # The refund's pass sends the thank-you it waits for first: told in the order they came.
    assert told == [
        "Thank you! 50 ★ added.",
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★.",
    ]


async def test_a_refund_booked_in_the_second_its_payment_was_credited_leaves_the_thank_you(
    tmp_path: Path,
) -> None:
    # As above, but the refund was booked in the same second as its payment was credited (or
    # by a replica whose clock is a second behind): the payment's next pass took the refund
    # for one booked before it, told the refund a second time, and never thanked the user.
    clock = Clock()  # the ledger's and the journal's clock, the same second throughout
    async with paying_stack(tmp_path) as stack:
        veil = stack.veil
        invoice = await buy_pack(stack, USER)
        shop = Shop(veil.store, veil.shop.packs, veil.shop.plan, clock=clock)
        journal = await Journal.open(tmp_path / "same-second-journal.db")
        try:
            books = PaymentJournal(journal, shop, veil.credit, clock)
            desk = PaymentDesk(books, veil.bot, veil.catalogs)
            paid = payment("stx-same-second", payload=invoice["payload"])
            await desk.record([paid])
            stack.telegram.fail_next(
                "sendMessage", status=500, description="Internal Server Error", count=2
            )
            assert await desk.process(paid.key) is False  # credited; the thank-you waits
            refund = replace(paid, kind="refund", received_at=2)
            await desk.record([refund])
            assert await desk.process(refund.key) is True
            assert await desk.process(paid.key) is True
        finally:
            await journal.close()
        texts = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
        assert await balance_units(stack, USER) == 0
    told = [t for t in texts if t.startswith(("Thank you", "Your payment was refunded"))]
    # The refund's pass sends the thank-you it waits for first: told in the order they came.
    assert told == [
        "Thank you! 50 ★ added.",
        "Your payment was refunded and its 50 ★ of credit taken back. Balance: 0 ★.",
    ]


async def test_a_desk_woken_as_it_is_stopped_stops(tmp_path: Path) -> None:
    # The desk's loop waited for its wake-up with asyncio.wait_for, which on Python 3.11
    # swallows a cancel that comes in the loop's turn the event is set (a payment handed to the
    # loop as the bot shuts down): the loop went on booking, and the shutdown waiting for it
    # never ended (seen in CI: a payment test's teardown hung past pytest's 120 s).
    async with paying_stack(tmp_path) as stack:
        journal = await Journal.open(tmp_path / "desk-journal.db")
        try:
            desk = desk_on(journal, stack, CLAIM_LEASE_S)
            running = asyncio.create_task(desk.run())
            await asyncio.sleep(0.2)  # it has looked at the journal and waits to be woken
            desk._wake.set()  # what ``take`` does, in the turn of the stop
            running.cancel()
            done, _ = await asyncio.wait({running}, timeout=10)
        finally:
            await journal.close()
    assert done == {running}
    assert running.cancelled()
