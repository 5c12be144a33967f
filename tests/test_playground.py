"""The playground: a local Telegram in a browser, fed live by the Bot API emulator.

Without a browser: the event stream shows what a real aiogram ``Bot`` does, and the page's
actions reach the bot as well-formed updates. With one: Debian's chromium, driven by
Playwright, chats with the real bot (through a gateway and the fake vLLM) as a person would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import socket
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import zxingcpp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    EphemeralMessageParameters,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputRichMessage,
    InputTextMessageContent,
    LabeledPrice,
    MessageEntity,
    ReplyParameters,
)
from PIL import Image
from playwright.async_api import Locator, Page, async_playwright

from bot.settings import BotSettings
from common.container import PLAYGROUND_TON_ADDRESS
from playground.toncenter import PLAY_PAYER, USDT_MASTER, jetton_wallet, raw, transfer_of_link
from playground.web import (
    GROUP_CHAT_ID,
    GUEST_CHAT_ID,
    PLAY_USER_ID,
    SECOND_USER_ID,
    Playground,
    transfer_link,
)
from sealed.encoding import b64e
from services.titles import TITLE_PROMPT
from tests.botstack import polling_bot
from tests.fakes.vllm import FakeVLLM
from tests.harness import REPO, ManagedProcess, run_gateway, run_python
from tests.miniapp import CHROMIUM_ARGS
from tests.pictures import make_png

if TYPE_CHECKING:
    import subprocess
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from aiogram.types import Update

TOKEN = "123456:PLAY-TEST"
WALLET = PLAYGROUND_TON_ADDRESS
TONKEEPER = "https://app.tonkeeper.com/transfer/"
XSS = "<img src=x onerror=alert(1)>"
ANSWER = (
    "Here is **bold news** from the playground, with `inline code` and a list of words that "
    "keeps growing: one two three four five six seven eight nine ten eleven twelve thirteen."
)


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    server = Playground(token=TOKEN, inline_wait=2.0)
    await server.start()
    yield server
    await server.close()


@contextlib.asynccontextmanager
async def aiogram_bot(url: str, token: str = TOKEN) -> AsyncIterator[Bot]:
    """A real aiogram Bot (``token``) talking to ``url``; its session closed without TLS grace."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(url))
    bot = Bot(token, session=session)
    try:
        yield bot
    finally:
        client = await session.create_session()
        await client.close()
        await session.close()


