"""A user typing an inline query during a flood wait: only the newest query is answered.

Telegram sends an inline query a keystroke or so, and the user's app shows the results of the
newest one only. Each query's answer that met a flood wait waited it out and was sent again
(``RetryMiddleware``): a user who typed on during the wait left one answer a keystroke, all due
at once when it ended, into the flood that held them, each for a query nobody would see. A newer
query of the same user now drops the answer of an older one still on its way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_inline import FAST_EDITS, OTHER, QUESTION, USER

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fakes.telegram import Call

FLOOD = "Too Many Requests: retry after 2"


def titled(call: Call, typed: str) -> bool:
    """Whether ``call`` answered the query ``typed`` (its one article's title holds it)."""
    return call.answered == "ok" and typed in call.params["results"][0]["title"]


async def test_keystrokes_typed_during_a_flood_wait_get_one_answer_the_newest(
    tmp_path: Path,
) -> None:
    typed = [QUESTION[:n] for n in range(8, len(QUESTION) + 1, 8)]
    async with running_stack(tmp_path, **FAST_EDITS) as stack:
        telegram = stack.telegram
        telegram.fail_next(
            "answerInlineQuery", status=429, description=FLOOD, retry_after=2, count=len(typed) + 1
        )
        # Another user's query in the same flood is no older query of this one's: answered.
        telegram.inline_query(OTHER, "the other question")
        await telegram.wait_for("answerInlineQuery", lambda c: c.answered == FLOOD)
        for query in typed:  # each one's answer meets the flood before the next is typed
            floods = len(telegram.calls_of("answerInlineQuery"))
            telegram.inline_query(USER, query)
            await wait_until(lambda: len(telegram.calls_of("answerInlineQuery")) > floods)  # noqa: B023 -- waited on at once
        await telegram.wait_for("answerInlineQuery", lambda c: titled(c, typed[-1]))
        await telegram.wait_for("answerInlineQuery", lambda c: titled(c, "the other question"))
        # A query typed after the flood is answered at once, after every retry due before it.
        telegram.inline_query(USER, "after the flood")
        await telegram.wait_for("answerInlineQuery", lambda c: titled(c, "after the flood"))
        answered = [c for c in telegram.calls_of("answerInlineQuery") if c.answered == "ok"]
    titles = [c.params["results"][0]["title"] for c in answered]
    assert len(titles) == 3, titles  # the other user's, the newest typed, the one after
    assert stack.vllm.requests == []  # a query asks nothing of the model, and charges nothing
