"""The README's promises: its two commands exist, and the first one really runs Veil."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import REPO, free_port

if TYPE_CHECKING:
    from pathlib import Path

README = REPO / "README.md"


def readme_commands() -> list[str]:
    """The commands of the README's first shell block (comments stripped)."""
    match = re.search(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, "README has no sh block"
    return [line.split("#")[0].strip() for line in match.group(1).splitlines() if line.strip()]


def test_readme_starts_with_the_two_commands_and_they_exist() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.index("## Two commands") < text.index("## Configuration")
    run, check = readme_commands()[:2]
    assert run.split()[-1] == "scripts/run"
    assert check == "scripts/check"
    for script in ("scripts/run", "scripts/check", ".ci/run"):
        path = REPO / script
        assert path.is_file()
        assert os.access(path, os.X_OK)
    assert "exec scripts/check" in (REPO / ".ci/run").read_text(encoding="utf-8")


def test_readme_documents_every_setting() -> None:
    from bot.settings import BotSettings  # noqa: PLC0415 -- keeps collection light
    from gateway.settings import GatewaySettings  # noqa: PLC0415

    text = README.read_text(encoding="utf-8")
    for settings in (BotSettings, GatewaySettings):
        for name in settings.model_fields:
            assert f"VEIL_{name.upper()}" in text, f"VEIL_{name.upper()} is not in the README"


async def test_first_command_runs_gateway_and_bot_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    async with (
        FakeTelegram(token=TOKEN) as telegram,
        FakeVLLM(answer="Hello from scripts/run.") as vllm,
    ):
        env = {
            **os.environ,
            "VEIL_BOT_TOKEN": TOKEN,
            "VEIL_TELEGRAM_API": telegram.url,
            "VEIL_VLLM_URL": vllm.url,
            "VEIL_DATA_DIR": str(tmp_path / "data"),
            "VEIL_GATEWAY_PORT": str(free_port()),
            "VEIL_METRICS_PORT": str(free_port()),
            "VEIL_BOT_METRICS_PORT": "0",  # not the default 9601, which another run may hold
        }
        process = await asyncio.create_subprocess_exec(
            str(REPO / "scripts/run"),
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        output: list[str] = []

        async def read() -> None:
            assert process.stdout is not None
            async for line in process.stdout:
                output.append(line.decode(errors="replace"))

        reader = asyncio.create_task(read())
        try:
            # Its last start-up call: the bot polls next (a long poll is recorded only once it
            # returns, 10 s later when nothing is queued; the question is the poll's at once).
            await telegram.wait_for("setMyCommands", timeout=90)
            telegram.send_text(4242, "Is it running?")
            reply = await telegram.wait_for(  # rich messages are on by default
                "sendRichMessage", lambda c: c.params["chat_id"] == 4242, timeout=30
            )
            assert reply.params["rich_message"] == {"markdown": "Hello from scripts/run."}
        finally:
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(30):
                code = await process.wait()
                await reader
    text = "".join(output)
    assert "creating the operator key" in text
    assert "creating the client key" in text  # made on the first run and pinned in the gateway
    assert "starting the gateway" in text
    assert "stopping" in text
    assert code in (0, 130, 143)
    for key in ("operator.key", "client.key"):
        assert (tmp_path / "data" / key).stat().st_mode & 0o077 == 0
    with socket.socket() as probe:  # nothing listens on the gateway's port: it stopped
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", int(env["VEIL_GATEWAY_PORT"])))


def test_the_slow_command_of_the_readme_runs_the_real_model_test_alone() -> None:
    """The README's `pytest -m slow …` runs what its sentence describes, and nothing slower."""
    match = re.search(r"`uv\s+run (pytest -m slow[^`]*)`", README.read_text(encoding="utf-8"))
    assert match is not None, "the README names no slow command"
    command = match.group(1).split()
    done = subprocess.run(  # noqa: S603 -- the README's own command line, no shell
        [sys.executable, "-m", *command, "--collect-only", "-q", "-p", "no:randomly"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert collected, done.stdout + done.stderr
    files = {line.split("::")[0] for line in collected}
    assert files == {"tests/test_local_model.py"}, files
