"""Who writes in a closed forum topic: those with the ``can_manage_topics`` right, as Telegram.

The fake Telegram let any administrator bot send into a closed topic, and close or reopen one;
the Bot API asks for an administrator with ``can_manage_topics`` (closeForumTopic's own words),
and a bot without it is refused with 400 ``TOPIC_CLOSED``. Veil with the right answers a
question asked in a closed topic there (only those with the right ask there, or asked before it
closed); without it, it says so in the log once and asks nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import structlog
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import ChatMemberAdministrator

from tests.botstack import running_stack
from tests.fakes.telegram import FakeTelegram
from tests.harness import wait_until
from tests.test_fake_telegram import close_bot, make_bot

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from aiogram import Bot

    from tests.botstack import Stack

GROUP = -1_001_555_000_211
ANN, BOB = 9801, 9802
TOPIC = 42
ANSWER = "An answer about the quartz-lantern-17, in its topic."
FAST: dict[str, Any] = {"edit_interval": 0.2, "group_messages_per_minute": 900}


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(fake)
    yield bot
    await close_bot(bot)


async def test_an_admin_bot_without_the_topics_right_is_refused_a_closed_topic(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.send_text(ANN, "@veil_test_bot hi", chat_id=GROUP, thread_id=TOPIC)
    question = fake.state.chat_messages(GROUP)[-1]["message_id"]
    fake.close_topic(BOB, GROUP, TOPIC)
    me = fake.state.bot_user["id"]
    fake.state.set_member(GROUP, me, "administrator", can_manage_topics=False)
    member = await bot.get_chat_member(GROUP, me)
    assert isinstance(member, ChatMemberAdministrator)
    assert member.can_manage_topics is False
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(GROUP, "into it", message_thread_id=TOPIC)
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(GROUP, "a reply there", reply_to_message_id=question)
    with pytest.raises(TelegramBadRequest, match="CHAT_ADMIN_REQUIRED"):
        await bot.reopen_forum_topic(GROUP, TOPIC)
    assert fake.sent_messages(GROUP) == []
    fake.state.set_member(GROUP, me, "administrator")  # promoted again, the right given
    member = await bot.get_chat_member(GROUP, me)
    assert isinstance(member, ChatMemberAdministrator)
    assert member.can_manage_topics is True
    reply = await bot.send_message(GROUP, "with the right", reply_to_message_id=question)
    assert reply.message_thread_id == TOPIC
    assert await bot.reopen_forum_topic(GROUP, TOPIC)


def replies(stack: Stack) -> list[dict[str, Any]]:
    """The bot's messages in the group, final ones (no stop button left)."""
    return [m for m in stack.telegram.sent_messages(GROUP) if not m.get("reply_markup")]


@pytest.mark.parametrize("right", [True, False], ids=["with the right", "without"])
async def test_veil_an_admin_answers_in_a_closed_topic_only_with_the_topics_right(
    tmp_path: Path,
    right: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    # With the right, Telegram takes Veil's answer into the closed topic: an admin asked there
    # (only those with the right may), and is answered where they asked. Without it, Telegram
    # refuses, and Veil logs the topic closed once, asking and charging nothing.
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
            me = stack.telegram.state.bot_user["id"]
            stack.telegram.state.set_member(GROUP, me, "administrator", can_manage_topics=right)
            stack.telegram.close_topic(BOB, GROUP, TOPIC)
            stack.telegram.state.set_member(GROUP, ANN, "administrator")  # may write there
            stack.telegram.send_text(
                ANN, "@veil_test_bot what is quartz?", chat_id=GROUP, thread_id=TOPIC
            )
            if right:
                await wait_until(lambda: bool(replies(stack)))
            else:
                await wait_until(lambda: any(e["event"].startswith("groups.") for e in logs))
            asked = len(stack.vllm.requests)
            told = replies(stack)
    events = [e["event"] for e in logs]
    if right:
        ((answer,),) = [told]
        assert (answer["text"], answer["message_thread_id"]) == (ANSWER, TOPIC)
        assert asked == 1
        assert "groups.topic_closed" not in events
    else:
        assert (asked, told) == (0, [])
        assert events.count("groups.topic_closed") == 1
