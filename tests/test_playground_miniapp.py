"""Mini Apps in the playground: menu buttons, web_app buttons, signed launches, the storages.

Without a browser: a real aiogram ``Bot`` sets and reads menu buttons and sends web_app buttons
to the emulator, which refuses what Telegram refuses; a launch's ``initData`` passes aiogram's
own check with the bot token (and fails with another); SecureStorage and DeviceStorage answer
as Telegram documents them, per user. With Debian's chromium: the real bot's menu button opens
its Mini App in the playground's iframe, signed by the emulator; a question typed there is
answered; the history key kept in the emulated SecureStorage opens the history again after the
frame reloads; a forged ``initData`` is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MenuButtonCommands,
    MenuButtonDefault,
    MenuButtonWebApp,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    WebAppInfo,
)
from aiogram.utils.web_app import safe_parse_webapp_init_data
from aiohttp import web
from playwright.async_api import async_playwright

from bot.settings import BotSettings
from playground.web import GROUP_CHAT_ID, PLAY_USER_ID, SECOND_USER_ID, Playground
from playground.webapps import SECURE_ITEMS, THEME, WEBAPP_VERSION, MiniApps
from sealed.encoding import b64e
from tests.botstack import polling_bot
from tests.fakes.vllm import FakeVLLM
from tests.harness import REPO, free_port, run_gateway, serving
from tests.test_playground import aiogram_bot, ui

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Frame, Page
    from pydantic import BaseModel

TOKEN = "123456:PLAY-MINI"
APP = "https://veil.example.com/app/"
QUESTION = "Which key opens the old lighthouse door?"
ANSWER = "The brass one with the anchor on its bow."
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    server = Playground(token=TOKEN)
    await server.start()
    yield server
    await server.close()


def shown(button: BaseModel) -> dict[str, Any]:
    """A menu button's fields, as the Bot API sends them."""
    return button.model_dump(mode="json", exclude_none=True)


def init_data_of(launch: str) -> str:
    """The ``tgWebAppData`` of a launch URL's fragment."""
    return parse_qs(urlsplit(launch).fragment)["tgWebAppData"][0]


# Without a browser.


async def test_menu_buttons_are_set_read_and_checked_as_telegram_does(
    playground: Playground,
) -> None:
    async with aiogram_bot(playground.url, TOKEN) as bot:
        assert shown(await bot.get_chat_menu_button()) == {"type": "commands"}
        assert shown(await bot.get_chat_menu_button(chat_id=PLAY_USER_ID)) == {"type": "default"}
        button = MenuButtonWebApp(text="🔒 Private", web_app=WebAppInfo(url=APP))
        assert await bot.set_chat_menu_button(menu_button=button)
        assert shown(await bot.get_chat_menu_button()) == shown(button)
        assert playground.snapshot()["menu_button"] == {
            "type": "web_app",
            "text": "🔒 Private",
            "web_app": {"url": APP},
        }
        # A chat's own button wins over the default; "default" gives the default back.
        assert await bot.set_chat_menu_button(
            chat_id=PLAY_USER_ID, menu_button=MenuButtonCommands()
        )
        assert playground.snapshot()["menu_button"] == {"type": "commands"}
        await bot.set_chat_menu_button(chat_id=PLAY_USER_ID, menu_button=MenuButtonDefault())
        assert playground.snapshot()["menu_button"]["type"] == "web_app"
        # Telegram opens Mini Apps over HTTPS only (the emulator also takes this machine's HTTP).
        plain = MenuButtonWebApp(text="x", web_app=WebAppInfo(url="http://veil.example.com/"))
        with pytest.raises(TelegramBadRequest, match="BUTTON_URL_INVALID"):
            await bot.set_chat_menu_button(menu_button=plain)
        local = MenuButtonWebApp(text="x", web_app=WebAppInfo(url="http://127.0.0.1:8480/app/"))
        assert await bot.set_chat_menu_button(chat_id=PLAY_USER_ID, menu_button=local)
        with pytest.raises(TelegramBadRequest, match="chat not found"):
            await bot.set_chat_menu_button(chat_id=GROUP_CHAT_ID, menu_button=button)
        assert shown(await bot.get_chat_menu_button()) == shown(button)  # refusals: no change


