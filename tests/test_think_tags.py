"""``ThinkTags``: thinking written into an answer's text, split from it as deltas arrive.

The cases are in ``tests/think_tags_cases.json``, which the page's splitter is tested on too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.think_tags import OPEN, Piece, ThinkTags

# The cases, each its deltas and the text and thinking they make: one table for the bot's
# splitter and the page's (tests/test_webapp_think_tags.py), so the two read answers alike.
CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "think_tags_cases.json").read_text(encoding="utf-8")
)


def split(*deltas: str) -> tuple[str, str]:
    """(the answer's text, its thinking) from ``deltas``, each kind joined."""
    tags = ThinkTags()
    pieces: list[Piece] = []
    for delta in deltas:
        pieces += tags.feed(delta)
    pieces += tags.end()
    text = "".join(piece for kind, piece in pieces if kind == "text")
    thought = "".join(piece for kind, piece in pieces if kind == "thought")
    return text, thought


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_each_case_of_the_shared_table(case: dict[str, Any]) -> None:
    # The Mini App's splitter (webapp/src/think.js) is held to the same table:
    # tests/test_webapp_think_tags.py.
    assert split(*case["deltas"]) == (case["text"], case["thought"])


@pytest.mark.parametrize("after", ["<think>Greet them.</think>Hello!", "Hello!", ""])
def test_blank_deltas_opening_an_answer_are_not_scanned_again_by_each_next_one(after: str) -> None:
    # Each blank delta was joined to all before it and scanned again: 100,000 newline deltas
    # (a model stuck on blanks) kept the bot's event loop for seconds. What the next delta
    # looks at stays a tag's length; the blanks are still the text's when text follows.
    tags = ThinkTags()
    blanks = ["\n"] * 10_000
    pieces: list[Piece] = []
    for delta in blanks:
        pieces += tags.feed(delta)
        assert len(tags._held) < len(OPEN)  # what each delta scans again
    for delta in after:
        pieces += tags.feed(delta)
    pieces += tags.end()
    text = "".join(piece for kind, piece in pieces if kind == "text")
    thought = "".join(piece for kind, piece in pieces if kind == "thought")
    if after.startswith(OPEN):
        assert (text, thought) == ("Hello!", "Greet them.")
    else:
        assert (text, thought) == ("".join(blanks) + after, "")
