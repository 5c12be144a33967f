"""/forget: after a confirm button, erase everything stored about the user."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING

import structlog
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

log = structlog.get_logger("veil.forget")


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


# The /forget confirmations answered that are remembered, newest kept (a double tap's second
# press comes within a second or so of the first; a flood wait's within a minute).
CONFIRMS_REMEMBERED = 10_000

_Press = asyncio.Future[None]  # one press's outcome: done, or the error it failed with


class ForgetAnswers:
    """The presses of /forget's confirmation: each confirmation is carried out once.

    A second tap of "Erase everything" before the first had redrawn the message (or a press
    held while the first's reply waited out Telegram's flood control) erased again, nothing
    left by then, and put "0 stored messages are gone" in place of what the first had erased.
    A press on a confirmation now waits for the first press's outcome: done, it is only
    acknowledged (the message says what the first did); failed (the database busy), it tries
    again, as the user meant.
    """

    def __init__(self, size: int = CONFIRMS_REMEMBERED) -> None:
        self._size = size
        self._answers: OrderedDict[tuple[int, int], asyncio.Future[None]] = OrderedDict()

    def _begin(self, key: tuple[int, int] | None) -> tuple[_Press | None, _Press | None]:
        """The press before on ``key``'s confirmation (if any) and this one's, remembered now."""
        if key is None:
            return (None, None)
        before = self._answers.pop(key, None)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_retrieved)
        self._answers[key] = answer
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)
        return (before, answer)

    async def on_forget_answer(
        self,
        query: CallbackQuery,
        callback_data: ForgetAnswer,
        texts: Texts,
        chat: ChatService,
        let_next_in: Callable[[], None] | None = None,
    ) -> None:
        """Erase (destroying the user's key first) or keep, and say which.

        The press is answered first: an erasure waits for the user's answer in progress to end
        (its final message delivered), longer than a callback query lives. The user's next
        update (held until this one is handled: ``bot.order``) goes in once the erasure has
        begun: a question is told the history is being erased, a /cancel stops the answer it
        waits for, a second press of the confirmation waits to see whether this one is done
        (and lets the update after it in first: this one may wait long for the user's answer to
        end, or for a database that does not answer).
        """
        key = None if query.message is None else (query.from_user.id, query.message.message_id)
        before, answer = self._begin(key)
        try:
            await query.answer()
            if before is not None and let_next_in is not None:
                let_next_in()  # the earlier press has begun (or ended): nothing to hold for it
            if before is not None and await _carried_out(before):
                log.info("forget.pressed_again")
                if answer is not None:
                    answer.set_result(None)
                return
            if callback_data.choice == "yes":
                turns = await chat.forget(query.from_user.id, begun=let_next_in)
                reply = texts("forget_nothing" if turns is None else "forget_done", turns=turns)
            else:
                reply = texts("forget_kept")
        except BaseException as exc:
            if answer is not None:
                answer.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            raise
        if answer is not None:
            answer.set_result(None)
        await show_pressed(query, reply)


async def _carried_out(answer: asyncio.Future[None]) -> bool:
    """Whether the press ``answer`` stands for was carried out (waiting while it runs)."""
    with contextlib.suppress(Exception):  # its failure is its own press's to tell
        await asyncio.shield(answer)
        return True
    return False


def _retrieved(answer: asyncio.Future[None]) -> None:
    """Mark a failed press's outcome as seen (no second press may ever ask for it)."""
    if not answer.cancelled():
        answer.exception()


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.register(
        cmd_forget, TextCommand("forget", ignore_case=True), F.chat.type == "private"
    )
    router.callback_query.register(ForgetAnswers().on_forget_answer, ForgetAnswer.filter())
    return router
