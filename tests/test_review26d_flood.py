"""A flood that refuses every call until it ends, not only each method's first (flood26's fake).

Real flood control answers every call 429 until the wait it names is over, each told the
seconds left. Here the bot's session waits 1 s of flood waits in all (as built, a minute) and
the flood lasts 4 s (as a minute and more): every call of the answer's end meets it, the final
message's tries and the notice alike, and the delivery passes meet it too until it ends. No
defect: it passes on the merged code (the notice, refused too, is lost; the answer follows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.books import inconsistent_users
from tests.botstack import QUICK_RETRY, running_stack
from tests.group_stop_helpers import closed_holds
from tests.harness import wait_until
from tests.test_flood26_telegram import (
    LONG,
    QUESTION,
    USER,
    logs,
    session_waits,
    texts,
    troubles,
)

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

    import pytest

__all__ = ["logs"]  # the fixture, used by name
FLOOD_S = 4
BUT_POLLS = [
    "sendMessage",
    "sendMessageDraft",
    "sendChatAction",
    "editMessageText",
    "deleteMessage",
    "setMessageReaction",
]


async def test_an_answer_ending_in_a_flood_arrives_once_charged_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(
        tmp_path, answer=LONG, token_delay=0.01, final_retry_wait=QUICK_RETRY, sweep_every=0.5
    ) as stack:
        catalog = stack.veil.catalogs.for_language("en")
        session_waits(stack, 1)
        stack.telegram.send_text(USER, QUESTION)
        await stack.telegram.wait_for("sendMessageDraft", timeout=10)  # it streams: flooded now
        stack.telegram.flood_for(FLOOD_S, methods=BUT_POLLS)
        await wait_until(lambda: LONG in texts(stack), within=60)
        assert await stack.veil.chat.wait_idle(30)
        assert {"sendMessage", "sendMessageDraft"} <= stack.telegram.flooded()
        told = texts(stack)
        holds = await closed_holds(stack, USER)
        assert await inconsistent_users(stack.veil.store) == []
        asked = len(stack.vllm.requests)
    assert told.count(LONG) == 1
    assert set(told) <= {LONG, catalog("answer_kept")}
    assert asked == 1
    assert [outcome for outcome, *_ in holds] == ["settled"]
    assert troubles(logs, caplog) == []
