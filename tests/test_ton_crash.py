"""A Gram payment when the bot dies between its credit and the message that tells the user.

The credit is exactly-once: the payment row (its transaction hash) and its ledger row are one
transaction, and the page read again after the restart finds the hash recorded. The message is
at-least-once, as for the Stars (docs/money.md, "Delivery"): a bot killed after Telegram took
it and before the payment was marked told tells the user again after the restart.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import TYPE_CHECKING

from tests.botstack import TOKEN, bot_env
from tests.fakes.gated import GatedTelegram
from tests.fakes.toncenter import FakeToncenter, hex_hash
from tests.fakes.vllm import FakeVLLM
from tests.harness import Clock, ManagedProcess, run_gateway, wait_until
from tests.tonstack import WALLET, WALLET_RAW

if TYPE_CHECKING:
    from pathlib import Path

USER = 9402
GRAM = 1_000_000_000
NOTICE = "Received 1 GRAM. 250 ★ added. Balance: 250 ★."


def ton_rows(path: Path) -> list[tuple[str, str, int, int]]:
    """Each TON payment's hash, status, µ★ and whether its user was told, as the file has it."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT hash, status, units, notified FROM ton_payments").fetchall()
    return [(str(h), str(s), int(u), int(n)) for h, s, u, n in rows]


def ton_credits(path: Path) -> list[tuple[str, int]]:
    """The ledger's ``ton:`` rows: source and µ★."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT source, amount FROM ledger WHERE source LIKE 'ton:%'").fetchall()
    return [(str(source), int(amount)) for source, amount in rows]


async def order_comment(telegram: GatedTelegram) -> str:
    """/buy, the 1-Gram pack's button: the invoice's comment."""
    telegram.send_text(USER, "/buy")
    await wait_until(lambda: len(telegram.sent_messages(USER)) >= 1)
    menu = telegram.sent_messages(USER)[0]
    buttons = [row[0] for row in menu["reply_markup"]["inline_keyboard"]]
    (button,) = [b for b in buttons if b["text"].startswith("1 GRAM")]
    telegram.press_button(USER, button["callback_data"], message_id=menu["message_id"])
    await wait_until(
        lambda: any("Comment:" in str(m.get("text", "")) for m in telegram.sent_messages(USER))
    )
    (invoice,) = [m for m in telegram.sent_messages(USER) if "Comment:" in str(m.get("text", ""))]
    found = re.search(r"Comment: ([A-Z0-9]{8})", str(invoice["text"]))
    assert found is not None
    return found.group(1)


async def test_sigkill_between_the_credit_and_the_notice_credits_once_and_tells_again(
    tmp_path: Path,
) -> None:
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
        }
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        comment = await order_comment(telegram)
        telegram.hold_messages_to(USER)
        paid = chain.add_transaction(WALLET_RAW, value=GRAM, comment=comment)
        tx = hex_hash(paid["hash"])
        async with asyncio.timeout(20):
            await telegram.holding.wait()  # credited, and the notice is on its way
        assert ton_rows(data / "veil.db") == [(tx, "credited", 250_000_000, 0)]
        await bot.kill()
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            telegram.release_messages()  # Telegram took the first notice after all
            await wait_until(lambda: ton_rows(data / "veil.db")[0][3] == 1)
        finally:
            assert await bot.stop() == 0
    assert ton_rows(data / "veil.db") == [(tx, "credited", 250_000_000, 1)]
    assert ton_credits(data / "veil.db") == [(f"ton:{tx}", 250_000_000)]  # credited once
    notices = [m.get("text") for m in telegram.sent_messages(USER) if "GRAM." in str(m.get("text"))]
    assert notices == [NOTICE, NOTICE]  # at-least-once: the same words, the same balance
