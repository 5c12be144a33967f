"""/history: the user's recent conversations, to switch back to one.

Without topics in private chats, a conversation lives in the chat itself and only one is active
at a time: /history lists the newest (by their sealed titles, decrypted for the list; one not
named yet by its date), the active one marked, each a button that makes it the active one, so
the next message continues it. Where the bot has topics, each topic is a conversation already
and /history says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import SwitchConversation
from handlers.commands import TextCommand
from handlers.replies import pressed_in_private

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import CallbackQuery, Message

    from common.texts import Texts
    from models import Conversation
    from services.chat import ChatService

HISTORY_SIZE = 10  # conversations listed
# Conversations looked through for the active one when it is not among those listed (switched
# to from an old list, ten others continued since): it is listed too, last.
LOOKED_THROUGH = 1000
ACTIVE_MARK = "✅ "


def label(texts: Texts, conversation: Conversation) -> str:
    """A conversation's name in the list: its title, or its date while it has none."""
    if conversation.title is not None:
        return conversation.title
    day = dt.datetime.fromtimestamp(conversation.created_at, tz=dt.UTC).strftime("%Y-%m-%d")
    return texts("history_untitled", date=day)


def history_keyboard(texts: Texts, conversations: list[Conversation]) -> InlineKeyboardMarkup:
    """One button a conversation, newest first; the active one marked."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=(ACTIVE_MARK if c.active else "") + label(texts, c),
                    callback_data=SwitchConversation(conversation=c.conversation_id).pack(),
                )
            ]
            for c in conversations
        ]
    )


async def listed(chat: ChatService, user_id: int) -> tuple[list[Conversation], Conversation | None]:
    """The conversations to list and the active one, which is listed even when older.

    One chosen in yesterday's list may have fallen off the ten most recently continued since:
    unlisted, a press on it was told it was gone (while the next message went on in it), and
    its second press (a double tap, the other device) switched to it anew.
    """
    conversations = await chat.conversations(user_id, limit=HISTORY_SIZE)
    active = next((c for c in conversations if c.active), None)
    if active is None and len(conversations) == HISTORY_SIZE:
        further = await chat.conversations(user_id, limit=LOOKED_THROUGH)
        active = next((c for c in further if c.active), None)
        if active is not None:
            conversations.append(active)
    return conversations, active


async def cmd_history(message: Message, bot: Bot, texts: Texts, chat: ChatService) -> None:
    """List the recent conversations with a button each (with topics: topics are the list)."""
    user = message.from_user
    if user is None:
        return
    if (await bot.me()).has_topics_enabled:
        await message.answer(texts("history_topics"))
        return
    conversations, _active = await listed(chat, user.id)
    if not conversations:
        await message.answer(texts("history_empty"))
        return
    await message.answer(texts("history"), reply_markup=history_keyboard(texts, conversations))


async def on_switch(
    query: CallbackQuery, callback_data: SwitchConversation, texts: Texts, chat: ChatService
) -> None:
    """Continue the chosen conversation; the list then marks it (gone: say so).

    Only from the /history list in the private chat: a button forged under any other message
    (in a group, or an inline one) switches and edits nothing. The conversation the user is in
    already (a double tap's second press, the list on another device, the marked one) is not
    switched to again: a switch leaves the conversation it switches from, so its cut answer's
    Continue (or its answer streaming, once written) said "expired" though nothing was left.
    """
    user = query.from_user
    if not pressed_in_private(query):
        await query.answer()
        return
    await query.answer()  # first: the database may be slow to take the switch
    conversations, chosen = await listed(chat, user.id)
    wanted = callback_data.conversation
    switched = chosen is not None and chosen.conversation_id == wanted
    if not switched:
        switched = await chat.switch_conversation(user.id, wanted)
        conversations, chosen = await listed(chat, user.id)
    if switched and chosen is not None:
        text = texts("history_switched", title=label(texts, chosen))
    else:
        text = texts("history_gone")
    if query.message is not None and query.bot is not None:
        with contextlib.suppress(TelegramBadRequest):  # "not modified": it says so already
            await query.bot.edit_message_text(
                chat_id=user.id,
                message_id=query.message.message_id,
                text=text,
                reply_markup=history_keyboard(texts, conversations) if conversations else None,
            )


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.register(
        cmd_history, TextCommand("history", ignore_case=True), F.chat.type == "private"
    )
    router.callback_query.register(on_switch, SwitchConversation.filter())
    return router
