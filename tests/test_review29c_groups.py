"""review29c: answers outside the private chat, met by a hostile network and careless admins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.harness import wait_until
from tests.test_bot_groups import ANN, ANSWER, FAST, GROUP, QUESTION, replies, told_last
from tests.test_bot_groups_hostile import ANONYMOUS, ASK_AS_YOURSELF

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

USAGE = "Usage: /ask your question — or mention me, or reply to one of my answers."


def is_notice(params: dict[str, object]) -> bool:
    """Whether a sendMessage is a notice to one member (an ephemeral message)."""
    return "ephemeral_message_parameters" in params


async def notice_handled(logs: list[MutableMapping[str, Any]]) -> None:
    """Once the unreadable notice was handled: logged as taken, or as a bug (before the fix).

    A bug's apology is then queued for the group's pace ahead of ``told_last``'s notice (the
    errors router that sends it is outside the bot's count of updates in hand).
    """
    ends = {"editing.notice_unreadable", "handler_failed"}
    await wait_until(lambda: any(e["event"] in ends for e in logs), within=10)


async def test_a_notice_telegram_took_unreadably_is_no_bug_and_not_told_twice(
    tmp_path: Path,
) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "malformed", when=is_notice)
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram, **FAST) as s:
            s.telegram.send_text(ANN, "@veil_test_bot", chat_id=GROUP)
            await notice_handled(logs)
            await told_last(s)
        told = [m["text"] for m in s.telegram.ephemeral_messages(GROUP, ANN)]
    assert telegram.misbehaved == [("sendMessage", "malformed")]
    assert told == [USAGE], told  # once, and no apology for a notice that went out
    events = [e["event"] for e in logs]
    assert "handler_failed" not in events
    assert "editing.notice_unreadable" in events


async def test_a_reply_to_a_chat_telegram_took_unnamed_is_no_bug(tmp_path: Path) -> None:
    # The reply to a chat (an anonymous admin: "ask as yourself") whose "ok" named no message.
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "unnamed")
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram, **FAST) as s:
            s.telegram.send_as_chat(f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            await notice_handled(logs)
            await told_last(s)
        told = [m["text"] for m in s.telegram.ephemeral_messages(GROUP, ANONYMOUS)]
        public = [m["text"] for m in replies(s)]
    assert telegram.misbehaved == [("sendMessage", "unnamed")]
    assert [text[: len(ASK_AS_YOURSELF)] for text in public] == [ASK_AS_YOURSELF]
    assert told == []
    events = [e["event"] for e in logs]
    assert "handler_failed" not in events
    assert "editing.notice_unreadable" in events
