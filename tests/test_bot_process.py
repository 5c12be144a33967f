"""``python -m bot`` as a real process against the fake Telegram, a gateway and the fake vLLM."""

from __future__ import annotations

import asyncio
import stat
from typing import TYPE_CHECKING

import aiohttp
import pytest

from tests.botstack import TOKEN, bot_env, process_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    Clock,
    ManagedProcess,
    free_port,
    install_client_key,
    run_gateway,
    run_python,
)
from tests.test_bot_turns import silent_server

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

USER = 8001
PROMPT = "process secret: marzipan-octopus-11"
ANSWER = "Here is the **answer** about velvet-sundial-27, streamed word by word to you."


def run_bot(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "bot", env=env, timeout=30)


def test_missing_and_bad_settings_stop_with_one_line(tmp_path: Path) -> None:
    missing = run_bot({"VEIL_OPERATOR_KEYS": "x" * 43, "VEIL_DATA_DIR": str(tmp_path)})
    assert missing.returncode == 2
    assert missing.stderr.strip() == "veil: setting VEIL_BOT_TOKEN is required but not set"
    bad_key = run_bot({"VEIL_BOT_TOKEN": TOKEN, "VEIL_OPERATOR_KEYS": "short"})
    assert bad_key.returncode == 2
    (line,) = bad_key.stderr.strip().splitlines()
    assert line.startswith("veil: setting VEIL_OPERATOR_KEYS is invalid")
    # The key file's path given for the key: the line said "not base64url" and no more.
    path = run_bot({"VEIL_BOT_TOKEN": TOKEN, "VEIL_OPERATOR_KEYS": "data/operator.key"})
    said = (
        "veil: setting VEIL_OPERATOR_KEYS is invalid: not base64url; give the verify key"
        " python -m gateway keygen printed, not its key file (beside scripts/run: the line in"
        " data/operator.pub)"
    )
    assert path.stderr.strip().splitlines() == [said]
    bad_token = run_bot({"VEIL_BOT_TOKEN": "nonsense", "VEIL_OPERATOR_KEYS": "A" * 43})
    (line,) = bad_token.stderr.strip().splitlines()
    assert "VEIL_BOT_TOKEN" in line
    assert "nonsense" not in line


@pytest.mark.parametrize("name", ["VEIL_BOT_METRICS_HOST", "VEIL_WEBHOOK_HOST", "VEIL_WEBAPP_HOST"])
@pytest.mark.parametrize(
    ("value", "said"),
    [
        # Was taken as "every interface": the operations listener (and the webhook's, the Mini
        # App's) listened on all of them instead of the documented 127.0.0.1.
        ("", "String should have at least 1 character"),
        # Was a UnicodeError out of the host's lookup: a line without the setting's name.
        ("veil..example.com", "not a host name or IP address"),
    ],
)
def test_an_empty_or_malformed_listen_address_stops_the_bot_in_one_line(
    tmp_path: Path, name: str, value: str, said: str
) -> None:
    install_client_key(tmp_path)
    result = run_bot(
        {
            "VEIL_BOT_TOKEN": TOKEN,
            "VEIL_OPERATOR_KEYS": "A" * 43,
            "VEIL_DATA_DIR": str(tmp_path),
            "VEIL_TELEGRAM_API": f"http://127.0.0.1:{free_port()}",
            "VEIL_BOT_METRICS_PORT": "0",
            "VEIL_WEBHOOK_URL": "https://veil.example.com/hook",
            "VEIL_WEBHOOK_SECRET": "s" * 32,
            "VEIL_WEBAPP_URL": "https://veil.example.com/app/",
            "VEIL_WEBAPP_PORT": "0",
            "VEIL_WEBHOOK_PORT": "0",
            name: value,
        }
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"veil: setting {name} is invalid: {said}"]


