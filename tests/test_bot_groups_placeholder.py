"""A group answer's placeholder that Telegram took but answered unreadably.

Telegram's "ok" came back with a result that does not validate (as a proxy that mangles
replies sends it): the placeholder is in the group, with its stop button. When the result
still names the message, the answer streams into it as into any placeholder; when it does not,
that placeholder is left (logged: the bot cannot edit it) and the answer streams into a fresh
one; it was left with its stop button, and the asker told something went wrong, unanswered.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog
from aiogram import Bot
from aiogram.types import Message

from bot.editors import Editors
from bot.pacing import Pace
from handlers.groups.asking import being_written
from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.test_bot_groups import ANN, ANSWER, BOB, FAST, GROUP, QUESTION, final_reply, replies

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

PLACEHOLDER = "⏳ …"
VEIL = {"id": 123456, "is_bot": True, "first_name": "Veil", "username": "veil_test_bot"}


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


async def asked_of_the_model(stack: Stack, count: int) -> list[tuple[str, str]]:
    """Wait until the model was asked ``count`` times; that request's (role, content)s."""
    async with asyncio.timeout(10):
        while len(stack.vllm.requests) < count:  # noqa: ASYNC110 -- polls the fake's record
            await asyncio.sleep(0.02)
    return [(m["role"], m["content"]) for m in stack.vllm.requests[count - 1]["messages"]]


async def test_a_placeholder_whose_answer_failed_is_no_turn_of_a_later_thread(
    tmp_path: Path,
) -> None:
    # Bob replied to the placeholder while it stood; its answer then failed before any text.
    # Bob's question went on with the placeholder quoted above it, and so did every later reply
    # down Bob's thread: "> ⏳ …" was kept in the thread as something Veil had said.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as s:
        first, second = asyncio.Event(), asyncio.Event()
        s.vllm.chat_hold = first
        s.vllm.error_mid_stream_after = 0  # the first answer fails before its first word
        s.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await asked_of_the_model(s, 1)
        (placeholder,) = replies(s)
        assert placeholder["text"] == PLACEHOLDER
        s.telegram.send_text(
            BOB, "@veil_test_bot and the rest?", chat_id=GROUP, reply_to=placeholder["message_id"]
        )
        s.vllm.chat_hold = second  # Bob's question waits here, once Ann's has failed
        first.set()
        await asked_of_the_model(s, 2)
        s.vllm.error_mid_stream_after = None
        second.set()
        (bobs,) = await final_reply(s)
        assert bobs["text"] == ANSWER
        s.telegram.send_text(
            ANN, "@veil_test_bot why so?", chat_id=GROUP, reply_to=bobs["message_id"]
        )
        later = await asked_of_the_model(s, 3)
    assert later == [("user", "and the rest?"), ("assistant", ANSWER), ("user", "why so?")]


def told_or_asked(stack: Stack, user: int) -> bool:
    """Whether ``user`` was told something alone in the group, or the model asked again."""
    return bool(stack.telegram.ephemeral_messages(GROUP, user)) or len(stack.vllm.requests) > 1


async def test_a_bare_mention_about_an_answer_that_failed_asks_nothing(tmp_path: Path) -> None:
    # Bob's bare mention, replying to the placeholder, asked about the answer behind it; that
    # answer failed before any text, and Bob's mention, read in its turn after the failure, went
    # to the model with the placeholder quoted as what to comment on: an answer charged to Bob.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as s:
        first = asyncio.Event()
        s.vllm.chat_hold = first
        s.vllm.error_mid_stream_after = 0  # the first answer fails before its first word
        s.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await asked_of_the_model(s, 1)
        (placeholder,) = replies(s)
        s.telegram.send_text(
            BOB, "@veil_test_bot", chat_id=GROUP, reply_to=placeholder["message_id"]
        )
        first.set()  # answers fail from here on: Bob's, asked, would fail too, and be counted
        async with asyncio.timeout(10):
            while not told_or_asked(s, BOB):  # noqa: ASYNC110 -- polls the fakes' records
                await asyncio.sleep(0.02)
        asked = len(s.vllm.requests)
        told = [m["text"] for m in s.telegram.ephemeral_messages(GROUP, BOB)]
        texts = s.veil.catalogs.for_language("en")
    assert asked == 1
    assert told == [texts("ask_usage")]


async def test_a_bare_mention_waiting_on_an_answer_that_then_failed_asks_nothing(
    tmp_path: Path,
) -> None:
    # Bob's bare mention came while the placeholder stood, and waited for the answer behind it;
    # that answer failed before any text: in its turn, Bob's mention read an empty thread and
    # was asked of the model about nothing (no context at all), an answer charged to Bob.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as s:
        kit = s.veil.dispatcher["kit"]
        first = asyncio.Event()
        s.vllm.chat_hold = first
        s.vllm.error_mid_stream_after = 0  # the first answer fails before its first word
        s.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await asked_of_the_model(s, 1)
        (placeholder,) = replies(s)
        s.telegram.send_text(
            BOB, "@veil_test_bot", chat_id=GROUP, reply_to=placeholder["message_id"]
        )
        async with asyncio.timeout(10):
            while (GROUP, BOB) not in kit.asking:  # noqa: ASYNC110 -- polls Bob's turn, waiting
                await asyncio.sleep(0.02)
        first.set()  # answers fail from here on: Bob's, asked, would fail too, and be counted
        async with asyncio.timeout(10):
            while not told_or_asked(s, BOB):  # noqa: ASYNC110 -- polls the fakes' records
                await asyncio.sleep(0.02)
        asked = len(s.vllm.requests)
        told = [m["text"] for m in s.telegram.ephemeral_messages(GROUP, BOB)]
        texts = s.veil.catalogs.for_language("en")
    assert asked == 1
    assert told == [texts("ask_usage")]


def bare_mention_replying_to(placeholder: int) -> Message:
    """Bob's bare mention in the group, a reply to Veil's message ``placeholder``."""
    return Message.model_validate(
        {
            "message_id": placeholder + 1,
            "date": 0,
            "chat": {"id": GROUP, "type": "supergroup"},
            "from": {"id": BOB, "is_bot": False, "first_name": "Bob"},
            "text": "@veil_test_bot",
            "reply_to_message": {
                "message_id": placeholder,
                "date": 0,
                "chat": {"id": GROUP, "type": "supergroup"},
                "from": VEIL,
                "text": PLACEHOLDER,
            },
        }
    )


async def test_a_bare_mention_about_an_answer_that_failed_meanwhile_is_read_in_its_turn() -> None:
    # The test above, in CI under load: Bob's mention found the answer still streaming (no
    # thread yet), and it failed while the group's settings were read (the one await between).
    # Its empty thread was then taken for an answer written, to be read as shown: the
    # placeholder went to the model as what to comment on, charged to Bob. It is read in its
    # turn, where the empty thread has nothing to ask.
    async with Bot(TOKEN) as bot:
        editors = Editors(bot, Pace())
        assert bot.id == VEIL["id"]
        streaming, failed, written = 10, 20, 30
        editors.chains.remember(GROUP, failed, ())
        editors.chains.remember(GROUP, written, (("user", QUESTION), ("assistant", ANSWER)))
        assert being_written(bare_mention_replying_to(streaming), editors) == streaming
        assert being_written(bare_mention_replying_to(failed), editors) == failed
        assert being_written(bare_mention_replying_to(written), editors) is None
