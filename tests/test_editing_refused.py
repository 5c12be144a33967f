"""A notice or a retraction Telegram holds back for a while still happens, after the wait.

Where an inline or group answer fails, the bot puts a notice in the inline message in place of
its placeholder (``Editors.replace_inline``), or takes the group's placeholder back
(``Editors.retract``) before telling the asker alone. Both were tried once: a flood wait longer
than the session waits (``bot.telegram.RetryMiddleware``: a minute; Telegram has asked for up to
137 s), or a 5xx after its one retry, left the placeholder and its stop button for good, a stop
button nobody's press did anything with. They are now tried again as the final edit is: after
the wait Telegram asked for, in the chat's pace, ``FINAL_TRIES`` times at most.

A plain aiogram session here: the bot's own waits out a short 429 itself, and these see the
refusal it would let through after a long one.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
)

from bot.editors import Editors
from bot.pacing import Pace
from handlers.callbacks import StopAnswer
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

USER = 7301
GROUP = -1_007_301
PLACEHOLDER = "⏳ …"
NOTICE = "Something went wrong. Please try again."


def flood(telegram: FakeTelegram, method: str) -> None:
    """The next call of ``method`` is refused with a flood wait of a second."""
    telegram.fail_next(
        method, status=429, description="Too Many Requests: retry after 1", retry_after=1
    )


def stop(tag: str) -> InlineKeyboardMarkup:
    """The stop button under an answer that streams by editing."""
    button = InlineKeyboardButton(text="Stop", callback_data=StopAnswer(tag=tag).pack())
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


@asynccontextmanager
async def telegram_and_group() -> AsyncIterator[tuple[FakeTelegram, Bot]]:
    """The fake Bot API with a supergroup the bot is in, and a plain aiogram bot."""
    async with FakeTelegram(token=TOKEN) as telegram:
        telegram.state.register_chat(GROUP, "supergroup", "")
        api = TelegramAPIServer.from_base(telegram.url)
        async with Bot(TOKEN, session=AiohttpSession(api=api)) as bot:
            yield telegram, bot


async def test_a_notice_for_an_inline_message_refused_with_retry_after_goes_in_after_it() -> None:
    async with telegram_and_group() as (telegram, bot):
        query_id = telegram.state.new_inline_query(USER, "a question")
        article = InlineQueryResultArticle(
            id="r1",
            title="Ask Veil",
            input_message_content=InputTextMessageContent(message_text=PLACEHOLDER),
            reply_markup=stop("r1"),
        )
        await bot.answer_inline_query(query_id, [article], cache_time=0)
        telegram.choose_inline_result(USER, "r1", "a question", inline_message_id="i-1")
        assert telegram.state.inline_messages["i-1"]["reply_markup"]
        flood(telegram, "editMessageText")
        editors = Editors(bot, Pace(inline_per_minute=6000))
        await editors.replace_inline("i-1", NOTICE, None)
        refused, taken = telegram.calls_of("editMessageText")
        assert refused.answered != "ok"
        assert taken.answered == "ok"
        assert taken.at - refused.at >= 0.99  # after the wait Telegram asked for
        message = telegram.state.inline_messages["i-1"]
        assert message["text"] == NOTICE
        assert not message.get("reply_markup")  # the stop button is gone


async def test_a_placeholder_retracted_under_a_flood_wait_is_deleted_after_it() -> None:
    async with telegram_and_group() as (telegram, bot):
        sent = await bot.send_message(GROUP, PLACEHOLDER, reply_markup=stop("t"))
        flood(telegram, "deleteMessage")
        editors = Editors(bot, Pace(group_per_minute=6000))
        await editors.retract(GROUP, sent.message_id)
        refused, taken = telegram.calls_of("deleteMessage")
        assert refused.answered != "ok"
        assert taken.answered == "ok"
        assert taken.at - refused.at >= 0.99
        assert telegram.state.message(GROUP, sent.message_id) is None


async def test_a_retraction_of_a_placeholder_deleted_already_is_tried_once() -> None:
    async with telegram_and_group() as (telegram, bot):
        sent = await bot.send_message(GROUP, PLACEHOLDER)
        await bot.delete_message(GROUP, sent.message_id)  # an admin deleted it meanwhile
        editors = Editors(bot, Pace(group_per_minute=6000))
        await editors.retract(GROUP, sent.message_id)
        _, again = telegram.calls_of("deleteMessage")
        assert again.answered == "Bad Request: message to delete not found"
