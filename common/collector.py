"""Keep Python's cyclic garbage collector off what start-up built.

The bot holds about 216,000 objects before it serves anything (aiogram, pydantic, aiohttp:
modules, classes, their validators and caches, alive until it exits), the gateway about 54,000.
Each full (oldest-generation) collection walks them all: about 170 ms in the bot and 25 ms in
the gateway on the benchmark machine, during which the event loop stands still for every user
and stream at once (docs/benchmarks.md). ``freeze_startup``,
called once the process is ready to serve, collects start-up's garbage and moves every object
left into the permanent generation (``gc.freeze``), which collections never walk: a full
collection then walks only what serving has made. An object frozen here that later becomes
garbage in a reference cycle is never freed; start-up's objects live as long as the process.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup"]


def freeze_startup() -> int:
    """Collect start-up's garbage, then set every surviving object aside; returns how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
