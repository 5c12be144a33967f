"""/model: pick among the models the verified gateways serve."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import ModelChoice
from handlers.commands import TextCommand
from handlers.replies import prices_line, show_pressed

if TYPE_CHECKING:
    from aiogram.types import CallbackQuery, Message

    from common.texts import Texts
    from services.chat import ChatService
    from services.prices import Prices


async def cmd_model(message: Message, texts: Texts, chat: ChatService, prices: Prices) -> None:
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
                    text=("✅ " if name == current else "") + name,
                    callback_data=ModelChoice.of(name).pack(),
                )
            ]
            for name in models
        ]
    )
    await message.answer(
        texts("model_choose", model=current) + "\n" + prices_line(texts, prices, current),
        reply_markup=keyboard,
    )


async def on_model_chosen(
    query: CallbackQuery, callback_data: ModelChoice, texts: Texts, chat: ChatService
) -> None:
    """Save the chosen model; the list's message then says which (or that it is gone).

    The press is answered first: the models are asked of the gateways and the choice saved in
    the database, either of which may take longer than a callback query lives (a choice pressed
    while the user's erasure runs is saved once it is done: ``ChatService.set_model``).
    """
    await query.answer()
    models = await chat.models()
    chosen = next((name for name in models if ModelChoice.of(name) == callback_data), None)
    user = query.from_user
    if chosen is None or not await chat.set_model(user.id, user.language_code, chosen):
        reply = texts("model_unknown")
    else:
        reply = texts("model_set", model=chosen)
    await show_pressed(query, reply)


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.register(
        cmd_model, TextCommand("model", ignore_case=True), F.chat.type == "private"
    )
    router.callback_query.register(on_model_chosen, ModelChoice.filter())
    return router
