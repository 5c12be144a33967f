"""The measured child's ``sitecustomize``: libraries imported untraced, our code measured as before.

``tests/childsite`` is on the path of every child process coverage measures (see
``tests.harness.child_environment``). Each test here starts its own children under coverage
(``COVERAGE_PROCESS_START``, data in ``tmp_path``), so it checks the same whether or not the
suite itself runs with ``--cov``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import coverage

from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.harness import CHILD_SITE, REPO, install_client_key

if TYPE_CHECKING:
    from pathlib import Path

Arcs = dict[str, set[tuple[int, int]]]


def measured(tmp_path: Path, name: str, *args: str, env: dict[str, str], site: bool) -> Arcs:
    """Run ``python args…`` under coverage (with ``tests/childsite`` or not); its arcs, by file.

    Only our packages' files are kept, named relative to the repository.
    """
    data = tmp_path / name
    data.mkdir()
    child_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "COVERAGE_PROCESS_START": str(REPO / "pyproject.toml"),
        "COVERAGE_FILE": str(data / ".coverage"),
        **({"PYTHONPATH": str(CHILD_SITE)} if site else {}),
        **env,
    }
    subprocess.run(  # noqa: S603 -- this interpreter, this project's own code
        [sys.executable, *args], cwd=REPO, env=child_env, capture_output=True, check=False
    )
    (data_file,) = data.glob(".coverage.*")  # parallel = true: one file for the one process
    found = coverage.CoverageData(str(data_file))
    found.read()
    return {
        os.path.relpath(path, REPO): set(found.arcs(path) or ())
        for path in found.measured_files()
        if path.startswith(str(REPO))
    }


def test_a_child_imports_a_library_with_coverage_paused() -> None:
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import builtins, sys; print(type(builtins.__import__).__name__)",
        ],
        cwd=REPO,
        env={
            "PATH": os.environ.get("PATH", ""),
            "COVERAGE_PROCESS_START": str(REPO / "pyproject.toml"),
            "COVERAGE_FILE": os.devnull,
            "PYTHONPATH": str(CHILD_SITE),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == "_Quiet"


# A type whose schema pydantic asks of it while it builds a model: it says whether a tracer
# ran then, in the builds a child makes as a module declares models and as ``model_rebuild``
# builds a deferred one.
BUILDS = """
import sys
from pydantic import BaseModel, ConfigDict
from pydantic_core import core_schema

class Probe(int):
    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        print("traced" if sys.gettrace() else "untraced")
        return core_schema.int_schema()

class First(BaseModel):
    probe: Probe

class Second(BaseModel):
    probe: Probe

class Later(BaseModel):
    model_config = ConfigDict(defer_build=True)
    probe: Probe

Later.model_rebuild()
print("outside", "traced" if sys.gettrace() else "untraced")
"""


def test_a_child_builds_pydantic_models_with_coverage_paused_and_resumes_it() -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "COVERAGE_PROCESS_START": str(REPO / "pyproject.toml"),
        "COVERAGE_FILE": os.devnull,
    }
    printed = [
        subprocess.run(  # noqa: S603 -- this interpreter, a script of ours
            [sys.executable, "-c", BUILDS],
            cwd=REPO,
            env={**env, **site},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")[:-1]
        for site in ({"PYTHONPATH": str(CHILD_SITE)}, {})
    ]
    assert printed == [
        ["untraced"] * 3 + ["outside traced"],
        ["traced"] * 3 + ["outside traced"],  # without tests/childsite: the test can fail
    ]


def test_a_child_without_coverage_keeps_pythons_own_import() -> None:
    printed = subprocess.run(
        [sys.executable, "-c", "import builtins; print(builtins.__import__.__name__)"],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(CHILD_SITE)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == "__import__"


def test_every_line_and_branch_of_ours_a_child_runs_is_measured_as_without_it(
    tmp_path: Path,
) -> None:
    # `bot reconcile` imports aiogram in the middle of a measured function (run_reconcile),
    # then goes on in it to the failure a Telegram out of reach gives: the lines and branches
    # after that import must be measured as they were without the pause. Each run has a new
    # data folder of its own, as the first start makes the database.
    def reconcile(name: str, *, site: bool) -> Arcs:
        data = tmp_path / f"{name}-data"
        install_client_key(data)
        settings = {
            "VEIL_BOT_TOKEN": TOKEN,
            "VEIL_TELEGRAM_API": "http://127.0.0.1:9",
            "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
            "VEIL_DATA_DIR": str(data),
        }
        return measured(tmp_path, name, "-m", "bot", "reconcile", env=settings, site=site)

    plain = reconcile("plain", site=False)
    quiet = reconcile("quiet", site=True)
    assert plain == quiet
    main = plain[os.path.join("bot", "__main__.py")]  # noqa: PTH118 -- as relpath names it
    assert len(main) > 50  # run_reconcile's lines after its import of aiogram among them
