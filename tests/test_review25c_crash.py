"""SIGKILL after a fast bot kept its stream's earlier start, before it booked what it read.

A bot fifteen minutes fast starts its Gram stream ten minutes before its own clock, five
minutes in the chain's future, and reads from its lead on toncenter's clock earlier
(``chain_since``, kept with the cursor before anything read from there is booked). Killed on
entering ``TonBooks.book`` (``tests/killsite``) with a payment on the page, then set right and
restarted, it must read from the start it kept, not from ``since``: the payment is credited,
once, and its user told once.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from tests.botstack import TOKEN, process_stack
from tests.fakes.gated import GatedTelegram
from tests.fakes.toncenter import FakeToncenter, hex_hash
from tests.harness import REPO, ManagedProcess, wait_until
from tests.test_clock23_skew import libfaketime
from tests.test_ton_crash import USER, order_comment, ton_credits, ton_rows
from tests.tonstack import WALLET, WALLET_RAW

if TYPE_CHECKING:
    from pathlib import Path

GRAM = 1_000_000_000
AHEAD_S = 900
NOTICE = "Received 1 GRAM. 250 ★ added. Balance: 250 ★."
KILL_SITE = REPO / "tests" / "killsite"


def cursor_row(path: Path) -> tuple[int, int | None, int | None]:
    """The Gram stream's ``since``, ``chain_since`` and ``lt``, as the file has them."""
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT since, chain_since, lt FROM ton_cursors WHERE stream = 'gram'"
        ).fetchone()
    return int(row[0]), row[1], row[2]


async def test_a_fast_bot_killed_before_booking_then_set_right_credits_the_payment_once(
    tmp_path: Path,
) -> None:
    lib = libfaketime()
    if lib is None:
        pytest.skip("libfaketime is missing (Debian: apt-get install faketime, as .ci/run does)")
    data = tmp_path / "data"
    db = data / "veil.db"
    telegram = GatedTelegram(token=TOKEN)
    async with process_stack(data, telegram_server=telegram) as stack, FakeToncenter() as chain:
        env = stack.env | {
            "VEIL_FREE_TOKENS_PER_DAY": "0",
            "VEIL_TON_ADDRESS": WALLET.bounceable,
            "VEIL_TONCENTER_URL": chain.url,
            "VEIL_TON_POLL_INTERVAL": "0.1",
            "VEIL_TON_PACKS": "1000000000:250000000",
        }
        fast = env | {
            "LD_PRELOAD": lib,
            "FAKETIME": f"+{AHEAD_S}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": str(KILL_SITE),
            "VEIL_TEST_KILL_AT": "services.ton.books:TonBooks.book",
        }
        bot = await ManagedProcess.start("-m", "bot", env=fast)
        try:
            await bot.wait_for_line("bot.started")
            comment = await order_comment(telegram)
            paid = chain.add_transaction(WALLET_RAW, value=GRAM, comment=comment)
            await wait_until(lambda: bot.process.returncode is not None, within=20)
        finally:
            await bot.kill()
        since, chain_since, lt = cursor_row(db)
        assert (chain_since, lt) == (since - AHEAD_S, None)  # kept; nothing booked
        assert ton_rows(db) == []
        bot = await ManagedProcess.start("-m", "bot", env=env)  # set right
        try:
            await bot.wait_for_line("bot.started")
            await wait_until(
                lambda: any(m.get("text") == NOTICE for m in telegram.sent_messages(USER)),
                within=20,
            )
            reads = len(chain.calls("/api/v3/transactions"))
            await wait_until(lambda: len(chain.calls("/api/v3/transactions")) >= reads + 5)
        finally:
            assert await bot.stop() == 0
    tx = hex_hash(paid["hash"])
    assert ton_rows(db) == [(tx, "credited", 250_000_000, 1)]
    assert ton_credits(db) == [(f"ton:{tx}", 250_000_000)]
    notices = [m.get("text") for m in telegram.sent_messages(USER) if "GRAM." in str(m.get("text"))]
    assert notices == [NOTICE]
