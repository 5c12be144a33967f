"""The page sends the history that fits the model's window, by the bot's own rule.

``webapp/src/context.js`` (run from the shipped bundle in Node) against the Python reference,
``ChatService._window`` (services/chat.py), ``Fitter.context`` and ``answer_cap``
(services/fitting.py): the same turns kept, the same prompt ceiling and the same answer cap,
for windows the bundle states (at most the bot's limit), for texts in several scripts, a
question too long on its own, and a history that would open with an orphaned answer.
"""

from __future__ import annotations

import random
from typing import Any, cast

import pytest

from services.chat import ChatService
from services.fitting import Turn
from tests.miniapp import node_ready
from tests.test_webapp_crypto import node

pytestmark = pytest.mark.skipif(node_ready() is None, reason="needs Node.js 20 or later")

WORDS = ["sea", "ветер", "теңіз", "风", "🌊", "wind and waves", "ocean" * 12]


class Stated:
    """The inference client's one part the window needs: what the bundles state."""

    def __init__(self, window: int | None) -> None:
        self._window = window

    def window(self, _model: str) -> int | None:
        """The window the bundles state for any model."""
        return self._window


def reference(case: dict[str, Any]) -> dict[str, Any]:
    """What the bot's chat service sends for the same history, question and limits."""
    chat = ChatService(
        cast("Any", None),
        cast("Any", Stated(case["stated"])),
        cast("Any", None),
        context_tokens=case["bot_limit"],
        max_answer_tokens=case["max_answer"],
        min_answer_tokens=case["min_answer"],
    )
    window = chat._window("m")
    # The page keeps the history on the device, with no receipts' counts: every turn's ceiling.
    history = [Turn.said(turn["role"], turn["content"]) for turn in case["turns"]]
    context = chat._fit.context(history, case["question"], window, chat._fit.budget(window))
    return {
        "window": window,
        "messages": context.messages,
        "tokens": context.tokens,
        "maxAnswer": context.max_answer,
        "dropped": context.dropped,
    }


async def fit(made: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's fitting of each case, run in Node from the shipped bundle."""
    return cast("list[dict[str, Any]]", await node({"job": "fit", "cases": made}))


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def cases() -> list[dict[str, Any]]:
    rng = random.Random(15)  # noqa: S311 -- the same cases every run, not a secret
    made = []
    for _ in range(60):
        turns = []
        for n in range(rng.randrange(0, 14)):
            role = "user" if n % 2 == 0 else "assistant"
            turns.append({"role": role, "content": text(rng, rng.randrange(1, 40))})
        made.append(
            {
                "turns": turns,
                "question": text(rng, rng.randrange(1, 20)),
                "stated": rng.choice([None, 512, 1024, 2048, 8192]),
                "bot_limit": rng.choice([256, 1024, 4096]),
                "max_answer": rng.choice([16, 256, 1024]),
                "min_answer": rng.choice([1, 64]),
            }
        )
    # A history left opening with an answer: the answer goes too.
    orphan = [{"role": "assistant", "content": "an answer " * 3}]
    orphan += [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    made.append(
        {
            "turns": orphan,
            "question": "next?",
            "stated": None,
            "bot_limit": 4096,
            "max_answer": 1024,
            "min_answer": 64,
        }
    )
    # A question longer than the whole window: sent alone, the shortest answer worth having.
    made.append(
        {
            "turns": orphan,
            "question": "теңіз " * 400,
            "stated": 1024,
            "bot_limit": 4096,
            "max_answer": 1024,
            "min_answer": 64,
        }
    )
    return made


async def test_the_page_fits_the_history_exactly_as_the_bot_does() -> None:
    made = cases()
    fitted = await fit(made)
    assert len(fitted) == len(made)
    trimmed = kept_some = 0
    for case, page in zip(made, fitted, strict=True):
        assert page == reference(case), case
        trimmed += page["dropped"] > 0
        kept_some += len(page["messages"]) > 1
    assert trimmed > 10  # the cases do trim...
    assert kept_some > 10  # ... and keep history
    orphaned = fitted[-2]
    assert [m["role"] for m in orphaned["messages"]] == ["user", "assistant", "user"]
    alone = fitted[-1]
    assert len(alone["messages"]) == 1
    assert alone["maxAnswer"] == 64


async def test_the_window_is_the_bundles_at_most_the_bots_limit_when_the_page_knows_it() -> None:
    question = {"turns": [], "question": "hi", "max_answer": 1024, "min_answer": 64}
    windows = [(2048, 4096), (8192, 4096), (None, 1024), (2048, None), (None, None)]
    fitted = await fit([question | {"stated": s, "bot_limit": b} for s, b in windows])
    assert [f["window"] for f in fitted] == [2048, 4096, 1024, 2048, 4096]