class EventStream:
    """The page's view: ``GET /events`` read as a browser's EventSource would."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, kind: str, within: float = 5.0) -> dict[str, Any]:
        """The next event of type ``kind`` (earlier events of other types are skipped)."""
        async with asyncio.timeout(within):
            while True:
                line = (await self.response.content.readline()).decode()
                if not line.startswith("data: "):
                    continue
                event: dict[str, Any] = json.loads(line.removeprefix("data: "))
                if event["type"] == kind:
                    return event


@contextlib.asynccontextmanager
async def events(url: str) -> AsyncIterator[EventStream]:
    async with aiohttp.ClientSession() as client, client.get(f"{url}/events") as response:
        assert response.content_type == "text/event-stream"
        yield EventStream(response)


async def ui(url: str, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as client, client.post(f"{url}/ui/{action}", json=body) as r:
        return r.status, await r.json()


async def one_update(bot: Bot, offset: int = 0) -> Update:
    updates = await bot.get_updates(offset=offset, timeout=2)
    assert len(updates) == 1, updates
    return updates[0]


# Without a browser.


async def test_event_stream_shows_what_the_bot_sends_drafts_and_escaped_text(
    playground: Playground,
) -> None:
    async with events(playground.url) as stream, aiogram_bot(playground.url) as bot:
        snapshot = await stream.next("snapshot")
        assert snapshot["user_id"] == PLAY_USER_ID
        assert snapshot["bot"]["username"] == "veil_bot"
        assert snapshot["messages"] == []

        await bot.send_chat_action(PLAY_USER_ID, "typing")
        assert (await stream.next("action"))["action"] == "typing"

        await bot.send_message_draft(PLAY_USER_ID, draft_id=7, text="Half an ans", can_stop=True)
        draft = await stream.next("draft")
        assert (draft["draft_id"], draft["html"], draft["can_stop"]) == (7, "Half an ans", True)
        half = InputRichMessage(markdown="Half **a** rich")
        await bot.send_rich_message_draft(PLAY_USER_ID, draft_id=7, rich_message=half)
        draft = await stream.next("draft")
        assert (draft["draft_id"], draft["html"]) == (7, "Half <b>a</b> rich")
        await bot.send_rich_message(PLAY_USER_ID, InputRichMessage(markdown="# Rich\n\n`x`"))
        shown = (await stream.next("message"))["message"]
        assert shown["html"] == "<b>Rich</b>\n\n<code>x</code>"

        bold = MessageEntity(type="bold", offset=0, length=4)
        button = InlineKeyboardButton(text="Again", callback_data="again")
        sent = await bot.send_message(
            PLAY_USER_ID,
            f"Done {XSS}",
            entities=[bold],
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
        )
        shown = (await stream.next("message"))["message"]
        assert shown["html"] == "<b>Done</b> &lt;img src=x onerror=alert(1)&gt;"
        assert shown["buttons"] == [[{"text": "Again", "callback_data": "again"}]]
        assert not shown["outgoing"]

        await bot.edit_message_text("Edited", chat_id=PLAY_USER_ID, message_id=sent.message_id)
        edited = (await stream.next("edit"))["message"]
        assert (edited["message_id"], edited["html"], edited["buttons"]) == (
            sent.message_id,
            "Edited",
            [],
        )

    async with events(playground.url) as reopened:  # a reloaded page sees it all again
        again = await reopened.next("snapshot")
        assert [m["html"] for m in again["messages"]] == ["<b>Rich</b>\n\n<code>x</code>", "Edited"]


async def test_page_actions_reach_the_bot_as_updates(playground: Playground) -> None:
    async with aiogram_bot(playground.url) as bot, events(playground.url) as stream:
        await stream.next("snapshot")
        status, reply = await ui(playground.url, "send", {"text": "/start", "lang": "kk"})
        assert status == 200
        update = await one_update(bot)
        assert update.update_id == reply["update_id"]
        assert update.message is not None
        assert update.message.text == "/start"
        assert update.message.chat.type == "private"
        assert update.message.from_user is not None
        assert (update.message.from_user.id, update.message.from_user.language_code) == (
            PLAY_USER_ID,
            "kk",
        )
        assert update.message.entities is not None
        assert update.message.entities[0].type == "bot_command"
        assert (await stream.next("message"))["message"]["outgoing"]  # the user's own bubble

        sent = await bot.send_message(PLAY_USER_ID, "Pick")
        await ui(playground.url, "press", {"message_id": sent.message_id, "data": "m:1"})
        press = await one_update(bot, update.update_id + 1)
        assert press.callback_query is not None
        assert press.callback_query.data == "m:1"
        assert press.callback_query.message is not None
        assert press.callback_query.message.message_id == sent.message_id
        await bot.answer_callback_query(press.callback_query.id, text="Saved", show_alert=True)
        answer = await stream.next("callback_answer")
        assert (answer["text"], answer["show_alert"]) == ("Saved", True)

        await ui(playground.url, "stop", {"draft_id": 42})
        stop = await one_update(bot, press.update_id + 1)
        assert stop.stopped_message_generation is not None
        assert stop.stopped_message_generation.draft_id == 42
        assert stop.stopped_message_generation.chat.id == PLAY_USER_ID


@pytest.fixture
async def topic_playground() -> AsyncIterator[Playground]:
    """A playground whose bot has topics in private chats."""
    server = Playground(token=TOKEN, topics=True)
    await server.start()
    yield server
    await server.close()


async def test_topics_in_the_private_chat_reach_the_bot_and_the_page(
    topic_playground: Playground,
) -> None:
    playground = topic_playground
    async with aiogram_bot(playground.url) as bot, events(playground.url) as stream:
        assert (await stream.next("snapshot"))["topics"] == {"enabled": True, "list": []}
        me = await bot.get_me()
        assert (me.has_topics_enabled, me.allows_users_to_create_topics) == (True, True)

        topic = await bot.create_forum_topic(PLAY_USER_ID, "New conversation")
        thread = topic.message_thread_id
        listed = (await stream.next("topics"))["topics"]["list"]
        assert [(t["thread_id"], t["name"]) for t in listed] == [(thread, "New conversation")]
        created = (await stream.next("message"))["message"]
        assert (created["thread_id"], created["topic_event"]["kind"]) == (thread, "created")

        status, reply = await ui(playground.url, "send", {"text": "hi", "thread_id": thread})
        assert status == 200
        update = await one_update(bot)
        assert update.update_id == reply["update_id"]
        assert update.message is not None
        assert (update.message.message_thread_id, update.message.is_topic_message) == (
            thread,
            True,
        )
        sent = await bot.send_message(PLAY_USER_ID, "in the topic", message_thread_id=thread)
        assert (sent.message_thread_id, sent.is_topic_message) == (thread, True)
        shown = await stream.next("message")
        while shown["message"]["outgoing"]:  # the user's own "hi" comes first
            shown = await stream.next("message")
        assert shown["message"]["thread_id"] == thread
        await bot.send_message_draft(
            PLAY_USER_ID, draft_id=7, text="drafting", message_thread_id=thread
        )
        assert (await stream.next("draft"))["thread_id"] == thread

        assert await bot.edit_forum_topic(PLAY_USER_ID, thread, name="Trip to Almaty")
        renamed = (await stream.next("topics"))["topics"]["list"]
        assert [t["name"] for t in renamed] == ["Trip to Almaty"]

        await ui(playground.url, "stop", {"draft_id": 7, "thread_id": thread})
        stop = await one_update(bot, update.update_id + 1)
        assert stop.stopped_message_generation is not None
        assert stop.stopped_message_generation.message_thread_id == thread

        status, reply = await ui(playground.url, "topic", {"name": "Mine"})
        assert status == 200
        made = await one_update(bot, stop.update_id + 1)
        assert made.message is not None
        assert made.message.forum_topic_created is not None
        assert made.message.forum_topic_created.name == "Mine"
        assert made.message.message_thread_id == reply["thread_id"]


async def test_topics_refuse_what_telegram_refuses(topic_playground: Playground) -> None:
    playground = topic_playground
    async with aiogram_bot(playground.url) as bot:
        thread = (await bot.create_forum_topic(PLAY_USER_ID, "Plans")).message_thread_id
        with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
            await bot.edit_forum_topic(PLAY_USER_ID, thread, name="Plans")
        with pytest.raises(TelegramBadRequest, match="TOPIC_ID_INVALID"):
            await bot.edit_forum_topic(PLAY_USER_ID, thread + 100, name="Other")
        with pytest.raises(TelegramBadRequest, match="message thread not found"):
            await bot.send_message(PLAY_USER_ID, "nowhere", message_thread_id=thread + 100)
        with pytest.raises(TelegramBadRequest, match="message thread not found"):
            await bot.send_message_draft(
                PLAY_USER_ID, draft_id=3, text="x", message_thread_id=thread + 100
            )
        refused = await ui(playground.url, "send", {"text": "x", "thread_id": 999})
        assert refused == (400, {"error": "thread_id: no such topic in the private chat"})
        playground.telegram.state.topics.users_create = False  # only the bot makes topics
        assert await ui(playground.url, "topic", {"name": "Mine"}) == (
            400,
            {"error": "this bot has no topics users may create in private chats"},
        )
        playground.telegram.state.topics.users_create = True
        playground.telegram.state.topics.enabled = False
        assert (await bot.get_me()).has_topics_enabled is False
        with pytest.raises(TelegramBadRequest, match="the chat is not a forum"):
            await bot.create_forum_topic(PLAY_USER_ID, "No")
        assert (await ui(playground.url, "topic", {"name": "No"}))[0] == 400
        assert await bot.get_updates(timeout=0) == []


async def test_bad_actions_are_refused_and_queue_nothing(playground: Playground) -> None:
    assert await ui(playground.url, "send", {"text": "   "}) == (
        400,
        {"error": "text: 1-4096 characters expected"},
    )
    assert (await ui(playground.url, "press", {"data": "x"}))[0] == 400
    assert (await ui(playground.url, "pay", {"message_id": 99}))[1] == {"error": "no such invoice"}
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{playground.url}/ui/send", data=b"not json") as reply:
            assert reply.status == 400
        async with client.get(f"{playground.url}/") as page:
            assert page.status == 200
            assert "<title>Veil playground</title>" in await page.text()
    async with aiogram_bot(playground.url) as bot:
        assert await bot.get_updates(timeout=0) == []


async def test_invoice_paid_with_play_money_only_when_the_bot_says_ok(
    playground: Playground,
) -> None:
    price = [LabeledPrice(label="50 stars", amount=50)]
    async with aiogram_bot(playground.url) as bot, events(playground.url) as stream:
        await stream.next("snapshot")
        invoice = await bot.send_invoice(
            PLAY_USER_ID, "Credit", "50 stars of credit", "order-1", "XTR", price
        )
        card = (await stream.next("message"))["message"]
        assert card["invoice"] == {
            "title": "Credit",
            "description": "50 stars of credit",
            "currency": "XTR",
            "total_amount": 50,
        }

        async def answer_pre_checkout(ok: bool) -> int:  # noqa: FBT001 - mirrors the Bot API's ok
            update = await one_update(bot)
            assert update.pre_checkout_query is not None
            assert update.pre_checkout_query.invoice_payload == "order-1"
            assert update.pre_checkout_query.total_amount == 50
            await bot.answer_pre_checkout_query(
                update.pre_checkout_query.id, ok=ok, error_message=None if ok else "Sold out"
            )
            return update.update_id

        declined = asyncio.create_task(
            ui(playground.url, "pay", {"message_id": invoice.message_id})
        )
        last = await answer_pre_checkout(ok=False)
        assert await declined == (200, {"ok": True, "paid": False, "error": "Sold out"})
        assert await bot.get_updates(offset=last + 1, timeout=0) == []

        paid = asyncio.create_task(ui(playground.url, "pay", {"message_id": invoice.message_id}))
        await bot.get_updates(offset=last + 1, timeout=0)
        last = await answer_pre_checkout(ok=True)
        status, reply = await paid
        assert (status, reply["paid"]) == (200, True)
        payment = await one_update(bot, last + 1)
        assert payment.message is not None
        assert payment.message.successful_payment is not None
        assert payment.message.successful_payment.telegram_payment_charge_id == reply["charge_id"]
        assert reply["charge_id"].startswith("play-")
        assert (await stream.next("message"))["message"]["payment"] == {"total_amount": 50}

        link = await bot.create_invoice_link(
            "Plan", "Monthly", "plan-1", "XTR", price, subscription_period=2592000
        )
        shown = await stream.next("invoice_link")
        assert shown["url"] == link
        assert shown["invoice"]["subscription"] is True


async def toncenter_get(url: str, path: str, **params: str) -> dict[str, Any]:
    """GET the playground's emulated toncenter as the bot's watcher does."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/toncenter/api/v3/{path}", params=params) as reply,
    ):
        assert reply.status == 200
        body: dict[str, Any] = await reply.json()
        return body


