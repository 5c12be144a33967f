"""The page reads a ``<think>`` written into the answer's text as the bot does.

``webapp/src/think.js`` (run from the shipped bundle in Node) against the bot's
``services.think_tags``: the shared table of cases (``tests/think_tags_cases.json``, which
``tests/test_think_tags.py`` holds the bot to), then answers cut into records at random, each
read by both and compared.
"""

from __future__ import annotations

import random
from typing import Any, cast

import pytest

from services.think_tags import Piece, ThinkTags
from tests.miniapp import node_ready
from tests.test_think_tags import CASES
from tests.test_webapp_crypto import node

pytestmark = pytest.mark.skipif(node_ready() is None, reason="needs Node.js 20 or later")

ANSWERS = [
    "<think>Greet them.</think>\n\nHello!",
    "\n \n<think>\nThey greet me.\n</think>\n\nПривет, друг! 🌊",  # noqa: RUF001
    "<think>a < b, and </thin is not </think>the end</think>",
    "<think>Still thinking when the room ran out",
    "Models wrap their reasoning in <think> and </think> tags.",
    "<this is fine>",
    "<th",
    "\u00a0\u3000<think>x</think>\u2003y",
    "</think>Only a close.",
    "\ufeff<think>x</think>y",
    "\n\ufeff<think>x</think>\n \n    def f():\n        pass\n",
    "<think>x</think>  \r\n\t code\n",
    "<think>x</think> \ufeff\u2028\x85\ufeff  \ufeff code\n",
    "\n\n\n",
    "",
]


def reference(deltas: list[str]) -> dict[str, str]:
    """The bot's reading of ``deltas``: the text and the thinking, each joined."""
    tags = ThinkTags()
    pieces: list[Piece] = []
    for delta in deltas:
        pieces += tags.feed(delta)
    pieces += tags.end()
    return {
        "text": "".join(piece for kind, piece in pieces if kind == "text"),
        "thought": "".join(piece for kind, piece in pieces if kind == "thought"),
    }


async def page_reads(answers: list[list[str]]) -> list[dict[str, str]]:
    """The page's reading of each answer's records, run in Node from the shipped bundle."""
    return cast("list[dict[str, str]]", await node({"job": "think", "answers": answers}))


def records(answer: str, rng: random.Random) -> list[str]:
    """``answer`` cut at random places, as a stream's records may cut it."""
    if len(answer) < 2:
        return [answer]
    cuts = sorted(rng.sample(range(1, len(answer)), min(len(answer) - 1, rng.randint(0, 6))))
    return [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]


async def test_the_page_reads_each_case_of_the_shared_table_as_the_bot_does() -> None:
    read = await page_reads([case["deltas"] for case in CASES])
    expected: list[dict[str, Any]] = [
        {"text": case["text"], "thought": case["thought"]} for case in CASES
    ]
    assert read == expected


async def test_the_page_reads_answers_cut_anywhere_as_the_bot_does() -> None:
    rng = random.Random(16)  # noqa: S311 -- the same cases every run, not a secret
    answers = [records(answer, rng) for answer in ANSWERS for _ in range(25)]
    answers += [list(answer) for answer in ANSWERS]  # a character a record
    read = await page_reads(answers)
    assert read == [reference(deltas) for deltas in answers]