async def test_web_app_buttons_are_checked_and_the_reply_keyboard_reaches_the_page(
    playground: Playground,
) -> None:
    async with aiogram_bot(playground.url, TOKEN) as bot:
        bad = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="open", web_app=WebAppInfo(url="ftp://x"))]]
        )
        with pytest.raises(TelegramBadRequest, match="BUTTON_URL_INVALID"):
            await bot.send_message(PLAY_USER_ID, "bad", reply_markup=bad)
        keyboard = ReplyKeyboardMarkup(
            keyboard=[
                [KeyboardButton(text="Open", web_app=WebAppInfo(url=APP))],
                [KeyboardButton(text="Just text")],
            ]
        )
        await bot.send_message(PLAY_USER_ID, "Here is a keyboard", reply_markup=keyboard)
        assert playground.snapshot()["reply_keyboard"] == [
            [{"text": "Open", "web_app": {"url": APP}}],
            [{"text": "Just text"}],
        ]
        # Only a URL the bot offers opens, and only where it offers it.
        status, launched = await ui(playground.url, "webapp", {"source": "keyboard", "url": APP})
        assert status == 200
        assert launched["url"].startswith(APP + "#tgWebAppData=")
        status, refused = await ui(playground.url, "webapp", {"source": "menu", "url": APP})
        assert status == 400
        assert "no such Mini App" in refused["error"]
        await bot.send_message(PLAY_USER_ID, "Gone", reply_markup=ReplyKeyboardRemove())
        assert playground.snapshot()["reply_keyboard"] is None
        status, _ = await ui(playground.url, "webapp", {"source": "keyboard", "url": APP})
        assert status == 400
        inline = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Open", web_app=WebAppInfo(url=APP))]]
        )
        sent = await bot.send_message(PLAY_USER_ID, "Inline", reply_markup=inline)
        launch = {"source": "inline", "url": APP, "message_id": sent.message_id, "lang": "kk"}
        status, launched = await ui(playground.url, "webapp", launch)
        assert status == 200
        fields = parse_qs(init_data_of(launched["url"]))
        assert '"language_code":"kk"' in fields["user"][0]
        assert fields["chat_type"] == ["sender"]


async def test_a_launch_carries_init_data_signed_with_the_bot_token(
    playground: Playground,
) -> None:
    async with aiogram_bot(playground.url, TOKEN) as bot:
        button = MenuButtonWebApp(text="Open", web_app=WebAppInfo(url=APP))
        await bot.set_chat_menu_button(menu_button=button)
    status, launched = await ui(playground.url, "webapp", {"source": "menu", "url": APP})
    assert status == 200
    assert launched["title"] == "Veil"
    fragment = parse_qs(urlsplit(launched["url"]).fragment)
    assert fragment["tgWebAppVersion"] == [WEBAPP_VERSION]
    assert fragment["tgWebAppPlatform"] == ["weba"]
    theme = json.loads(fragment["tgWebAppThemeParams"][0])
    assert theme == THEME  # the playground page's own colours
    assert (theme["bg_color"], theme["button_color"]) == ("#ffffff", "#3390ec")
    data = init_data_of(launched["url"])
    checked = safe_parse_webapp_init_data(TOKEN, data)  # aiogram's own check, as the bot's
    assert checked.user is not None
    assert (checked.user.id, checked.user.first_name) == (PLAY_USER_ID, "Ann")
    assert abs(checked.auth_date.timestamp() - time.time()) < 60
    assert checked.query_id
    with pytest.raises(ValueError, match="Invalid init data signature"):
        safe_parse_webapp_init_data("654321:ANOTHER-BOT", data)
    forged = data.replace(quote(f'"id":{PLAY_USER_ID}'), quote(f'"id":{SECOND_USER_ID}'))
    assert forged != data
    with pytest.raises(ValueError, match="Invalid init data signature"):
        safe_parse_webapp_init_data(TOKEN, forged)


