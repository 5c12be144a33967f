"""A bot fifteen minutes fast, and the Gram payment made in a new deployment's first minutes.

A stream's first read started ten minutes before the watcher's first pass by the bot's clock:
five minutes in the chain's future for a bot fifteen minutes fast, so a payment made at once
(its chain time earlier than that) was never read and never credited. The first read now
starts by toncenter's clock (the bot's lead on it, from its answers' ``Date``): the payment is
credited, once, and the lead is logged (``ton.clock_ahead``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.botstack import TOKEN, bot_env
from tests.fakes.gated import GatedTelegram
from tests.fakes.toncenter import FakeToncenter, hex_hash
from tests.fakes.vllm import FakeVLLM
from tests.harness import Clock, ManagedProcess, run_gateway, wait_until
from tests.test_clock23_skew import libfaketime
from tests.test_ton_crash import USER, order_comment, ton_credits, ton_rows
from tests.tonstack import WALLET, WALLET_RAW

if TYPE_CHECKING:
    from pathlib import Path

GRAM = 1_000_000_000
AHEAD_S = 900
NOTICE = "Received 1 GRAM. 250 ★ added. Balance: 250 ★."


async def test_a_payment_to_a_bot_fifteen_minutes_fast_is_credited_once(tmp_path: Path) -> None:
    lib = libfaketime()
    if lib is None:
        pytest.skip("libfaketime is missing (Debian: apt-get install faketime, as .ci/run does)")
    data = tmp_path / "data"
    telegram = GatedTelegram(token=TOKEN)
    async with (
        telegram,
        FakeToncenter() as chain,
        FakeVLLM() as vllm,
        run_gateway(vllm.url, clock=Clock()) as gateway,
    ):
        env = bot_env(telegram.url, gateway.url, gateway.verify_key, data) | {
            "VEIL_FREE_TOKENS_PER_DAY": "0",
            "VEIL_TON_ADDRESS": WALLET.bounceable,
            "VEIL_TONCENTER_URL": chain.url,
            "VEIL_TON_POLL_INTERVAL": "0.1",
            "VEIL_TON_PACKS": "1000000000:250000000",
            "LD_PRELOAD": lib,
            "FAKETIME": f"+{AHEAD_S}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            comment = await order_comment(telegram)
            paid = chain.add_transaction(WALLET_RAW, value=GRAM, comment=comment)  # chain time
            tx = hex_hash(paid["hash"])
            await wait_until(
                lambda: any(m.get("text") == NOTICE for m in telegram.sent_messages(USER)),
                within=20,
            )
            # Passes go on reading from the payment's transaction: nothing is booked again.
            reads = len(chain.calls("/api/v3/transactions"))
            await wait_until(lambda: len(chain.calls("/api/v3/transactions")) >= reads + 5)
        finally:
            assert await bot.stop() == 0
    assert ton_rows(data / "veil.db") == [(tx, "credited", 250_000_000, 1)]
    assert ton_credits(data / "veil.db") == [(f"ton:{tx}", 250_000_000)]
    notices = [m.get("text") for m in telegram.sent_messages(USER) if "GRAM." in str(m.get("text"))]
    assert notices == [NOTICE]
    lead = bot.json_event("ton.clock_ahead")
    assert (lead["level"], lead["asset"], lead["ahead_s"]) == ("warning", "gram", AHEAD_S)
