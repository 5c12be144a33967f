"""Crash safety: SIGKILL the bot mid-payment and mid-answer, restart, redeliver; nothing lost."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from models import MasterKey, Store
from tests.books import inconsistent_users
from tests.botstack import TOKEN, bot_env
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import Clock, ManagedProcess, run_gateway

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.fakes.telegram import Call

USERS = [9101, 9102, 9103]


def chat_is(user: int) -> Callable[[Call], bool]:
    return lambda call: call.params["chat_id"] == user


STAR = 1_000_000


async def test_kill_during_payments_and_answers_then_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    answer = " ".join(f"w{i}" for i in range(40))
    async with (
        FakeTelegram(token=TOKEN) as telegram,
        FakeVLLM(answer=answer, token_delay=0.05) as vllm,
        run_gateway(vllm.url, clock=Clock()) as gateway,
    ):
        env = bot_env(telegram.url, gateway.url, gateway.verify_key, data) | {
            "VEIL_PRICES": "*=1000/2000",
            "VEIL_FREE_TOKENS_PER_DAY": "0",
            "VEIL_MAX_ANSWER_TOKENS": "100",
        }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        await bot.wait_for_line("bot.started")
        # Everyone pays for credit (orders unknown to the bot: credited and flagged).
        charges = {
            user: telegram.pay(user, payload=f"crash-{user}", total_amount=50) for user in USERS
        }
        for user in USERS:
            await telegram.wait_for("sendMessage", chat_is(user), timeout=20)
        # Questions in flight, and a second payment arriving, when the bot dies.
        for user in USERS:
            telegram.send_text(user, "a slow answer please")
        await telegram.wait_for("sendMessageDraft")
        late = telegram.pay(USERS[0], payload="crash-late", total_amount=250)
        await bot.kill()
        # Restart; Telegram redelivers the payments it is unsure were handled.
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            recovered = bot.json_event("bot.holds_recovered")
            assert 1 <= int(str(recovered["count"])) <= len(USERS)
            for user, charge in charges.items():
                telegram.pay(user, payload=f"crash-{user}", total_amount=50, charge_id=charge)
            telegram.pay(USERS[0], payload="crash-late", total_amount=250, charge_id=late)
            telegram.send_text(USERS[1], "and one more after the restart")
            await telegram.wait_for(
                "sendMessage",
                lambda c: c.params["chat_id"] == USERS[1] and c.params["text"] == answer,
                timeout=30,
            )
            await asyncio.sleep(0.5)
        finally:
            assert await bot.stop() == 0
    with sqlite3.connect(data / "veil.db") as db:
        payments = db.execute("SELECT charge_id, stars FROM payments").fetchall()
        purchases = db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'purchase'"
        ).fetchone()[0]
        charged = db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind IN ('usage', 'free')"
        ).fetchone()[0]
        total = db.execute("SELECT COALESCE(SUM(amount), 0) FROM ledger").fetchone()[0]
        open_holds = db.execute(
            "SELECT COUNT(*) FROM ledger h WHERE h.kind = 'hold' AND NOT EXISTS"
            " (SELECT 1 FROM ledger r WHERE r.source = 'release:' || substr(h.source, 6))"
        ).fetchone()[0]
    assert sorted(stars for _, stars in payments) == [50, 50, 50, 250]
    assert purchases == 400 * STAR  # every payment credited exactly once
    assert open_holds == 0  # holds of the killed answers were released at restart
    assert total == purchases + charged  # the ledger is what was paid minus what receipts charged
    assert charged < 0
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    try:
        assert await inconsistent_users(store) == []
    finally:
        await store.close()