def storage(apps: MiniApps, user: int, method: str, **data: object) -> tuple[str, dict[str, Any]]:
    answer = apps.storage(user, method, {"req_id": "r1", **data})
    assert answer is not None
    return answer


async def test_secure_and_device_storage_answer_as_telegram_documents_them(
    playground: Playground,
) -> None:
    apps = playground.telegram.webapps
    save, get = "web_app_secure_storage_save_key", "web_app_secure_storage_get_key"
    assert storage(apps, PLAY_USER_ID, save, key="k", value="v") == (
        "secure_storage_key_saved",
        {"req_id": "r1"},
    )
    assert storage(apps, PLAY_USER_ID, get, key="k") == (
        "secure_storage_key_received",
        {"req_id": "r1", "value": "v", "can_restore": False},
    )
    # Per user, as each user's device keeps its own.
    assert storage(apps, SECOND_USER_ID, get, key="k")[1]["value"] is None
    # null removes; a key gone from the keychain cannot be restored here.
    storage(apps, PLAY_USER_ID, save, key="k", value=None)
    assert storage(apps, PLAY_USER_ID, get, key="k")[1]["value"] is None
    assert storage(apps, PLAY_USER_ID, "web_app_secure_storage_restore_key", key="k") == (
        "secure_storage_failed",
        {"req_id": "r1", "error": "RESTORE_UNAVAILABLE"},
    )
    # At most ten items in the keychain; overwriting one is not a new item.
    for n in range(SECURE_ITEMS):
        assert storage(apps, PLAY_USER_ID, save, key=f"k{n}", value="x")[0].endswith("saved")
    assert storage(apps, PLAY_USER_ID, save, key="k0", value="y")[0] == "secure_storage_key_saved"
    assert storage(apps, PLAY_USER_ID, save, key="k10", value="x")[1]["error"] == "QUOTA_EXCEEDED"
    assert storage(apps, PLAY_USER_ID, save, key="k1", value=5)[1]["error"] == "VALUE_INVALID"
    assert storage(apps, PLAY_USER_ID, get, key="")[1]["error"] == "KEY_INVALID"
    cleared = storage(apps, PLAY_USER_ID, "web_app_secure_storage_clear")
    assert cleared == ("secure_storage_cleared", {"req_id": "r1"})
    assert apps.stores[PLAY_USER_ID].secure == {}
    # DeviceStorage: its own store, 5 MiB of keys and values, no restore.
    device = "web_app_device_storage_save_key"
    assert storage(apps, PLAY_USER_ID, device, key="d", value="v")[0] == "device_storage_key_saved"
    got = storage(apps, PLAY_USER_ID, "web_app_device_storage_get_key", key="d")
    assert got == ("device_storage_key_received", {"req_id": "r1", "value": "v"})
    huge = "x" * (5 * 1024 * 1024)
    assert storage(apps, PLAY_USER_ID, device, key="e", value=huge)[1]["error"] == "QUOTA_EXCEEDED"
    restore = storage(apps, PLAY_USER_ID, "web_app_device_storage_restore_key", key="d")
    assert restore[1]["error"] == "UNSUPPORTED"
    # A request without a req_id cannot be answered; the page's action says so.
    assert apps.storage(PLAY_USER_ID, get, {"key": "k"}) is None
    status, reply = await ui(
        playground.url,
        "webapp_event",
        {"method": "web_app_device_storage_get_key", "data": {"req_id": "p", "key": "d"}},
    )
    assert (status, reply["event"], reply["data"]["value"]) == (
        200,
        "device_storage_key_received",
        "v",
    )


# In a real browser, with the real bot.


@contextlib.asynccontextmanager
async def veil_with_mini_app(playground: Playground, data_dir: Path) -> AsyncIterator[FakeVLLM]:
    """The real bot serving its Mini App (framed by the playground), polling the playground."""
    port = free_port()
    async with FakeVLLM(answer=ANSWER) as vllm, run_gateway(vllm.url) as gateway:
        config = BotSettings(
            bot_token=TOKEN,
            telegram_api=playground.url,
            gateways=gateway.url,
            operator_keys=b64e(gateway.verify_key),
            data_dir=data_dir,
            free_tokens_per_day=1_000_000,
            webapp_url=f"http://127.0.0.1:{port}/app/",
            webapp_port=port,
            webapp_frame_ancestors=playground.url,
        )
        async with polling_bot(config):
            await playground.telegram.wait_for("setChatMenuButton", timeout=30)
            yield vllm


