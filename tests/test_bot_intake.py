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
from tests.botstack import TOKEN, WEBHOOK_SECRET, running_stack
from tests.fakes.gated import GatedTelegram
from tests.harness import wait_until
from tests.test_bot_groups import ANN, BOB, GROUP
from tests.test_bot_metrics import scraping, value
from tests.test_bot_update_order import _dispatcher, _settle, _update

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fakes.telegram import Call

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


async def test_a_key_taken_again_counts_from_then_and_holds_no_other_past_its_time() -> None:
    # A batch fetched again (a payment journal that failed: the same updates, the same ids)
    # kept its first place in the count with the later deadline: the keys after it stopped
    # counting only once it did, and ``room`` slept until then, however long that was.
    loop = asyncio.get_running_loop()
    intake = Intake(2, slow=0.5)
    intake.take("again")
    intake.take("once")
    due = loop.time() + 0.5  # when "once" stops counting
    await asyncio.sleep(0.2)
    intake.take("again")  # counts until 0.2 s after "once"
    await asyncio.sleep(max(0.0, due - loop.time()) + 0.02)
    assert intake.count < 2  # "once" is past its time (and "again" too, on a slow machine)
    async with asyncio.timeout(10):
        assert await intake.room() >= 1


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


async def test_a_poll_waiting_for_room_still_tells_telegram_what_it_took(tmp_path: Path) -> None:
    # Telegram lets go of an update only when a getUpdates carries an offset past it. The poll
    # after a batch waited for room with that offset unsent: the batch stayed unconfirmed for
    # as long as the intake was full, and a stop then (the waiting poll cancelled, the batch
    # handled in the drain) left Telegram to deliver it again at the next start, each question
    # in it answered, and charged, twice.
    telegram = GatedTelegram(token=TOKEN)
    telegram.hold_messages_to(USER)  # the reply to /start waits: its update stays in hand
    async with running_stack(tmp_path, updates_in_hand=1, telegram_server=telegram) as stack:
        intake: Intake = stack.veil.dispatcher[INTAKE]
        intake.slow = HELD
        update_id = telegram.send_text(USER, "/start")
        later = telegram.send_text(OTHER, "/start")  # the next in line: no room for it yet
        async with asyncio.timeout(10):
            await telegram.holding.wait()
        assert intake.count == 1  # /start in hand: the next poll waits for room
        told = await telegram.wait_for(
            "getUpdates", lambda call: (call.params.get("offset") or 0) > update_id
        )
        assert not told.params.get("timeout")  # it only tells: no long poll beside the one due
        pending = [u["update_id"] for u in telegram.updates.pending]
        assert update_id not in pending
        assert later in pending  # what it brought back is not confirmed, nor taken in
        await _settle()
        assert intake.count == 1
        assert not telegram.sent_messages(OTHER)
        telegram.release_messages()
        await stack.final_messages(USER)
        await stack.final_messages(OTHER)  # it comes with the poll that has room for it
        assert len(telegram.sent_messages(OTHER)) == 1


async def test_a_notice_waiting_for_its_groups_pace_does_not_hold_up_other_chats(
    tmp_path: Path,
) -> None:
    # A member's notice in a group waits for the group's pace in its update's handler, minutes
    # in a busy group: it held a place in the intake all the while (each for ``SLOW_S``), and
    # a group's burst of them kept every other chat's updates waiting at Telegram.
    async with running_stack(
        tmp_path, updates_in_hand=1, group_messages_per_minute=12
    ) as stack:  # notices: one each 10 s in a group
        intake: Intake = stack.veil.dispatcher[INTAKE]
        intake.slow = HELD
        stack.telegram.send_text(ANN, "/help", chat_id=GROUP)
        await wait_until(lambda: len(stack.telegram.ephemeral_messages(GROUP, ANN)) == 1, 10)
        stack.telegram.send_text(BOB, "/help", chat_id=GROUP)  # waits for the group's pace
        stack.telegram.send_text(USER, "/start")
        await stack.final_messages(USER, within=30)
        assert stack.telegram.ephemeral_messages(GROUP, BOB) == []  # still waiting
        await wait_until(lambda: len(stack.telegram.ephemeral_messages(GROUP, BOB)) == 1, 30)


async def test_an_update_waiting_out_a_flood_does_not_hold_up_other_chats(
    tmp_path: Path,
) -> None:
    # A reply waiting out Telegram's flood wait (the session's retries, up to a minute) held
    # its update's place in the intake all the while: a flood kept every chat's updates out.
    async with running_stack(tmp_path, updates_in_hand=1) as stack:
        intake: Intake = stack.veil.dispatcher[INTAKE]
        intake.slow = HELD
        stack.telegram.flood_each(count=1, retry_after=8, methods=["sendMessage"])
        stack.telegram.send_text(OTHER, "/start")  # its reply waits 8 s
        await wait_until(lambda: "sendMessage" in stack.telegram.flooded(), 10)
        stack.telegram.send_text(USER, "/start")
        await stack.final_messages(USER, within=30)
        assert not stack.telegram.sent_messages(OTHER)  # still waiting out its flood
        await stack.final_messages(OTHER, within=30)


async def test_a_batch_the_payment_journal_refused_is_not_counted_as_taken_in(
    tmp_path: Path,
) -> None:
    # The payment journal (outside this middleware) refusing a batch makes aiogram fetch it
    # again: it was never handed on, yet it counted as in hand, and the poll fetching it again
    # asked for that much less (or waited for room that the batch itself took).
    async with running_stack(tmp_path, updates_in_hand=2, free_tokens_per_day=0) as stack:
        intake: Intake = stack.veil.dispatcher[INTAKE]
        intake.slow = HELD
        await stack.veil.desk.journal._journal.close()  # it cannot be written now
        stack.telegram.pay(USER, payload="order-x", total_amount=50)

        def polls() -> list[Call]:
            return stack.telegram.calls_of("getUpdates")

        await wait_until(lambda: sum(call.answered == "ok" for call in polls()) >= 3, 30)
        assert intake.count == 0
        assert {call.params.get("limit") for call in polls()} == {2}


async def test_a_long_texts_next_part_held_back_at_telegram_still_joins_it(
    tmp_path: Path,
) -> None:
    # The app sends a long text as parts, one right after another; the first waits a second
    # for the next, which a full intake left at Telegram: it was asked alone, then the rest.
    first = " ".join(f"Line {i} of the report." for i in range(200))[:4090]
    async with running_stack(tmp_path, answer="One answer.", updates_in_hand=2) as stack:
        intake: Intake = stack.veil.dispatcher[INTAKE]
        intake.slow = HELD
        stack.telegram.send_text(USER, first)
        await wait_until(lambda: intake.count == 0 and bool(stack.telegram.calls_of("getUpdates")))
        # The first part waits for the next (it let the next in): fill the intake, and let
        # the poll in flight end (it would bring the next part), so the next poll waits.
        for key in ("a", "b"):
            intake.take(key)
        await wait_until(lambda: intake.waited >= 1)
        stack.telegram.send_text(USER, "What do you make of it?")
        await asyncio.sleep(1.5)  # past the usual wait for the next part
        assert not stack.telegram.sent_messages(USER)
        for key in ("a", "b"):
            intake.give_back(key)
        (reply,) = await stack.final_messages(USER)
        asked = [
            m["content"]
            for request in stack.vllm.requests
            for m in request["messages"]
            if m["role"] == "user"
        ]
    assert reply["text"] == "One answer."
    assert asked == [f"{first}\nWhat do you make of it?"]
