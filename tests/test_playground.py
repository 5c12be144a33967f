"""The playground: a local Telegram in a browser, fed live by the Bot API emulator.

Without a browser: the event stream shows what a real aiogram ``Bot`` does, and the page's
actions reach the bot as well-formed updates. With one: Debian's chromium, driven by
Playwright, chats with the real bot (through a gateway and the fake vLLM) as a person would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LabeledPrice,
    MessageEntity,
)
from playwright.async_api import Page, async_playwright

from bot.settings import BotSettings
from playground.web import GROUP_CHAT_ID, PLAY_USER_ID, Playground
from sealed.encoding import b64e
from tests.botstack import polling_bot
from tests.fakes.vllm import FakeVLLM
from tests.harness import REPO, ManagedProcess, run_gateway

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from aiogram.types import Update

TOKEN = "123456:PLAY-TEST"
XSS = "<img src=x onerror=alert(1)>"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
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
async def aiogram_bot(url: str) -> AsyncIterator[Bot]:
    """A real aiogram Bot talking to ``url``; its session closed without TLS grace."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(url))
    bot = Bot(TOKEN, session=session)
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
        assert [m["html"] for m in again["messages"]] == ["Edited"]


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
            playground.url, "choose", {"query": "why veil", "result_id": "a1"}
        )
        inline_id = chosen["inline_message_id"]
        shown = await stream.next("inline_message")
        assert (shown["item"]["inline_message_id"], shown["item"]["html"]) == (
            inline_id,
            "Thinking…",
        )
        picked = await one_update(bot, update.update_id + 1)
        assert picked.chosen_inline_result is not None
        assert picked.chosen_inline_result.inline_message_id == inline_id

        await bot.edit_message_text("Because **privacy**", inline_message_id=inline_id)
        assert (await stream.next("inline_edit"))["item"]["html"] == "Because **privacy**"
    assert GROUP_CHAT_ID in playground.telegram.state.chats


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
        assert line == f"playground: open {url} (Bot API for the bot: {url})"
        async with aiogram_bot(url) as bot:
            me = await bot.get_me()
        assert me.username == "veil_bot"
    finally:
        code = await process.stop()
    assert code == 0


# In a real browser, with the real bot.


@contextlib.asynccontextmanager
async def veil_against(playground: Playground, data_dir: Path) -> AsyncIterator[None]:
    """The real bot, gateway and fake vLLM, the bot polling the playground."""
    async with (
        FakeVLLM(answer=ANSWER, models=("veil-small", "veil-large"), token_delay=0.04) as vllm,
        run_gateway(vllm.url) as gateway,
    ):
        config = BotSettings(
            bot_token=TOKEN,
            telegram_api=playground.url,
            gateways=gateway.url,
            operator_keys=b64e(gateway.verify_key),
            data_dir=data_dir,
            draft_interval=0.25,
            free_tokens_per_day=1_000_000,
        )
        async with polling_bot(config, playground.telegram):
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
    """Inline in the group tab: one article; choosing it posts it, then the answer fills it."""
    await page.click("#tab-group")
    await send(page, "@veil_bot what is privacy?")
    article = page.locator("#inline-results .item", has_text="what is privacy?")
    await article.wait_for(timeout=10000)
    await article.click()
    await page.locator("[data-inline]", has_text="what is privacy?").wait_for(timeout=10000)
    await page.locator("[data-inline]", has_text="thirteen.").wait_for(timeout=20000)


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
