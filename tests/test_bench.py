"""The benchmarks still run: each one, at its smallest, prints every figure it promises.

Nothing else runs ``bench/``: a change to the bot, the gateway or the fakes could break a
benchmark unnoticed until the next time someone needs its figures. Each runs here as the README
says to run it (its own process, its own gateway and fakes), with the fewest users, tokens and
rounds; the figures themselves are never asserted (they are the benchmark's to print, not a
test's), only that each is printed and every answer arrived whole. ``bench/groups.py`` waits
for Telegram's flood pacing of a group (3 s a message), so it runs only with ``-m slow``, as do
``bench/uptime.py``'s group and inline runs (its private run is the same bot's start).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.harness import REPO

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(300)


async def bench(script: str, *args: str) -> str:
    """Run ``bench/<script>`` with ``args``; what it printed (it must exit 0)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "bench" / script),
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    printed = out.decode(errors="replace")
    assert process.returncode == 0, printed[-4000:]
    return printed


async def test_the_sealed_channel_benchmark_prints_both_paths_against_direct() -> None:
    printed = await bench(
        "sealed.py",
        *("--tokens", "4", "--token-delay", "0", "--levels", "1", "--ticks", "0.1"),
        *("--processes", "2"),
    )
    for suite in ("X25519", "MLKEM768_X25519"):
        assert re.search(rf"{suite}: seal \d+ µs, open \d+ µs", printed), suite
    for path in ("direct (fake vLLM)", "per-token", "tick 100 ms", "tick 100 ms x2"):
        assert re.search(rf"^\s+1 {re.escape(path)}\s+\d", printed, re.MULTILINE), path
    assert re.search(r"^\s+1 tick 100 ms .*µs$", printed, re.MULTILINE)  # its CPU per token


async def test_the_chat_benchmark_prints_every_figure_and_every_answer_arrives() -> None:
    printed = await bench(
        "chat.py",
        *("--users", "1", "--words", "5", "--word-delay", "0.01"),
        *("--clean-only", "--shapes", "tick"),  # (the per-token path: the sealed benchmark's)
    )
    assert "tick, clean Bot API: 1 user(s)" in printed
    for figure in (
        "bot CPU per answer",
        "Bot API calls",
        "first token → first draft median",
        "last token → final message median",
        "most draft updates in any 1 s to one chat",
        "bot peak RSS",
        "sealed per answer; CPU",
    ):
        assert printed.count(figure) == 1, figure
    assert re.findall(r"answers complete\s+(\S+)", printed) == ["100%"]


async def test_the_memory_benchmark_prints_each_holder_per_answer() -> None:
    printed = await bench("memory.py", "--answers", "2", "--hold", "3")
    assert "2 answers held at token 3; bytes per answer in progress:" in printed
    for holder in ("aiogram handling", "aiogram objects", "aiohttp", "asyncio", "ours", "total"):
        assert re.search(rf"^\s+{holder}\s+[\d.]+ KB$", printed, re.MULTILINE), holder
    assert "aiogram objects alive:" in printed


async def test_the_start_up_benchmark_prints_both_builds_and_their_ratio() -> None:
    printed = await bench("startup.py", "--runs", "1")
    for how in ("deferred", "eager"):
        assert re.search(
            rf"^\s+{how}\s+import [\d.]+ CPU-s, prepare [\d.]+ CPU-s, total [\d.]+ CPU-s,"
            r" peak RSS \d+ MB$",
            printed,
            re.MULTILINE,
        ), how
    assert re.search(r"deferred/eager: CPU [\d.]+, peak RSS [\d.]+ \(-?\d+ MB less\)", printed)


@pytest.mark.parametrize(
    "where",
    [
        "private",
        pytest.param("group", marks=pytest.mark.slow),
        pytest.param("inline", marks=pytest.mark.slow),
    ],
)
async def test_the_uptime_benchmark_prints_rss_and_the_structures(where: str) -> None:
    printed = await bench(
        "uptime.py", *("--users", "3", "--batch", "3", "--where", where, "--top", "1000")
    )
    assert f"3 distinct users, one question each ({where}), answered in" in printed
    assert re.search(r"RSS .*: \d+\.\d MiB before, \d+\.\d after", printed)
    assert re.search(
        r"^\s+\d+\s+\d+\.\d{3}\s+\d+\.\d  veil\.store\._data_keys ", printed, re.MULTILINE
    )


@pytest.mark.slow
async def test_the_groups_benchmark_keeps_to_the_flood_limit_and_answers_everyone() -> None:
    printed = await bench("groups.py", "--users", "2", "--words", "5", "--word-delay", "0.01")
    pace = [int(n) for n in re.findall(r"to one group\s+(\d+) \(limit 20\)", printed)]
    assert len(pace) == 2
    assert all(n <= 20 for n in pace)
    assert re.findall(r"answers complete\s+(\S+)", printed) == ["2/2", "2/2"]


def test_the_lent_machine_script_says_which_wheels_it_lacks(tmp_path: Path) -> None:
    """``bench/lent.bash run`` on a machine without the carried wheels names what to fetch."""
    ran = subprocess.run(  # noqa: S603 -- our own script
        ["bash", str(REPO / "bench" / "lent.bash"), "run"],  # noqa: S607 -- bash from PATH
        env={**os.environ, "VEIL_LENT_WHEELS": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    said = re.fullmatch(
        rf"no wheels for Python (3\.\d+) in {re.escape(str(tmp_path))}/(3\.\d+): run "
        r"'bash bench/lent\.bash wheels (3\.\d+)' where the registry is in reach, "
        r"and carry bench/wheels\n",
        ran.stderr,
    )
    assert said is not None, ran.stderr
    assert said[1] == said[2] == said[3]  # the version the script runs under, each time
