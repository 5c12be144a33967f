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
from typing import TYPE_CHECKING

from tests.test_hostile21c_launcher import alive, start_compiling

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_killed_launcher_leaves_no_build_process_running(tmp_path: Path) -> None:
    launcher, worker = await start_compiling(tmp_path)
    try:
        assert alive(worker)
        await launcher.kill()  # SIGKILL: the launcher stops nothing itself
        async with asyncio.timeout(30):  # the watcher's SIGTERM, SIGKILL within 15 s
            while alive(worker):  # noqa: ASYNC110 -- another process's end
                await asyncio.sleep(0.05)
    finally:
        if alive(worker):
            os.kill(worker, 9)
