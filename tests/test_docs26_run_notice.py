"""``scripts/run`` says, before it installs anything, that its first run compiles llama.cpp.

A newcomer's first ``scripts/run`` spent minutes installing the dependencies and the demo model
before the launcher's own "compiling llama.cpp" line, then ~11 minutes (2 cores) compiling,
and nothing up front said why the playground took so long. The script now says it once, with
the launcher's estimate. These run the real script with a stand-in ``uv`` (and compilers) first
on ``PATH``, so nothing is installed or compiled.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import TYPE_CHECKING

import pytest

from launcher.llama import SOURCE_VERSION, build_jobs, estimate_minutes
from tests.harness import REPO

if TYPE_CHECKING:
    from pathlib import Path

NOTICE = "veil: first run: llama.cpp's llama-server"
ESTIMATE = re.compile(r"~(\d+) minutes with (\d+) jobs")
# Stands in for uv: the locked dependencies are in, and `uv run … python -m launcher` says so.
FAKE_UV = """#!/bin/sh
case "$*" in
  *--dry-run*) echo "Would make no changes" ;;
  run*) echo "launcher would start here" >&2 ;;
esac
"""


def _announce(env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", "source scripts/prerequisites.bash && announce_build"],  # noqa: S607
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stderr


@pytest.mark.parametrize("jobs", ["1", "2", "3", "4", "5", "8", "11", "12", "16", "64"])
def test_the_notice_gives_the_launchers_estimate(jobs: str) -> None:
    said = _announce({**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": jobs})
    found = ESTIMATE.search(said)
    assert found is not None, said
    assert (int(found.group(1)), int(found.group(2))) == (estimate_minutes(int(jobs)), int(jobs))


@pytest.mark.parametrize("chosen", ["", "0", "00", "two"])
def test_without_a_usable_job_count_the_notice_counts_the_cores(chosen: str) -> None:
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": chosen}
    jobs = build_jobs(env)
    found = ESTIMATE.search(_announce(env))
    assert found is not None
    assert (int(found.group(1)), int(found.group(2))) == (estimate_minutes(jobs), jobs)


def _run(tmp_path: Path, **settings: str) -> str:
    """``scripts/run``'s output up to where it hands over to the launcher."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    for name in ("uv", "cc", "c++", "cmake"):  # the build tools are only looked for
        (tools / name).write_text(FAKE_UV if name == "uv" else "#!/bin/sh\n", encoding="utf-8")
        (tools / name).chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VEIL_GATEWAYS", "VEIL_VLLM_URL", "VEIL_LLAMA_CPP_DIR"}
    }
    env |= {
        "PATH": f"{tools}:{env['PATH']}",
        "VEIL_DATA_DIR": str(tmp_path / "data"),
        "VEIL_LOCAL_MODEL": str(tmp_path / "model.gguf"),  # no demo model to install
        "CMAKE_BUILD_PARALLEL_LEVEL": "2",
        **settings,
    }
    done = subprocess.run(  # noqa: S603 -- the script itself
        [str(REPO / "scripts/run")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "launcher would start here" in done.stderr, done.stderr
    return done.stderr


def test_a_first_run_says_what_it_compiles_why_and_how_long_once_up_front(
    tmp_path: Path,
) -> None:
    said = _run(tmp_path).splitlines()
    notices = [line for line in said if line.startswith(NOTICE)]
    assert len(notices) == 1, said
    assert said.index(notices[0]) == 0  # before anything else is said or installed
    assert "~11 minutes with 2 jobs" in notices[0]
    assert "model server" in notices[0]
    assert "once" in notices[0]


def test_no_notice_once_llama_server_is_built(tmp_path: Path) -> None:
    built = tmp_path / "data" / "llama.cpp" / SOURCE_VERSION / "llama-server"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    assert NOTICE not in _run(tmp_path)


def test_no_notice_when_no_model_server_runs_here(tmp_path: Path) -> None:
    assert NOTICE not in _run(tmp_path, VEIL_GATEWAYS="http://127.0.0.1:9")
