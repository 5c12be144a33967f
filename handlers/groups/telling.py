"""Notices in a group: to one member alone, or to a chat, at the group's pace.

A notice for one person goes to that person only (``tell_alone``); a question sent as a chat
(an anonymous admin, a channel) names no person, and gets a paced reply (``tell_chat``). A
reply Telegram refuses is one log line (``not_answered``): nobody to tell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramMigrateToChat

from common.logs import describe
from handlers.replies import forum_topic

if TYPE_CHECKING:
    from aiogram.types import InlineKeyboardMarkup, Message

    from common.texts import Texts
    from handlers.sinks import Editors

log = structlog.get_logger("veil.groups")

# Telegram refusing a message in a group: the replied message deleted, the bot removed or muted,
# the group upgraded to a supergroup (a new chat, where the question is not): nobody to tell.
REFUSED = (TelegramBadRequest, TelegramForbiddenError, TelegramMigrateToChat)
TOPIC_CLOSED = "TOPIC_CLOSED"  # Telegram's description of a send into a closed forum topic


def not_answered(exc: Exception) -> None:
    """The one log line of a question Telegram refused Veil's reply to: nobody to tell.

    A forum topic closed (400 ``TOPIC_CLOSED``: only admins with ``can_manage_topics`` write
    there, and Veil lacks it; with it, Veil answers there, where only such admins ask)
    says so, as ``groups.topic_closed``: the description of any other refusal is withheld
    (``describe``), and the operator could not tell a closed topic, which an admin reopens, from
    a question deleted. The asker is not told: Veil can write nothing in that topic, an
    ephemeral message neither, and a notice elsewhere (the General topic, closed too at times;
    a private chat they may never have opened) is not where they asked. Only an admin writes in
    a closed topic, and can reopen it; anyone else saw it closed before their question's turn.
    """
    if isinstance(exc, TelegramBadRequest) and TOPIC_CLOSED in exc.message:
        log.info("groups.topic_closed")
    else:
        log.info("groups.not_answered", error=describe(exc))


async def tell_alone(message: Message, text: str, editors: Editors) -> None:
    """Tell the member who sent ``message``, alone and at the group's pace (usage, a refusal).

    Never a public reply outside the pace: a member sending bare mentions or commands would
    make Veil flood the group and spend its messages a minute ahead of others' answers. One
    sent as a chat has no member to tell alone: it gets a reply, paced too (``tell_chat``).
    """
    user = message.from_user
    if message.sender_chat is not None or user is None:
        await tell_chat(message, text, editors)
        return
    await editors.tell_one(
        message.chat.id,
        user.id,
        text,
        reply_to=message.message_id,
        markup=None,
        thread_id=forum_topic(message),
    )


async def ask_as_yourself(message: Message, texts: Texts, editors: Editors) -> None:
    """A question sent as a chat (an anonymous admin, a channel): answered with a notice alone.

    Telegram names a pseudo-user as its sender (``GroupAnonymousBot``, ``Channel_Bot``,
    Telegram's 777000 for a linked channel's post), one that stands for everyone who posts so,
    in every group: there is no asker whose own credit the answer could be charged to. The notice
    is a reply in the group (a chat cannot be told alone); the question goes nowhere.
    """
    log.info("groups.asked_as_chat")
    await tell_chat(message, texts("group_ask_as_yourself"), editors)


async def tell_chat(
    message: Message, text: str, editors: Editors, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Reply to ``message``, sent as a chat, at the group's pace; once while one waits.

    A chat's burst (bare mentions, questions, commands) would otherwise have a public reply a
    message: a flood, ahead of the answers members asked for. A reply Telegram refuses (the
    message deleted meanwhile, by its sender, an admin or an anti-spam bot; the bot removed
    or muted) is a log line: nobody to tell, no bug. An admin's ``/groupsettings`` panel
    (``markup``) goes so too, once while one waits for that admin.
    """
    if message.sender_chat is not None:
        sender = message.sender_chat.id
    else:
        sender = message.from_user.id if message.from_user is not None else message.chat.id
    try:
        await editors.tell_chat(
            message.chat.id, sender, text, reply_to=message.message_id, markup=markup
        )
    except REFUSED as exc:  # deleted, or the bot removed
        not_answered(exc)