async def mini_app_frame(page: Page) -> Frame:
    """The Mini App's frame once its page is ready."""
    await page.wait_for_selector("#miniapp[data-ready=true]", timeout=20000)
    handle = await page.query_selector("#miniapp-frame")
    assert handle is not None
    frame = await handle.content_frame()
    assert frame is not None
    await frame.wait_for_selector("body[data-ready=true]", timeout=20000)
    return frame


async def forged_launch_is_refused(page: Page, src: str, vllm: FakeVLLM) -> None:
    """The Mini App opened with another user's id under this launch's signature: refused."""
    forged = src.replace(
        quote(quote(f'"id":{PLAY_USER_ID}', safe="")),
        quote(quote(f'"id":{SECOND_USER_ID}', safe="")),
    )
    assert forged != src
    asked = len(vllm.requests)
    await page.evaluate(
        """(url) => {
          const old = document.getElementById("miniapp-frame");
          const fresh = old.cloneNode();
          fresh.src = url;
          old.replaceWith(fresh);
        }""",
        forged,
    )
    handle = await page.query_selector("#miniapp-frame")
    assert handle is not None
    refused = await handle.content_frame()
    assert refused is not None
    await refused.wait_for_selector("#notice[data-error=unauthorized]", timeout=20000)
    assert len(vllm.requests) == asked


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
async def test_the_menu_button_opens_the_mini_app_which_answers_and_keeps_its_key(
    playground: Playground, tmp_path: Path
) -> None:
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    async with veil_with_mini_app(playground, tmp_path) as vllm, async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 820})
            await page.goto(playground.url)
            await page.wait_for_selector("#conn.live")
            menu = page.locator("#webapp-menu")
            await menu.wait_for(timeout=10000)
            assert await menu.inner_text() == "🔒 Private"
            await menu.click()
            frame = await mini_app_frame(page)

            # Opened as Telegram's web client opens it: signed launch data, the theme, bridge.
            src = await page.get_attribute("#miniapp-frame", "src")
            assert src is not None
            checked = safe_parse_webapp_init_data(TOKEN, init_data_of(src))
            assert checked.user is not None
            assert checked.user.id == PLAY_USER_ID
            bg = (
                "getComputedStyle(document.documentElement).getPropertyValue('--tg-theme-bg-color')"
            )
            assert await frame.evaluate(bg) == "#ffffff"
            sent = [event for event, _ in await page.evaluate("window.miniAppEvents")]
            assert sent[:2] == ["web_app_ready", "web_app_expand"]
            assert "web_app_secure_storage_get_key" in sent
            assert await page.get_attribute("#miniapp", "data-expanded") == "true"

            # A question typed in the page is sealed there and answered.
            await frame.fill("#question", QUESTION)
            await frame.click("#send")
            await frame.wait_for_selector("#notice[data-status=complete]", timeout=20000)
            assert await frame.inner_text("#answer") == ANSWER
            assert vllm.requests[-1]["messages"][-1]["content"] == QUESTION
            await page.screenshot(path=str(artifacts / "playground-miniapp.png"))

            # The history key lives in the emulated SecureStorage: a reloaded frame opens the
            # history again with it.
            keychain = playground.telegram.webapps.stores[PLAY_USER_ID].secure
            key = keychain["veil_history_key"]
            await page.click("#miniapp-reload")
            frame = await mini_app_frame(page)
            assert await frame.locator(".bubble.assistant").all_inner_texts() == [ANSWER]
            assert await frame.get_attribute("#notice", "data-kind") == "history"
            assert keychain == {"veil_history_key": key}

            # A forged initData (another user's id under this user's signature) is refused.
            await forged_launch_is_refused(page, src, vllm)

            # Closing the Mini App from its header.
            await page.click("#miniapp-close")
            assert await page.locator("#miniapp").is_hidden()
        finally:
            await browser.close()


