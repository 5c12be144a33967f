"""The edit sink against the fake Bot API: its pace, with no task or Event while it waits.

The sink waits for its next edit with a timer, not a task (an inline or group answer in
progress holds less): these check that progress edits still keep ``interval`` and
``min_growth``, take only the chat's free slots (after the calls queued there, and after a
``retry_after``), that the final edit is the last and complete (a progress edit still due is
dropped), and that a sink with nothing new worth an edit holds no task.
"""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from typing import TYPE_CHECKING

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter

from bot.editing import FINAL_TRIES, EditSink, Look
from bot.editors import Editors
from bot.pacing import Pace, Pacer, Place
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.harness import Clock, wait_until
from tests.test_bot_drafts import telegram_and_bot

if TYPE_CHECKING:
    from tests.fakes.telegram import Call

CHAT = 7002
GROUP = -1_007_002
EDITING = "bot/editing.py"


def editing_tasks() -> int:
    """Tasks running the edit sink's code (an edit in flight)."""
    return sum(
        1
        for task in asyncio.all_tasks()
        if str(getattr(getattr(task.get_coro(), "cr_code", None), "co_filename", "")).endswith(
            EDITING
        )
    )


def edits(telegram: FakeTelegram) -> list[Call]:
    """The edits Telegram took, in order."""
    return [c for c in telegram.calls_of("editMessageText") if c.answered == "ok"]


def edited(telegram: FakeTelegram) -> list[str]:
    """The texts of the edits Telegram took, in order."""
    return [str(call.params.get("text")) for call in edits(telegram)]


async def sink_for(bot: Bot, pacer: Pacer, pace: Pace) -> EditSink:
    """A sink editing a fresh message of the bot's in ``CHAT``, begun."""
    sent = await bot.send_message(CHAT, "…")
    sink = EditSink(bot, Place(chat_id=CHAT, message_id=sent.message_id), pacer, pace, Look())
    await sink.begin()
    return sink


async def test_edits_keep_interval_and_growth_and_nothing_waits_between() -> None:
    async with telegram_and_bot() as (telegram, bot):
        sink = await sink_for(bot, Pacer(6000), Pace(interval=0.3, min_growth=10))
        await sink.append("short")
        await asyncio.sleep(0.2)
        assert edited(telegram) == []  # too little to be worth an edit
        assert editing_tasks() == 0  # and nothing waits for more: the next delta looks
        await sink.append(" and longer")
        await wait_until(lambda: edited(telegram) == ["short and longer"], within=5)
        await sink.append(" and more text")  # worth an edit, but the interval has not passed
        await wait_until(lambda: len(edited(telegram)) == 2, within=5)
        first, second = edits(telegram)
        assert second.at - first.at >= 0.29
        assert edited(telegram)[1] == "short and longer and more text"
        await sink.append("!")  # less than min_growth: no edit, however long it waits
        await asyncio.sleep(0.5)
        assert len(edited(telegram)) == 2
        assert editing_tasks() == 0
        await sink.append(" and the very end.")  # an edit due after the interval...
        whole = "short and longer and more text! and the very end."
        await sink.complete(whole)  # ...is dropped: the final edit goes at once
        await asyncio.sleep(0.4)  # past when the dropped edit was due
        assert edited(telegram) == [
            "short and longer",
            "short and longer and more text",
            whole,
        ]
        assert editing_tasks() == 0
        assert edits(telegram)[-1].params.get("reply_markup") is None


async def test_progress_edits_take_only_free_slots_after_the_calls_queued() -> None:
    async with telegram_and_bot() as (telegram, bot):
        pacer = Pacer(200)  # 0.3 s between calls into the chat
        sink = await sink_for(bot, pacer, Pace(interval=0.01, min_growth=1))
        took = time.monotonic()
        pacer.take()  # another call into this chat went out just now
        await sink.append("Hello")
        await wait_until(lambda: edited(telegram) == ["Hello"], within=5)
        assert edits(telegram)[0].at - took >= pacer.gap - 0.01
        served: list[float] = []

        async def queued() -> None:  # a placeholder or a final edit of another answer
            await pacer.wait()
            served.append(time.monotonic())

        waiting = [asyncio.create_task(queued()) for _ in range(2)]
        await asyncio.sleep(0)  # both are queued now
        await sink.append(", world")
        await asyncio.gather(*waiting)
        await wait_until(lambda: len(edited(telegram)) == 2, within=5)
        assert edits(telegram)[1].at - served[-1] >= pacer.gap - 0.01  # after those queued
        assert served[1] - served[0] >= pacer.gap - 0.01
        await sink.complete("Hello, world!")
        final = edits(telegram)[-1]
        assert final.params.get("text") == "Hello, world!"
        # Its slot, too (counted from the progress edit's take, a moment before it was sent).
        assert final.at - edits(telegram)[1].at >= pacer.gap / 2


async def test_a_progress_edit_refused_with_retry_after_waits_it_out() -> None:
    # A plain aiogram session: the bot's own retries a 429 itself (``RetryMiddleware``), and
    # the sink sees one only once those are spent; here it sees the first.
    async with FakeTelegram(token=TOKEN) as telegram:
        api = TelegramAPIServer.from_base(telegram.url)
        async with Bot(TOKEN, session=AiohttpSession(api=api)) as bot:
            await refused_then_waited(telegram, bot)


