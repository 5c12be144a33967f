"""Measured child processes: coverage rests while a library is imported for the first time.

Every Python process the tests start is measured (``patch = ["subprocess"]``), and on Python
3.11 coverage's tracer is called on each function call of every module, measured or not:
importing aiogram (its hundreds of pydantic models built at import) took twice as long with
it on, in every ``python -m bot``. This file, on the ``PYTHONPATH`` a measured child gets
(``tests.harness.child_environment``), pauses the tracer for the first import of any module
outside our packages and resumes it when that import returns, in the same frame, so no line
or branch of our code goes unmeasured: it only runs while the process has one thread and one
tracer, where a pause and a resume cannot hand a thread another's tracer. Without coverage
running in the process it does nothing.
"""

from __future__ import annotations

import builtins
import sys
import threading
from typing import TYPE_CHECKING, Any

import coverage

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import ModuleType

OURS = frozenset(
    {
        "bot",
        "handlers",
        "services",
        "models",
        "sealed",
        "gateway",
        "common",
        "playground",
        "launcher",
        "tests",
    }
)

_original_import = builtins.__import__


class _Quiet:
    """Pauses the running coverage collector around first imports of other packages."""

    def __init__(self, collector: Any) -> None:  # noqa: ANN401 -- coverage's private Collector
        self.collector = collector
        self.paused = False

    def __call__(
        self,
        name: str,
        globals: Mapping[str, object] | None = None,  # noqa: A002 -- __import__'s own names
        locals: Mapping[str, object] | None = None,  # noqa: A002
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        """``__import__``, with the tracer paused if ``name`` is a library's, new, and alone."""
        if not self.quiet_for(name, level):
            return _original_import(name, globals, locals, fromlist, level)
        self.paused = True
        self.collector.pause()
        try:
            return _original_import(name, globals, locals, fromlist, level)
        finally:
            self.collector.resume()
            self.paused = False

    def quiet_for(self, name: str, level: int) -> bool:
        """Whether importing ``name`` (absolute, not imported yet, not ours) may pause tracing."""
        return (
            not self.paused
            and level == 0
            and name not in sys.modules
            and name.partition(".")[0] not in OURS
            and threading.active_count() == 1
            and len(self.collector.tracers) == 1
        )


def _install() -> None:
    """Replace ``__import__`` when coverage measures this process and its collector is known."""
    current = coverage.Coverage.current()
    collector = getattr(current, "_collector", None)
    if collector is not None and hasattr(collector, "pause") and hasattr(collector, "tracers"):
        builtins.__import__ = _Quiet(collector)


_install()
