"""SIGTERM to ``python -m bot`` while the Mini App relays an answer: it drains like a chat answer.

The bot runs as a real process with its Mini App served; the page is played in Python
(``tests.miniapp.PythonPage``). With a long enough ``VEIL_SHUTDOWN_GRACE`` the relayed answer
streaming when the signal came reaches the page whole and is settled from its ``complete``
receipt, while a new question is refused; with a short grace the relay hangs up and settles
from the gateway's ``stopped`` receipt. Either way the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from typing import TYPE_CHECKING, Any

import aiohttp

from sealed.errors import StreamTruncated
from tests.botstack import process_stack
from tests.harness import ManagedProcess, free_port
from tests.miniapp import PythonPage, read_stream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.harness import RunningGateway

QUESTION = "drain secret: copper-lantern-42"
ANSWER = " ".join(f"otter{i}" for i in range(60))  # 60 tokens, 50 ms apart: three seconds
CHAT = {"model": "veil-test", "messages": [{"role": "user", "content": QUESTION}]}


@contextlib.asynccontextmanager
async def mini_app_bot(
    tmp_path: Path, grace: str
) -> AsyncIterator[tuple[ManagedProcess, str, RunningGateway]]:
    """The bot as a process serving its Mini App; yields it, the page's URL and the gateway."""
    async with process_stack(tmp_path / "data", answer=ANSWER, token_delay=0.05) as stack:
        port = free_port()
        env = stack.env | {
            "VEIL_SHUTDOWN_GRACE": grace,
            "VEIL_FREE_TOKENS_PER_DAY": "1000000",
            "VEIL_WEBAPP_URL": f"http://127.0.0.1:{port}/app/",
            "VEIL_WEBAPP_PORT": str(port),
        }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started", within=60)
            yield bot, f"http://127.0.0.1:{port}/app/", stack.gateway
        finally:
            await bot.stop(within=60)


def closed_holds(data: Path) -> list[dict[str, Any]]:
    """Every hold in the database, as the ledger closed it."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'veil.db'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT outcome, receipt_status, completion_used FROM holds").fetchall()
    keys = ("outcome", "receipt_status", "completion")
    return [dict(zip(keys, row, strict=True)) for row in rows]


async def test_sigterm_lets_a_relayed_answer_finish_and_refuses_new_ones(tmp_path: Path) -> None:
    async with (
        mini_app_bot(tmp_path, grace="30") as (bot, base, gateway),
        aiohttp.ClientSession() as http,
    ):
        page = PythonPage(http, base, gateway.verify_key)
        async with page.relay(CHAT) as (response, asked):
            assert response.status == 200
            first = await response.content.readany()  # the answer has begun
            bot.process.send_signal(signal.SIGTERM)
            await bot.wait_for_line("bot.draining")
            assert bot.json_event("bot.draining")["relayed"] == 1
            # While draining the relay takes no new question; the page is told so politely.
            other = PythonPage(http, base, gateway.verify_key)
            async with other.relay(CHAT) as (refused, _):
                assert refused.status == 503
                assert (await refused.json())["error"]["code"] == "unavailable"
            asked.raw = first + await response.read()
        read_stream(asked)
        async with asyncio.timeout(60):
            code = await bot.process.wait()
    assert code == 0
    assert asked.text == ANSWER
    assert asked.final is not None
    assert asked.final.receipt is not None
    (hold,) = closed_holds(tmp_path / "data")
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "complete")
    assert hold["completion"] == 60
    assert "bot.grace_over" not in bot.output
    assert "bot.stopped" in bot.output
    for secret in ("copper", "lantern", "otter"):
        assert secret not in bot.output


async def test_after_a_short_grace_the_relay_hangs_up_and_charges_a_stop(tmp_path: Path) -> None:
    async with (
        mini_app_bot(tmp_path, grace="0.5") as (bot, base, gateway),
        aiohttp.ClientSession() as http,
    ):
        page = PythonPage(http, base, gateway.verify_key)
        async with page.relay(CHAT) as (response, asked):
            assert response.status == 200
            first = await response.content.readany()
            bot.process.send_signal(signal.SIGTERM)
            rest = b""
            with contextlib.suppress(aiohttp.ClientPayloadError):
                rest = await response.read()
            asked.raw = first + rest
        async with asyncio.timeout(60):
            code = await bot.process.wait()
    assert code == 0
    try:
        read_stream(asked)
    except StreamTruncated:
        pass  # the page sees the cut; what arrived before it is genuine
    else:
        raise AssertionError("the relayed stream should have been cut")
    assert ANSWER.startswith(asked.text)
    assert len(asked.text) < len(ANSWER)
    (hold,) = closed_holds(tmp_path / "data")
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "stopped")
    assert 0 < hold["completion"] < 60
    grace_over = bot.json_event("bot.grace_over")
    assert (grace_over["relayed"], grace_over["updates"]) == (1, 0)
    assert "bot.stopped" in bot.output
