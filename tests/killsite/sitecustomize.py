"""A child that SIGKILLs itself on entering a chosen function: a crash between two writes.

With ``VEIL_TEST_KILL_AT="package.module:Class.method"`` on its environment and this folder on
its ``PYTHONPATH`` (``tests.test_crash21_title.killed_at``), the process replaces that function,
once its module is imported, by one that kills the process when called: nothing after it runs,
as when the operator's host kills the bot there. Nothing else of the process changes. A child
that coverage measures runs ``tests/childsite``'s own ``sitecustomize`` first, as it would.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import inspect
import os
import runpy
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

if "COVERAGE_PROCESS_CONFIG" in os.environ:
    runpy.run_path(str(Path(__file__).parents[1] / "childsite" / "sitecustomize.py"))


def _die(*_: Any, **__: Any) -> Any:  # noqa: ANN401 -- stands in for any function
    os.kill(os.getpid(), signal.SIGKILL)


async def _die_awaited(*_: Any, **__: Any) -> Any:  # noqa: ANN401 -- stands in for any function
    os.kill(os.getpid(), signal.SIGKILL)


class _KillAt(importlib.abc.MetaPathFinder):
    """Finds the chosen module as the other finders would, and swaps the function once run."""

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.names = qualname.split(".")

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        del path, target
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            owner: Any = module
            for name in self.names[:-1]:
                owner = getattr(owner, name)
            chosen = getattr(owner, self.names[-1])
            setattr(
                owner,
                self.names[-1],
                _die_awaited if inspect.iscoroutinefunction(chosen) else _die,
            )

        loader.exec_module = exec_module
        return spec


_where = os.environ.get("VEIL_TEST_KILL_AT", "")
if ":" in _where:
    _module, _, _qualname = _where.partition(":")
    sys.meta_path.insert(0, _KillAt(_module, _qualname))
