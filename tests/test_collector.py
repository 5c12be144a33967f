"""Start-up's objects are set aside from the cyclic collector (``common.collector``).

Run in a fresh interpreter: freezing is for the whole process, and the test process's own
objects are not what is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness import REPO

PROBE = """
import gc, json, weakref
import bot.app, gateway.__main__  # what the bot and the gateway import before serving
from common.collector import freeze_startup

walked_before = len(gc.get_objects())
frozen = freeze_startup()
walked_after = len(gc.get_objects())

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made while serving
gone = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"before": walked_before, "after": walked_after, "frozen": frozen,
                  "cycle_freed": gone() is None}))
"""


def test_startup_objects_are_frozen_and_later_cycles_still_freed() -> None:
    done = subprocess.run(  # noqa: S603 -- our own interpreter and script, no shell
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout)
    # aiogram, pydantic and aiohttp leave about 250,000 objects between them
    assert figures["frozen"] > 100_000
    assert figures["frozen"] >= figures["before"] * 9 // 10
    # a full collection now walks a small fraction of them
    assert figures["after"] < figures["before"] // 20
    assert figures["cycle_freed"] is True
