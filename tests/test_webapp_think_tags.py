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


# What answers are made of at random: the tags and parts of them, every blank and line break
# either side reads (Python's ``str.isspace`` and ``splitlines``, JavaScript's ``\s``, a byte
# order mark), and words.
PARTS = [
    *("<think>", "</think>", "<", "</", "<th", "ink>", "think", ">", "/"),
    *(" ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x1f", "\x85"),
    *("\u00a0", "\u1680", "\u180e", "\u2000", "\u200a", "\u200b", "\u2028", "\u2029"),
    *("\u202f", "\u205f", "\u3000", "\ufeff"),
    *("x", "y z", "def f():", "🌊", "Привет"),
]


async def test_the_page_reads_answers_made_at_random_as_the_bot_does() -> None:
    rng = random.Random(18)  # noqa: S311 -- the same cases every run, not a secret
    blanks = [part for part in PARTS if part.isspace() or part == "\ufeff"]
    made = ["".join(rng.choices(PARTS, k=rng.randint(1, 14))) for _ in range(500)]
    made += [  # a thinking, then blanks and text: where the rules of the blanks tell
        "".join(
            [
                *rng.choices(blanks, k=rng.randint(0, 2)),
                "<think>",
                *rng.choices(PARTS, k=rng.randint(0, 3)),
                "</think>",
                *rng.choices(blanks, k=rng.randint(0, 6)),
                *rng.choices(PARTS, k=rng.randint(0, 4)),
            ]
        )
        for _ in range(1500)
    ]
    answers = [records(answer, rng) for answer in made]
    read = await page_reads(answers)
    wrong = [
        (deltas, got) for deltas, got in zip(answers, read, strict=True) if got != reference(deltas)
    ]
    assert wrong[:3] == []
