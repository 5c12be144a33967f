"""The draft sink against the fake Bot API: "typing…", drafts and their pace, with no idle task.

The sink waits with timers, not tasks (an answer in progress holds less): these check that
"typing…" still repeats until the first text and stops then, that a draft refused with 429
is followed by the newest text once the wait is over, that stopping the sink cancels a draft
not yet sent, and that a sink with nothing new to show holds no task.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from bot import streaming
from bot.streaming import DraftSink
from bot.telegram import build_bot
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.harness import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pytest
    from aiogram import Bot

CHAT = 7001


@contextlib.asynccontextmanager
async def telegram_and_bot() -> AsyncIterator[tuple[FakeTelegram, Bot]]:
    """The fake Bot API and a real aiogram bot (the bot's own ``build_bot``) talking to it."""
    async with FakeTelegram(token=TOKEN) as telegram:
        bot = build_bot(TOKEN, telegram.url)
        try:
            yield telegram, bot
        finally:
            await bot.session.close()


def sink_tasks() -> list[asyncio.Task[object]]:
    """The tasks running the sink's code (a call in flight)."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").startswith("DraftSink.")
    ]


def typing_calls(telegram: FakeTelegram) -> int:
    """How many "typing…" actions were sent."""
    return len(telegram.calls_of("sendChatAction"))


def drafted(telegram: FakeTelegram) -> list[str]:
    """The texts of the drafts shown, in order."""
    return [str(call.params.get("text")) for call in telegram.drafts(CHAT)]


async def test_typing_repeats_until_the_first_text_and_then_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streaming, "_TYPING_EVERY", 0.05)
    async with telegram_and_bot() as (telegram, bot):
        sink = DraftSink(bot, CHAT, interval=0.2)
        await sink.begin()
        await wait_until(lambda: typing_calls(telegram) >= 3, within=10)
        await sink.append("Hello")
        await wait_until(lambda: drafted(telegram) == ["Hello"], within=10)
        sent = typing_calls(telegram)
        await asyncio.sleep(0.25)  # five typing intervals: none goes out once text came
        assert typing_calls(telegram) == sent
        assert not sink_tasks()  # shown, nothing new: the sink waits for nothing
        await sink.complete("Hello")
    assert [m["text"] for m in telegram.sent_messages(CHAT)] == ["Hello"]
    actions = telegram.calls_of("sendChatAction")
    assert all(call.params["action"] == "typing" for call in actions)
    assert all(call.at < telegram.drafts(CHAT)[0].at for call in actions)


async def test_a_draft_refused_with_429_is_followed_by_the_newest_text() -> None:
    async with telegram_and_bot() as (telegram, bot):
        sink = DraftSink(bot, CHAT, interval=0.2)
        await sink.begin()
        telegram.fail_next(
            "sendMessageDraft",
            status=429,
            description="Too Many Requests: retry after 1",
            retry_after=1,
        )
        await sink.append("one")
        await wait_until(lambda: bool(telegram.calls_of("sendMessageDraft")), within=10)
        refused = telegram.calls_of("sendMessageDraft")[0]
        for word in (" two", " three"):
            await sink.append(word)
        await wait_until(lambda: drafted(telegram) == ["one two three"], within=10)
        shown = telegram.drafts(CHAT)[0]
        assert shown.at - refused.at >= 0.9  # not before Telegram's wait was over
        await sink.append(" four")
        await wait_until(lambda: drafted(telegram)[-1:] == ["one two three four"], within=10)
        later = telegram.drafts(CHAT)[-1]
        assert later.at - shown.at >= 0.19  # never closer than the interval
        await sink.complete("one two three four")
    assert [m["text"] for m in telegram.sent_messages(CHAT)] == ["one two three four"]
    assert not sink_tasks()


async def test_stopping_the_sink_cancels_a_draft_not_yet_sent() -> None:
    async with telegram_and_bot() as (telegram, bot):
        sink = DraftSink(bot, CHAT, interval=5.0)
        await sink.begin()
        await sink.append("first")
        await wait_until(lambda: drafted(telegram) == ["first"], within=10)
        await sink.append(" second")  # due in 5 s (the interval): stopped before then
        await sink.abort()
        assert not sink_tasks()
        await asyncio.sleep(0.1)
    assert drafted(telegram) == ["first"]
    assert not telegram.sent_messages(CHAT)