async def test_bot_process_streams_an_answer_and_keeps_nothing_readable(tmp_path: Path) -> None:
    async with process_stack(tmp_path / "data", answer=ANSWER, token_delay=0.05) as stack:
        bot = await ManagedProcess.start("-m", "bot", env=stack.env)
        try:
            await bot.wait_for_line("bot.started")
            frozen = bot.json_event("bot.started")["frozen_objects"]
            stack.telegram.send_text(USER, PROMPT)
            final = await stack.telegram.wait_for(
                "sendMessage", lambda c: c.params["chat_id"] == USER
            )
            drafts = stack.telegram.drafts(USER)
        finally:
            code = await bot.stop()
    assert code == 0
    assert isinstance(frozen, int)
    assert frozen > 100_000  # start-up's objects, set aside from the collector
    assert "answer about velvet-sundial-27" in final.params["text"]
    assert "**" not in final.params["text"]
    assert len(drafts) >= 2
    assert len(drafts[-1].params["text"]) > len(drafts[0].params["text"])
    assert "bot.stopped" in bot.output
    for marker in ("marzipan", "octopus", "velvet", "sundial", TOKEN.split(":")[1]):
        assert marker not in bot.output
    data = tmp_path / "data"
    assert stat.S_IMODE((data / "master.key").stat().st_mode) == 0o600
    disk = b"".join(p.read_bytes() for p in data.glob("veil.db*"))
    assert b"marzipan" not in disk
    assert b"velvet" not in disk


async def test_a_signal_during_start_up_ends_in_a_graceful_stop(tmp_path: Path) -> None:
    async with process_stack(tmp_path / "data", answer=ANSWER) as stack:
        # A 5xx to getMe: the bot waits a second and asks again, still starting up when told
        # to stop (before, SIGTERM then ended the process as the default action does).
        stack.telegram.fail_next("getMe", status=500, description="Internal Server Error")
        bot = await ManagedProcess.start("-m", "bot", env=stack.env)
        await bot.wait_for_line("telegram.server_error")  # the signal comes during the wait
        code = await bot.stop()
    assert code == 0
    assert "bot.stopped" in bot.output
    assert not stack.telegram.calls_of("getUpdates")  # it never began to poll


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_a_signal_while_telegram_is_silent_at_start_up_stops_at_once(
    tmp_path: Path, mode: str
) -> None:
    # Telegram takes the connection and never answers (each call would wait out aiogram's
    # 60 s timeout, and the next after it): the signal ends start-up where it stands, and the
    # bot stops gracefully within the test's 15 s, not killed when an orchestrator's grace ends.
    async with (
        silent_server() as (silent, connections),
        FakeVLLM(answer=ANSWER) as vllm,
        run_gateway(vllm.url, clock=Clock()) as gateway,
    ):
        env = bot_env(silent, gateway.url, gateway.verify_key, tmp_path / "data")
        if mode == "webhook":
            env |= {
                "VEIL_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/telegram/hook",
                "VEIL_WEBHOOK_SECRET": "s3cret-header-value-0123456789-abcdef",
                "VEIL_WEBHOOK_PORT": "0",
            }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        await bot.wait_for_line("bot.operations_listening")
        while not connections:  # noqa: ASYNC110 -- the server's record has no event
            await asyncio.sleep(0.02)
        code = await bot.stop()
    assert code == 0
    assert "bot.start_up_abandoned" in bot.output
    assert "bot.stopped" in bot.output
    assert "bot.started" not in bot.output


async def test_webhook_mode_checks_the_secret_and_answers(tmp_path: Path) -> None:
    port = free_port()
    async with process_stack(tmp_path / "data", answer="Webhook answer.") as stack:
        telegram, env = stack.telegram, stack.env
        hook = f"http://127.0.0.1:{port}/telegram/hook"
        env |= {
            "VEIL_WEBHOOK_URL": hook,
            "VEIL_WEBHOOK_SECRET": "s3cret-header-value-0123456789-abcdef",
            "VEIL_WEBHOOK_PORT": str(port),
        }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            set_hook = await telegram.wait_for("setWebhook")
            assert set_hook.params["url"] == hook
            assert set_hook.params["secret_token"] == "s3cret-header-value-0123456789-abcdef"
            async with aiohttp.ClientSession() as http:
                forged = {
                    "update_id": 1,
                    "message": {
                        "message_id": 1,
                        "date": 0,
                        "text": "hi",
                        "chat": {"id": USER, "type": "private"},
                    },
                }
                async with http.post(
                    hook, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
                ) as response:
                    assert response.status == 401
            telegram.send_text(USER, "Through the webhook")
            final = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == USER)
            await asyncio.sleep(0.2)
        finally:
            code = await bot.stop()
    assert code == 0
    assert final.params["text"] == "Webhook answer."
    assert len(telegram.calls_of("sendMessage")) == 1
