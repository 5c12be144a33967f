"""review29c: answers outside the private chat, met by a hostile network and careless admins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import structlog

from playground.text import user_entities
from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.harness import wait_until
from tests.test_bot_groups import (
    ANN,
    ANSWER,
    BOB,
    FAST,
    GROUP,
    QUESTION,
    answered_last,
    replies,
    told_last,
)
from tests.test_bot_groups_hostile import ANONYMOUS, ASK_AS_YOURSELF

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

PANEL = "Veil in this group:"
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


async def test_an_admin_opening_the_settings_again_and_again_keeps_the_groups_pace(
    tmp_path: Path,
) -> None:
    # Each /groupsettings was a public reply sent at once, outside the group's pace: an admin
    # tapping it in the command menu again and again (or two admins) spent the ~20 messages a
    # minute Telegram allows the bot there, and met its 429s, ahead of members' answers.
    async with running_stack(
        tmp_path, answer=ANSWER, edit_interval=0.2, group_messages_per_minute=180
    ) as stack:
        stack.telegram.limit_groups(4, window=1.0)  # 4 a second; the bot paces 3 (180 a minute)
        stack.telegram.set_member(GROUP, BOB, "administrator")
        for _ in range(8):
            stack.telegram.send_text(BOB, "/groupsettings", chat_id=GROUP)
        await answered_last(stack)
        panels = [m for m in replies(stack) if m["text"] == PANEL]
        assert panels  # opened
        assert stack.telegram.floods == []


async def test_admins_pressing_the_settings_again_and_again_keep_the_groups_pace(
    tmp_path: Path,
) -> None:
    # Each press redrew the panel at once, outside the group's pace: two admins toggling
    # back and forth met Telegram's 429s there, ahead of members' answers.
    async with running_stack(
        tmp_path, answer=ANSWER, edit_interval=0.2, group_messages_per_minute=180
    ) as stack:
        stack.telegram.set_member(GROUP, ANN, "administrator")
        stack.telegram.set_member(GROUP, BOB, "administrator")
        stack.telegram.send_text(ANN, "/groupsettings", chat_id=GROUP)
        (panel,) = await stack.final_messages(GROUP)
        stack.telegram.limit_groups(4, window=1.0)  # 4 a second; the bot paces 3 (180 a minute)
        where = {"message_id": panel["message_id"], "chat_id": GROUP}
        for n in range(8):  # off, on, off, on…: each press a redraw
            on = ("no", "yes")[n % 2]
            stack.telegram.press_button((ANN, BOB)[n % 2], f"group-set:reply_context:{on}", **where)
        await stack.answered_presses(8)
        await answered_last(stack)
        assert await stack.veil.store.group_settings(GROUP) == (True, True)  # on, as pressed last
        assert stack.telegram.floods == []


@pytest.mark.parametrize(
    "text",
    [
        f"❓ what is @veil_test_bot {QUESTION}\n\n⏳ Veil is writing…",
        f"/ask@veil_test_bot {QUESTION}",
    ],
    ids=["mention", "command"],
)
async def test_another_bots_inline_result_naming_veil_is_no_question_to_it(
    tmp_path: Path, text: str
) -> None:
    # A member posts another bot's inline result in the group (a second Veil of the operator's,
    # asked "what is @veil_test_bot?"): its text names Veil, and Telegram parses the mention,
    # so Veil answered it too, the other bot's words as the member's question, and charged the
    # member, who asked that bot and not this one. A result that reads as an /ask was run too.
    other = {"id": 777, "is_bot": True, "first_name": "Veil Two", "username": "veil2_bot"}
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.privacy_mode = True
        routing = {"chat_id": GROUP, "chat_type": None, "first_name": "Ann", "language_code": "en"}
        content: dict[str, object] = {"text": text, "entities": user_entities(text)}
        content["via_bot"] = other
        # The fake has no user action for a message via another bot: its own, with the field.
        assert stack.telegram.user._user_message(ANN, routing, content)
        last = await answered_last(stack)
        assert replies(stack) == [last]
        assert len(stack.vllm.requests) == 1  # Carol's alone
