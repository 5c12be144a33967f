"""Measured child processes: coverage rests while a library imports or builds its models.

Every Python process the tests start is measured (``patch = ["subprocess"]``), and on Python
3.11 coverage's tracer is called on each function call of every module, measured or not:
importing aiogram (its hundreds of pydantic models declared at import) took twice as long with
it on, in every ``python -m bot``, and building the models a bot answers with before it serves
(``bot.telegram.prepare_models``: pydantic's schema generation, all of it Python) ~1 s more of
the ~1.2 s it takes untraced. This file, on the ``PYTHONPATH`` a measured child gets
(``tests.harness.child_environment``), pauses the tracer for the first import of any module
outside our packages and for each pydantic model's completion
(``pydantic._internal._model_construction.complete_model_class``, which declaring a model built
at once, ``model_rebuild`` and a generic's parametrisation all call), and resumes it when they
return, in the same frame, so no line or branch of our code goes unmeasured (pydantic calls
none of ours while it builds a model). Only the calling thread's own tracer is paused and
resumed, so another thread (the store's) goes on measured. Without coverage running in the
process it does nothing.
"""

from __future__ import annotations

import builtins
import functools
import sys
from typing import TYPE_CHECKING, Any, TypeVar, cast

import coverage

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
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

# pydantic's module whose ``complete_model_class`` builds a model (pydantic 2.11 to 2.13), and
# the name: where a later pydantic moved it, its builds are traced as before.
_PYDANTIC_BUILDS = "pydantic._internal._model_construction"
_BUILD = "complete_model_class"

_T = TypeVar("_T")
_Call = TypeVar("_Call", bound="Callable[..., Any]")


class _Quiet:
    """Pauses this thread's coverage tracer around first imports of other packages and builds."""

    def __init__(self, collector: Any) -> None:  # noqa: ANN401 -- coverage's private Collector
        self.collector = collector
        self.builds_quiet = False

    def __call__(
        self,
        name: str,
        globals: Mapping[str, object] | None = None,  # noqa: A002 -- __import__'s own names
        locals: Mapping[str, object] | None = None,  # noqa: A002
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        """``__import__``, with the tracer paused if ``name`` is a library's and new."""
        # pydantic loads the module lazily (``importlib``, not this), so it is looked for at
        # each import until found: the first model a module declares comes after an import.
        if not self.builds_quiet and _PYDANTIC_BUILDS in sys.modules:
            self.quiet_builds(sys.modules[_PYDANTIC_BUILDS])
        if level != 0 or name in sys.modules or name.partition(".")[0] in OURS:
            return _original_import(name, globals, locals, fromlist, level)
        return self.untraced(_original_import, name, globals, locals, fromlist, level)

    def untraced(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:  # noqa: ANN401
        """``call(*args, **kwargs)`` with this thread's tracer paused, if it runs.

        ``sys.gettrace()`` is the thread's own tracer (coverage's C tracer installs itself
        with ``PyEval_SetTrace``); stopping it and clearing the thread's trace function, then
        starting it again, touches no other thread's. Nested calls find no tracer running.
        """
        tracer: Any = sys.gettrace()  # coverage's CTracer, whose start and stop are untyped
        if not any(tracer is running for running in self.collector.tracers):
            return call(*args, **kwargs)
        tracer.stop()
        sys.settrace(None)
        try:
            return call(*args, **kwargs)
        finally:
            tracer.start()

    def quiet_builds(self, module: ModuleType) -> None:
        """Make ``module``'s model builds untraced, once it has declared its function.

        A module is in ``sys.modules`` while its own imports run, before it declares it; where
        a later pydantic has no such function, builds are traced as before.
        """
        build = getattr(module, _BUILD, None)
        if callable(build):
            setattr(module, _BUILD, self.wrapped(build))
            self.builds_quiet = True
        elif getattr(module, "__spec__", None) is not None and not _initialising(module):
            self.builds_quiet = True

    def wrapped(self, build: _Call) -> _Call:
        """``build``, called untraced."""

        @functools.wraps(build)
        def quiet(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 -- pydantic's own
            return self.untraced(build, *args, **kwargs)

        return cast("_Call", quiet)


def _initialising(module: ModuleType) -> bool:
    """Whether ``module`` is still running its own top level (``importlib`` marks it so)."""
    return bool(getattr(module.__spec__, "_initializing", False))


def _install() -> None:
    """Replace ``__import__`` when coverage measures this process and its collector is known."""
    current = coverage.Coverage.current()
    collector = getattr(current, "_collector", None)
    if collector is not None and hasattr(collector, "tracers"):
        builtins.__import__ = _Quiet(collector)


_install()
