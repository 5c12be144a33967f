"""A group answer's placeholder that Telegram took but answered unreadably.

Telegram's "ok" came back with a result that does not validate (as a proxy that mangles
replies sends it): the placeholder is in the group, with its stop button. When the result
still names the message, the answer streams into it as into any placeholder; when it does not,
that placeholder is left (logged: the bot cannot edit it) and the answer streams into a fresh
one; it was left with its stop button, and the asker told something went wrong, unanswered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.test_bot_groups import ANN, ANSWER, FAST, GROUP, QUESTION, final_reply, replies

if TYPE_CHECKING:
    from pathlib import Path

PLACEHOLDER = "⏳ …"


def is_placeholder(params: dict[str, object]) -> bool:
    """Whether a sendMessage posts the group answer's placeholder."""
    return params.get("text") == PLACEHOLDER


async def test_a_placeholder_whose_reply_names_it_still_gets_its_answer(tmp_path: Path) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "malformed", when=is_placeholder)
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram, **FAST) as s:
            s.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            (final,) = await final_reply(s)
            public = replies(s)
            told = s.telegram.ephemeral_messages(GROUP, ANN)
    assert telegram.misbehaved == [("sendMessage", "malformed")]
    assert final["text"] == ANSWER
    assert public == [final]  # the placeholder Telegram took, its stop button gone
    assert told == []
    events = [e["event"] for e in logs]
    assert "editing.posted_unreadable" in events
    assert "handler_failed" not in events


async def test_a_placeholder_whose_reply_names_none_is_left_and_the_answer_comes_anyway(
    tmp_path: Path,
) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "unnamed", when=is_placeholder)
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram, **FAST) as s:
            s.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            (final,) = await final_reply(s)
            orphan, answered = replies(s)
            told = s.telegram.ephemeral_messages(GROUP, ANN)
            asked = len(s.vllm.requests)
    assert telegram.misbehaved == [("sendMessage", "unnamed")]
    assert answered == final
    assert final["text"] == ANSWER
    assert orphan["text"] == PLACEHOLDER  # the bot cannot tell which message it is
    assert told == []
    assert asked == 1
    events = [e["event"] for e in logs]
    assert "groups.placeholder_orphaned" in events
    assert "handler_failed" not in events
