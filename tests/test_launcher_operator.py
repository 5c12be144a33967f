"""The launcher and the unlucky operator: a signal while it starts, a second one on the same data.

The parts run in sessions of their own (a terminal's Ctrl-C reaches only the launcher), so a
launcher that died of the signal left them running, ports taken, for the next run to trip on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import REPO, free_port
from tests.launching import install_client_files, launch, local_model, serving_settings
from tests.test_bot_turns import silent_server


def processes_with(marker: str) -> list[int]:
    """The ids of this machine's processes whose environment holds ``marker`` (ours only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def children_of(parent: int) -> list[int]:
    """The ids of the processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit():
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(stat[1]) == parent:
                    found.append(int(entry.name))
    return found


def kill_all_with(marker: str) -> None:
    """SIGKILL the processes whose environment holds ``marker`` (a failed run's orphans)."""
    for pid in processes_with(marker):  # one by one
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_while_the_launcher_starts_stops_every_part_it_started(
    tmp_path: Path, signum: signal.Signals
) -> None:
    install_client_files(tmp_path)
    marker = f"VEIL_DATA_DIR={tmp_path}"
    # Telegram takes the bot's calls and never answers: the bot never says bot.started, and
    # the launcher is still starting when the signal comes.
    async with FakeVLLM() as vllm, silent_server() as (telegram, _):
        env = serving_settings(tmp_path, telegram, VEIL_VLLM_URL=vllm.url)
        launcher = await launch("--verbose", env=env)
        try:
            await launcher.wait_for_line("bot.operations_listening", within=90)  # bot starting
            launcher.process.send_signal(signum)
            code = await launcher.stop(within=60)
            left = processes_with(marker)
        finally:
            kill_all_with(marker)
    assert left == []
    assert code == 0
    assert "veil: stopping" in launcher.lines
    assert "Traceback" not in launcher.output
    assert "KeyboardInterrupt" not in launcher.output
    bot_log = (tmp_path / "logs" / "bot.log").read_text()
    assert "bot.start_up_abandoned" in bot_log
    assert "bot.stopped" in bot_log


async def test_a_second_launcher_on_the_same_data_stops_before_touching_anything(
    tmp_path: Path,
) -> None:
    install_client_files(tmp_path)
    async with FakeVLLM() as vllm, FakeTelegram(token=TOKEN) as telegram:
        env = serving_settings(tmp_path, telegram.url, VEIL_VLLM_URL=vllm.url)
        first = await launch(env=env)
        try:
            await first.wait_for_line("press Ctrl-C to stop", within=90)
            logs = sorted(path.name for path in (tmp_path / "logs").iterdir())
            second = await launch(env=env)
            async with asyncio.timeout(60):
                code = await second.process.wait()
            await second.stop()
            assert first.process.returncode is None  # the first one runs on
        finally:
            stopped = await first.stop(within=60)
    assert code == 1
    assert second.lines == [
        (
            f"veil: another run command is running on {tmp_path}: stop it first (Ctrl-C where"
            " it runs), or give this one a VEIL_DATA_DIR of its own"
        )
    ]
    assert stopped == 0
    assert logs == ["bot.log", "gateway.log"]
    after = sorted(path.name for path in (tmp_path / "logs").iterdir())
    assert after == logs  # the running one's logs were not rotated away


async def gone(pids: list[int], within: float) -> list[int]:
    """Poll until none of ``pids`` runs any more (a zombie has ended); those still running."""
    deadline = time.monotonic() + within
    while True:
        running = [pid for pid in pids if alive(pid)]
        if not running or time.monotonic() > deadline:
            return running
        await asyncio.sleep(0.1)


def command_line(pid: int) -> bytes:
    """The process's command line, its arguments joined by spaces."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (not ended, not a zombie waiting for its parent to collect it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


async def test_a_killed_launcher_takes_every_part_with_it(tmp_path: Path) -> None:
    # SIGKILL (the OOM killer, say): the launcher cannot stop its parts, which run in sessions
    # of their own. The local model server, the gateway, the playground and the bot all end.
    data = tmp_path / "data"
    marker = f"VEIL_DATA_DIR={data}"
    env = serving_settings(
        data,
        **local_model(tmp_path),
        VEIL_PLAYGROUND_PORT=str(free_port()),
        VEIL_WEBAPP_PORT=str(free_port()),
    )
    launcher = await launch(env=env)
    parts: list[int] = []
    try:
        await launcher.wait_for_line("press Ctrl-C to stop", within=120)
        # Its children: only the bot has VEIL_DATA_DIR in its environment (each part gets its
        # own settings alone), so the marker finds no other part.
        parts = children_of(launcher.process.pid)
        names = {command_line(pid) for pid in parts}
        await launcher.kill()
        left = await gone(parts, within=60)
    finally:
        kill_all_with(marker)
        for pid in parts:  # one by one
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for part in (b"tests.fakes.llama_server", b"gateway", b"playground", b"bot"):
        assert any(part in name for name in names), (part, names)
    assert left == []


@pytest.mark.parametrize("mode", ["deathsig", "pipe"])
async def test_a_tethered_part_ends_when_the_launcher_is_gone(mode: str) -> None:
    # The launcher's end of the pipe closes as it dies; with the kernel's death signal (Linux)
    # or the pipe's watcher (macOS, or --pipe), the part gets SIGTERM and ends.
    read_end, write_end = os.pipe()
    launcher = (
        "import os, subprocess, sys;"
        " args = [str(os.getpid()) if a == 'PARENT' else a for a in sys.argv[1:]];"
        f" part = subprocess.Popen(args, pass_fds=({read_end},), stdout=subprocess.DEVNULL);"
        " print(part.pid, flush=True); sys.stdin.read()"
    )
    middle = await asyncio.create_subprocess_exec(  # stands for the launcher
        sys.executable,
        "-c",
        launcher,
        sys.executable,
        "-m",
        "launcher.tether",
        *(["--pipe"] if mode == "pipe" else []),
        "PARENT",
        str(read_end),
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(120)",
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        pass_fds=(read_end,),
    )
    os.close(read_end)
    assert middle.stdout is not None
    part = int(await middle.stdout.readline())
    try:
        assert await gone([part], within=0) == [part]  # tethered, it runs
        middle.kill()  # the launcher dies by SIGKILL
        await middle.wait()
        os.close(write_end)  # ... and the kernel closes its end of the pipe
        assert await gone([part], within=30) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(part, signal.SIGKILL)


async def test_a_model_server_that_does_not_answer_is_said_so_under_ready(tmp_path: Path) -> None:
    # "ready:" listed VEIL_VLLM_URL's model server as serving where nothing listened (a port
    # mistyped, a server not started): the operator learned it from the playground's first
    # answer, "the model is not reachable".
    install_client_files(tmp_path)
    nothing = f"http://127.0.0.1:{free_port()}"
    async with FakeVLLM() as vllm, FakeTelegram(token=TOKEN) as telegram:
        for url, told in ((nothing, True), (vllm.url, False)):
            env = serving_settings(tmp_path, telegram.url, VEIL_VLLM_URL=url)
            launcher = await launch(env=env)
            try:
                await launcher.wait_for_line("press Ctrl-C to stop", within=90)
            finally:
                assert await launcher.stop(within=60) == 0
            (served,) = [line for line in launcher.lines if "model server  " in line]
            assert ("not answering" in served) is told, served