def test_transfer_links_are_read_exactly_and_anything_else_refused() -> None:
    gram = transfer_of_link(f"ton://transfer/{WALLET}?amount=1500000000&text=AB12CD34")
    assert gram is not None
    assert (gram.address, gram.amount, gram.comment, gram.jetton) == (
        WALLET,
        1_500_000_000,
        "AB12CD34",
        None,
    )
    usdt = transfer_of_link(f"{TONKEEPER}{WALLET}?jetton={USDT_MASTER}&amount=1000000&text=X")
    assert usdt is not None
    assert (usdt.amount, usdt.comment, usdt.jetton) == (1_000_000, "X", USDT_MASTER)
    for link in (
        f"https://example.com/transfer/{WALLET}?amount=1",  # not a wallet link
        f"ton://transfer/{WALLET}",  # no amount
        f"ton://transfer/{WALLET}?amount=0&text=A",
        f"ton://transfer/{WALLET}?amount=ten&text=A",
        f"ton://transfer/{WALLET[:-1]}A?amount=1&text=A",  # a broken checksum
    ):
        assert transfer_of_link(link) is None, link


def test_a_transfer_link_is_found_in_a_button_a_link_or_a_url_in_the_text() -> None:
    link = f"ton://transfer/{WALLET}?amount=5&text=C"
    text = f"💎 pay: {link} now"  # the gem is two UTF-16 units: offsets count units
    url = {"type": "url", "offset": text.index("ton:") + 1, "length": len(link)}
    assert transfer_link({"text": text, "entities": [url]}) == link
    named = {"type": "text_link", "offset": 0, "length": 1, "url": link}
    assert transfer_link({"caption": "pay", "caption_entities": [named]}) == link
    button = {"text": "Pay", "url": TONKEEPER + link.removeprefix("ton://transfer/")}
    with_button = {"text": "pay", "reply_markup": {"inline_keyboard": [[button]]}}
    assert transfer_link(with_button) == button["url"]
    elsewhere = {"type": "text_link", "offset": 0, "length": 1, "url": "https://example.com/"}
    assert transfer_link({"text": text, "entities": [elsewhere]}) is None
    assert transfer_link({"text": text}) is None  # a link Telegram did not mark is not one


async def test_simulate_payment_puts_the_invoice_transfer_on_the_emulated_toncenter(
    playground: Playground,
) -> None:
    link = f"{TONKEEPER}{WALLET}?amount=1000000000&text=PLAY1234"
    button = InlineKeyboardButton(text="Open in Tonkeeper", url=link)
    async with aiogram_bot(playground.url) as bot, events(playground.url) as stream:
        await stream.next("snapshot")
        plain = await bot.send_message(PLAY_USER_ID, "no invoice here")
        assert "ton_invoice" not in (await stream.next("message"))["message"]
        invoice = await bot.send_message(
            PLAY_USER_ID,
            "Pay 1 GRAM",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
        )
        shown = (await stream.next("message"))["message"]
        assert shown["ton_invoice"] == {"asset": "gram", "amount": 10**9, "comment": "PLAY1234"}

        before = await toncenter_get(playground.url, "transactions", account=WALLET)
        assert before["transactions"] == []
        for bad in ({"message_id": plain.message_id}, {"message_id": 999}, {}):
            status, reply = await ui(playground.url, "ton_pay", bad)
            assert status == 400, bad
            assert "error" in reply
        assert playground.toncenter.transactions == []  # refused: nothing on the chain

        status, reply = await ui(playground.url, "ton_pay", {"message_id": invoice.message_id})
        assert (status, reply["paid"]) == (200, True)
        # Once per invoice: a second press (a reloaded page) pays nothing more.
        again = await ui(playground.url, "ton_pay", {"message_id": invoice.message_id})
        assert again == (400, {"error": "this invoice was paid already"})
        (paid,) = [
            m for m in playground.snapshot()["messages"] if m["message_id"] == invoice.message_id
        ]
        assert paid["ton_invoice"]["paid"] is True
        # The watcher's query, with the address in another form: the exact amount and comment.
        found = await toncenter_get(
            playground.url, "transactions", account=raw(WALLET), start_lt="0", sort="asc"
        )
        (tx,) = found["transactions"]
        assert tx["hash"] == reply["hash"]
        assert tx["in_msg"]["value"] == "1000000000"
        assert tx["in_msg"]["source"] == PLAY_PAYER
        assert tx["in_msg"]["message_content"]["decoded"] == {
            "type": "text_comment",
            "comment": "PLAY1234",
        }
        assert tx["description"]["aborted"] is False
        requests = playground.toncenter.calls("/toncenter/api/v3/transactions")
        assert requests[-1].params["account"] == raw(WALLET)

        # A USDT invoice: a jetton transfer of the master its link names.
        usdt = f"{TONKEEPER}{WALLET}?jetton={USDT_MASTER}&amount=1000000&text=USDT5678"
        jetton_invoice = await bot.send_message(
            PLAY_USER_ID,
            "Pay 1 USDT",
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="Open", url=usdt)]]
            ),
        )
        status, _ = await ui(playground.url, "ton_pay", {"message_id": jetton_invoice.message_id})
        assert status == 200
        transfers = await toncenter_get(
            playground.url, "jetton/transfers", owner_address=WALLET, direction="in"
        )
        (transfer,) = transfers["jetton_transfers"]
        assert (transfer["amount"], transfer["jetton_master"]) == ("1000000", raw(USDT_MASTER))
        assert transfer["forward_payload"] is not None
        # As on the chain: the wallet's jetton wallet tells it, with the forward amount.
        listed = await toncenter_get(
            playground.url, "transactions", account=raw(WALLET), start_lt="0", sort="asc"
        )
        (_, notice) = listed["transactions"]
        assert notice["in_msg"]["source"] == jetton_wallet(USDT_MASTER, raw(WALLET))
        assert notice["in_msg"]["opcode"] == "0x7362d09c"
        assert notice["in_msg"]["value"] == "1"
        assert notice["trace_id"] == transfer["trace_id"]


