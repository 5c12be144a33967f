"""Delivery of a payment's thank-you, and its credit, when the bot dies between the two writes.

The credit is exactly-once: the ledger books each charge id once, however often the journal's
open entry is booked again. The thank-you is at-least-once (docs/money.md, "Delivery"): a bot
killed after Telegram took it and before the journal recorded it thanks the user again after
the restart, in the same words, since nothing was credited twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from tests.botstack import TOKEN, bot_env
from tests.fakes.gated import GatedTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import Clock, ManagedProcess, run_gateway, wait_until
from tests.test_journal import THANKS, payments_in

if TYPE_CHECKING:
    from pathlib import Path

USER = 9401
STAR = 1_000_000


def journal_row(path: Path, charge: str) -> tuple[int | None, int | None]:
    """The entry's ``booked_at`` and ``notified_at`` as the journal file has them."""
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT booked_at, notified_at FROM payment_journal WHERE key = ?",
            [f"payment:{charge}"],
        ).fetchone()
    return (None, None) if row is None else (row[0], row[1])


async def test_sigkill_between_the_credit_and_the_journal_credits_once_and_thanks_again(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    telegram = GatedTelegram(token=TOKEN)
    async with (
        telegram,
        FakeVLLM() as vllm,
        run_gateway(vllm.url, clock=Clock()) as gateway,
    ):
        env = bot_env(telegram.url, gateway.url, gateway.verify_key, data) | {
            "VEIL_FREE_TOKENS_PER_DAY": "0",
        }
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        telegram.hold_messages_to(USER)
        charge = telegram.pay(USER, payload="order-kill", total_amount=50)
        async with asyncio.timeout(20):
            await telegram.holding.wait()  # credited, and the thank-you is on its way
        booked, notified = journal_row(data / "journal.db", charge)
        assert (booked is not None, notified) == (True, None)  # between the two writes
        assert await payments_in(data / "veil.db") == [(charge, 50 * STAR)]
        await bot.kill()
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            telegram.release_messages()  # Telegram took the first thank-you after all
            await wait_until(lambda: journal_row(data / "journal.db", charge)[1] is not None)
        finally:
            assert await bot.stop() == 0
    assert await payments_in(data / "veil.db") == [(charge, 50 * STAR)]  # credited once
    thanks = [m.get("text") for m in telegram.sent_messages(USER)]
    assert thanks == [THANKS, THANKS]  # at-least-once: the same words, the same balance
