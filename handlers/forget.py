"""/forget: after a confirm button, erase everything stored about the user."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import ForgetAnswer
from handlers.commands import TextCommand
from handlers.replies import show_pressed

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiogram.types import CallbackQuery, Message

    from common.texts import Texts
    from services.chat import ChatService


async def cmd_forget(message: Message, texts: Texts) -> None:
    """Ask for confirmation first: erasing cannot be undone."""
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=texts("forget_yes"), callback_data=ForgetAnswer(choice="yes").pack()
                ),
                InlineKeyboardButton(
                    text=texts("forget_no"), callback_data=ForgetAnswer(choice="no").pack()
                ),
            ]
        ]
    )
    await message.answer(texts("forget_confirm"), reply_markup=keyboard)


async def on_forget_answer(
    query: CallbackQuery,
    callback_data: ForgetAnswer,
    texts: Texts,
    chat: ChatService,
    let_next_in: Callable[[], None] | None = None,
) -> None:
    """Erase (destroying the user's key first) or keep, and say which.

    The press is answered first: an erasure waits for the user's answer in progress to end
    (its final message delivered), longer than a callback query lives. The user's next
    update (held until this one is handled: ``bot.order``) goes in once the erasure has begun:
    a question is told the history is being erased, a /cancel stops the answer it waits for.
    """
    await query.answer()
    if callback_data.choice == "yes":
        turns = await chat.forget(query.from_user.id, begun=let_next_in)
        reply = texts("forget_done", turns=turns)
    else:
        reply = texts("forget_kept")
    await show_pressed(query, reply)


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.register(
        cmd_forget, TextCommand("forget", ignore_case=True), F.chat.type == "private"
    )
    router.callback_query.register(on_forget_answer, ForgetAnswer.filter())
    return router
