"""Private chat: a text in, a streamed answer out; /cancel, /new, Retry, Continue, the stop button.

An answer the model cut at its length limit is followed by a short note with a Continue button,
which asks the model to go on in the same conversation (a new answer, billed as any).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command

from handlers.callbacks import Continue, Retry
from handlers.replies import continue_keyboard
from services.chat import CONTINUE_PROMPT, CUT, Question

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import CallbackQuery, Message, MessageGenerationStopped, User

    from common.texts import Texts
    from handlers.sinks import Drafts
    from services.chat import ChatService


async def answer_prompt(
    chat: ChatService, drafts: Drafts, texts: Texts, user: User, prompt: str
) -> None:
    """Stream the answer to ``prompt`` into the user's private chat (its id is the user's).

    Say so when it was stopped before a word, and when the model cut it at its length limit
    (with Continue); failures propagate to the errors router, which replies (with Retry where
    it helps).
    """
    sink = drafts(user.id)
    question = Question(user.id, user.language_code, prompt, stop_tag=sink.draft_id)
    answer = await chat.answer(question, sink)
    if answer.stopped and not answer.text:
        await sink.say(texts("cancelled"))
    elif answer.finish_reason == CUT and answer.text and not answer.stopped:
        await sink.note(texts("answer_cut"), continue_keyboard(texts, answer.request_id))


async def cmd_cancel(message: Message, texts: Texts, chat: ChatService) -> None:
    """Stop the answer being written; what was written so far is kept (and charged)."""
    user_id = message.from_user.id if message.from_user else message.chat.id
    if not chat.cancel(user_id):
        await message.answer(texts("nothing_to_cancel"))


async def cmd_new(message: Message, texts: Texts, chat: ChatService) -> None:
    """Start a fresh conversation."""
    user = message.from_user
    if user is None:
        return
    await chat.new_conversation(user.id, user.language_code)
    await message.answer(texts("new_conversation"))


async def on_stopped_generation(event: MessageGenerationStopped, chat: ChatService) -> None:
    """The draft's stop button: stops the answer in that draft only (a late press, nothing).

    In a private chat the chat id is the user's id.
    """
    chat.cancel(event.chat.id, stop_tag=event.draft_id)


async def on_retry(
    query: CallbackQuery, bot: Bot, texts: Texts, chat: ChatService, drafts: Drafts
) -> None:
    """Resend the prompt whose answer failed."""
    user = query.from_user
    prompt = chat.take_retry(user.id)
    await query.answer()
    if query.message is not None:
        with contextlib.suppress(TelegramBadRequest):  # already without a button: fine
            await bot.edit_message_reply_markup(
                chat_id=user.id, message_id=query.message.message_id, reply_markup=None
            )
    if prompt is None:
        await bot.send_message(user.id, texts("retry_expired"))
        return
    await answer_prompt(chat, drafts, texts, user, prompt)


async def on_continue(  # noqa: PLR0913, PLR0917 -- aiogram injects each by name
    query: CallbackQuery,
    callback_data: Continue,
    bot: Bot,
    texts: Texts,
    chat: ChatService,
    drafts: Drafts,
) -> None:
    """Ask the model to go on with a cut answer, if it is still the user's latest."""
    user = query.from_user
    await query.answer()
    if query.message is not None:
        with contextlib.suppress(TelegramBadRequest):  # already without a button: fine
            await bot.edit_message_reply_markup(
                chat_id=user.id, message_id=query.message.message_id, reply_markup=None
            )
    if not chat.take_continuation(user.id, callback_data.request):
        await bot.send_message(user.id, texts("continue_expired"))
        return
    await answer_prompt(chat, drafts, texts, user, CONTINUE_PROMPT)


async def on_text(message: Message, texts: Texts, chat: ChatService, drafts: Drafts) -> None:
    """A question: answer it, streamed."""
    user = message.from_user
    if user is None or message.text is None:
        return
    await answer_prompt(chat, drafts, texts, user, message.text)


async def on_unsupported(message: Message, texts: Texts) -> None:
    """Photos, voice, stickers, files…: say what is supported."""
    await message.answer(texts("unsupported"))


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(cmd_cancel, Command("cancel"))
    router.message.register(cmd_new, Command("new"))
    router.stopped_message_generation.register(on_stopped_generation)
    router.callback_query.register(on_retry, Retry.filter())
    router.callback_query.register(on_continue, Continue.filter())
    router.message.register(on_text, F.text & ~F.text.startswith("/"))
    router.message.register(on_unsupported, ~F.text)
    return router