async def test_group_inline_query_results_and_a_live_inline_message(
    playground: Playground,
) -> None:
    async with aiogram_bot(playground.url) as bot, events(playground.url) as stream:
        await stream.next("snapshot")
        await bot.get_updates(timeout=0, allowed_updates=["inline_query", "chosen_inline_result"])
        asked = asyncio.create_task(ui(playground.url, "inline", {"query": "why veil"}))
        update = await one_update(bot)
        assert update.inline_query is not None
        assert (update.inline_query.query, update.inline_query.chat_type) == (
            "why veil",
            "supergroup",
        )
        article = InlineQueryResultArticle(
            id="a1",
            title="Veil says",
            input_message_content=InputTextMessageContent(message_text="Thinking…"),
        )
        await bot.answer_inline_query(update.inline_query.id, [article])
        status, reply = await asked
        assert status == 200
        assert reply["results"] == [
            {"id": "a1", "title": "Veil says", "description": "", "html": "Thinking…"}
        ]

        status, chosen = await ui(
            playground.url, "choose", {"query": "why veil", "result_id": "a1", "chat": "group"}
        )
        inline_id = chosen["inline_message_id"]
        shown = (await stream.next("message"))["message"]
        assert (shown["inline_message_id"], shown["html"], shown["via_bot"]) == (
            inline_id,
            "Thinking…",
            "veil_bot",
        )
        assert (shown["chat_id"], shown["from_id"]) == (GROUP_CHAT_ID, PLAY_USER_ID)
        picked = await one_update(bot, update.update_id + 1)
        assert picked.chosen_inline_result is not None
        assert picked.chosen_inline_result.inline_message_id == inline_id

        await bot.edit_message_text("Because **privacy**", inline_message_id=inline_id)
        edited = (await stream.next("edit"))["message"]
        assert (edited["key"], edited["html"], edited["edited"]) == (
            shown["key"],
            "Because **privacy**",
            True,
        )
    assert await ui(playground.url, "choose", {"query": "q", "result_id": "a1"}) == (
        400,
        {"error": 'chat: "group" or "guest" expected'},
    )


def stop_keyboard(data: str = "stop") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="■ Stop", callback_data=data)]]
    )


async def test_group_messages_replies_and_ephemeral_notices_reach_the_page(
    playground: Playground,
) -> None:
    async with aiogram_bot(playground.url) as bot, events(playground.url) as stream:
        snapshot = await stream.next("snapshot")
        assert snapshot["chats"]["group"] == {"id": GROUP_CHAT_ID, "title": "Playground group"}
        assert snapshot["chats"]["guest"] == {"id": GUEST_CHAT_ID, "title": "Friends"}
        assert [u["name"] for u in snapshot["users"]] == ["Ann", "Bob"]
        assert playground.telegram.state.group_limit.per_minute == 20
        assert (await bot.get_chat_member(GROUP_CHAT_ID, PLAY_USER_ID)).status == "creator"
        assert (await bot.get_chat_member(GROUP_CHAT_ID, SECOND_USER_ID)).status == "member"

        # Privacy mode: chatter stays on the page; a mention reaches the bot.
        status, chatter = await ui(
            playground.url, "send", {"text": "lunch?", "chat": "group", "as": SECOND_USER_ID}
        )
        assert (status, chatter["update_id"]) == (200, 0)
        shown = (await stream.next("message"))["message"]
        assert (shown["chat_id"], shown["from_name"], shown["html"]) == (
            GROUP_CHAT_ID,
            "Bob",
            "lunch?",
        )
        _, asked = await ui(
            playground.url, "send", {"text": "@veil_bot what is a seal?", "chat": "group"}
        )
        update = await one_update(bot)
        assert update.update_id == asked["update_id"]
        await stream.next("message")  # the question itself
        assert update.message is not None
        assert update.message.chat.id == GROUP_CHAT_ID
        assert update.message.entities is not None
        assert update.message.entities[0].type == "mention"

        reply = await bot.send_message(
            GROUP_CHAT_ID,
            "Thinking…",
            reply_parameters=ReplyParameters(message_id=update.message.message_id),
            reply_markup=stop_keyboard(),
        )
        shown = (await stream.next("message"))["message"]
        assert shown["reply_to"] == {
            "message_id": update.message.message_id,
            "from_name": "Ann",
            "text": "@veil_bot what is a seal?",
        }
        await bot.edit_message_text(
            "A seal is…", chat_id=GROUP_CHAT_ID, message_id=reply.message_id
        )
        assert (await stream.next("edit"))["message"]["html"] == "A seal is…"

        await ui(
            playground.url,
            "press",
            {"message_id": reply.message_id, "chat": "group", "data": "stop", "as": SECOND_USER_ID},
        )
        press = await one_update(bot, update.update_id + 1)
        assert press.callback_query is not None
        assert (press.callback_query.from_user.id, press.callback_query.data) == (
            SECOND_USER_ID,
            "stop",
        )
        assert press.callback_query.message is not None
        assert press.callback_query.message.chat.id == GROUP_CHAT_ID
        await bot.answer_callback_query(press.callback_query.id, text="Not yours")
        answer = await stream.next("callback_answer")
        assert (answer["text"], answer["user_id"]) == ("Not yours", SECOND_USER_ID)

        _, follow = await ui(
            playground.url,
            "send",
            {"text": "and then?", "chat": "group", "reply_to": reply.message_id},
        )
        followed = await one_update(bot, press.update_id + 1)
        assert followed.update_id == follow["update_id"] != 0  # a reply to the bot gets through
        assert followed.message is not None
        assert followed.message.reply_to_message is not None
        assert followed.message.reply_to_message.text == "A seal is…"

        await bot.delete_message(GROUP_CHAT_ID, reply.message_id)
        assert (await stream.next("delete"))["key"] == f"m{reply.message_id}"

    async with events(playground.url) as reopened:
        again = await reopened.next("snapshot")
        group = [m["html"] for m in again["messages"] if m["chat_id"] == GROUP_CHAT_ID]
        assert group == [
            "lunch?",
            '<span class="mention">@veil_bot</span> what is a seal?',
            "and then?",
        ]

    refusals: list[tuple[dict[str, Any], str]] = [
        ({"text": "x", "chat": "nowhere"}, 'chat: "private", "group" or "guest" expected'),
        ({"text": "x", "chat": "group", "as": 42}, "as: a play user's id expected"),
        ({"text": "x", "chat": "group", "reply_to": 999}, "reply_to: no such message in that chat"),
    ]
    for body, error in refusals:
        assert await ui(playground.url, "send", body) == (400, {"error": error})


async def test_an_ephemeral_notice_reaches_the_page_with_its_receiver(
    playground: Playground,
) -> None:
    async with aiogram_bot(playground.url) as bot, events(playground.url) as stream:
        await stream.next("snapshot")
        notice = await bot.send_message(
            GROUP_CHAT_ID,
            "Top up to ask",
            ephemeral_message_parameters=EphemeralMessageParameters(receiver_user_id=PLAY_USER_ID),
        )
        shown = (await stream.next("message"))["message"]
        assert (shown["key"], shown["ephemeral"]) == ("e1", {"receiver_id": PLAY_USER_ID})
        await bot.delete_ephemeral_message(
            chat_id=GROUP_CHAT_ID,
            receiver_user_id=PLAY_USER_ID,
            ephemeral_message_id=notice.ephemeral_message_id or 0,
        )
        assert await stream.next("delete") == {
            "type": "delete",
            "chat_id": GROUP_CHAT_ID,
            "key": "e1",
        }
        await bot.send_message(
            GROUP_CHAT_ID,
            "Busy",
            ephemeral_message_parameters=EphemeralMessageParameters(
                receiver_user_id=SECOND_USER_ID
            ),
        )
        shown = (await stream.next("message"))["message"]
        assert (shown["key"], shown["ephemeral"]) == ("e2", {"receiver_id": SECOND_USER_ID})
    async with events(playground.url) as reopened:
        again = await reopened.next("snapshot")
        assert [(m["key"], m["html"]) for m in again["messages"]] == [("e2", "Busy")]


