"""SIGTERM to ``python -m bot``: no new updates, the answer in progress ends well, exit 0.

The bot runs as a real process against the fake Telegram, a gateway and a slow fake vLLM. With
a long enough ``VEIL_SHUTDOWN_GRACE`` the answer streaming when the signal came finishes and is
settled from its ``complete`` receipt; with a short one it is stopped, delivered and charged
from its ``stopped`` receipt. Either way the exchange is stored and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from bot.shutdown import Stopping
from models import MasterKey, Store
from tests.books import grant
from tests.botstack import WEBHOOK_SECRET, process_stack
from tests.harness import ManagedProcess, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.fakes.telegram import FakeTelegram
    from tests.harness import RunningGateway

USER, LATE_USER = 8001, 8002
PROMPT = "shutdown secret: juniper-kettle-19"
ANSWER = " ".join(f"heron{i}" for i in range(60))  # 60 tokens, 50 ms apart: three seconds


@contextlib.asynccontextmanager
async def bot_process(
    tmp_path: Path,
    grace: str,
    mode: str = "polling",
    token_delay: float = 0.05,
    settings: dict[str, str] | None = None,
) -> AsyncIterator[tuple[ManagedProcess, FakeTelegram, RunningGateway]]:
    """The bot as a process with ``VEIL_SHUTDOWN_GRACE=grace``, polling or on a webhook.

    ``settings``: more of its environment.
    """
    more = settings or {}
    async with process_stack(tmp_path / "data", answer=ANSWER, token_delay=token_delay) as stack:
        telegram, gateway, env = stack.telegram, stack.gateway, stack.env
        env |= {"VEIL_SHUTDOWN_GRACE": grace, "VEIL_FREE_TOKENS_PER_DAY": "0"} | more
        if mode == "webhook":
            port = free_port()
            env |= {
                "VEIL_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/hook",
                "VEIL_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "VEIL_WEBHOOK_PORT": str(port),
            }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started", within=60)
            yield bot, telegram, gateway
        finally:
            await bot.stop(within=60)


async def sigterm_during_an_answer(bot: ManagedProcess, telegram: FakeTelegram) -> tuple[int, int]:
    """Ask, SIGTERM once the answer shows, then write again; the exit code and the health."""
    url = str(bot.json_event("bot.operations_listening")["url"])
    telegram.send_text(USER, PROMPT)
    await telegram.wait_for("sendMessageDraft", lambda c: c.params["chat_id"] == USER)
    bot.process.send_signal(signal.SIGTERM)
    await bot.wait_for_line("bot.draining")  # no longer polling, or listening
    telegram.send_text(LATE_USER, "Anyone home?")  # after the stop: left for the next start
    async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as response:
        health = response.status
    async with asyncio.timeout(60):  # one signal only: a second one would cut the grace short
        code = await bot.process.wait()
    return code, health


def closed_holds(data: Path) -> list[dict[str, Any]]:
    """Every hold in the database, as the ledger closed it."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'veil.db'}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT user_id, outcome, receipt_status, completion_used, charged FROM holds"
        ).fetchall()
    keys = ("user", "outcome", "receipt_status", "completion", "charged")
    return [dict(zip(keys, row, strict=True)) for row in rows]


async def stored_texts(data: Path) -> list[str]:
    """The user's stored exchange, decrypted with the master key."""
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    try:
        return [t.text for t in await store.history(USER, await store.active_conversation(USER))]
    finally:
        await store.close()


async def grant_credit(data: Path) -> None:
    """One Star of credit for the user, booked before the bot starts (free tokens are off)."""
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    try:
        assert await grant(store, USER, 1_000_000, "grant", "test:welcome")
    finally:
        await store.close()


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_sigterm_lets_the_answer_in_progress_finish_and_settle(
    tmp_path: Path, mode: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    await grant_credit(data)
    async with bot_process(tmp_path, grace="30", mode=mode) as (bot, telegram, _):
        code, health = await sigterm_during_an_answer(bot, telegram)
    assert code == 0
    assert health == 503  # draining: not taking updates
    (final,) = telegram.sent_messages(USER)
    assert final["text"] == ANSWER
    assert telegram.sent_messages(LATE_USER) == []
    (hold,) = closed_holds(data)
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "complete")
    assert hold["completion"] == 60
    assert hold["charged"] > 0
    assert await stored_texts(data) == [PROMPT, ANSWER]
    assert "bot.draining" in bot.output
    assert "bot.grace_over" not in bot.output
    assert "bot.stopped" in bot.output
    for secret in ("juniper", "kettle", "heron"):
        assert secret not in bot.output


