"""A private chat's updates are handled in the order they were sent, other chats' side by side.

End to end (fake Telegram, polling and webhook) for a question and the /cancel after it in one
batch; and ``bot.order.UpdateOrder`` in a real aiogram ``Dispatcher`` fed updates directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from structlog.testing import capture_logs

from bot.order import LET_NEXT_IN, MOST_WAITING, UpdateOrder
from bot.shutdown import drain
from bot.telegram import build_bot
from common.texts import Catalogs
from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.telegram import FakeTelegram
from tests.test_bot_payments import USER as PAYER
from tests.test_bot_payments import buy_pack, paying_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from aiogram.types import CallbackQuery, ErrorEvent, Message

    from bot.intake import Intake

USER = 5301
OTHER = 5302
NOTHING_TO_CANCEL = "Nothing is being written right now."


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_a_cancel_sent_right_after_a_question_stops_that_question(
    tmp_path: Path, *, webhook: bool
) -> None:
    # Both in one batch (as after the bot was down): the /cancel used to be handled first
    # ("nothing is being written") and the question then answered in full, and charged.
    answer = " ".join(f"w{i}" for i in range(60))
    async with running_stack(tmp_path, answer=answer, token_delay=0.05, webhook=webhook) as stack:
        stack.telegram.send_text(USER, "Go on")
        stack.telegram.send_text(USER, "/cancel")
        (message,) = await stack.final_messages(USER)
        await stack.veil.chat.wait_idle(10)
        sent = [m.get("text") for m in stack.telegram.sent_messages(USER)]
    assert message["text"] != NOTHING_TO_CANCEL
    assert NOTHING_TO_CANCEL not in sent
    assert answer not in sent  # stopped: a part of it, or "cancelled" before its first word


GROUP = -1_001_234_567


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_a_question_sent_right_after_a_payment_is_paid_by_it(
    tmp_path: Path, *, webhook: bool
) -> None:
    # In one poll's batch the question was handled first: "not enough credit", the payment
    # booked a moment later.
    async with paying_stack(tmp_path, webhook=webhook) as stack:
        invoice = await buy_pack(stack, PAYER)
        stack.telegram.pay(PAYER, payload=invoice["payload"], total_amount=50)
        stack.telegram.send_text(PAYER, "Now answer")
        told = await stack.telegram.wait_for(
            "sendMessage",
            lambda c: str(c.params.get("text", "")).startswith(("Paid answer.", "Not enough")),
        )
    assert told.params["text"] == "Paid answer."


def _update(
    update_id: int, user_id: int, text: str, chat_id: int | None = None, language: str = "en"
) -> Update:
    chat = {"id": user_id, "type": "private"}
    if chat_id is not None:
        chat = {"id": chat_id, "type": "supergroup", "title": "Group"}
    sender = {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language}
    message = {"message_id": update_id, "date": 0, "chat": chat, "from": sender, "text": text}
    return Update.model_validate({"update_id": update_id, "message": message})


class _Recorder:
    """A handler that records which texts started, and holds those it is told to hold."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.held: dict[str, asyncio.Event] = {}
        self.let_in: dict[str, Callable[[], None]] = {}
        self.refused: set[str] = set()

    async def handle(self, message: Message, **data: Any) -> None:  # noqa: ANN401 -- aiogram's data
        text = "paid" if message.successful_payment else message.text or ""
        self.started.append(text)
        if LET_NEXT_IN in data:  # an update held in order (a private chat's)
            self.let_in[text] = data[LET_NEXT_IN]
        if text in self.held:
            await self.held[text].wait()
        if text in self.refused:
            raise _Refused(text)


class _Refused(Exception):
    """A handler's refusal, for the errors handler to tell."""


