"""The fake Telegram server answers the real aiogram Bot as Telegram would, refusals included."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import SendDice, SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    EphemeralMessageParameters,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LabeledPrice,
    Message,
    MessageEntity,
    ReplyParameters,
)
from aiogram.types.transaction_partner_user import TransactionPartnerUser
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from playground.media import image_size
from tests.fakes.telegram import FakeTelegram
from tests.harness import serving
from tests.pictures import make_png, png_pixels

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

USER = 501
OTHER = 502
GROUP = -100123
FRIENDS = -100777  # a chat the bot is not a member of


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def make_bot(fake: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
    return Bot(token or fake.token, session=session)


async def close_bot(bot: Bot) -> None:
    """Close the bot's aiohttp session.

    Closing it directly skips ``AiohttpSession.close``'s 250 ms grace for TLS connections,
    which plain-http tests do not need; ``bot.session.close()`` then has nothing left to do.
    """
    assert isinstance(bot.session, AiohttpSession)
    client = await bot.session.create_session()
    await client.close()
    await bot.session.close()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(fake)
    yield bot
    await close_bot(bot)


def spans(entities: list[MessageEntity] | None) -> list[tuple[str, int, int, str | None]]:
    return [(e.type, e.offset, e.length, e.url) for e in entities or []]


def keyboard(data: str = "again") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Again", callback_data=data)]]
    )


async def test_get_me_describes_the_bot_and_wrong_tokens_are_refused(
    fake: FakeTelegram, bot: Bot
) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "veil_test_bot", True)

    stranger = make_bot(fake, token="999:WRONG")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await stranger.get_me()
    finally:
        await close_bot(stranger)
    with pytest.raises(TelegramNotFound, match="Not Found"):
        await bot(SendDice(chat_id=USER))
    assert [(c.method, c.answered) for c in fake.calls] == [
        ("getMe", "ok"),
        ("getMe", "Unauthorized"),
        ("sendDice", "Not Found"),
    ]


async def test_long_poll_returns_pushed_updates_and_an_offset_confirms_them(
    fake: FakeTelegram, bot: Bot
) -> None:
    polling = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    assert not polling.done()  # nothing queued: the poll waits
    update_id = fake.send_text(USER, "/start hello", language_code="de")

    updates = await asyncio.wait_for(polling, 2)
    assert [u.update_id for u in updates] == [update_id]
    message = updates[0].message
    assert message is not None
    assert message.from_user is not None
    assert (message.text, message.chat.type, message.from_user.language_code) == (
        "/start hello",
        "private",
        "de",
    )
    assert spans(message.entities) == [("bot_command", 0, 6, None)]

    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [update_id]
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == []
    second = fake.send_text(USER, "more")
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [second]


async def test_allowed_updates_drop_other_update_types(fake: FakeTelegram, bot: Bot) -> None:
    fake.press_button(USER, "x", message_id=1)
    wanted = fake.send_text(USER, "hi")
    updates = await bot.get_updates(allowed_updates=["message"], timeout=0)
    assert [u.update_id for u in updates] == [wanted]


async def test_media_and_stop_updates_parse_as_aiogram_types(fake: FakeTelegram, bot: Bot) -> None:
    for kind in ("photo", "voice", "sticker", "document"):
        fake.send_message_of(USER, kind, caption=f"a {kind}")
    fake.stop_generation(USER, draft_id=7)
    *media, stop = await bot.get_updates(timeout=0)
    messages = [update.message for update in media]
    assert all(message is not None for message in messages)
    photo, voice, sticker, document = [m for m in messages if m is not None]
    assert photo.photo is not None
    assert len(photo.photo) == 2
    assert voice.voice is not None
    assert sticker.sticker is not None
    assert document.document is not None
    assert [m.caption for m in (photo, voice, sticker, document)] == [
        "a photo",
        "a voice",
        "a sticker",
        "a document",
    ]
    assert stop.stopped_message_generation is not None
    assert (stop.stopped_message_generation.chat.id, stop.stopped_message_generation.draft_id) == (
        USER,
        7,
    )


async def test_send_message_stores_text_and_entities_as_telegram_would(
    fake: FakeTelegram, bot: Bot
) -> None:
    plain = await bot.send_message(
        USER, "🙂 bold", entities=[MessageEntity(type="bold", offset=3, length=4)]
    )
    trimmed = await bot.send_message(  # offsets in UTF-16 units, before the trim
        USER,
        "  Hi & 🙂link <3 AT&T  ",
        entities=[
            MessageEntity(type="bold", offset=2, length=2),
            MessageEntity(type="text_link", offset=7, length=6, url="https://example.com"),
        ],
        reply_markup=keyboard(),
    )
    assert (plain.message_id, trimmed.message_id) == (1, 2)
    assert trimmed.text == "Hi & 🙂link <3 AT&T"
    assert spans(trimmed.entities) == [
        ("bold", 0, 2, None),
        ("text_link", 5, 6, "https://example.com/"),
    ]
    assert trimmed.reply_markup is not None
    assert trimmed.reply_markup.inline_keyboard[0][0].callback_data == "again"
    assert trimmed.from_user is not None
    assert trimmed.from_user.is_bot
    stored = fake.sent_messages(USER)
    assert [m["text"] for m in stored] == ["🙂 bold", "Hi & 🙂link <3 AT&T"]
    assert stored[0]["entities"] == [{"type": "bold", "offset": 3, "length": 4}]


async def test_commands_in_a_bot_message_are_detected_like_telegram_does(bot: Bot) -> None:
    sent = await bot.send_message(
        USER,
        "Try /balance or /buy@veil_bot, not a/path. /code",
        entities=[MessageEntity(type="code", offset=42, length=5)],
    )
    assert spans(sent.entities) == [
        ("bot_command", 4, 8, None),
        ("bot_command", 16, 13, None),
        ("code", 42, 5, None),
    ]


@pytest.mark.parametrize("parse_mode", ["HTML", "MarkdownV2", "Markdown"])
async def test_a_parse_mode_is_refused_as_telegram_refuses_one_and_nothing_is_sent(
    fake: FakeTelegram, bot: Bot, parse_mode: str
) -> None:
    # The bot sends entities; the emulator implements no parse mode and says so as Telegram does.
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.send_message(USER, "<b>hi</b>", parse_mode=parse_mode)
    sent = await bot.send_message(USER, "hi")
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.edit_message_text(
            "*hi*", chat_id=USER, message_id=sent.message_id, parse_mode=parse_mode
        )
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.send_message_draft(USER, draft_id=7, text="<i>…</i>", parse_mode=parse_mode)
    fake.inline_query(USER, "q")
    (asked,) = await bot.get_updates(timeout=0)
    assert asked.inline_query is not None
    article = InlineQueryResultArticle(
        id="a",
        title="Veil",
        input_message_content=InputTextMessageContent(message_text="*hi*", parse_mode=parse_mode),
    )
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.answer_inline_query(asked.inline_query.id, [article])
    assert [m["text"] for m in fake.sent_messages(USER)] == ["hi"]
    assert fake.drafts(USER) == []
    async with aiohttp.ClientSession() as http:
        body = {"chat_id": USER, "text": "<b>hi</b>", "parse_mode": parse_mode}
        async with http.post(f"{fake.url}/bot{fake.token}/sendMessage", json=body) as reply:
            assert (reply.status, await reply.json()) == (
                400,
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: unsupported parse_mode",
                },
            )
    assert len(fake.sent_messages(USER)) == 1


async def test_text_limits_count_utf16_units(fake: FakeTelegram, bot: Bot) -> None:
    assert (await bot.send_message(USER, "🙂" * 2048)).text == "🙂" * 2048
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "🙂" * 2049)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER, " \n ")
    with pytest.raises(TelegramBadRequest, match="outside the text"):
        await bot.send_message(
            USER, "🙂", entities=[MessageEntity(type="bold", offset=1, length=2)]
        )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "hi", reply_markup=keyboard("x" * 65))
    assert len(fake.sent_messages(USER)) == 1


async def test_drafts_need_a_draft_id_and_a_private_chat(fake: FakeTelegram, bot: Bot) -> None:
    fake.send_text(USER, "hi", chat_id=GROUP, chat_type="supergroup")
    with pytest.raises(TelegramBadRequest, match="draft_id must be non-zero"):
        await bot.send_message_draft(chat_id=USER, draft_id=0, text="…")
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await bot.send_message_draft(chat_id=GROUP, draft_id=7, text="…")
    assert await bot.send_message_draft(chat_id=USER, draft_id=7, text="")
    assert await bot.send_message_draft(chat_id=USER, draft_id=7, text="Hel", can_stop=True)
    drafts = fake.drafts(USER)
    assert [(c.params["draft_id"], c.params.get("text")) for c in drafts] == [(7, None), (7, "Hel")]
    assert drafts[1].params["can_stop"] is True
    assert fake.drafts(GROUP) == []


async def test_edits_refuse_identical_content_and_drop_an_omitted_keyboard(
    fake: FakeTelegram, bot: Bot
) -> None:
    sent = await bot.send_message(USER, "Thinking", reply_markup=keyboard())
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Thinking", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard()
        )
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(  # trailing whitespace is trimmed away
            "Thinking \n", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard()
        )
    edited = await bot.edit_message_text("Done", chat_id=USER, message_id=sent.message_id)
    assert isinstance(edited, Message)
    assert (edited.text, edited.reply_markup) == ("Done", None)
    assert fake.sent_messages(USER)[0]["text"] == "Done"
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=99)
    assert await bot.delete_message(USER, sent.message_id)
    assert fake.sent_messages(USER) == []


async def test_fail_next_and_fail_every_inject_flood_waits(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next(
        "sendMessage", status=429, description="Too Many Requests: retry after 7", retry_after=7
    )
    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(USER, "one")
    assert flood.value.retry_after == 7
    await bot.send_message(USER, "two")
    assert [m["text"] for m in fake.sent_messages(USER)] == ["two"]

    fake.fail_every({"sendMessage", "editMessageText"}, nth=2, retry_after=3)
    sent = await bot.send_message(USER, "three")
    with pytest.raises(TelegramRetryAfter, match="retry after 3"):
        await bot.edit_message_text("four", chat_id=USER, message_id=sent.message_id)
    assert [c.answered for c in fake.calls_of("editMessageText")] == [
        "Too Many Requests: retry after 3"
    ]


async def test_a_blocked_user_cannot_be_sent_to(fake: FakeTelegram, bot: Bot) -> None:
    fake.state.blocked_users.add(USER)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "hello?")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(USER, "typing")
    assert fake.sent_messages(USER) == []


async def test_invoices_are_checked_like_telegram(fake: FakeTelegram, bot: Bot) -> None:
    one_price = [LabeledPrice(label="100 credits", amount=50)]
    invoice = await bot.send_invoice(
        USER,
        title="Credits",
        description="100 credits",
        payload="order-1",
        currency="XTR",
        prices=one_price,
    )
    assert invoice.invoice is not None
    assert (invoice.invoice.total_amount, invoice.invoice.currency) == (50, "XTR")
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"title": "x" * 33}, "invoice title must be 1-32"),
        ({"payload": "p" * 129}, "INVOICE_PAYLOAD_INVALID"),
        ({"prices": [*one_price, LabeledPrice(label="tip", amount=1)]}, "STARS_INVOICE_INVALID"),
        ({"provider_token": "provider"}, "STARS_INVOICE_INVALID"),
    ]
    for change, description in refusals:
        fields: dict[str, Any] = {"title": "Credits", "description": "100 credits"}
        fields |= {"payload": "order-2", "currency": "XTR", "prices": one_price} | change
        with pytest.raises(TelegramBadRequest, match=description):
            await bot.send_invoice(USER, **fields)
    link = await bot.create_invoice_link(
        title="Monthly",
        description="Subscription",
        payload="sub-1",
        currency="XTR",
        prices=one_price,
        subscription_period=2592000,
    )
    assert fake.payments.invoice_links[link]["subscription_period"] == 2592000
    with pytest.raises(TelegramBadRequest, match="SUBSCRIPTION_PERIOD_INVALID"):
        await bot.create_invoice_link(
            title="Weekly",
            description="Subscription",
            payload="sub-2",
            currency="XTR",
            prices=one_price,
            subscription_period=604800,
        )
    assert len(fake.sent_messages(USER)) == 1


async def test_pre_checkout_refund_and_star_transactions(fake: FakeTelegram, bot: Bot) -> None:
    fake.pre_checkout(USER, payload="order-1", total_amount=50)
    (update,) = await bot.get_updates(timeout=0)
    assert update.pre_checkout_query is not None
    assert await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)

    charge = fake.pay(USER, payload="order-1", total_amount=50)
    paid = (await bot.get_updates(offset=update.update_id + 1, timeout=0))[0].message
    assert paid is not None
    assert paid.successful_payment is not None
    assert paid.successful_payment.telegram_payment_charge_id == charge

    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(USER + 1, charge)
    assert await bot.refund_star_payment(USER, charge)
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(USER, charge)

    history = (await bot.get_star_transactions()).transactions
    assert [(t.id, t.amount) for t in history] == [(charge, 50), (charge, 50)]
    assert isinstance(history[0].source, TransactionPartnerUser)
    assert (history[0].source.user.id, history[0].source.invoice_payload) == (USER, "order-1")
    assert isinstance(history[1].receiver, TransactionPartnerUser)
    assert (history[1].receiver.user.id, history[1].source) == (USER, None)

    fake.refunded(USER, payload="order-1", total_amount=50, charge_id=charge)
    notice = (await bot.get_updates(offset=-1, timeout=0))[0].message
    assert notice is not None
    assert notice.refunded_payment is not None
    assert notice.refunded_payment.telegram_payment_charge_id == charge
    assert len((await bot.get_star_transactions()).transactions) == 2  # refunded once


async def test_callback_and_inline_queries_are_answered_once(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(USER, "Pick", reply_markup=keyboard("again"))
    fake.press_button(USER, "again", message_id=sent.message_id)
    fake.inline_query(USER, "what is veil")
    callback, inline = await bot.get_updates(timeout=0)
    assert callback.callback_query is not None
    assert callback.callback_query.data == "again"
    assert isinstance(callback.callback_query.message, Message)
    assert callback.callback_query.message.text == "Pick"
    assert await bot.answer_callback_query(callback.callback_query.id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(callback.callback_query.id)

    assert inline.inline_query is not None
    article = InlineQueryResultArticle(
        id="answer",
        title="Veil",
        input_message_content=InputTextMessageContent(
            message_text="Thinking…", entities=[MessageEntity(type="italic", offset=0, length=9)]
        ),
        reply_markup=keyboard("stop"),
    )
    assert await bot.answer_inline_query(inline.inline_query.id, [article])
    fake.choose_inline_result(USER, "answer", "what is veil", inline_message_id="inl-1")
    assert fake.state.inline_messages["inl-1"]["text"] == "Thinking…"
    assert await bot.edit_message_text("Veil is private.", inline_message_id="inl-1") is True
    assert fake.state.inline_messages["inl-1"] == {
        "text": "Veil is private.",
        "entities": [],
        "reply_markup": None,
    }

    fake.state.inline_query_ttl = 0.0
    fake.inline_query(USER, "late")
    late = (await bot.get_updates(offset=inline.update_id + 1, timeout=0))[-1]
    assert late.inline_query is not None
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_inline_query(late.inline_query.id, [article])


async def test_commands_are_stored_per_language(fake: FakeTelegram, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Begin")])
    await bot.set_my_commands([BotCommand(command="start", description="Los")], language_code="de")
    assert fake.state.commands == {
        "": [{"command": "start", "description": "Begin"}],
        "de": [{"command": "start", "description": "Los"}],
    }
    commands = await bot.get_my_commands(language_code="de")
    assert [(c.command, c.description) for c in commands] == [("start", "Los")]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Start!", description="x")])


async def test_a_second_poll_ends_the_waiting_one_at_once_with_409(bot: Bot) -> None:
    # As Telegram does: the poll already waiting (30 s) gets 409 "terminated by other
    # getUpdates request" as soon as the next one comes, not when its own timeout ends.
    waiting = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.sleep(0.2)  # the first poll is waiting at the fake
    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(waiting, 5)


async def test_webhook_delivery_carries_the_secret_and_redelivers(
    fake: FakeTelegram, bot: Bot
) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    redelivered = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        received.append((secret, await request.json()))
        if len(received) == 1:
            return web.Response(status=500)
        redelivered.set()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    async with serving(app) as url:
        await bot.set_webhook(f"{url}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates(timeout=0)
        update_id = fake.send_text(USER, "via webhook")
        await asyncio.wait_for(redelivered.wait(), 5)
    assert [(secret, body["update_id"]) for secret, body in received] == [
        ("s3cret", update_id),
        ("s3cret", update_id),
    ]
    assert received[1][1]["message"]["text"] == "via webhook"
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500"


async def test_a_method_in_the_webhook_reply_is_executed(fake: FakeTelegram, bot: Bot) -> None:
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> SendMessage:
        return message.answer(f"echo: {message.text}")

    app = web.Application()
    handler = SimpleRequestHandler(
        dispatcher, bot, secret_token="s3cret", handle_in_background=False
    )
    app.router.add_post("/hook", handler.handle)  # not register(): that closes the bot on exit
    async with serving(app) as url:
        await bot.set_webhook(f"{url}/hook", secret_token="s3cret")
        fake.send_text(USER, "ping")
        reply = await fake.wait_for("sendMessage", timeout=5)
    assert (reply.params["chat_id"], reply.params["text"], reply.answered) == (
        USER,
        "echo: ping",
        "ok",
    )
    assert [m["text"] for m in fake.sent_messages(USER)] == ["echo: ping"]


async def test_dispatcher_polling_receives_a_text_and_replies(fake: FakeTelegram, bot: Bot) -> None:
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
    )
    try:
        fake.send_text(USER, "hello")
        reply = await fake.wait_for("sendMessage", timeout=5)
        assert reply.params == {"chat_id": USER, "text": "echo: hello"}
        assert fake.calls_of("getUpdates")[0].params["allowed_updates"] == ["message"]
    finally:
        await dispatcher.stop_polling()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    assert [m["text"] for m in fake.sent_messages(USER)] == ["echo: hello"]


async def test_wait_for_names_the_calls_it_saw(fake: FakeTelegram, bot: Bot) -> None:
    await bot.get_me()
    with pytest.raises(TimeoutError, match=r"no matching sendMessage call .* getMe\(ok\)"):
        await fake.wait_for("sendMessage", timeout=0.05)


async def test_json_and_get_requests_are_accepted_like_forms(fake: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as http:
        base = f"{fake.url}/bot{fake.token}"
        async with http.get(f"{base}/getMe") as reply:
            assert (await reply.json())["result"]["username"] == "veil_test_bot"
        bold = [{"type": "bold", "offset": 0, "length": 2}]
        body = {"chat_id": USER, "text": "hi", "entities": bold}
        async with http.post(f"{base}/sendMessage", json=body) as reply:
            sent = await reply.json()
        assert sent["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 2}]
        async with http.post(f"{fake.url}/elsewhere") as reply:
            assert (reply.status, await reply.json()) == (
                404,
                {"ok": False, "error_code": 404, "description": "Not Found"},
            )
    assert fake.calls_of("sendMessage")[0].params == body


# Groups, members and the per-group flood limit.


def article(text: str = "Thinking…") -> InlineQueryResultArticle:
    return InlineQueryResultArticle(
        id="a1",
        title="Ask Veil",
        input_message_content=InputTextMessageContent(message_text=text),
        reply_markup=keyboard("stop"),
    )


async def test_group_messages_carry_mentions_commands_and_replies_one_level_deep(
    fake: FakeTelegram, bot: Bot
) -> None:
    asked = fake.send_text(USER, "@veil_test_bot what is HPKE?", chat_id=GROUP)
    (update,) = await bot.get_updates(timeout=0)
    assert update.update_id == asked
    question = update.message
    assert question is not None
    assert (question.chat.id, question.chat.type, question.chat.title) == (
        GROUP,
        "supergroup",
        "Test group",
    )
    assert spans(question.entities) == [("mention", 0, 14, None)]

    placeholder = await bot.send_message(
        GROUP, "Thinking…", reply_parameters=ReplyParameters(message_id=question.message_id)
    )
    assert placeholder.reply_to_message is not None
    assert placeholder.reply_to_message.message_id == question.message_id
    assert placeholder.message_id == question.message_id + 1  # one counter per chat
    older = await bot.send_message(GROUP, "Also", reply_to_message_id=question.message_id)
    assert older.reply_to_message is not None
    assert older.reply_to_message.text == "@veil_test_bot what is HPKE?"
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(GROUP, "x", reply_parameters=ReplyParameters(message_id=99))

    edited = await bot.edit_message_text(
        "HPKE seals a message to a public key.",
        chat_id=GROUP,
        message_id=placeholder.message_id,
    )
    assert isinstance(edited, Message)
    assert edited.edit_date is not None

    with pytest.raises(ValueError, match="QUOTE_TEXT_INVALID"):
        fake.send_text(OTHER, "?", chat_id=GROUP, reply_to=edited.message_id, quote="RSA")
    fake.send_text(
        OTHER,
        "and then?",
        chat_id=GROUP,
        first_name="Bob",
        reply_to=edited.message_id,
        quote="a public key",
    )
    fake.send_text(OTHER, "/ask why /groupsettings@veil_test_bot", chat_id=GROUP)
    follow_up, command = await bot.get_updates(offset=update.update_id + 1, timeout=0)
    assert follow_up.message is not None
    assert follow_up.message.quote is not None
    assert (follow_up.message.quote.text, follow_up.message.quote.position) == ("a public key", 24)
    replied = follow_up.message.reply_to_message
    assert replied is not None
    assert (replied.message_id, replied.text) == (
        placeholder.message_id,
        "HPKE seals a message to a public key.",
    )
    assert replied.from_user is not None
    assert replied.from_user.is_bot
    assert replied.reply_to_message is None  # one level, as Telegram sends it
    assert command.message is not None
    assert spans(command.message.entities) == [
        ("bot_command", 0, 4, None),
        ("bot_command", 9, 28, None),
    ]

    assert await bot.delete_message(GROUP, older.message_id)
    assert [m["message_id"] for m in fake.sent_messages(GROUP)] == [placeholder.message_id]
    assert fake.state.member_status(GROUP, OTHER) == "member"


async def test_privacy_mode_tells_the_bot_only_what_is_meant_for_it(
    fake: FakeTelegram, bot: Bot
) -> None:
    assert (await bot.get_me()).can_read_all_group_messages is True
    fake.send_text(USER, "anyone here?", chat_id=GROUP)
    (everything,) = await bot.get_updates(timeout=0)  # without privacy mode: everything

    fake.state.privacy_mode = True
    assert (await bot.get_me()).can_read_all_group_messages is False
    mine = await bot.send_message(GROUP, "I am Veil")
    told = {
        "lunch?": fake.send_text(USER, "lunch?", chat_id=GROUP),
        "mention": fake.send_text(USER, "hey @Veil_Test_Bot, a question", chat_id=GROUP),
        "other bot": fake.send_text(USER, "@some_other_bot hi", chat_id=GROUP),
        "/ask": fake.send_text(USER, "/ask what", chat_id=GROUP),
        "/ask@other": fake.send_text(USER, "/ask@other_bot what", chat_id=GROUP),
        "reply to Veil": fake.send_text(USER, "more", chat_id=GROUP, reply_to=mine.message_id),
    }
    (lunch,) = [m for m in fake.state.chat_messages(GROUP) if m["text"] == "lunch?"]
    told["reply to a user"] = fake.send_text(
        OTHER, "yes", chat_id=GROUP, reply_to=lunch["message_id"]
    )
    told["private"] = fake.send_text(USER, "hello")
    assert [name for name, update_id in told.items() if update_id == 0] == [
        "lunch?",
        "other bot",
        "/ask@other",
        "reply to a user",
    ]
    updates = await bot.get_updates(offset=everything.update_id + 1, timeout=0)
    delivered = [u.update_id for u in updates]
    assert delivered == [update_id for update_id in told.values() if update_id]
    assert len(fake.state.chat_messages(GROUP)) == 9  # the page sees them all


async def test_a_group_upgraded_to_a_supergroup_tells_the_bot_and_refuses_its_old_id(
    fake: FakeTelegram, bot: Bot
) -> None:
    basic, supergroup = -4_000_123, -1_004_000_123
    fake.state.privacy_mode = True
    fake.send_text(USER, "/ask hello", chat_id=basic, chat_type="group")
    sent = await bot.send_message(basic, "an answer")
    fake.upgrade_group(USER, basic, supergroup)
    updates = await bot.get_updates(timeout=0)
    moved = [(u.message.chat.id, u.message.migrate_to_chat_id) for u in updates if u.message]
    came = [(u.message.chat.id, u.message.migrate_from_chat_id) for u in updates if u.message]
    assert moved[-2:] == [(basic, supergroup), (supergroup, None)]
    assert came[-1] == (supergroup, basic)
    for call in (
        bot.send_message(basic, "hi"),
        bot.edit_message_text("edited", chat_id=basic, message_id=sent.message_id),
        bot.get_chat_member(basic, USER),
    ):
        with pytest.raises(TelegramMigrateToChat) as refused:
            await call
        assert refused.value.migrate_to_chat_id == supergroup
        assert "group chat was upgraded to a supergroup chat" in refused.value.message
    assert (await bot.get_chat_member(supergroup, USER)).status == "member"
    assert (await bot.send_message(supergroup, "hi")).chat.type == "supergroup"


async def test_get_chat_member_answers_the_status_a_test_set(fake: FakeTelegram, bot: Bot) -> None:
    fake.send_text(USER, "hi", chat_id=GROUP)
    fake.send_text(OTHER, "hi", chat_id=GROUP, first_name="Bob")
    fake.send_text(503, "hi", first_name="Cy")  # known to Telegram, not in the group
    assert isinstance(await bot.get_chat_member(GROUP, USER), ChatMemberMember)
    fake.set_member(GROUP, USER, "creator")
    fake.set_member(GROUP, OTHER, "administrator")
    owner = await bot.get_chat_member(GROUP, USER)
    admin = await bot.get_chat_member(GROUP, OTHER)
    assert isinstance(owner, ChatMemberOwner)
    assert (owner.status, owner.user.id) == ("creator", USER)
    assert isinstance(admin, ChatMemberAdministrator)
    assert (admin.status, admin.user.first_name) == ("administrator", "Bob")
    stranger = await bot.get_chat_member(GROUP, 503)
    assert isinstance(stranger, ChatMemberLeft)
    me = await bot.get_chat_member(GROUP, fake.state.bot_user["id"])
    assert (me.status, me.user.is_bot) == ("member", True)
    fake.set_member(GROUP, OTHER, "kicked")
    assert isinstance(await bot.get_chat_member(GROUP, OTHER), ChatMemberBanned)
    fake.set_member(GROUP, OTHER, "left")
    assert (await bot.get_chat_member(GROUP, OTHER)).status == "left"
    with pytest.raises(TelegramBadRequest, match="user not found"):
        await bot.get_chat_member(GROUP, 999)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat_member(-100999, USER)
    with pytest.raises(ValueError, match="unknown member status"):
        fake.set_member(GROUP, USER, "owner")


async def test_the_group_limit_answers_429_past_n_a_minute_and_records_each(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.send_text(USER, "hi", chat_id=GROUP)
    fake.send_text(USER, "hi", chat_id=GROUP - 1)
    for n in range(25):  # off by default
        await bot.send_message(GROUP, f"burst {n}")
    fake.limit_groups(3)
    first = await bot.send_message(GROUP, "one")
    await bot.edit_message_text("one, edited", chat_id=GROUP, message_id=first.message_id)
    fake.inline_query(USER, "q", chat_type="supergroup")
    (asked,) = [u for u in await bot.get_updates(timeout=0) if u.inline_query is not None]
    assert asked.inline_query is not None
    await bot.answer_inline_query(asked.inline_query.id, [article()])
    fake.choose_inline_result(USER, "a1", "q", inline_message_id="inl-g", chat_id=GROUP)
    assert await bot.edit_message_text("Because.", inline_message_id="inl-g")  # the 3rd
    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(GROUP, "four")
    assert 58 <= flood.value.retry_after <= 60
    with pytest.raises(TelegramRetryAfter):
        await bot.edit_message_text("Because!", inline_message_id="inl-g")
    assert fake.state.inline_messages["inl-g"]["text"] == "Because."  # refused: unchanged
    for n in range(5):  # private chats are not limited here
        await bot.send_message(USER, f"private {n}")
    for n in range(3):  # another group has a budget of its own
        await bot.send_message(GROUP - 1, f"other {n}")
    assert [(f.chat_id, f.method) for f in fake.floods] == [
        (GROUP, "sendMessage"),
        (GROUP, "editMessageText"),
    ]
    refused = [c.answered for c in fake.calls if c.answered.startswith("Too Many Requests")]
    assert len(refused) == 2
    assert refused[0] == f"Too Many Requests: retry after {flood.value.retry_after}"

    fake.limit_groups(2, window=0.3)  # a short window: the budget comes back
    await bot.send_message(GROUP, "a")
    await bot.send_message(GROUP, "b")
    with pytest.raises(TelegramRetryAfter, match="retry after 1"):
        await bot.send_message(GROUP, "c")
    await asyncio.sleep(0.35)
    await bot.send_message(GROUP, "c")
    fake.limit_groups(None)
    for n in range(5):
        await bot.send_message(GROUP, f"free {n}")
    assert len(fake.floods) == 3


async def test_an_inline_result_chosen_in_a_group_is_posted_there_and_edits_follow(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.inline_query(USER, "why", chat_type="supergroup")
    fake.send_text(USER, "hi", chat_id=GROUP)
    asked, _hi = await bot.get_updates(timeout=0)
    assert asked.inline_query is not None
    await bot.answer_inline_query(asked.inline_query.id, [article()])
    fake.choose_inline_result(USER, "a1", "why", inline_message_id="inl-1", chat_id=GROUP)
    posted = fake.state.chat_messages(GROUP)[-1]
    assert (posted["text"], posted["from"]["id"], posted["via_bot"]["username"]) == (
        "Thinking…",
        USER,
        "veil_test_bot",
    )
    assert posted["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "stop"
    assert await bot.edit_message_text("Because.", inline_message_id="inl-1")
    assert fake.state.chat_messages(GROUP)[-1]["text"] == "Because."
    assert "reply_markup" not in fake.state.chat_messages(GROUP)[-1]
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Because.", inline_message_id="inl-1")


# Ephemeral messages (Bot API 10.2).


async def test_ephemeral_messages_are_seen_by_their_receiver_only(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.send_text(USER, "@veil_test_bot hi", chat_id=GROUP)
    fake.send_text(OTHER, "hello", chat_id=GROUP, first_name="Bob")
    only_ann = EphemeralMessageParameters(receiver_user_id=USER)
    notice = await bot.send_message(
        GROUP, "Top up to ask", reply_markup=keyboard("buy"), ephemeral_message_parameters=only_ann
    )
    assert (notice.message_id, notice.ephemeral_message_id) == (0, 1)
    assert notice.receiver_user is not None
    assert notice.receiver_user.id == USER
    assert [m["text"] for m in fake.ephemeral_messages(GROUP, USER)] == ["Top up to ask"]
    assert fake.ephemeral_messages(GROUP, OTHER) == []
    assert "Top up to ask" not in [m["text"] for m in fake.state.chat_messages(GROUP)]
    assert fake.sent_messages(GROUP) == []

    second = await bot(  # the 10.2 form, deprecated in 10.3
        SendMessage(chat_id=GROUP, text="Busy", receiver_user_id=OTHER)
    )
    assert second.ephemeral_message_id == 2
    assert [(m["receiver_user"]["id"], m["text"]) for m in fake.ephemeral_messages(GROUP)] == [
        (USER, "Top up to ask"),
        (OTHER, "Busy"),
    ]
    assert await bot.edit_ephemeral_message_text(
        chat_id=GROUP, receiver_user_id=USER, ephemeral_message_id=1, text="Topped up"
    )
    assert fake.ephemeral_messages(GROUP, USER)[0]["text"] == "Topped up"
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_ephemeral_message(
            chat_id=GROUP, receiver_user_id=OTHER, ephemeral_message_id=1
        )
    assert await bot.delete_ephemeral_message(
        chat_id=GROUP, receiver_user_id=USER, ephemeral_message_id=1
    )
    assert fake.ephemeral_messages(GROUP, USER) == []
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_ephemeral_message(
            chat_id=GROUP, receiver_user_id=USER, ephemeral_message_id=1
        )

    with pytest.raises(TelegramBadRequest, match="only to groups"):
        await bot.send_message(USER, "x", ephemeral_message_parameters=only_ann)
    with pytest.raises(TelegramBadRequest, match="must be a member"):
        await bot.send_message(
            GROUP, "x", ephemeral_message_parameters=EphemeralMessageParameters(receiver_user_id=9)
        )


async def test_an_older_server_refuses_or_ignores_ephemeral_messages(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.send_text(USER, "hi", chat_id=GROUP)
    only_ann = EphemeralMessageParameters(receiver_user_id=USER)
    fake.state.ephemeral_support = "refused"
    with pytest.raises(TelegramBadRequest, match="ephemeral messages are not supported"):
        await bot.send_message(GROUP, "No credit", ephemeral_message_parameters=only_ann)
    with pytest.raises(TelegramNotFound):
        await bot.delete_ephemeral_message(
            chat_id=GROUP, receiver_user_id=USER, ephemeral_message_id=1
        )
    assert fake.ephemeral_messages(GROUP) == []
    assert fake.sent_messages(GROUP) == []

    fake.state.ephemeral_support = "ignored"  # a server that does not know the field
    public = await bot.send_message(GROUP, "No credit", ephemeral_message_parameters=only_ann)
    assert (public.ephemeral_message_id, public.receiver_user) == (None, None)
    assert [m["text"] for m in fake.sent_messages(GROUP)] == ["No credit"]


# Guest mode (Bot API 10.0).


async def test_a_guest_query_is_answered_once_and_edited_as_an_inline_message(
    fake: FakeTelegram, bot: Bot
) -> None:
    assert (await bot.get_me()).supports_guest_queries is True
    where = fake.user.post_text(OTHER, "Where do we eat tonight?", chat_id=FRIENDS)
    summoned = fake.guest_message(
        USER, "@veil_test_bot pick one for us", chat_id=FRIENDS, reply_to=where
    )
    (update,) = await bot.get_updates(timeout=0)
    assert update.update_id == summoned
    guest = update.guest_message
    assert guest is not None
    assert guest.guest_query_id
    assert (guest.chat.id, guest.chat.title, guest.text) == (
        FRIENDS,
        "Friends",
        "@veil_test_bot pick one for us",
    )
    assert guest.reply_to_message is not None
    assert guest.reply_to_message.text == "Where do we eat tonight?"

    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the supergroup"):
        await bot.send_message(FRIENDS, "hello?")
    sent = await bot.answer_guest_query(guest.guest_query_id, article())
    assert sent.inline_message_id
    answer = fake.state.chat_messages(FRIENDS)[-1]
    assert (answer["text"], answer["from"]["is_bot"]) == ("Thinking…", True)
    assert answer["guest_bot_caller_user"]["id"] == USER
    assert answer["reply_to_message"]["message_id"] == guest.message_id
    assert await bot.edit_message_text(
        "Try the noodle bar.", inline_message_id=sent.inline_message_id
    )
    assert fake.state.chat_messages(FRIENDS)[-1]["text"] == "Try the noodle bar."
    assert fake.state.inline_messages[sent.inline_message_id]["text"] == "Try the noodle bar."
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_guest_query(guest.guest_query_id, article())
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_guest_query("12345", article())

    # In a chat without the bot a mention summons it; anything else reaches no one.
    assert fake.send_text(USER, "thanks all", chat_id=FRIENDS) == 0
    again = fake.send_text(
        USER, "@veil_test_bot and dessert?", chat_id=FRIENDS, reply_to=answer["message_id"]
    )
    (follow_up,) = await bot.get_updates(offset=update.update_id + 1, timeout=0)
    assert follow_up.update_id == again
    assert follow_up.guest_message is not None
    replied = follow_up.guest_message.reply_to_message
    assert replied is not None
    assert replied.from_user is not None
    assert (replied.from_user.is_bot, replied.text) == (True, "Try the noodle bar.")
    assert replied.guest_bot_caller_user is not None

    fake.state.supports_guest_queries = False
    assert (await bot.get_me()).supports_guest_queries is False
    fake.send_text(USER, "hi", chat_id=GROUP)
    with pytest.raises(ValueError, match="the bot is a member of chat"):
        fake.guest_message(USER, "@veil_test_bot hi", chat_id=GROUP)


# Photos.


async def test_send_photo_keeps_the_upload_for_the_test_and_for_get_file(
    fake: FakeTelegram, bot: Bot
) -> None:
    picture = make_png(40, 30)
    pay = InlineKeyboardButton(text="Open Tonkeeper", url="https://app.tonkeeper.com/transfer/x")
    sent = await bot.send_photo(
        USER,
        BufferedInputFile(picture, filename="invoice.png"),
        caption="Scan to pay 1.5 GRAM",
        caption_entities=[MessageEntity(type="bold", offset=12, length=3)],
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[pay]]),
    )
    assert sent.photo is not None
    (size,) = sent.photo
    assert (size.width, size.height, size.file_size) == (40, 30, len(picture))
    assert (sent.caption, spans(sent.caption_entities)) == (
        "Scan to pay 1.5 GRAM",
        [("bold", 12, 3, None)],
    )
    assert sent.reply_markup is not None
    assert fake.photos[USER] == [picture]
    pixels = png_pixels(fake.photos[USER][0])
    assert (len(pixels), len(pixels[0]), pixels[29][39]) == (30, 40, (39, 29, 200))

    file = await bot.get_file(size.file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    assert downloaded.read() == picture

    fake.send_text(USER, "hi", chat_id=GROUP)
    again = await bot.send_photo(GROUP, size.file_id, caption="once more", reply_to_message_id=1)
    assert again.photo is not None
    assert again.photo[0].file_unique_id == size.file_unique_id
    assert again.reply_to_message is not None
    assert fake.photos[GROUP] == [picture]

    refusals: list[tuple[Any, str]] = [
        (BufferedInputFile(b"GIF89a not a png", filename="x.gif"), "IMAGE_PROCESS_FAILED"),
        (BufferedInputFile(make_png(4, 100), filename="x.png"), "PHOTO_INVALID_DIMENSIONS"),
        ("no-such-file-id", "wrong file identifier"),
    ]
    for photo, description in refusals:
        with pytest.raises(TelegramBadRequest, match=description):
            await bot.send_photo(USER, photo)
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(USER, size.file_id, caption="x" * 1025)
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")
    assert len(fake.photos[USER]) == 1


def test_image_size_reads_png_and_jpeg_headers() -> None:
    assert image_size(make_png(3, 2)) == (3, 2)
    broken = bytearray(make_png(3, 2))
    broken[20] ^= 1  # the IHDR no longer matches its CRC
    assert image_size(bytes(broken)) is None
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9)
    sof0 = b"\xff\xc0" + struct.pack(">HBHH", 11, 8, 480, 640) + bytes(4)
    assert image_size(b"\xff\xd8" + app0 + sof0) == (640, 480)
    assert image_size(b"\xff\xd8\xff\xd9") is None
    assert image_size(b"plain text") is None


async def test_a_text_of_invisible_characters_is_empty_to_telegram(
    fake: FakeTelegram, bot: Bot
) -> None:
    for nothing in ("\u200b", "\u00a0\u2800", "\ufeff\u200d", "\u3000 \u200e"):
        with pytest.raises(TelegramBadRequest, match="message text is empty"):
            await bot.send_message(USER, nothing)
    assert await bot.send_message_draft(chat_id=USER, draft_id=7, text="\u200b")  # a draft may
    assert (await bot.send_message(USER, "\u200bhi")).text == "\u200bhi"
    assert len(fake.sent_messages(USER)) == 1


async def test_an_entity_may_not_split_a_surrogate_pair(fake: FakeTelegram, bot: Bot) -> None:
    for offset, length in ((1, 2), (0, 1), (2, 1)):  # "🙂🙂": pairs at 0-1 and 2-3
        with pytest.raises(TelegramBadRequest, match="in a middle of a UTF-16 symbol"):
            await bot.send_message(
                USER, "🙂🙂", entities=[MessageEntity(type="bold", offset=offset, length=length)]
            )
    whole = await bot.send_message(
        USER, "🙂🙂", entities=[MessageEntity(type="bold", offset=2, length=2)]
    )
    assert spans(whole.entities) == [("bold", 2, 2, None)]
    assert len(fake.sent_messages(USER)) == 1


async def test_a_link_telegram_cannot_open_refuses_the_message(
    fake: FakeTelegram, bot: Bot
) -> None:
    # tdlib's parse_url and LinkManager::check_link: http or https, a host with a dot.
    for url in ("http://localhost:3000", "ftp://files.example.org/a", "http://a.example:99999"):
        with pytest.raises(TelegramBadRequest, match="URL is invalid"):
            await bot.send_message(
                USER,
                "open",
                entities=[MessageEntity(type="text_link", offset=0, length=4, url=url)],
            )
    sent = await bot.send_message(
        USER,
        "open",
        entities=[MessageEntity(type="text_link", offset=0, length=4, url="Example.org:8080")],
    )
    assert spans(sent.entities) == [("text_link", 0, 4, "http://example.org:8080/")]
    assert len(fake.sent_messages(USER)) == 1


async def test_a_tg_link_is_checked_as_tdlib_checks_it(fake: FakeTelegram, bot: Bot) -> None:
    # LinkManager::check_link: a tg:, ton: or tonsite: host of letters, digits, "-" and "_"
    # (dots too under tonsite:), no user, port or protocol of its own; the fake took any.
    for url in ("tg://t.me/veil", "tg:example.com", "tg://", "tg:user@host", "ton://x:80/"):
        with pytest.raises(TelegramBadRequest, match="URL is invalid"):
            await bot.send_message(
                USER,
                "open",
                entities=[MessageEntity(type="text_link", offset=0, length=4, url=url)],
            )
    taken = {
        "tg:resolve?domain=veil": "tg://resolve?domain=veil",
        "TON://transfer/EQx?amount=1": "ton://transfer/EQx?amount=1",
        "tonsite://site.ton": "tonsite://site.ton/",
    }
    for url, shown in taken.items():
        sent = await bot.send_message(
            USER,
            "open",
            entities=[MessageEntity(type="text_link", offset=0, length=4, url=url)],
        )
        assert spans(sent.entities) == [("text_link", 0, 4, shown)]
    assert len(fake.sent_messages(USER)) == len(taken)


async def test_a_closed_forum_topic_takes_nothing_from_a_bot_that_is_no_admin(
    fake: FakeTelegram, bot: Bot
) -> None:
    group, topic = -1_001_555_000_111, 42
    asked = fake.send_text(USER, "@veil_test_bot hi", chat_id=group, thread_id=topic)
    question = fake.state.chat_messages(group)[-1]["message_id"]
    assert asked
    fake.close_topic(USER, group, topic)
    closed = fake.state.chat_messages(group)[-1]
    assert (closed["forum_topic_closed"], closed["message_thread_id"]) == ({}, topic)
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(group, "into it", message_thread_id=topic)
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(group, "a reply there", reply_to_message_id=question)
    with pytest.raises(TelegramBadRequest, match="CHAT_ADMIN_REQUIRED"):
        await bot.reopen_forum_topic(group, topic)
    general = await bot.send_message(group, "in General")
    assert general.message_thread_id is None
    assert [m["text"] for m in fake.sent_messages(group)] == ["in General"]
    fake.state.set_member(group, fake.state.bot_user["id"], "administrator")  # admins may
    reply = await bot.send_message(group, "as an admin", reply_to_message_id=question)
    assert reply.message_thread_id == topic
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.close_forum_topic(group, topic)
    assert await bot.reopen_forum_topic(group, topic)
    assert fake.state.chat_messages(group)[-1]["forum_topic_reopened"] == {}
    fake.state.set_member(group, fake.state.bot_user["id"], "member")
    assert (
        await bot.send_message(group, "open again", message_thread_id=topic)
    ).message_thread_id == topic