async def test_a_guest_summons_and_a_photo_reach_the_page(playground: Playground) -> None:
    async with aiogram_bot(playground.url) as bot, events(playground.url) as stream:
        await stream.next("snapshot")
        _, chatter = await ui(playground.url, "send", {"text": "where to eat?", "chat": "guest"})
        assert chatter["update_id"] == 0  # the bot is not a member: it sees nothing
        where = (await stream.next("message"))["message"]
        _, summoned = await ui(
            playground.url,
            "send",
            {"text": "@veil_bot pick one", "chat": "guest", "reply_to": where["message_id"]},
        )
        update = await one_update(bot)
        assert update.update_id == summoned["update_id"]
        guest = update.guest_message
        assert guest is not None
        assert guest.guest_query_id is not None
        assert guest.reply_to_message is not None
        assert guest.reply_to_message.text == "where to eat?"
        await stream.next("message")  # the summons itself

        article = InlineQueryResultArticle(
            id="g1",
            title="Veil",
            input_message_content=InputTextMessageContent(message_text="Thinking…"),
            reply_markup=stop_keyboard(),
        )
        sent = await bot.answer_guest_query(guest.guest_query_id, article)
        shown = (await stream.next("message"))["message"]
        assert (shown["chat_id"], shown["is_bot"], shown["inline_message_id"]) == (
            GUEST_CHAT_ID,
            True,
            sent.inline_message_id,
        )
        assert shown["reply_to"]["text"] == "@veil_bot pick one"
        await bot.edit_message_text("The noodle bar.", inline_message_id=sent.inline_message_id)
        edited = (await stream.next("edit"))["message"]
        assert (edited["key"], edited["html"]) == (shown["key"], "The noodle bar.")
        await ui(
            playground.url,
            "press",
            {"inline_message_id": sent.inline_message_id, "data": "stop"},
        )
        press = await one_update(bot, update.update_id + 1)
        assert press.callback_query is not None
        assert press.callback_query.inline_message_id == sent.inline_message_id

        picture = make_png(40, 30)
        photo = await bot.send_photo(
            PLAY_USER_ID, BufferedInputFile(picture, "qr.png"), caption="Scan to pay"
        )
        shown = (await stream.next("message"))["message"]
        assert photo.photo is not None
        assert shown["photo"] == {
            "url": f"/ui/photo/{photo.photo[-1].file_id}",
            "width": 40,
            "height": 30,
        }
        assert shown["html"] == "Scan to pay"
        async with aiohttp.ClientSession() as client:
            async with client.get(playground.url + shown["photo"]["url"]) as reply:
                assert (reply.status, reply.content_type) == (200, "image/png")
                assert await reply.read() == picture
            async with client.get(f"{playground.url}/ui/photo/nope") as reply:
                assert reply.status == 404


async def test_inline_query_to_a_bot_without_inline_mode_has_no_results(
    playground: Playground,
) -> None:
    async with aiogram_bot(playground.url) as bot:
        await bot.get_updates(timeout=0, allowed_updates=["message"])
        status, reply = await ui(playground.url, "inline", {"query": "anyone?"})
    assert (status, reply["results"]) == (200, [])


async def test_python_m_playground_prints_its_url_and_stops_on_sigterm() -> None:
    process = await ManagedProcess.start(
        "-m", "playground", "--port", "0", "--token", TOKEN, env={}
    )
    try:
        line = await process.wait_for_line("playground: open ")
        url = line.split()[2]
        assert line == (
            f"playground: open {url} (Bot API for the bot: {url}; toncenter: {url}/toncenter)"
        )
        async with aiogram_bot(url) as bot:
            me = await bot.get_me()
        assert me.username == "veil_bot"
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/toncenter/api/v3/transactions", params={"account": WALLET}) as reply,
        ):
            assert reply.status == 200
            assert (await reply.json())["transactions"] == []
    finally:
        code = await process.stop()
    assert code == 0


def test_python_m_playground_says_in_one_line_what_it_cannot_start_with() -> None:
    def playground(*args: str) -> subprocess.CompletedProcess[str]:
        return run_python("-m", "playground", *args)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = playground("--port", str(port))
    no_host = playground("--host", "no-such-host.invalid", "--port", "0")
    negative = playground("--group-limit", "-1")
    too_high = playground("--port", "99999")  # was bind()'s OverflowError, as a traceback
    assert (in_use.returncode, in_use.stderr) == (
        2,
        f"playground: cannot listen on --host 127.0.0.1 --port {port}: address already in use\n",
    )
    assert no_host.returncode == 2
    assert no_host.stderr.startswith(
        "playground: cannot listen on --host no-such-host.invalid --port 0: "
    )
    assert no_host.stderr.count("\n") == 1
    assert negative.returncode == 2
    assert negative.stderr.splitlines()[-1] == (
        "python -m playground: error: argument --group-limit: a whole number of sends a minute"
        " expected, 0 for no limit: '-1'"
    )
    assert too_high.returncode == 2
    assert too_high.stderr.splitlines()[-1] == (
        "python -m playground: error: argument --port: a port from 0 to 65535 expected,"
        " 0 for any: '99999'"
    )
    assert "Traceback" not in in_use.stderr + no_host.stderr + negative.stderr + too_high.stderr


# In a real browser, with the real bot.


@contextlib.asynccontextmanager
async def veil_against(
    playground: Playground,
    data_dir: Path,
    answer: str | Callable[[dict[str, Any]], str] = ANSWER,
    reasoning: str | None = None,
    **settings: Any,  # noqa: ANN401 -- BotSettings overrides
) -> AsyncIterator[None]:
    """The real bot, gateway and fake vLLM (thinking ``reasoning`` first), polling the page."""
    server = FakeVLLM(answer=answer, models=("veil-small", "veil-large"), token_delay=0.04)
    server.reasoning = reasoning
    async with server as vllm, run_gateway(vllm.url) as gateway:
        options: dict[str, Any] = {"draft_interval": 0.25, "free_tokens_per_day": 1_000_000}
        config = BotSettings(
            bot_token=TOKEN,
            telegram_api=playground.url,
            gateways=gateway.url,
            operator_keys=b64e(gateway.verify_key),
            data_dir=data_dir,
            **(options | settings),
        )
        async with polling_bot(config):
            yield


async def send(page: Page, text: str) -> None:
    await page.fill("#input", text)
    await page.press("#input", "Enter")


WATCH_DRAFTS = """() => {
  window.draftTexts = [];
  new MutationObserver(() => {
    const draft = document.querySelector("#messages-private .draft .bubble");
    window.stopSeen ||= !document.querySelector("#stop").classList.contains("hidden");
    if (draft && draft.textContent !== window.draftTexts.at(-1)) {
      window.draftTexts.push(draft.textContent);
    }
  }).observe(document.querySelector("#messages-private"), {
    childList: true, subtree: true, characterData: true,
  });
}"""


async def ask_inline_in_the_group(page: Page) -> None:
    """Inline in the group, then a mention: each answer fills its message, edit by edit."""
    await page.click("#tab-group")
    await page.fill("#input", "@veil_bot what is privacy?")
    article = page.locator("#inline-results .item", has_text="what is privacy?")
    await article.wait_for(timeout=10000)
    await article.click()
    group = page.locator("#messages-group")
    await group.locator(".msg", has_text="what is privacy?").first.wait_for(timeout=10000)
    await group.locator(".msg", has_text="thirteen.").first.wait_for(timeout=20000)
    await send(page, "@veil_bot and why seal it?")
    await group.locator(".msg.out", has_text="and why seal it?").wait_for(timeout=10000)
    await group.locator(".msg.in", has_text="thirteen.").first.wait_for(timeout=20000)


