"""/model: pick among the models the verified gateways serve."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.billing import prices_line

if TYPE_CHECKING:
    from aiogram.types import CallbackQuery, Message

    from bot.settings import BotSettings
    from bot.texts import Texts
    from services.chat import ChatService

PREFIX = "model:"


def model_token(name: str) -> str:
    """A short callback token for a model name (names may exceed callback data's 64 bytes)."""
    return PREFIX + hashlib.sha256(name.encode()).hexdigest()[:16]


async def cmd_model(
    message: Message, texts: Texts, chat: ChatService, settings: BotSettings
) -> None:
    """List the served models as buttons, the current one marked."""
    user_id = message.from_user.id if message.from_user else message.chat.id
    models = await chat.models()
    if not models:
        await message.answer(texts("model_none"))
        return
    current = await chat.current_model(user_id)
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=("✅ " if name == current else "") + name, callback_data=model_token(name)
                )
            ]
            for name in models
        ]
    )
    await message.answer(
        texts("model_choose", model=current) + "\n" + prices_line(texts, settings, current),
        reply_markup=keyboard,
    )


async def on_model_chosen(query: CallbackQuery, texts: Texts, chat: ChatService) -> None:
    """Save the chosen model."""
    models = await chat.models()
    chosen = next((name for name in models if model_token(name) == query.data), None)
    user = query.from_user
    if chosen is None or not await chat.set_model(user.id, user.language_code, chosen):
        await query.answer(texts("model_unknown"), show_alert=True)
        return
    await query.answer()
    if query.message is not None and query.bot is not None:
        await query.bot.edit_message_text(
            chat_id=user.id,
            message_id=query.message.message_id,
            text=texts("model_set", model=chosen),
        )


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.register(cmd_model, Command("model"), F.chat.type == "private")
    router.callback_query.register(on_model_chosen, F.data.startswith(PREFIX))
    return router