async def test_after_a_short_grace_the_answer_is_stopped_and_charged_as_a_stop(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    await grant_credit(data)
    async with bot_process(tmp_path, grace="0.5") as (bot, telegram, _):
        code, _health = await sigterm_during_an_answer(bot, telegram)
    assert code == 0
    (final,) = telegram.sent_messages(USER)
    delivered = final["text"]
    assert ANSWER.startswith(delivered)
    assert 0 < len(delivered) < len(ANSWER)
    assert telegram.sent_messages(LATE_USER) == []
    (hold,) = closed_holds(data)
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "stopped")
    assert 0 < hold["completion"] < 60
    assert hold["charged"] > 0
    assert await stored_texts(data) == [PROMPT, delivered]
    assert "bot.grace_over" in bot.output
    assert "bot.stopped" in bot.output


async def stall_a_webhook_post(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A webhook POST to the bot on ``port`` that sent its headers and part of its body, stalled.

    Then a request on a second connection, answered (401: no secret): the first's headers,
    sent before it, were read by then, and its handler waits for the rest of the body. Without
    it a bot that had not yet read them when a signal came (a loaded machine) closed the
    connection as idle at once, and nothing was cut.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /telegram/hook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n"
        + f"X-Telegram-Bot-Api-Secret-Token: {WEBHOOK_SECRET}\r\n\r\n".encode()
        + b'{"update_id": '
    )
    await writer.drain()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/telegram/hook", json={}) as refused,
    ):
        assert refused.status == 401  # no secret
    return reader, writer


