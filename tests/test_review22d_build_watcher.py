"""A llama.cpp build that has ended signals nothing after: its watcher leaves quietly.

The build runs through ``launcher.tether --group``, whose watcher ends the build's process group
once the launcher's end of a pipe closes. The launcher closes that end itself when the build
has ended, and the watcher took that for the launcher's death: it sent SIGTERM to the group id
of a build whose leader had ended and been reaped, an id then free for the system to give
another process (and another group), or left to what of the build lives on by design (a
compiler cache's server). It now signals only while the build's leader, its parent, still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from launcher.console import LogFile
from launcher.llama import run_logged

# What lives on in the build's group once the build has ended: it says so if a SIGTERM came.
LIVES_ON = """
import os, signal, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
def told(signum, frame):
    (folder / "signalled").write_text("SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, told)
(folder / "ready").write_text(str(os.getpid()))
time.sleep(60)
"""

# The build: starts what lives on (its output elsewhere), waits for it to be ready, ends well.
BUILD = """
"$1" -c "$2" "$3" >/dev/null 2>&1 </dev/null &
while [ ! -s "$3/ready" ]; do sleep 0.01; done
echo "[100%] Built target llama-server"
"""


def watchers() -> list[int]:
    """The ``launcher.tether --group`` watchers this process started, still running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if b"--group" in command and str(os.getpid()).encode() in command and state != "Z":
            found.append(int(entry.name))
    return found


async def test_a_build_that_ended_well_gets_no_signal_from_its_watcher(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "llama-build.log")
    try:
        await run_logged(["sh", "-c", BUILD, "build", sys.executable, LIVES_ON, str(tmp_path)], log)
    finally:
        log.close()
    lives_on = int((tmp_path / "ready").read_text())
    try:
        async with asyncio.timeout(30):  # the watcher sees its parent gone within 0.5 s
            while watchers():  # noqa: ASYNC110 -- other processes' end
                await asyncio.sleep(0.05)
        assert not (tmp_path / "signalled").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(lives_on, signal.SIGKILL)
