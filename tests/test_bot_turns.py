"""Bot API calls wait for a free connection before their request is built (``TurnTakingSession``).

A Bot API server that accepts connections and never answers keeps the one connection busy:
the calls behind it wait for their turn holding ~7 KB each, their task and the method's model
included (waiting in aiohttp's pool, with their request built first, ~13 KB), they go out in
order once the connection is free, and a call that waits longer than its timeout fails as
aiohttp's timeout would.

The session posts each call as JSON (a file upload as aiogram's multipart form): the fake Bot API
server reads the same parameters from it as from aiogram's own form, every call the bot makes
carries what aiogram's form carries (defaults, enums, dates, nested objects), and a dropped or
silent server, a flood wait or a page that is not JSON fails the call as it fails aiogram's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest
from aiogram import Bot, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ChatAction
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BufferedInputFile,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputMediaPhoto,
    InputRichMessage,
    InputTextMessageContent,
    LabeledPrice,
    LinkPreviewOptions,
    MenuButtonWebApp,
    MessageEntity,
    ReplyParameters,
    WebAppInfo,
)
from aiohttp import web

from bot.telegram import JsonBody, TurnTakingSession
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.harness import serving
from tests.pictures import make_png

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiogram.methods import TelegramMethod

WAITING = 50
# Measured 6.9 KB per waiting sendMessage (its task, coroutines and model); 13.2 KB with
# aiogram's own session, which builds the request before aiohttp waits for a connection.
MAX_BYTES_PER_WAITING_CALL = 9_000


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A server that reads requests and never answers; its URL and the connections it took."""
    connections: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client hangs up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_waiting_calls_hold_little_and_time_out_as_aiohttp_would() -> None:
    async with silent_server() as (url, connections):
        session = TurnTakingSession(api=TelegramAPIServer.from_base(url), limit=1)
        bot = Bot(TOKEN, session=session)
        try:
            busy = asyncio.create_task(bot.send_chat_action(chat_id=1, action="typing"))
            while not connections:  # noqa: ASYNC110 -- the server's record has no event
                await asyncio.sleep(0.005)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            waiting = [
                asyncio.create_task(bot.send_message(chat_id=2 + i, text="word " * 50))
                for i in range(WAITING)
            ]
            await asyncio.sleep(0.1)
            held = (tracemalloc.get_traced_memory()[0] - before) / WAITING
            tracemalloc.stop()
            with pytest.raises(TelegramNetworkError, match="timeout"):
                await bot.send_message(chat_id=1000, text="late", request_timeout=1)
            assert connections == [1]  # nothing else was sent
            for task in [busy, *waiting]:
                task.cancel()
            await asyncio.gather(busy, *waiting, return_exceptions=True)
        finally:
            await session.close()
    assert held <= MAX_BYTES_PER_WAITING_CALL, f"{held:.0f} B per waiting call"


async def test_calls_beyond_the_limit_go_out_in_order_once_a_connection_is_free() -> None:
    async with FakeTelegram(token=TOKEN) as telegram:
        session = TurnTakingSession(api=TelegramAPIServer.from_base(telegram.url), limit=2)
        bot = Bot(TOKEN, session=session)
        try:
            await asyncio.gather(*(bot.send_message(chat_id=5, text=f"{i}") for i in range(20)))
        finally:
            await session.close()
    assert [m["text"] for m in telegram.sent_messages(5)] == [f"{i}" for i in range(20)]


TEXT = "Привет 👋 — «quotes» & 100% + more\nline two"


async def send_everything(bot: Bot, chat_id: int) -> None:
    """A message with a default, nested objects, a false flag and an empty string."""
    await bot.send_message(
        chat_id=chat_id,
        text=TEXT,
        entities=[MessageEntity(type="bold", offset=0, length=6)],
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Retry ↻", callback_data="retry:1")]]
        ),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        disable_notification=False,
        business_connection_id="",
    )


