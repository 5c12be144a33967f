"""Private chat: a text in, a streamed answer out; /cancel, /new, Retry, the stop button."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.streaming import DraftSink
from handlers.billing import buy_keyboard
from services.billing import format_units
from services.errors import (
    AnswerInProgress,
    BackendError,
    ContextTooLong,
    HistoryUnavailable,
    InferenceBusy,
    InferenceError,
    InferenceUnavailable,
    InsufficientCredit,
    LedgerUnavailable,
    ModelStalled,
    StreamCorrupted,
    UntrustedGateway,
)

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import CallbackQuery, Message, MessageGenerationStopped

    from bot.settings import BotSettings
    from bot.texts import Texts
    from services.chat import ChatService
    from services.stars import StarsShop


RETRY = "retry"
# First match wins: subclasses before their parents.
_ERROR_TEXTS: list[tuple[type[InferenceError], str]] = [
    (UntrustedGateway, "error_untrusted"),
    (InferenceBusy, "error_busy"),
    (InferenceUnavailable, "error_unavailable"),
    (ModelStalled, "error_stalled"),
    (ContextTooLong, "error_context"),
    (BackendError, "error_backend"),
    (StreamCorrupted, "error_corrupted"),
]


def error_text_key(error: InferenceError) -> str:
    """The catalog key of the polite message for an inference error."""
    for kind, key in _ERROR_TEXTS:
        if isinstance(error, kind):
            return key
    return "error_backend"


async def answer_prompt(  # noqa: PLR0913 -- the parts of one answer, all from the update
    bot: Bot,
    chat_id: int,
    user_id: int,
    language: str | None,
    prompt: str,
    *,
    chat: ChatService,
    shop: StarsShop,
    texts: Texts,
    settings: BotSettings,
) -> None:
    """Stream the answer to ``prompt`` into the chat; on failure, reply politely with Retry."""
    sink = DraftSink(bot, chat_id, interval=settings.draft_interval)
    try:
        answer = await chat.answer(user_id, language, prompt, sink, draft_id=sink.draft_id)
    except AnswerInProgress:
        await bot.send_message(chat_id, texts("busy"))
    except InferenceError as exc:
        retry = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=texts("retry"), callback_data=RETRY)]]
        )
        await bot.send_message(chat_id, texts(error_text_key(exc)), reply_markup=retry)
    except InsufficientCredit as exc:
        await bot.send_message(
            chat_id,
            texts(
                "no_credit",
                needed=format_units(exc.needed),
                balance=format_units(exc.balance),
                free=exc.free_tokens_left,
                tokens=settings.min_answer_tokens,
            ),
            reply_markup=buy_keyboard(shop, texts),
        )
    except (HistoryUnavailable, LedgerUnavailable):
        await bot.send_message(chat_id, texts("error_history"))
    else:
        if answer.stopped and not answer.text:
            await bot.send_message(chat_id, texts("cancelled"))


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
    chat.cancel(event.chat.id, draft_id=event.draft_id)


async def on_retry(  # noqa: PLR0913 -- the handler's injected services
    query: CallbackQuery,
    *,
    bot: Bot,
    texts: Texts,
    chat: ChatService,
    shop: StarsShop,
    settings: BotSettings,
) -> None:
    """Resend the prompt whose answer failed."""
    prompt = chat.take_retry(query.from_user.id)
    await query.answer()
    if query.message is not None:
        with contextlib.suppress(TelegramBadRequest):  # already without a button: fine
            await bot.edit_message_reply_markup(
                chat_id=query.from_user.id, message_id=query.message.message_id, reply_markup=None
            )
    if prompt is None:
        await bot.send_message(query.from_user.id, texts("retry_expired"))
        return
    await answer_prompt(
        bot,
        query.from_user.id,
        query.from_user.id,
        query.from_user.language_code,
        prompt,
        chat=chat,
        shop=shop,
        texts=texts,
        settings=settings,
    )


async def on_text(  # noqa: PLR0913 -- the handler's injected services
    message: Message,
    *,
    bot: Bot,
    texts: Texts,
    chat: ChatService,
    shop: StarsShop,
    settings: BotSettings,
) -> None:
    """A question: answer it, streamed."""
    user = message.from_user
    if user is None or message.text is None:
        return
    if chat.is_busy(user.id):
        await message.answer(texts("busy"))
        return
    await answer_prompt(
        bot,
        message.chat.id,
        user.id,
        user.language_code,
        message.text,
        chat=chat,
        shop=shop,
        texts=texts,
        settings=settings,
    )


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
    router.callback_query.register(on_retry, F.data == RETRY)
    router.message.register(on_text, F.text & ~F.text.startswith("/"))
    router.message.register(on_unsupported, ~F.text)
    return router
