"""A gateway restarted while an answer streams (an upgrade, an operator key rotation).

The gateway ends each stream at once with a ``stopped`` receipt when it stops. The bot did not
ask for that stop, so the answer failed: the user is told it broke off, under the part shown,
and it is billed by that receipt. It was taken for a finished answer: the first word alone,
without a word of what happened.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from common.texts import Catalogs
from tests.botstack import TOKEN, bot_env
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    ManagedProcess,
    free_port,
    gateway_env,
    new_operator_key,
    wait_until,
)

if TYPE_CHECKING:
    from pathlib import Path

USER = 9601
ANSWER = " ".join(f"w{i}" for i in range(80))


async def start_gateway(vllm_url: str, key_file: Path, port: int) -> ManagedProcess:
    """``python -m gateway`` on ``port``, started (the same address again after a restart)."""
    gateway = await ManagedProcess.start("-m", "gateway", env=gateway_env(vllm_url, key_file, port))
    await gateway.wait_for_line("gateway.started")
    return gateway


async def test_an_answer_a_gateway_restart_cut_off_is_told_as_broken_off(tmp_path: Path) -> None:
    key_file, verify_key = await new_operator_key(tmp_path)
    port = free_port()
    broke_off = Catalogs().for_language("en")("answer_broke_off")
    async with (
        FakeTelegram(token=TOKEN) as telegram,
        FakeVLLM(answer=ANSWER, token_delay=0.1) as vllm,
    ):
        gateway = await start_gateway(vllm.url, key_file, port)
        data = tmp_path / "data"
        env = bot_env(telegram.url, f"http://127.0.0.1:{port}", verify_key, data)
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            telegram.send_text(USER, "a long answer, please")
            await telegram.wait_for("sendMessageDraft")
            assert await gateway.stop() == 0  # SIGTERM, as a restart sends it
            told = await telegram.wait_for(
                "sendMessage", lambda c: c.params["text"] == broke_off, timeout=30
            )
            gateway = await start_gateway(vllm.url, key_file, port)
            telegram.send_text(USER, "and again")
            await telegram.wait_for("sendMessage", lambda c: c.params["text"] == ANSWER, timeout=60)
        finally:
            assert await bot.stop() == 0
            await gateway.stop()
    texts = [str(c.params["text"]) for c in telegram.calls_of("sendMessage")]
    shown = texts[: texts.index(broke_off)]
    assert shown  # the part that came stays, the note under it
    assert ANSWER.startswith(" ".join(shown))
    assert " ".join(shown) != ANSWER
    assert told.params["chat_id"] == USER
    with sqlite3.connect(data / "veil.db") as db:
        receipts = db.execute("SELECT COUNT(*) FROM usage_receipts").fetchone()[0]
        answers = db.execute("SELECT COUNT(*) FROM turns WHERE role = 'assistant'").fetchone()[0]
    assert receipts == 2  # both billed by the gateway's signed receipts
    assert answers == 1  # the broken-off one is not kept as an answer


async def test_an_answer_a_gateway_restart_stopped_before_its_text_goes_to_the_next_gateway(
    tmp_path: Path,
) -> None:
    key_file, verify_key = await new_operator_key(tmp_path)
    ports = [free_port(), free_port()]
    async with (
        FakeTelegram(token=TOKEN) as telegram,
        FakeVLLM(answer=ANSWER) as first,
        FakeVLLM(answer=ANSWER) as second,
    ):
        models = [first, second]
        for vllm in models:
            vllm.pauses = {0}  # each stream waits before its first token
        gateways = [
            await start_gateway(vllm.url, key_file, port)
            for vllm, port in zip(models, ports, strict=True)
        ]
        urls = ",".join(f"http://127.0.0.1:{port}" for port in ports)
        env = bot_env(telegram.url, urls, verify_key, tmp_path / "data")
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            telegram.send_text(USER, "a question")
            await wait_until(lambda: sum(vllm.paused for vllm in models) == 1)
            asked = next(i for i, vllm in enumerate(models) if vllm.paused)
            models[1 - asked].pauses = set()
            assert await gateways[asked].stop() == 0  # before any text of the answer
            models[asked].resume()
            answer = await telegram.wait_for(
                "sendMessage", lambda c: c.params["chat_id"] == USER, timeout=30
            )
        finally:
            assert await bot.stop() == 0
            for gateway in gateways:
                await gateway.stop()
    assert answer.params["text"] == ANSWER
    assert len(models[1 - asked].requests) == 1
