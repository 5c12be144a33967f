"""How many updates the bot takes in at once (``bot.intake``): a burst waits at Telegram.

``Intake`` on its own (real asyncio); with ``UpdateOrder`` in a real aiogram ``Dispatcher`` fed
updates directly (an update waiting for its chat does not count); and end to end on the fake
Telegram, polling (a poll asks for no more than there is room for, and none while there is
none) and webhook (a delivery is not answered, its body unread, until there is room).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp

from bot.intake import INTAKE, Intake
from bot.order import UpdateOrder
from tests.botstack import WEBHOOK_SECRET, running_stack
from tests.harness import wait_until
from tests.test_bot_metrics import scraping, value
from tests.test_bot_update_order import _dispatcher, _settle, _update

if TYPE_CHECKING:
    from pathlib import Path

USER = 5401
OTHER = 5402
THIRD = 5403
HELD = 60.0  # ``slow`` for the tests' held updates: never reached while a test runs


async def test_room_is_what_the_limit_leaves_and_a_poll_waits_for_it() -> None:
    intake = Intake(2, slow=HELD)
    assert await intake.room() == 2
    intake.take(1)
    assert await intake.room() == 1
    intake.take(2)
    waiting = asyncio.create_task(intake.room())
    await _settle()
    assert not waiting.done()  # two in hand: no room
    intake.give_back(1)
    assert await waiting == 1
    intake.give_back(1)  # again: harmless, the count stays
    assert intake.count == 1
    assert intake.waited == 1


async def test_an_update_never_given_back_stops_counting_after_slow_seconds() -> None:
    # A count lost by a bug, or an update waiting for a group's pace: the bot goes on.
    intake = Intake(1, slow=0.05)
    intake.take("lost")
    async with asyncio.timeout(10):
        assert await intake.room() == 1
    assert intake.count == 0


async def test_updates_waiting_behind_their_chat_do_not_count() -> None:
    # One user's backlog behind a slow update (a flood wait) must not fill the bot's intake.
    intake = Intake(3, slow=HELD)
    async with _dispatcher(UpdateOrder(), intake) as (dispatcher, bot, recorder):
        recorder.held["slow"] = asyncio.Event()
        batch = [(1, USER, "slow"), (2, USER, "next"), (3, USER, "and next"), (4, OTHER, "hi")]
        for uid, _, _ in batch:
            intake.take(uid)  # as the poll takes in what it got
        tasks = [
            asyncio.create_task(dispatcher.feed_update(bot, _update(uid, user, text)))
            for uid, user, text in batch
        ]
        await _settle()
        assert recorder.started == ["slow", "hi"]
        assert intake.count == 1  # the slow one; its chat's next two wait for it, not the bot
        assert await intake.room() == 2
        recorder.held["slow"].set()
        await asyncio.gather(*tasks)
    assert recorder.started == ["slow", "hi", "next", "and next"]
    assert intake.count == 0


async def test_an_update_that_lets_its_chats_next_in_no_longer_counts() -> None:
    # A long text's part waiting for the next part: the next must get in, the bot go on.
    intake = Intake(2, slow=HELD)
    async with _dispatcher(UpdateOrder(), intake) as (dispatcher, bot, recorder):
        recorder.held["part one"] = asyncio.Event()
        intake.take(1)
        first = asyncio.create_task(dispatcher.feed_update(bot, _update(1, USER, "part one")))
        await _settle()
        assert intake.count == 1
        recorder.let_in["part one"]()
        assert intake.count == 0
        recorder.held["part one"].set()
        await first
    assert intake.count == 0


async def test_a_poll_asks_for_no_more_updates_than_there_is_room_for(tmp_path: Path) -> None:
    async with running_stack(tmp_path, updates_in_hand=3) as stack:
        intake: Intake = stack.veil.dispatcher[INTAKE]
        intake.slow = HELD
        for user in (USER, OTHER, THIRD, USER + 10, USER + 11):
            stack.telegram.send_text(user, "/start")
        for user in (USER, OTHER, THIRD, USER + 10, USER + 11):
            await stack.final_messages(user)
        polls = stack.telegram.calls_of("getUpdates")
        assert polls
        assert all(call.params.get("limit", 100) <= 3 for call in polls)
        # Three in hand (held by the test): a poll in flight may still bring one more in, but
        # the next waits for room, and a question sent then stays at Telegram.
        for key in ("a", "b", "c"):
            intake.take(key)
        stack.telegram.send_text(USER + 20, "/start")
        await asyncio.sleep(0.3)
        stack.telegram.send_text(USER + 21, "/start")
        await asyncio.sleep(0.3)
        await _settle()
        assert not stack.telegram.sent_messages(USER + 21)
        assert intake.waited >= 1
        for key in ("a", "b", "c"):
            intake.give_back(key)
        await stack.final_messages(USER + 20)
        await stack.final_messages(USER + 21)


async def test_a_webhook_delivery_waits_unread_until_there_is_room(tmp_path: Path) -> None:
    async with running_stack(tmp_path, webhook=True, updates_in_hand=1) as stack:
        intake: Intake = stack.veil.dispatcher[INTAKE]
        intake.slow = HELD
        intake.take("held")
        update = {
            "update_id": 9001,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": USER, "type": "private"},
                "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
                "text": "/start",
            },
        }
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        async with aiohttp.ClientSession() as http:
            delivery = asyncio.create_task(
                http.post(stack.webhook_url, json=update, headers=headers)
            )
            await asyncio.sleep(0.3)
            assert not delivery.done()  # no room: Telegram waits for its answer
            assert not stack.telegram.sent_messages(USER)
            intake.give_back("held")
            async with asyncio.timeout(10):
                response = await delivery
            assert response.status == 200
            response.release()
        await stack.final_messages(USER)
        assert intake.count <= 1


async def test_the_updates_in_hand_and_the_waits_for_room_are_scraped(tmp_path: Path) -> None:
    async with running_stack(tmp_path, updates_in_hand=2) as stack, scraping(stack) as scraper:
        intake: Intake = stack.veil.dispatcher[INTAKE]
        intake.slow = HELD
        for key in ("a", "b"):
            intake.take(key)
        stack.telegram.send_text(USER, "/start")
        await wait_until(lambda: intake.waited >= 1)
        full = await scraper.samples()
        for key in ("a", "b"):
            intake.give_back(key)
        await stack.final_messages(USER)
        await wait_until(lambda: intake.count == 0)  # the update handled once its reply went
        after = await scraper.samples()
    assert value(full, "veil_bot_updates_in_hand") >= 2
    assert value(full, "veil_bot_intake_waits_total") >= 1
    assert value(after, "veil_bot_updates_in_hand") == 0
