"""Webhook replicas share one journal: each entry is told by one desk at a time, never twice.

Every replica runs the payment desk. Without a claim, the replica that took the payment was still
telling its user when another's pass over the open entries told them again: two thank-yous
for one payment (the booking itself is idempotent: no money moved twice). A desk now claims an
entry in the journal (an owner and a lease, taken in one write transaction) before it books and
tells; a claim left by a replica that died lapses after its lease, so nothing is lost.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.app import running_veil
from models.journal import Journal, JournalEntry
from tests.botstack import TOKEN
from tests.fakes.gated import GatedTelegram
from tests.harness import CLIENT_KEY
from tests.test_bot_payments import STAR, USER, balance_units, buy_pack, paying_stack

if TYPE_CHECKING:
    from pathlib import Path

    from services.journal import PaymentJournal

THANKS = "Thank you! 50 ★ added. Balance: 50 ★."


def thanks_to(telegram: GatedTelegram, user: int) -> list[str]:
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


def payment(charge_id: str) -> JournalEntry:
    return JournalEntry(
        kind="payment",
        user_id=USER,
        payload="pack:0",
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
