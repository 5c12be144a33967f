"""aiogram's Telegram types and methods, each built when first used rather than all at import.

``import aiogram`` built the pydantic validator of every type and method of the Bot API:
``aiogram/types/__init__.py`` rebuilds its ~480 types one by one with their shared namespace
(``model_rebuild(_types_namespace=…)``), each schema whole with every type it holds, and the
methods, declared once those types are built, build theirs as they are declared. That cost
each bot process (and each ``reconcile``) ~2.6 s of CPU and ~100 MB of memory on a 2-core
machine, for the few dozen types and methods a bot reads or sends. aiogram declares its types
``defer_build`` already; only that loop builds them.

``defer_builds`` (run by ``bot/__init__.py``, before anything imports aiogram, without
importing it) has that loop leave each type deferred and keep the namespace it gave. A
method declared while its types are not built cannot be built then either, and waits the
same way. Each model is built on its first use, pydantic's ``model_rebuild`` then resolving
its annotations in that namespace and its module's names, to the validator aiogram's own
build makes: tests/test_aiogram_types.py compares the type each field of each of aiogram's
models resolved to with aiogram's own build, and reads ``getUpdates``' reply first thing.
``bot.telegram.prepare_models`` builds, before the bot serves, what its answers use (built
mid-answer, a model stopped the event loop up to 0.23 s). bench/startup.py prints the two
imports' CPU and memory.

Where aiogram was imported before, its own build stands, and this changes nothing. pydantic
builds a model on first use in whichever thread uses it, and builds are not thread-safe:
aiogram is used on the event loop's thread only (the store's thread runs SQLite alone).
"""

from __future__ import annotations

import inspect
import sys
from collections import ChainMap
from typing import Any

from pydantic import BaseModel

__all__ = ["defer_builds"]


# ``model_rebuild``'s arguments this relies on (pydantic 2.11 to 2.13): without them, a pydantic
# that changed its internals, aiogram's own build stands (tests/test_aiogram_types.py then
# fails: nothing deferred).
_ARGUMENTS = {"force", "raise_errors", "_parent_namespace_depth", "_types_namespace"}


def defer_builds() -> None:
    """From now on, aiogram's models are built on first use (once; a second call is a no-op)."""
    declared = BaseModel.__dict__["model_rebuild"]
    if isinstance(declared.__func__, _Deferring):
        return
    if not set(inspect.signature(declared.__func__).parameters) >= _ARGUMENTS:
        return
    BaseModel.model_rebuild = classmethod(_Deferring(declared.__func__))  # type: ignore[assignment,method-assign]


class _Deferring:
    """``BaseModel.model_rebuild``, which leaves aiogram's deferred types to their first use.

    Only aiogram's models are treated otherwise: the loop over its types (the call with
    ``_types_namespace``) keeps each one deferred and keeps the namespace; any later build of
    one of its models (the first use of a deferred one, or of a generic one made at run time,
    as ``Response[list[Update]]`` for ``getUpdates``) resolves in that namespace first. Every
    other model's rebuild is pydantic's own.
    """

    def __init__(self, rebuild: Any) -> None:  # noqa: ANN401 -- pydantic's classmethod function
        self.rebuild = rebuild
        self.names: dict[str, Any] = {}  # aiogram's types by name, once its loop gave them

    def __call__(
        self,
        cls: type[BaseModel],
        *,
        force: bool = False,
        raise_errors: bool = True,
        _parent_namespace_depth: int = 2,
        _types_namespace: dict[str, Any] | None = None,
    ) -> bool | None:
        if cls.__module__.startswith("aiogram."):
            if (
                _types_namespace is not None
                and not force
                and not cls.__pydantic_complete__
                and cls.model_config.get("defer_build")
            ):
                if not self.names:
                    self.names.update(_types_namespace)
                return None  # built on first use
            if self.names:
                _resolve_in(cls, self.names)
        built: bool | None = self.rebuild(
            cls,
            force=force,
            raise_errors=raise_errors,
            _parent_namespace_depth=_parent_namespace_depth + 1,  # this call's own frame
            _types_namespace=_types_namespace,
        )
        return built


def _resolve_in(model: type[BaseModel], names: dict[str, Any]) -> None:
    """Have ``model`` resolve its annotations in ``names``, then in its module, when built.

    pydantic resolves them in the model's parent namespace (``__pydantic_parent_namespace__``,
    None for a class declared at a module's top) ahead of the frame that used it first, and a
    model built inside another (a message in an update) in the outer one's: aiogram's types by
    name and the module's own names leave that frame nothing but the builtins. One shared
    mapping, no copy a model.
    """
    own = model.__dict__.get("__pydantic_parent_namespace__")
    if isinstance(own, ChainMap):
        return  # given already
    chain: ChainMap[str, Any] = ChainMap(names, vars(sys.modules[model.__module__]))
    # pydantic reads it as a mapping (its dict of weak references, unpacked item by item)
    model.__pydantic_parent_namespace__ = chain if own is None else chain.new_child(own)  # type: ignore[assignment]