# A small Mini App of the test's own that uses the rest of the bridge: the theme, the viewport,
# the main and back buttons, DeviceStorage, and closing itself when Back is pressed.
BRIDGE_APP = """<!doctype html><meta charset="utf-8"><body>bridge test<script>
window.got = [];
const post = (type, data) =>
  window.parent.postMessage(JSON.stringify({ eventType: type, eventData: data }), "*");
window.addEventListener("message", (event) => {
  if (event.source !== window.parent) return;
  const message = JSON.parse(event.data);
  window.got.push([message.eventType, message.eventData ?? null]);
  if (message.eventType === "back_button_pressed") post("web_app_close");
});
post("web_app_ready");
post("web_app_request_theme");
post("web_app_request_viewport");
post("web_app_setup_main_button", { is_visible: true, is_active: true, text: "Pay 5",
  color: "url(http://127.0.0.1:9/main)", text_color: "#123456" });
post("web_app_setup_back_button", { is_visible: true });
post("web_app_set_header_color", { color: "url(http://127.0.0.1:9/head) #000000" });
post("web_app_set_background_color", { color: "#abcdef" });
post("web_app_device_storage_save_key", { req_id: "d1", key: "n", value: "1" });
</script>"""


@contextlib.asynccontextmanager
async def serving_bridge_app() -> AsyncIterator[str]:
    """The test's Mini App on this machine; yields its URL."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=BRIDGE_APP, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    async with serving(app) as url:
        yield f"{url}/"


async def got(frame: Frame, event: str) -> list[Any]:
    """What the Mini App received of ``event``, once it has."""
    async with asyncio.timeout(10):
        while True:
            received = [data for name, data in await frame.evaluate("window.got") if name == event]
            if received:
                return received
            await asyncio.sleep(0.05)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
async def test_the_host_answers_the_bridge_theme_viewport_buttons_storage_and_close(
    playground: Playground,
) -> None:
    async with (
        serving_bridge_app() as url,
        aiogram_bot(playground.url, TOKEN) as bot,
        async_playwright() as driver,
    ):
        menu = MenuButtonWebApp(text="Bridge", web_app=WebAppInfo(url=url))
        await bot.set_chat_menu_button(menu_button=menu)
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 820})
            await page.goto(playground.url)
            await page.click("#webapp-menu")
            await page.wait_for_selector("#miniapp[data-ready=true]", timeout=10000)
            handle = await page.query_selector("#miniapp-frame")
            assert handle is not None
            frame = await handle.content_frame()
            assert frame is not None
            assert await got(frame, "theme_changed") == [{"theme_params": THEME}]
            (viewport,) = await got(frame, "viewport_changed")
            assert viewport["height"] > 0
            assert viewport["is_expanded"] is True
            assert await got(frame, "device_storage_key_saved") == [{"req_id": "d1"}]
            assert playground.telegram.webapps.stores[PLAY_USER_ID].device == {"n": "1"}
            main = page.locator("#miniapp-main")
            await main.wait_for()
            assert await main.inner_text() == "Pay 5"
            # Colours as Telegram takes them, #RRGGBB; other CSS (url(...)) is not applied.
            await page.wait_for_function(
                "document.querySelector('#miniapp').style.background === 'rgb(171, 205, 239)'"
            )
            styles = await page.evaluate(
                """() => [document.querySelector('#miniapp').style.background,
                    document.querySelector('#miniapp .miniapp-head').style.background,
                    document.querySelector('#miniapp-main').style.background,
                    document.querySelector('#miniapp-main').style.color]"""
            )
            assert "url" not in " ".join(styles)
            assert styles[0] == "rgb(171, 205, 239)"
            assert styles[2] == "rgb(51, 144, 236)"  # the theme's button colour instead
            assert styles[3] == "rgb(18, 52, 86)"
            await main.click()
            assert await got(frame, "main_button_pressed") == [None]
            await page.click("#miniapp-back")  # the app closes itself on Back
            await page.locator("#miniapp").wait_for(state="hidden", timeout=10000)
        finally:
            await browser.close()
