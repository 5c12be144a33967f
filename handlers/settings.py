"""/settings: the user's own choices (today: whether inline answers join their history)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import InlineHistory
from handlers.commands import TextCommand
from handlers.replies import pressed_in_private

if TYPE_CHECKING:
    from aiogram.types import CallbackQuery, Message

    from common.texts import Texts
    from services.chat import ChatService


def settings_keyboard(texts: Texts, *, keeps: bool) -> InlineKeyboardMarkup:
    """The inline-history toggle, showing its state; pressing it flips it."""
    button = InlineKeyboardButton(
        text=texts("settings_inline_on" if keeps else "settings_inline_off"),
        callback_data=InlineHistory(on="no" if keeps else "yes").pack(),
    )
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


async def cmd_settings(message: Message, texts: Texts, chat: ChatService) -> None:
    """Show the user's settings as toggles."""
    user_id = message.from_user.id if message.from_user else message.chat.id
    keeps = await chat.keeps_inline_history(user_id)
    await message.answer(texts("settings"), reply_markup=settings_keyboard(texts, keeps=keeps))


async def on_inline_history(
    query: CallbackQuery, callback_data: InlineHistory, texts: Texts, chat: ChatService
) -> None:
    """Save the choice; once it is saved, show the toggle's new state and say so.

    The press is answered at once, with no text: the database may be slow to take the choice,
    longer than a callback query lives, and "Saved." before it is saved could be untrue. Once
    saved, the /settings message says "Saved." under its text, with the toggle redrawn; a save
    that fails changes nothing there, and the errors router tells the user it was not saved.
    Pressed while the user's erasure (/forget) waits for their answer to end, it is saved once
    the erasure is done (``ChatService.keep_inline_history``): saved before, it was erased.

    The button carries the choice, not a flip: pressed twice before it is redrawn, it saves the
    same choice twice, and the second redraw (Telegram: "not modified") changes nothing. Only
    the /settings message in the private chat is redrawn: a press forged under another message
    (a group's, whose id may be a private message's too) saves the presser's own choice alone.
    """
    user = query.from_user
    keeps = callback_data.on == "yes"
    await query.answer()
    await chat.keep_inline_history(user.id, user.language_code, keep=keeps)
    if query.message is None or query.bot is None or not pressed_in_private(query):
        return
    try:
        await query.bot.edit_message_text(
            chat_id=user.id,
            message_id=query.message.message_id,
            text=f"{texts('settings')}\n\n{texts('settings_saved')}",
            reply_markup=settings_keyboard(texts, keeps=keeps),
        )
    except TelegramBadRequest as exc:
        if "not modified" not in exc.message:
            raise


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.register(
        cmd_settings, TextCommand("settings", ignore_case=True), F.chat.type == "private"
    )
    router.callback_query.register(on_inline_history, InlineHistory.filter())
    return router