async def test_a_person_chats_pays_and_asks_inline_in_the_browser(
    playground: Playground, tmp_path: Path
) -> None:
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    async with veil_against(playground, tmp_path), async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 820})
            await page.goto(playground.url)
            await page.wait_for_selector("#conn.live")

            # The command menu is the bot's own setMyCommands list.
            await page.click("#menu")
            assert "/model" in await page.inner_text("#commands")
            await page.click("#menu")

            # A question: a growing draft, then the final formatted answer.
            await page.evaluate(WATCH_DRAFTS)
            await send(page, "What is new?")
            await page.wait_for_selector(".msg.out >> text=What is new?")
            final = page.locator(".msg.in b", has_text="bold news")
            await final.wait_for(timeout=15000)
            await page.wait_for_selector(".draft", state="detached")
            drafts: list[str] = await page.evaluate("window.draftTexts")
            grown = [text for text in drafts if text.strip() and text != "Thinking…"]
            assert len(grown) >= 2, drafts
            assert len(grown[-1]) > len(grown[0])
            assert await page.evaluate("window.stopSeen")  # a stop button while it was live
            assert await page.locator("#stop").is_hidden()
            assert await page.locator(".msg.in code", has_text="inline code").count() == 1
            assert playground.telegram.calls_of("sendRichMessage")  # a rich answer (the default)

            # Escaped, never markup: the user's own text with HTML in it.
            await send(page, XSS)
            await page.wait_for_selector(f".msg.out >> text={XSS}")
            assert await page.locator("#messages-private img").count() == 0
            await page.locator(".msg.in b", has_text="bold news").nth(1).wait_for(timeout=15000)

            # An inline button: /model, then a model, and the message is edited.
            await send(page, "/model")
            await page.click(".keyboard button:has-text('veil-large')")
            await page.wait_for_selector(".msg.in >> text=From now on I answer with veil-large.")

            # Stars: /buy, a pack, the invoice card, paid with play money.
            await send(page, "/buy")
            await page.locator(".msg.in", has_text="Choose a pack").wait_for()
            await page.locator(".msg.in", has_text="Choose a pack").locator("button").first.click()
            pay = page.locator(".invoice button.pay")
            await pay.wait_for()
            assert (await pay.inner_text()).startswith("Pay ")
            await pay.click()
            await page.wait_for_selector(".msg.in >> text=Thank you!", timeout=15000)
            await page.wait_for_selector(".service >> text=(play money)")
            await page.screenshot(path=str(artifacts / "playground.png"))

            await ask_inline_in_the_group(page)
            await page.screenshot(path=str(artifacts / "playground-group.png"))
        finally:
            await browser.close()


RICH_ANSWER = (
    "## Tangerine facts\n\n| Fruit | Colour |\n|---|---|\n| tangerine | orange |\n\n"
    "The area is $A = \\pi r^2$, in **bold** words; see /help.\n\n$$\n\\frac{1}{3}\n$$\n\n"
    "- fruits\n  - citrus\n    - tangerine\n\n"
    "```python\ndef area(r: float) -> float:\n    return 3.14159 * r * r\n```"
)
THOUGHT = "The user wants tangerine facts; a table, then the circle formula."
WATCH_THINKING = """() => {
  window.thinkingSeen = false;
  new MutationObserver(() => {
    window.thinkingSeen ||= Boolean(document.querySelector(".draft .rich-thinking"));
  }).observe(document.body, { childList: true, subtree: true });
}"""


async def test_a_rich_answer_reads_well_in_the_browser(
    playground: Playground, tmp_path: Path
) -> None:
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    async with (
        veil_against(playground, tmp_path, RICH_ANSWER, reasoning=THOUGHT),
        async_playwright() as driver,
    ):
        browser = await driver.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(playground.url)
            await page.wait_for_selector("#conn.live")
            await page.evaluate(WATCH_THINKING)
            await send(page, "Tell me about tangerines")
            message = page.locator(".msg.in", has=page.locator("h2", has_text="Tangerine facts"))
            await message.wait_for(timeout=15000)
            await page.wait_for_selector(".draft", state="detached")
            assert await page.evaluate("window.thinkingSeen")  # a thinking block in the draft
            # The thinking stays, folded, above the answer; a click opens it.
            folded = page.locator(".msg.in blockquote.expandable", has_text="a table, then")
            assert await folded.evaluate("(q) => q.classList.contains('folded')")
            # A table as a table, code with its language, math readable, nested lists.
            header = message.locator("table th")
            assert await header.all_inner_texts() == ["Fruit", "Colour"]
            assert await message.locator("table td").all_inner_texts() == ["tangerine", "orange"]
            code = message.locator("pre[data-language='python'] code")
            assert "def area(r: float)" in await code.inner_text()
            assert await message.locator(".math-block").inner_text() == "1/3"
            assert await message.locator(".math", has_text="A = πr²").count() == 1
            assert await message.locator("ul ul ul li", has_text="tangerine").count() == 1
            assert await message.locator("b", has_text="bold").count() == 1
            (call,) = playground.telegram.calls_of("sendRichMessage")
            assert call.params["rich_message"] == {"markdown": RICH_ANSWER}
            await page.screenshot(path=str(artifacts / "playground-rich.png"))
            await folded.click()
            assert not await folded.evaluate("(q) => q.classList.contains('folded')")

            # A /command in the answer is a link that sends it.
            await message.locator("a.command", has_text="/help").click()
            await page.wait_for_selector(".msg.out >> text=/help")
            await page.locator(".msg.in", has_text="/model").first.wait_for(timeout=10000)

            # In the group: one rich message, the thinking a collapsed details block.
            await page.click("#tab-group")
            await send(page, "@veil_bot tell me about tangerines")
            group = page.locator("#messages-group")
            answer = group.locator(".msg.in", has=page.locator("table"))
            await answer.wait_for(timeout=20000)
            await answer.locator("pre[data-language='python']").wait_for(timeout=20000)
            details = answer.locator("details.rich-details")
            assert await details.evaluate("(d) => !d.open")
            assert (await details.locator("summary").inner_text()).startswith("💭 The user")
            await page.screenshot(path=str(artifacts / "playground-rich-group.png"))
            await details.locator("summary").click()
            assert await details.evaluate("(d) => d.open")
        finally:
            await browser.close()


def topics_model(body: dict[str, Any]) -> str:
    """The fake model: a title for a title request, else the question echoed."""
    question = str(body["messages"][-1]["content"])
    if question.startswith(TITLE_PROMPT):
        return "Trip to Almaty"
    return f"About {question}: eleven twelve thirteen fourteen fifteen sixteen."