async def test_calls_go_as_json_carrying_what_aiograms_form_carries() -> None:
    defaults = DefaultBotProperties(protect_content=True)
    async with FakeTelegram(token=TOKEN) as telegram:
        api = TelegramAPIServer.from_base(telegram.url)
        ours = Bot(TOKEN, session=TurnTakingSession(api=api), default=defaults)
        aiograms = Bot(TOKEN, session=AiohttpSession(api=api), default=defaults)
        try:
            await send_everything(aiograms, 7)
            await send_everything(ours, 8)
        finally:
            await ours.session.close()
            await aiograms.session.close()
    form, json_call = telegram.calls_of("sendMessage")
    assert (form.body, json_call.body) == ("form", "json")
    assert json_call.params == form.params | {"chat_id": 8}
    assert json_call.params["protect_content"] is True  # the bot's default, filled in
    assert "business_connection_id" not in json_call.params
    [sent] = telegram.sent_messages(8)
    assert sent["text"] == TEXT


async def test_the_json_body_is_utf8_with_nested_objects_as_objects() -> None:
    bodies: list[tuple[str, bytes]] = []

    async def answer(request: web.Request) -> web.Response:
        bodies.append((request.content_type, await request.read()))
        chat = {"id": 5, "type": "private"}
        return web.json_response({"ok": True, "result": {"message_id": 1, "date": 0, "chat": chat}})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", answer)
    async with serving(app) as url:
        bot = Bot(TOKEN, session=TurnTakingSession(api=TelegramAPIServer.from_base(url)))
        try:
            await send_everything(bot, 5)
        finally:
            await bot.session.close()
    [(content_type, raw)] = bodies
    assert content_type == "application/json"
    assert "Привет 👋 — «quotes»".encode() in raw  # UTF-8 as is, not escaped
    fields = json.loads(raw)
    assert fields["entities"] == [{"type": "bold", "offset": 0, "length": 6}]
    assert fields["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "retry:1"
    assert fields["disable_notification"] is False
    assert "business_connection_id" not in fields


async def test_a_file_goes_as_aiograms_multipart_form() -> None:
    picture = make_png(4, 3)
    async with FakeTelegram(token=TOKEN) as telegram:
        bot = Bot(TOKEN, session=TurnTakingSession(api=TelegramAPIServer.from_base(telegram.url)))
        try:
            await bot.send_photo(
                chat_id=9, photo=BufferedInputFile(picture, filename="qr.png"), caption="pay"
            )
        finally:
            await bot.session.close()
    [call] = telegram.calls_of("sendPhoto")
    assert call.body == "multipart"
    assert telegram.photos[9] == [picture]


async def test_a_dropped_or_silent_server_fails_the_call_as_aiogram_would() -> None:
    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    bot = Bot(TOKEN, session=TurnTakingSession(api=TelegramAPIServer.from_base(url)))
    try:
        with pytest.raises(TelegramNetworkError, match="ServerDisconnectedError"):
            await bot.send_message(chat_id=1, text="hello")
    finally:
        await bot.session.close()
        server.close()
        await server.wait_closed()
    async with silent_server() as (url, connections):
        bot = Bot(TOKEN, session=TurnTakingSession(api=TelegramAPIServer.from_base(url)))
        try:
            with pytest.raises(TelegramNetworkError, match="Request timeout error"):
                await bot.send_message(chat_id=1, text="hello", request_timeout=1)
        finally:
            await bot.session.close()
    assert connections == [1]


def every_call_the_bot_makes() -> list[TelegramMethod[Any]]:
    """One of each Bot API call the bot makes, in the shapes it makes them (no files)."""
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Stop", callback_data="stop:1")]]
    )
    article = InlineQueryResultArticle(
        id="a1",
        title="Veil",
        input_message_content=InputTextMessageContent(message_text="…"),
        reply_markup=keyboard,
    )
    prices = [LabeledPrice(label="1,000 credits", amount=50)]
    return [
        methods.SendMessage(
            chat_id=1,
            text=TEXT,
            message_thread_id=7,
            reply_parameters=ReplyParameters(message_id=3),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        ),
        methods.SendMessageDraft(chat_id=1, draft_id=2, text=""),
        methods.SendRichMessage(chat_id=1, rich_message=InputRichMessage(markdown="# *hi*")),
        methods.EditMessageText(inline_message_id="im", text=TEXT, reply_markup=keyboard),
        methods.EditMessageReplyMarkup(chat_id=1, message_id=2),
        methods.AnswerInlineQuery(inline_query_id="q", results=[article], cache_time=0),
        methods.AnswerGuestQuery(guest_query_id="g", result=article),
        methods.SendInvoice(
            chat_id=1, title="t", description="d", payload="o1", currency="XTR", prices=prices
        ),
        methods.CreateInvoiceLink(
            title="t",
            description="d",
            payload="o1",
            currency="XTR",
            prices=prices,
            subscription_period=2_592_000,
        ),
        methods.SendChatAction(chat_id=1, action=ChatAction.TYPING),
        methods.SetMyCommands(
            commands=[BotCommand(command="ask", description="Ask")],
            scope=BotCommandScopeAllGroupChats(),
            language_code="ru",
        ),
        methods.SetChatMenuButton(
            menu_button=MenuButtonWebApp(text="Veil", web_app=WebAppInfo(url="https://a.b/app"))
        ),
        methods.RestrictChatMember(
            chat_id=-1, user_id=2, permissions=ChatPermissions(), until_date=dt.timedelta(days=1)
        ),
        methods.SetWebhook(url="https://a.b/hook", secret_token="s", allowed_updates=[]),
        methods.DeleteWebhook(drop_pending_updates=False),
        methods.GetUpdates(offset=0, timeout=30, allowed_updates=["message"]),
        methods.AnswerCallbackQuery(callback_query_id="c", show_alert=False),
        methods.SendMediaGroup(chat_id=1, media=[InputMediaPhoto(media="file-id", caption="c")]),
    ]


