"""aiogram's response models are built before the bot serves (``bot.telegram.build_bot``).

Run in a fresh interpreter: the test process has long built every model it met.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness import REPO

PROBE = """
import inspect, json
from aiogram import methods
from aiogram.methods import Response, TelegramMethod
from bot.telegram import build_bot

build_bot("123:probe", "http://127.0.0.1:9")
built = set(Response.__subclasses__())
for method in vars(methods).values():
    if inspect.isclass(method) and issubclass(method, TelegramMethod):
        if method is not TelegramMethod:
            Response[method.__returning__]  # what aiogram does with each call's answer
later = set(Response.__subclasses__()) - built
print(json.dumps({"built": len(built), "later": sorted(str(m) for m in later)}))
"""


def test_no_response_model_is_built_while_serving() -> None:
    done = subprocess.run(  # noqa: S603 -- our own interpreter and script, no shell
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout)
    assert figures["built"] >= 40  # a model per result type (41 in aiogram 3.31)
    assert figures["later"] == []  # none left to build at a call's first answer
