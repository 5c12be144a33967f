"""/private: open the Mini App, where a question is sealed on the user's own device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo

from handlers.commands import TextCommand

if TYPE_CHECKING:
    from aiogram.types import Message

    from common.texts import Texts


async def cmd_private(
    message: Message, texts: Texts, webapp_url: str | None, webapp_sha256: str | None
) -> None:
    """What private mode protects and what not, with the button that opens it."""
    if webapp_url is None or webapp_sha256 is None:
        await message.answer(texts("private_off"))
        return
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=texts("private_open"), web_app=WebAppInfo(url=webapp_url))]
        ]
    )
    await message.answer(texts("private", sha256=webapp_sha256), reply_markup=keyboard)


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.register(
        cmd_private, TextCommand("private", ignore_case=True), F.chat.type == "private"
    )
    return router