async def test_a_second_signal_cuts_the_grace_short(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    await grant_credit(data)
    async with bot_process(tmp_path, grace="30") as (bot, telegram, _):
        telegram.send_text(USER, PROMPT)
        await telegram.wait_for("sendMessageDraft", lambda c: c.params["chat_id"] == USER)
        bot.process.send_signal(signal.SIGTERM)
        await bot.wait_for_line("bot.draining")
        bot.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await bot.process.wait()
    assert code == 0
    (final,) = telegram.sent_messages(USER)
    assert 0 < len(final["text"]) < len(ANSWER)
    (hold,) = closed_holds(data)
    assert hold["receipt_status"] == "stopped"
    assert bot.json_event("bot.grace_over")["cut_short"] is True
    # Told as the one before the grace is: it cut the grace short with no line of its own.
    assert bot.json_event("bot.stop_hurried")["signal"] == "SIGTERM"
    assert bot.output.index("bot.draining") < bot.output.index("bot.stop_hurried")


async def test_a_second_signal_while_the_webhook_is_cut_cuts_the_grace_short(
    tmp_path: Path,
) -> None:
    # The first SIGTERM stops the webhook's listener, which cuts the requests it still holds
    # for up to WEBHOOK_STOP_WAIT_S (here one whose body stalls) before the grace begins. A
    # second signal then set the stop again and was lost: the grace was waited out in full.
    data = tmp_path / "data"
    data.mkdir()
    await grant_credit(data)
    # Twelve seconds an answer: longer than the listener's cut, shorter than the grace. The
    # stall is the stop's to cut, not the body timeout's.
    slow = bot_process(
        tmp_path,
        grace="30",
        mode="webhook",
        token_delay=0.2,
        settings={"VEIL_WEBHOOK_BODY_TIMEOUT": "600"},
    )
    async with slow as (bot, telegram, _):
        port = int(str(bot.json_event("bot.started")["port"]))
        telegram.send_text(USER, PROMPT)
        await telegram.wait_for("sendMessageDraft", lambda c: c.params["chat_id"] == USER)
        reader, writer = await stall_a_webhook_post(port)
        # Two signals at once, not a second one once the first is told: that one came after
        # the listener's cut where the test was slower than it (WEBHOOK_STOP_WAIT_S / 2). Two
        # of one kind sent together may arrive as one; a SIGTERM and a SIGINT do not.
        bot.process.send_signal(signal.SIGTERM)
        bot.process.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            code = await bot.process.wait()
        await reader.read()
        writer.close()
    assert code == 0
    output = bot.output
    assert output.index("bot.stop_hurried") < output.index("webhook.cut_by_stop")
    assert bot.json_event("bot.grace_over")["cut_short"] is True
    (final,) = telegram.sent_messages(USER)
    assert 0 < len(final["text"]) < len(ANSWER)
    (hold,) = closed_holds(data)
    assert hold["receipt_status"] == "stopped"


async def test_a_webhook_post_still_sending_its_body_is_cut_at_the_stop(tmp_path: Path) -> None:
    # A connection that sent a webhook POST's headers and then stalled (a slow proxy, a client
    # that is no Telegram): at SIGTERM the listener waited aiohttp's default minute for it,
    # before the grace even began and saying nothing, so the stop outlasted what compose gives.
    # Now it is cut (Telegram delivers an update it got no answer for again), and said so.
    async with process_stack(tmp_path / "data") as stack:
        port = free_port()
        env = stack.env | {
            "VEIL_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/hook",
            "VEIL_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "VEIL_WEBHOOK_PORT": str(port),
            "VEIL_WEBHOOK_BODY_TIMEOUT": "600",  # the stall is not the body timeout's to end
        }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started", within=60)
            reader, writer = await stall_a_webhook_post(port)
            bot.process.send_signal(signal.SIGTERM)
            await bot.wait_for_line("webhook.cut_by_stop", within=30)
            answered = await reader.read()  # the connection is closed, with no 200
            writer.close()
            async with asyncio.timeout(60):
                code = await bot.process.wait()
        finally:
            await bot.stop(within=60)
    assert code == 0
    assert not answered.startswith(b"HTTP/1.1 200")
    assert bot.output.index("webhook.cut_by_stop") < bot.output.index("bot.stopped")


async def test_the_stop_ends_well_when_nobody_reads_the_log_any_more(tmp_path: Path) -> None:
    # The launcher reading the bot's stderr was killed (SIGKILL): the pipe is broken, and the
    # stop's first line (bot.stopping, in the signal's handler) raised BrokenPipeError.
    data = tmp_path / "data"
    data.mkdir()
    await grant_credit(data)
    async with bot_process(tmp_path, grace="30") as (bot, telegram, _):
        telegram.send_text(USER, PROMPT)
        await telegram.wait_for("sendMessageDraft", lambda c: c.params["chat_id"] == USER)
        await bot.deafen()
        bot.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await bot.process.wait()
    assert code == 0
    (final,) = telegram.sent_messages(USER)
    assert final["text"] == ANSWER
    (hold,) = closed_holds(data)
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "complete")
    assert hold["charged"] > 0
    assert await stored_texts(data) == [PROMPT, ANSWER]


async def test_a_third_signal_before_the_grace_is_told_as_already_stopping() -> None:
    # While the webhook's listener cuts its requests, the first signal stops and the second
    # cuts the grace short; a third logged bot.stop_hurried again, as if it had done something.
    stopping = Stopping()
    with capture_logs() as logs:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            stopping.signalled(signum)
    assert stopping.stop.is_set()
    assert stopping.hurry.is_set()
    assert [(line["event"], line["signal"]) for line in logs] == [
        ("bot.stopping", "SIGTERM"),
        ("bot.stop_hurried", "SIGINT"),
        ("bot.already_stopping", "SIGTERM"),
    ]