def as_the_bot_api_reads(fields: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the Bot API reads them: a string as is, anything else as its JSON.

    Then each decoded from JSON where it is JSON, so that the spacing of a nested object (aiogram
    dumps its own) does not count.
    """

    def decoded(value: str) -> object:
        try:
            return json.loads(value)
        except ValueError:
            return value

    return {
        key: decoded(value if isinstance(value, str) else json.dumps(value))
        for key, value in fields.items()
    }


@pytest.mark.parametrize(
    "defaults",
    [
        None,
        DefaultBotProperties(
            parse_mode="HTML", protect_content=True, link_preview_is_disabled=True
        ),
    ],
)
def test_every_call_the_bot_makes_carries_aiograms_parameters(
    defaults: DefaultBotProperties | None,
) -> None:
    session = TurnTakingSession(api=TelegramAPIServer.from_base("http://127.0.0.1:9"))
    bot = Bot(TOKEN, session=session, default=defaults)
    for method in every_call_the_bot_makes():
        body = session.body(bot, method)
        assert isinstance(body, JsonBody), type(method).__name__
        form = session.build_form_data(bot, method)
        formed = {options["name"]: value for options, _, value in form._fields}
        sent = json.loads(body._value)
        if "until_date" in sent:  # a timedelta: now + it, taken at each build (same second)
            assert abs(int(sent["until_date"]) - int(formed["until_date"])) <= 1
            sent["until_date"] = formed["until_date"]
        name = type(method).__name__
        assert as_the_bot_api_reads(sent) == as_the_bot_api_reads(formed), name


async def test_a_flood_wait_or_a_page_that_is_not_json_fails_as_it_fails_aiograms_session() -> None:
    async def refuse(request: web.Request) -> web.Response:
        if request.match_info["method"] == "sendMessage":
            flood = {"error_code": 429, "description": "Too Many Requests: retry after 37"}
            reply = {"ok": False, **flood, "parameters": {"retry_after": 37}}
            return web.json_response(reply, status=429)
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    api = TelegramAPIServer.from_base(f"http://127.0.0.1:{runner.addresses[0][1]}")
    failures: list[list[tuple[type[Exception], object]]] = []
    try:
        for session in (AiohttpSession(api=api), TurnTakingSession(api=api)):
            bot = Bot(TOKEN, session=session)
            seen: list[tuple[type[Exception], object]] = []
            try:
                for call in (bot.send_message(chat_id=1, text="hi"), bot.get_me()):
                    with pytest.raises(AiogramError) as caught:
                        await call
                    seen.append((type(caught.value), getattr(caught.value, "retry_after", None)))
            finally:
                await bot.session.close()
            failures.append(seen)
    finally:
        await runner.cleanup()
    aiograms, ours = failures
    assert aiograms == [(TelegramRetryAfter, 37), (ClientDecodeError, None)]
    # Ours raises the same classes (its decode error a subclass that does not quote the reply).
    kinds = zip(ours, aiograms, strict=True)
    assert [(issubclass(kind, same), after) for (kind, after), (same, _) in kinds] == [
        (True, 37),
        (True, None),
    ]
