"""A launcher killed (SIGKILL, the OOM killer) while llama.cpp compiles takes the build with it.

The build runs in a process group of its own, which a stop of the launcher ends whole
(``launcher.llama.stop_group``); a launcher that could not stop it (SIGKILL, a crash) left the
whole group compiling, for minutes, on every core, with nothing to use what it built. The
build now starts through ``launcher.tether --group``: a watcher of the launcher's end of a
pipe ends the build's whole group once the launcher is gone.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

from launcher.llama import SOURCE_VERSION
from tests.harness import free_port
from tests.launching import launch

if TYPE_CHECKING:
    from pathlib import Path

# CMake as far as the launcher sees it (as in test_hostile21c_launcher): configuring ends at
# once; building starts a worker, as ``cmake --build`` starts make and make the compilers, that
# writes its process id and works on.
FAKE_CMAKE = """#!/bin/sh
if [ "$1" = "--build" ]; then
    "{python}" -c 'import os, time; open("{pid_file}", "w").write(str(os.getpid()))
time.sleep(600)' &
    echo "[  1%] Building C object ggml.c.o"
    wait
fi
exit 0
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie not reaped yet has ended all the same)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:  # noqa: PTH123 -- one read
            return stat.read().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
    except OSError:
        return False


async def test_a_killed_launcher_leaves_no_build_process_running(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    pid_file = tmp_path / "worker.pid"
    (tools / "cmake").write_text(FAKE_CMAKE.format(python=sys.executable, pid_file=pid_file))
    for name in ("cc", "c++"):  # the compilers' probe for Intel AMX flags: they know them
        (tools / name).write_text("#!/bin/sh\ncat >/dev/null\nexit 0\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    cache = tmp_path / "llama.cpp"
    work = cache / SOURCE_VERSION / "work"
    (work / "source").mkdir(parents=True)
    (work / "source.ok").write_text("source\n")  # unpacked already: nothing is fetched
    model = tmp_path / "tiny-chat.gguf"
    model.write_bytes(b"GGUF")
    launcher = await launch(
        env={
            "PATH": f"{tools}:/usr/bin:/bin",
            "VEIL_DATA_DIR": str(tmp_path / "data"),
            "VEIL_LLAMA_CPP_DIR": str(cache),
            "VEIL_LOCAL_MODEL": str(model),
            "VEIL_LOCAL_MODEL_PORT": str(free_port()),
            "VEIL_GATEWAY_PORT": str(free_port()),
            "VEIL_PLAYGROUND_PORT": str(free_port()),
            "VEIL_BOT_METRICS_PORT": "0",
        }
    )
    worker = None
    try:
        await launcher.wait_for_line("compiling llama.cpp", within=60)
        async with asyncio.timeout(60):
            while not pid_file.exists() or not pid_file.read_text():  # noqa: ASYNC110 -- a file
                await asyncio.sleep(0.05)
        worker = int(pid_file.read_text())
        assert alive(worker)
        await launcher.kill()  # SIGKILL: the launcher stops nothing itself
        async with asyncio.timeout(30):  # the watcher's SIGTERM, SIGKILL within 15 s
            while alive(worker):  # noqa: ASYNC110 -- another process's end
                await asyncio.sleep(0.05)
    finally:
        if worker is not None and alive(worker):
            os.kill(worker, 9)