async def test_topics_are_conversations_in_the_browser(
    topic_playground: Playground, tmp_path: Path
) -> None:
    playground = topic_playground
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    async with (
        veil_against(playground, tmp_path, topics_model, conversation_titles=True),
        async_playwright() as driver,
    ):
        browser = await driver.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 820})
            await page.goto(playground.url)
            await page.wait_for_selector("#conn.live")
            bar = page.locator("#topics-bar")
            await bar.locator(".topic-chip.active", has_text="General").wait_for()
            private = page.locator("#messages-private")

            # /new opens a topic: it joins the bar; the chat itself says so.
            await send(page, "/new")
            await private.locator(".msg.in", has_text="Opened a new topic").wait_for(timeout=10000)
            chip = bar.locator(".topic-chip", has_text="New conversation")
            await chip.wait_for(timeout=10000)
            await chip.click()
            await private.locator(".msg.in", has_text="ask me anything in this topic").wait_for()
            assert not await private.locator(".msg", has_text="Opened a new topic").is_visible()

            # A question in the topic: answered there; the first answer names the topic.
            await send(page, "Plan a trip to Almaty")
            await private.locator(".msg.out", has_text="Plan a trip to Almaty").wait_for()
            answer = private.locator(".msg.in", has_text="About Plan a trip to Almaty")
            await answer.wait_for(timeout=15000)
            renamed = bar.locator(".topic-chip.active", has_text="Trip to Almaty")
            await renamed.wait_for(timeout=10000)
            await private.locator(".topic-service", has_text="Trip to Almaty").wait_for()
            await page.wait_for_selector(".draft", state="detached")
            calls = playground.telegram.calls_of("sendMessage")
            thread = int(await renamed.get_attribute("data-thread") or 0)
            assert any(c.params.get("message_thread_id") == thread for c in calls)
            await page.screenshot(path=str(artifacts / "playground-topics.png"))

            # The chat itself does not show the topic's messages, and back again.
            await bar.locator(".topic-chip", has_text="General").click()
            await private.locator(".msg", has_text="Opened a new topic").wait_for()
            assert not await answer.is_visible()
            await bar.locator(".topic-chip", has_text="Trip to Almaty").click()
            await answer.wait_for()
            assert thread == playground.telegram.state.topics.of(PLAY_USER_ID)[0].thread_id
        finally:
            await browser.close()


PHOTO_SHOWN = "(img) => img.complete && img.naturalWidth > 0 && img.clientWidth > 0"


async def shown_qr_code(page: Page, message: Locator, base: str) -> str:
    """What the QR code photo of ``message`` says, once the page shows it loaded."""
    photo = message.locator("img")
    await photo.wait_for(timeout=10000)
    await page.wait_for_function(
        f"() => ({PHOTO_SHOWN})(document.querySelector('#messages-private .msg.in img'))",
        timeout=10000,
    )
    assert await photo.evaluate(PHOTO_SHOWN)
    source = await photo.get_attribute("src")
    assert source is not None
    async with aiohttp.ClientSession() as http, http.get(base + source) as reply:
        png = await reply.read()
    # QR codes only, each text once: all formats at once, the decoder once read a second,
    # spurious code out of the QR code's own modules (CI, 2026-11-30).
    found = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    (text,) = {str(code.text) for code in found}
    return text


async def test_a_person_pays_a_gram_invoice_with_simulate_payment_in_the_browser(
    playground: Playground, tmp_path: Path
) -> None:
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    ton: dict[str, Any] = {
        "ton_address": WALLET,
        "ton_testnet": True,
        "toncenter_url": playground.url + "/toncenter",
        "ton_poll_interval": 0.2,
        "free_tokens_per_day": 0,
    }
    async with veil_against(playground, tmp_path, **ton), async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(playground.url)
            await page.wait_for_selector("#conn.live")
            await send(page, "/buy")
            menu = page.locator(".msg.in", has_text="Choose a pack")
            await menu.wait_for(timeout=10000)
            await menu.locator("button", has_text="1 GRAM → 250 ★ credit").click()

            # The invoice: its text with the comment, the Tonkeeper button, the QR photo.
            invoice = page.locator(".msg.in", has_text="Pay 1 GRAM for 250 ★ of credit.")
            await invoice.wait_for(timeout=10000)
            match = re.search(r"Comment: ([A-Z0-9]{8})", await invoice.inner_text())
            assert match is not None
            comment = match.group(1)
            link = f"ton://transfer/{WALLET}?amount=1000000000&text={comment}"
            pictured = page.locator("#messages-private .msg.in", has=page.locator("img")).last
            assert f"comment {comment}" in await pictured.inner_text()  # its caption
            assert await shown_qr_code(page, pictured, playground.url) == link

            # No wallet in the playground: the Tonkeeper button says where to pay instead.
            await invoice.locator("button", has_text="Open in Tonkeeper").click()
            await page.locator("#toast", has_text="Simulate payment").wait_for()
            # Simulate payment: the exact transfer lands on the emulated toncenter; the
            # bot's watcher credits it and says so.
            simulate = invoice.locator("button.simulate-pay")
            assert await simulate.inner_text() == "Simulate payment (play Gram)"
            await simulate.click()
            credited = page.locator(".msg.in", has_text="Received 1 GRAM. 250 ★ added.")
            await credited.wait_for(timeout=20000)
            assert "Balance: 250 ★." in await credited.inner_text()
            assert await simulate.is_disabled()
            await page.locator("#toast").wait_for(state="hidden")
            await page.screenshot(path=str(artifacts / "playground-ton.png"))
            await page.reload()  # the snapshot shows the invoice paid: no second payment
            await page.wait_for_selector("#conn.live")
            assert await invoice.locator("button.simulate-pay").inner_text() == "Payment sent ✓"
            assert await invoice.locator("button.simulate-pay").is_disabled()
            (tx,) = playground.toncenter.transactions
            assert tx["in_msg"]["value"] == "1000000000"
            assert tx["in_msg"]["message_content"]["decoded"]["comment"] == comment
        finally:
            await browser.close()


