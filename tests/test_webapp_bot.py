"""The Mini App in the bot's chat: /private with its button, /privacy's hash, the menu button."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.webapp import bundle_sha256
from tests.botstack import running_stack
from tests.miniapp import webapp_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 4242


async def test_private_offers_the_page_and_privacy_publishes_its_hash(tmp_path: Path) -> None:
    async with webapp_stack(tmp_path) as stack:
        telegram = stack.telegram
        menu = await telegram.wait_for("setChatMenuButton")
        button = menu.params["menu_button"]
        assert button["type"] == "web_app"
        assert button["web_app"]["url"] == "http://127.0.0.1/app/"
        assert button["text"] == "🔒 Private"
        commands = await telegram.wait_for("setMyCommands")
        assert "private" in [c["command"] for c in commands.params["commands"]]

        telegram.send_text(USER, "/private", language_code="ru")
        call = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == USER)
        assert bundle_sha256() in call.params["text"]
        assert "даже бот" in call.params["text"] or "ни бот" in call.params["text"]
        markup = call.params["reply_markup"]
        (row,) = markup["inline_keyboard"]
        assert row[0]["web_app"] == {"url": "http://127.0.0.1/app/"}

        telegram.send_text(USER, "/privacy")
        call = await telegram.wait_for(
            "sendMessage", lambda c: c.params["chat_id"] == USER and "Worker" in c.params["text"]
        )
        assert f"SHA-256 of its page's code: {bundle_sha256()}" in call.params["text"]


async def test_without_a_webapp_url_private_says_so_and_nothing_is_served(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        assert stack.veil.webapp is None
        stack.telegram.send_text(USER, "/private")
        reply = await stack.reply_text(USER)
        assert reply == "Private mode is not enabled on this bot."
        stack.telegram.send_text(USER, "/privacy")
        privacy = await stack.reply_text(USER, 1)
        assert "SHA-256" not in privacy
        assert not [c for c in stack.telegram.calls if c.method == "setChatMenuButton"]
