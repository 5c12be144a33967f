"""``bench/uptime.py`` still runs: at its smallest it prints RSS and the structures it found.

As ``tests/test_bench.py`` does for the other benchmarks: the figures are never asserted, only
that each is printed, for each place a question can be asked.
"""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from tests.harness import REPO

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("where", ["private", "group", "inline"])
async def test_the_uptime_benchmark_prints_rss_and_the_structures(where: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "bench" / "uptime.py"),
        *("--users", "3", "--batch", "3", "--where", where, "--top", "1000"),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    printed = out.decode(errors="replace")
    assert process.returncode == 0, printed[-4000:]
    assert f"3 distinct users, one question each ({where}), answered in" in printed
    assert re.search(r"RSS .*: \d+\.\d MiB before, \d+\.\d after", printed)
    assert re.search(
        r"^\s+\d+\s+\d+\.\d{3}\s+\d+\.\d  veil\.store\._data_keys ", printed, re.MULTILINE
    )