# Python's own handlers until the bot took the signals (in its event loop): a SIGTERM while
# it was still starting (aiogram loading, the database claimed) ended it with no line at all
# (killed by the signal, exit -15), a SIGINT with KeyboardInterrupt's traceback in plain text.
_SIGNALLED_WHILE_STARTING = """
import os, runpy, signal, sys

def signal_on_import(event, args):
    if event == "EVENT" and (event != "import" or args[0] == "aiogram") and not sent:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGNAME)

sent = []
sys.addaudithook(signal_on_import)
sys.argv = ["bot"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("event", ["import", "socket.bind"])
async def test_a_signal_while_the_bot_starts_stops_it_in_one_line(
    tmp_path: Path, signame: str, event: str
) -> None:
    async with process_stack(tmp_path / "data", answer=ANSWER) as stack:
        script = _SIGNALLED_WHILE_STARTING.replace("SIGNAME", signame).replace("EVENT", event)
        bot = await ManagedProcess.start("-c", script, env=stack.env)
        try:
            code = await bot.wait()  # the signal it sends itself stops it
        finally:
            await bot.stop()
        assert code == 0, bot.output
        (line,) = [json.loads(line) for line in bot.lines]
        assert (line["event"], line["signal"]) == ("bot.stopped_before_start", signame)
        assert stack.telegram.calls == []  # nothing was served


# The same signal, but arriving while an event loop of the start (the listeners' bind check
# runs one) runs a plain callback: asyncio takes any exception a callback raises but
# KeyboardInterrupt and SystemExit, logs it ("Exception in callback …") and runs on. The stop
# was lost there: the signals were ignored from then on, and the bot started and served.
_SIGNALLED_IN_A_CALLBACK = """
import asyncio, os, runpy, signal, sys

class SignalledOnce(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self):
        loop = super().new_event_loop()
        if not sent:
            sent.append(True)
            loop.call_soon(os.kill, os.getpid(), signal.SIGNAME)
        return loop

sent = []
asyncio.set_event_loop_policy(SignalledOnce())
sys.argv = ["bot"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
async def test_a_signal_in_an_event_loops_callback_while_the_bot_starts_stops_it(
    tmp_path: Path, signame: str
) -> None:
    async with process_stack(tmp_path / "data", answer=ANSWER) as stack:
        script = _SIGNALLED_IN_A_CALLBACK.replace("SIGNAME", signame)
        bot = await ManagedProcess.start("-c", script, env=stack.env)
        try:
            ended = asyncio.ensure_future(bot.wait())
            started = asyncio.ensure_future(bot.wait_for_line("bot.started"))
            await asyncio.wait({ended, started}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            (served,) = await asyncio.gather(started, return_exceptions=True)
            assert not isinstance(served, str), f"the stop was lost:\n{bot.output}"
            code = await ended  # it ended by itself (wait_for_line fails then)
        finally:
            await bot.stop()
        assert code == 0, bot.output
        (line,) = [json.loads(line) for line in bot.lines]
        assert (line["event"], line["signal"]) == ("bot.stopped_before_start", signame)
        assert stack.telegram.calls == []  # nothing was served


# A signal after the event loop let the signals go (asyncio puts Python's own handling back:
# SIGTERM kills, SIGINT raises KeyboardInterrupt), while it closes and the claim is let go:
# a stop that had delivered everything ended killed (exit -15, no line) or in a traceback.
_SIGNALLED_AT_CLOSE = """
import asyncio, os, runpy, signal, sys

class SignalledAtClose(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self):
        loop = super().new_event_loop()
        made.append(loop)
        if len(made) == 2:  # the serving loop (the listeners' bind check runs the first)
            close = loop.close
            def closing():
                os.kill(os.getpid(), signal.SIGNAME)
                close()
            loop.close = closing
        return loop

made = []
asyncio.set_event_loop_policy(SignalledAtClose())
sys.argv = ["bot"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
async def test_a_signal_while_the_stopped_bot_closes_its_loop_is_ignored(
    tmp_path: Path, signame: str
) -> None:
    async with process_stack(tmp_path / "data", answer=ANSWER) as stack:
        script = _SIGNALLED_AT_CLOSE.replace("SIGNAME", signame)
        bot = await ManagedProcess.start("-c", script, env=stack.env)
        try:
            await bot.wait_for_line("bot.started")
            bot.process.send_signal(signal.SIGTERM)
            code = await bot.wait()
        finally:
            await bot.stop()
    assert code == 0, bot.output
    assert json.loads(bot.lines[-1])["event"] == "bot.stopped", bot.output