async def refused_then_waited(telegram: FakeTelegram, bot: Bot) -> None:
    """A progress edit refused with ``retry_after`` 1: the next goes out a second later."""
    telegram.fail_next(
        "editMessageText",
        status=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
    )
    sink = await sink_for(bot, Pacer(6000), Pace(interval=0.01, min_growth=1))
    await sink.append("Hello")
    refused = await telegram.wait_for("editMessageText")
    assert refused.answered != "ok"
    await sink.append(", world")
    await wait_until(lambda: edited(telegram) == ["Hello, world"], within=5)
    assert edits(telegram)[0].at - refused.at >= 0.99
    await sink.complete("Hello, world.")
    assert edited(telegram) == ["Hello, world", "Hello, world."]


async def test_a_placeholder_refused_with_retry_after_is_never_sent_within_the_wait() -> None:
    # The placeholder was tried FINAL_TRIES times, each after the wait Telegram asked for, and
    # then once more at once, within the last wait: a call Telegram had just refused for that
    # long, and the flood wait a group's answers already suffer, met again.
    async with FakeTelegram(token=TOKEN) as telegram:
        telegram.state.register_chat(GROUP, "supergroup", "")
        telegram.fail_next(
            "sendMessage",
            status=429,
            description="Too Many Requests: retry after 1",
            retry_after=1,
            count=FINAL_TRIES + 1,
        )
        api = TelegramAPIServer.from_base(telegram.url)
        async with Bot(TOKEN, session=AiohttpSession(api=api)) as bot:
            editors = Editors(bot, Pace(group_per_minute=6000))
            with pytest.raises(TelegramRetryAfter):
                await editors.post(GROUP, "⏳ …", reply_to=1, markup=None)
        sends = telegram.calls_of("sendMessage")
        assert len(sends) == FINAL_TRIES
        assert all(later.at - sooner.at >= 0.99 for sooner, later in pairwise(sends))


async def test_a_notice_refused_with_retry_after_holds_the_group_s_next_call() -> None:
    # A notice for one member refused with a flood wait was logged and dropped, and the group's
    # pacer never heard of the wait: the next answer's placeholder went out at once, within it.
    async with FakeTelegram(token=TOKEN) as telegram:
        telegram.send_text(9, "/ask", chat_id=GROUP)  # message 1
        telegram.fail_next(
            "sendMessage", status=429, description="Too Many Requests: retry after 1", retry_after=1
        )
        api = TelegramAPIServer.from_base(telegram.url)
        async with Bot(TOKEN, session=AiohttpSession(api=api)) as bot:
            editors = Editors(bot, Pace(group_per_minute=6000))
            await editors.tell_one(GROUP, 9, "Usage: /ask", reply_to=1, markup=None)
            await editors.post(GROUP, "⏳ …", reply_to=1, markup=None)
        refused, placeholder = telegram.calls_of("sendMessage")
        assert refused.answered != "ok"
        assert placeholder.answered == "ok"
        assert placeholder.at - refused.at >= 0.99


async def test_a_call_counted_while_another_sleeps_for_its_slot_moves_that_slot() -> None:
    # A guest answer was posted into the group (``count``) while another call into it slept
    # until the slot it had read: it woke at that slot, which the post had taken, and went out
    # a gap too early, past the group's pace. (A flood wait told meanwhile, ``back_off``, was
    # slept through the same way.)
    clock = Clock(0.0)
    pacer = Pacer(6000, clock=clock)  # a slot every 0.01 s of the test's clock
    await pacer.wait()  # a call took the slot at 0: the next is at 0.01
    waiting = asyncio.create_task(pacer.wait())
    await asyncio.sleep(0)  # it sleeps until 0.01, the slot it read
    pacer.count()  # a post took that slot: the next is at 0.02
    clock.advance(0.015)  # the slot it read has come; its own has not
    await asyncio.sleep(0.2)  # its sleep (0.01 s) is long over
    assert not waiting.done()
    clock.advance(0.01)
    await asyncio.wait_for(waiting, 5)


async def test_an_answer_asking_as_the_turn_is_handed_on_waits_for_it() -> None:
    # Ann's answer ended while Bob's waited for the turn: Bob's was woken, not yet running, and
    # the turn, unlocked for that moment, was forgotten. Carl's, asking then, found no turn and
    # took a fresh one: two answers streamed in the group at once, out of the order asked.
    async with Bot(TOKEN) as bot:
        editors = Editors(bot, Pace())
        streaming: list[str] = []
        seen: list[list[str]] = []

        async def answer(name: str, done: asyncio.Event) -> None:
            async with editors.turn(GROUP):
                streaming.append(name)
                seen.append(list(streaming))
                await done.wait()
                streaming.remove(name)

        anns, bobs, carls = asyncio.Event(), asyncio.Event(), asyncio.Event()
        ann = asyncio.create_task(answer("ann", anns))
        await asyncio.sleep(0)  # Ann's takes the turn
        bob = asyncio.create_task(answer("bob", bobs))
        await asyncio.sleep(0)  # Bob's waits for it
        anns.set()
        await asyncio.sleep(0)  # Ann's ends and hands the turn on; Bob's is woken
        carl = asyncio.create_task(answer("carl", carls))
        carls.set()
        await asyncio.sleep(0)  # Bob's takes the turn; Carl's asks for it
        bobs.set()
        await asyncio.gather(ann, bob, carl)
    assert seen == [["ann"], ["bob"], ["carl"]]