@contextlib.asynccontextmanager
async def _dispatcher(
    order: UpdateOrder, intake: Intake | None = None, bot: Bot | None = None
) -> AsyncIterator[tuple[Dispatcher, Bot, _Recorder]]:
    """A dispatcher with ``order`` (after ``intake``, outermost, as bot.app has them).

    ``bot``: one that talks to a fake Telegram (else none is reached).
    """
    dispatcher = Dispatcher(disable_fsm=True)
    if intake is not None:
        dispatcher.update.outer_middleware(intake)
    dispatcher.update.outer_middleware(order)
    recorder = _Recorder()
    dispatcher.message.register(recorder.handle)
    bot = bot or Bot(TOKEN)
    try:
        yield dispatcher, bot, recorder
    finally:
        await bot.session.close()


async def _settle() -> None:
    """Let every task that can run, run (a few rounds of the loop)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_users_updates_start_in_order_and_other_users_go_on() -> None:
    order = UpdateOrder()
    async with _dispatcher(order) as (dispatcher, bot, recorder):
        recorder.held["slow"] = asyncio.Event()
        # As a poll hands them over: a task each, started in the order of the batch.
        tasks = [
            asyncio.create_task(dispatcher.feed_update(bot, _update(uid, user, text)))
            for uid, user, text in [
                (1, USER, "slow"),
                (2, USER, "/cancel"),
                (3, OTHER, "other's"),
                (4, USER, "then"),
            ]
        ]
        await _settle()
        assert recorder.started == ["slow", "other's"]  # the other user is not held up
        assert order.chats == 1
        recorder.held["slow"].set()
        await asyncio.gather(*tasks)
    assert recorder.started == ["slow", "other's", "/cancel", "then"]
    assert order.chats == 0  # nothing kept once handled


def _payment(update_id: int, user_id: int) -> Update:
    chat = {"id": user_id, "type": "private"}
    sender = {"id": user_id, "is_bot": False, "first_name": "Ann"}
    paid = {
        "currency": "XTR",
        "total_amount": 50,
        "invoice_payload": "order",
        "telegram_payment_charge_id": f"charge-{update_id}",
        "provider_payment_charge_id": "",
    }
    message = {
        "message_id": update_id,
        "date": 0,
        "chat": chat,
        "from": sender,
        "successful_payment": paid,
    }
    return Update.model_validate({"update_id": update_id, "message": message})


EXCESS = 30  # a spammer's messages past what may wait


async def test_a_users_backlog_past_the_most_waiting_is_let_go_and_told_once() -> None:
    # Every update of a user's behind their slow one (a reply waiting out a flood wait) was
    # kept, each with aiogram's handler chain, and left the intake's count: a user sending
    # hundreds while one reply waited held them all in memory, without bound. Those past
    # ``MOST_WAITING`` are let go now, the user told once; a payment among them never is,
    # and a burst (a long text's parts, an album, quick messages) is far below the bound.
    async with FakeTelegram(token=TOKEN) as telegram:
        telegram.send_text(USER, "hello")  # the chat exists
        order = UpdateOrder(catalogs=Catalogs())
        async with _dispatcher(order, bot=build_bot(TOKEN, telegram.url)) as (
            dispatcher,
            bot,
            recorder,
        ):
            recorder.held["slow"] = asyncio.Event()
            updates = [_update(1, USER, "slow")]
            burst = [f"m{i}" for i in range(MOST_WAITING + EXCESS)]
            updates += [_update(2 + i, USER, text, language="ru") for i, text in enumerate(burst)]
            updates.append(_payment(1000, USER))  # paid amid the excess: booked all the same
            updates.append(_update(1001, OTHER, "other's"))
            with capture_logs() as logs:
                tasks = [
                    asyncio.create_task(dispatcher.feed_update(bot, update)) for update in updates
                ]
                await _settle()
                waiting = order.waiting(USER)
                assert waiting == MOST_WAITING + 1  # and the payment
                await telegram.wait_for(
                    "sendMessage", lambda c: str(c.params.get("chat_id")) == str(USER)
                )
                recorder.held["slow"].set()
                await asyncio.gather(*tasks)
            told = [m["text"] for m in telegram.sent_messages(USER)]
    texts = Catalogs().for_language("ru")
    assert recorder.started == ["slow", "other's", *burst[:MOST_WAITING], "paid"]
    assert told == [texts("one_at_a_time", most=MOST_WAITING)]  # once, in their language
    assert order.dropped == EXCESS
    events = [e["event"] for e in logs if e["event"].startswith("update.backlog")]
    assert events == ["update.backlog_dropped", "update.backlog_cleared"]
    assert order.chats == 0


def _press(update_id: int, user_id: int, data: str) -> Update:
    """A press of a button under the bot's message in the user's private chat."""
    sender = {"id": user_id, "is_bot": False, "first_name": "Ann"}
    bot_user = {"id": 42, "is_bot": True, "first_name": "Veil"}
    shown = {
        "message_id": 7,
        "date": 0,
        "chat": {"id": user_id, "type": "private"},
        "from": bot_user,
        "text": "Erase everything?",
    }
    query = {
        "id": f"q{update_id}",
        "from": sender,
        "message": shown,
        "chat_instance": "ci",
        "data": data,
    }
    return Update.model_validate({"update_id": update_id, "callback_query": query})


async def test_a_press_amid_a_backlog_past_the_most_waiting_is_never_let_go() -> None:
    # A press came behind the user's flood of messages and was let go with them, silently (the
    # notice speaks of messages, and had been sent already): /forget's "Yes, erase" erased
    # nothing, a stop button left its answer running, and charged.
    order = UpdateOrder()
    async with _dispatcher(order) as (dispatcher, bot, recorder):
        pressed: list[str] = []

        async def on_press(query: CallbackQuery) -> None:
            pressed.append(str(query.data))

        dispatcher.callback_query.register(on_press)
        recorder.held["slow"] = asyncio.Event()
        updates = [_update(1, USER, "slow")]
        burst = [f"m{i}" for i in range(MOST_WAITING + EXCESS)]
        updates += [_update(2 + i, USER, text) for i, text in enumerate(burst)]
        updates.append(_press(1000, USER, "forget:yes"))
        tasks = [asyncio.create_task(dispatcher.feed_update(bot, update)) for update in updates]
        await _settle()
        recorder.held["slow"].set()
        await asyncio.gather(*tasks)
    assert recorder.started == ["slow", *burst[:MOST_WAITING]]
    assert pressed == ["forget:yes"]
    assert order.dropped == EXCESS


async def test_a_users_group_messages_are_not_held_behind_their_private_chat() -> None:
    # A group keeps its own queue and pace: its notices must not hold the member's next update.
    order = UpdateOrder()
    async with _dispatcher(order) as (dispatcher, bot, recorder):
        recorder.held["slow"] = asyncio.Event()
        recorder.held["in the group"] = asyncio.Event()
        tasks = [
            asyncio.create_task(dispatcher.feed_update(bot, update))
            for update in [
                _update(1, USER, "slow"),
                _update(2, USER, "in the group", chat_id=GROUP),
                _update(3, USER, "again in the group", chat_id=GROUP),
            ]
        ]
        await _settle()
        assert recorder.started == ["slow", "in the group", "again in the group"]
        assert order.chats == 1
        recorder.held["slow"].set()
        recorder.held["in the group"].set()
        await asyncio.gather(*tasks)
    assert order.chats == 0


async def test_updates_of_a_user_that_came_in_out_of_order_start_by_update_id() -> None:
    # Webhook deliveries may overtake one another: the waiting ones go by update_id.
    order = UpdateOrder()
    async with _dispatcher(order) as (dispatcher, bot, recorder):
        recorder.held["first"] = asyncio.Event()
        first = asyncio.create_task(dispatcher.feed_update(bot, _update(10, USER, "first")))
        await _settle()
        later = [
            asyncio.create_task(dispatcher.feed_update(bot, _update(uid, USER, text)))
            for uid, text in [(13, "third"), (12, "second")]
        ]
        await _settle()
        recorder.held["first"].set()
        await asyncio.gather(first, *later)
    assert recorder.started == ["first", "second", "third"]
    assert order.chats == 0


async def test_a_refusal_raised_in_a_handler_is_told_before_the_next_update_starts() -> None:
    # aiogram's errors middleware is the dispatcher's outermost: an error left the order (the
    # next update let in) before the errors router told it, so the user saw the reply to their
    # next message first ("/help", then "an answer is in progress" for the question before).
    order = UpdateOrder()
    async with _dispatcher(order) as (dispatcher, bot, recorder):
        recorder.refused.add("refused")

        async def tell(event: ErrorEvent) -> None:
            for _ in range(5):  # telling takes a while: a Bot API call
                await asyncio.sleep(0)
            recorder.started.append(f"told: {event.exception}")

        dispatcher.errors.register(tell)
        await asyncio.gather(
            dispatcher.feed_update(bot, _update(1, USER, "refused")),
            dispatcher.feed_update(bot, _update(2, USER, "/help")),
        )
    assert recorder.started == ["refused", "told: refused", "/help"]
    assert order.chats == 0


async def test_a_handler_may_let_the_next_update_in_before_it_ends() -> None:
    order = UpdateOrder()
    async with _dispatcher(order) as (dispatcher, bot, recorder):
        recorder.held["part one"] = asyncio.Event()
        one = asyncio.create_task(dispatcher.feed_update(bot, _update(1, USER, "part one")))
        two = asyncio.create_task(dispatcher.feed_update(bot, _update(2, USER, "part two")))
        await _settle()
        assert recorder.started == ["part one"]
        recorder.let_in["part one"]()
        await two
        assert recorder.started == ["part one", "part two"]
        recorder.held["part one"].set()
        await one
    assert order.chats == 0


async def test_a_handler_that_never_ends_holds_the_next_only_so_long() -> None:
    order = UpdateOrder(patience=0.05)
    async with _dispatcher(order) as (dispatcher, bot, recorder):
        recorder.held["stuck"] = asyncio.Event()
        stuck = asyncio.create_task(dispatcher.feed_update(bot, _update(1, USER, "stuck")))
        await _settle()
        with capture_logs() as logs:
            await dispatcher.feed_update(bot, _update(2, USER, "next"))
        assert recorder.started == ["stuck", "next"]
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "update.order_waited_out"
        ]
        stuck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stuck
    assert order.chats == 0  # the cancelled one gave up its place


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_a_shutdown_waits_for_the_updates_waiting_for_their_turn(
    tmp_path: Path, *, webhook: bool
) -> None:
    # The update behind a slow one was not counted as in hand: the drain ended with the slow
    # one, and the bot closed with the next one taken (its offset confirmed, or its delivery
    # answered) and never handled.
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "late", when=lambda p: p.get("chat_id") == USER)
    async with running_stack(tmp_path, telegram_server=telegram, webhook=webhook) as stack:
        stack.telegram.send_text(USER, "/terms")  # its reply held: the handler does not end
        stack.telegram.send_text(USER, "/help")  # waits for its turn behind it
        async with asyncio.timeout(10):
            while not telegram.held:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        veil = stack.veil
        with contextlib.suppress(RuntimeError):  # a webhook: no polling, nothing new comes
            await veil.dispatcher.stop_polling()  # as a SIGTERM does: nothing new comes
        draining = asyncio.create_task(drain(veil.operations.in_flight, veil.chat, grace=30))
        await _settle()
        telegram.answer_late()
        await draining
        sent = len(stack.telegram.sent_messages(USER))
    assert sent == 2  # the /terms reply and the /help one, both before the bot closed


async def test_a_press_held_past_its_query_s_life_is_still_carried_out(tmp_path: Path) -> None:
    # A press waits for the user's update before it; Telegram's callback query is "too old"
    # by then, and answering it failed the handler: "Yes, erase" erased nothing, and the user
    # was told of an internal error.
    telegram = HostileTelegram(token=TOKEN)
    async with running_stack(tmp_path, telegram_server=telegram) as stack:
        telegram.send_text(USER, "/forget")
        (confirm,) = await stack.final_messages(USER)
        erase = confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        assert erase == "forget:yes"
        telegram.misbehave("sendMessage", "late", when=lambda p: p.get("chat_id") == USER)
        telegram.send_text(USER, "/terms")  # its reply held: the handler does not end
        async with asyncio.timeout(10):
            while not telegram.held:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        telegram.press_button(USER, erase, message_id=confirm["message_id"])
        telegram.state.callback_query_ttl = 0.0  # it waits behind /terms past its query's life
        telegram.answer_late()
        told = await telegram.wait_for(
            "editMessageText", lambda c: c.params.get("message_id") == confirm["message_id"]
        )
        sent = [m.get("text") for m in telegram.sent_messages(USER)]
    assert str(told.params["text"]).startswith("There was nothing to erase")  # (none stored)
    assert not any(str(text).startswith("Something went wrong") for text in sent)


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_a_question_refused_for_credit_is_told_before_the_next_updates_reply(
    tmp_path: Path, *, webhook: bool
) -> None:
    # Both in one batch, and no credit: the question's answer runs detached, and its update was
    # done (the next let in) once the answer was registered, before the credit was checked:
    # the help came first and "not enough credit" after it, an answer to the help, it seemed.
    async with running_stack(tmp_path, webhook=webhook, free_tokens_per_day=0) as stack:
        stack.telegram.send_text(USER, "What is a quine?")
        stack.telegram.send_text(USER, "/help")
        told = await stack.final_messages(USER, 2)
    assert str(told[0]["text"]).startswith("Not enough credit for an answer")
    assert str(told[1]["text"]).startswith("Write any question")
    assert stack.vllm.requests == []


async def test_a_second_press_waiting_for_the_first_erasure_holds_no_later_update(
    tmp_path: Path,
) -> None:
    # A double tap of "Erase everything" while the erasure waited for the user's answer to end
    # (its final message held by a slow Telegram, a hung database alike): the second press
    # waited for the first's outcome without letting the user's next update in, so /help (a
    # /cancel, a payment's thank-you) waited the order's 90 s behind it.
    answer = " ".join(f"w{i}" for i in range(400))
    telegram = HostileTelegram(token=TOKEN)
    async with running_stack(
        tmp_path, answer=answer, token_delay=0.05, telegram_server=telegram
    ) as stack:
        telegram.send_text(USER, "/forget")
        (confirm,) = await stack.final_messages(USER)
        erase = confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        telegram.misbehave(
            "sendMessage", "late", when=lambda p: str(p.get("text")).startswith("w0")
        )
        telegram.send_text(USER, "Go on")
        await telegram.wait_for("sendMessageDraft", lambda c: c.params.get("chat_id") == USER)
        for _ in range(2):  # the double tap: the erasure stops the answer, and waits for it
            telegram.press_button(USER, erase, message_id=confirm["message_id"])
        async with asyncio.timeout(10):
            while not telegram.held:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        telegram.send_text(USER, "/help")
        helped = await telegram.wait_for(
            "sendMessage", lambda c: str(c.params.get("text", "")).startswith("Write any question")
        )
        told_before = telegram.calls_of("editMessageText")
        telegram.answer_late()
        told = await telegram.wait_for(
            "editMessageText", lambda c: c.params.get("message_id") == confirm["message_id"]
        )
        sent = [str(m.get("text")) for m in telegram.sent_messages(USER)]
    assert helped.params["chat_id"] == USER
    assert not told_before  # /help was answered while the erasure still waited for the answer
    assert str(told.params["text"]).startswith("Done: your key and")
    assert not any(text.startswith("Something went wrong") for text in sent)