class BotSide:
    """The bot's side of a browser test: a real aiogram Bot whose updates the test reads."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.offset = 0

    async def next(self, kind: str, within: float = 15.0) -> Update:
        """The next update of type ``kind``; inline queries typed on the way are left unanswered.

        So is the group's copy of a message sent via the bot (Telegram sends the bot those too).
        """
        async with asyncio.timeout(within):
            while True:
                updates = await self.bot.get_updates(offset=self.offset, timeout=5, limit=1)
                if not updates:
                    continue
                update = updates[0]
                self.offset = update.update_id + 1
                if update.event_type == kind:
                    return update
                via_bot = update.message is not None and update.message.via_bot is not None
                assert update.event_type == "inline_query" or via_bot, update


def ask_article(question: str) -> InlineQueryResultArticle:
    return InlineQueryResultArticle(
        id="ask-1",
        title=f"Ask Veil: {question}",
        description="Veil answers in the chat",
        input_message_content=InputTextMessageContent(message_text=f"{question}\nThinking…"),
        reply_markup=stop_keyboard(),
    )


async def mention_reply_and_stop(page: Page, side: BotSide) -> None:
    """A mention, the reply streaming by edits, its stop button, and a reply to it."""
    bot, group = side.bot, "#messages-group"
    # A mention reaches the bot; its reply quotes the question and follows its edits.
    await send(page, "@veil_bot what is a seal?")
    await page.wait_for_selector(f"{group} .msg.out >> text=what is a seal?")
    asked = (await side.next("message")).message
    assert asked is not None
    assert asked.chat.id == GROUP_CHAT_ID
    reply = await bot.send_message(
        GROUP_CHAT_ID,
        "Thinking…",
        reply_parameters=ReplyParameters(message_id=asked.message_id),
        reply_markup=stop_keyboard(),
    )
    answer = page.locator(f'{group} [data-key="m{reply.message_id}"]')
    await answer.locator(".quote", has_text="what is a seal?").wait_for()
    assert await answer.locator(".sender").inner_text() == "Veil"
    for text in ("A seal is", "A seal is a box only one key opens."):
        await bot.edit_message_text(
            text,
            chat_id=GROUP_CHAT_ID,
            message_id=reply.message_id,
            reply_markup=stop_keyboard(),
        )
        await answer.locator(".content", has_text=text).wait_for()
    assert (await answer.locator(".meta").inner_text()).startswith("edited")

    # The stop button presses like a real one.
    await answer.locator(".keyboard button", has_text="Stop").click()
    press = (await side.next("callback_query")).callback_query
    assert press is not None
    assert press.message is not None
    assert (press.data, press.from_user.id, press.message.message_id) == (
        "stop",
        PLAY_USER_ID,
        reply.message_id,
    )
    await bot.answer_callback_query(press.id, text="Stopping")
    await page.wait_for_selector("#toast >> text=Stopping")

    # A reply to the bot's answer reaches it (privacy mode lets replies through).
    await answer.hover()
    await answer.locator(".reply-button").click()
    await page.wait_for_selector("#reply-bar >> text=Reply to Veil")
    await send(page, "and who holds the key?")
    followed = (await side.next("message")).message
    assert followed is not None
    assert followed.reply_to_message is not None
    assert followed.reply_to_message.message_id == reply.message_id
    await page.wait_for_selector("#reply-bar", state="hidden")
    await page.wait_for_selector(f"{group} .msg.out >> text=and who holds the key?")
    thinking = await bot.send_message(
        GROUP_CHAT_ID, "Thinking…", reply_to_message_id=followed.message_id
    )
    placeholder = page.locator(f'{group} [data-key="m{thinking.message_id}"]')
    await placeholder.wait_for()
    await bot.delete_message(GROUP_CHAT_ID, thinking.message_id)
    await placeholder.wait_for(state="detached")


async def ephemeral_for_each_member(page: Page, side: BotSide) -> None:
    """Ephemeral notices show to their receiver only, whichever member the page plays."""
    bot, group = side.bot, "#messages-group"
    # Ephemeral notices show only to their receiver; the page plays Ann or Bob.
    for user_id, name in ((PLAY_USER_ID, "Ann"), (SECOND_USER_ID, "Bob")):
        await bot.send_message(
            GROUP_CHAT_ID,
            f"Only {name} sees this",
            ephemeral_message_parameters=EphemeralMessageParameters(receiver_user_id=user_id),
        )
    for_ann = page.locator(f"{group} .ephemeral", has_text="Only Ann sees this")
    for_bob = page.locator(f"{group} .ephemeral", has_text="Only Bob sees this")
    await for_ann.wait_for()
    assert "only you can see this" in await for_ann.inner_text()
    await for_bob.wait_for(state="attached")
    assert await for_bob.is_hidden()
    await page.select_option("#viewer", str(SECOND_USER_ID))
    await for_bob.wait_for()
    assert await for_ann.is_hidden()
    await send(page, "hi from Bob")  # chatter: the bot in privacy mode is not told
    await page.wait_for_selector(f"{group} .msg.out >> text=hi from Bob")
    await page.select_option("#viewer", str(PLAY_USER_ID))
    await page.wait_for_selector(f"{group} .msg.in >> text=hi from Bob")
    await for_ann.wait_for()


async def inline_article_in_the_group(page: Page, side: BotSide, artifacts: Path) -> None:
    """Typing @veil_bot asks inline; the chosen article is posted and follows the edits."""
    bot, group = side.bot, "#messages-group"
    # Inline: typing @veil_bot asks the bot; the chosen article is posted and edited.
    await page.fill("#input", "@veil_bot why privacy")
    inline = (await side.next("inline_query")).inline_query
    assert inline is not None
    assert (inline.query, inline.chat_type) == ("why privacy", "supergroup")
    await bot.answer_inline_query(
        inline.id, [ask_article(inline.query)], cache_time=0, is_personal=True
    )
    await page.click("#inline-results .item >> text=Ask Veil: why privacy")
    posted = page.locator(f"{group} .msg.out", has_text="via @veil_bot")
    await posted.wait_for()
    chosen = (await side.next("chosen_inline_result")).chosen_inline_result
    assert chosen is not None
    assert chosen.inline_message_id is not None
    await bot.edit_message_text(
        "why privacy\nBecause what you ask is yours.",
        inline_message_id=chosen.inline_message_id,
        reply_markup=stop_keyboard(),
    )
    await posted.locator(".content", has_text="Because what you ask").wait_for()
    await posted.locator(".keyboard button").click()
    stop = (await side.next("callback_query")).callback_query
    assert stop is not None
    assert stop.inline_message_id == chosen.inline_message_id

    await page.screenshot(path=str(artifacts / "playground-group.png"))


async def guest_answer_and_photo(page: Page, side: BotSide, artifacts: Path) -> None:
    """A guest summons in Friends, then a photo (the TON QR code) in the private chat."""
    bot = side.bot
    # A guest: the bot is summoned in Friends, where it is not a member.
    await page.click("#tab-guest")
    await send(page, "@veil_bot settle it: tabs or spaces?")
    summons = (await side.next("guest_message")).guest_message
    assert summons is not None
    assert summons.guest_query_id is not None
    assert summons.chat.id == GUEST_CHAT_ID
    sent = await bot.answer_guest_query(summons.guest_query_id, ask_article("tabs or spaces?"))
    guest = page.locator("#messages-guest .msg.in", has_text="Thinking…")
    await guest.locator(".quote", has_text="settle it").wait_for()
    await bot.edit_message_text(
        "tabs or spaces?\nSpaces.", inline_message_id=sent.inline_message_id
    )
    await page.locator("#messages-guest .msg.in", has_text="Spaces.").wait_for()
    await page.screenshot(path=str(artifacts / "playground-guest.png"))

    # A photo (the TON invoice's QR code) in the private chat.
    picture = make_png(40, 30)
    await bot.send_photo(PLAY_USER_ID, BufferedInputFile(picture, "qr.png"), caption="Scan to pay")
    await page.click("#tab-private")
    photo = page.locator("#messages-private .msg.in img.photo")
    await photo.wait_for()
    await page.wait_for_function(
        "() => document.querySelector('#messages-private img.photo').naturalWidth === 40"
    )
    assert "Scan to pay" in await page.locator("#messages-private .msg.in").last.inner_text()


async def test_the_group_and_guest_chats_in_the_browser(playground: Playground) -> None:
    """Posting, replies, live edits, stop buttons, ephemeral notices, inline and guest answers.

    The bot's side is played by the test through a real aiogram Bot (the Veil bot's group
    handlers are tested end to end elsewhere).
    """
    playground.inline_wait = 10.0
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    async with aiogram_bot(playground.url) as bot, async_playwright() as driver:
        side = BotSide(bot)
        browser = await driver.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 820})
            await page.goto(playground.url)
            await page.wait_for_selector("#conn.live")
            await page.click("#tab-group")
            await mention_reply_and_stop(page, side)
            await ephemeral_for_each_member(page, side)
            await inline_article_in_the_group(page, side, artifacts)
            await guest_answer_and_photo(page, side, artifacts)
        finally:
            await browser.close()
