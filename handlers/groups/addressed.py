"""What in a group is for Veil: a mention, a reply to it, ``/ask``; answered in the group's turn.

Anything else in a group is not for Veil, and it stays silent (with privacy mode on, Telegram
only sends it those messages anyway). A question about media the model cannot see is refused
(``_media_refused``); one Veil could not read, or edited, is told to its sender alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from aiogram.filters import Command

from handlers.commands import forwarded
from handlers.groups.asking import answer_in_group, failed_answer
from handlers.groups.telling import tell_alone
from handlers.replies import names_veil, replied_context, replies_to_unseen, without_mentions

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.filters import CommandObject
    from aiogram.types import Message, MessageEntity, User

    from common.texts import Texts
    from handlers.groups.kit import GroupKit

log = structlog.get_logger("veil.groups")

_ASK = Command("ask", ignore_case=True)


async def addressed(message: Message, bot: Bot) -> dict[str, Any] | bool:
    """A filter: the message mentions Veil or replies to one of its messages.

    Passes the question (the text without the mention) to the handler as ``question``. A
    forward is never addressed to Veil: its mention was written for another chat, and it holds
    no words of the one who forwarded it (to ask about it, they reply to it mentioning Veil).
    Nor is an inline bot's result a member posts (``via_bot``): its words are that bot's.
    Veil's own inline answer was answered as the inline one already; another bot's that names
    Veil (a second Veil of the operator's, asked "what is @veil?", its question shown above
    its answer) was answered too, charged to the member who asked that bot, not this one.
    """
    text = message.text or message.caption
    if not text or text.startswith("/") or forwarded(message) or message.via_bot is not None:
        return False
    me = await bot.me()
    entities = message.entities or message.caption_entities or []
    ours = [entity for entity in entities if names_veil(entity, text, me)]
    replied = message.reply_to_message
    to_us = replied is not None and replied.from_user is not None and replied.from_user.id == me.id
    if not ours and (not to_us or _for_another(entities, text, me)):
        return False
    question = without_mentions(text, ours)
    return {"question": question} if question or ours else False


def _for_another(entities: list[MessageEntity], text: str, me: User) -> bool:
    """Whether a message that does not mention Veil speaks to someone else.

    It does when it begins with a mention of someone else ("@alice what do you think?"), or
    mentions another bot anywhere (a @username ending in "bot", as every bot's must): a reply
    to Veil's answer that asks ``@otherbot`` something is for that bot, not Veil.
    """
    for entity in entities:
        if entity.type not in {"mention", "text_mention"} or names_veil(entity, text, me):
            continue
        if entity.offset == 0:
            return True
        if entity.type == "mention" and entity.extract_from(text).lower().endswith("bot"):
            return True
    return False


async def on_addressed(
    message: Message,
    question: str,
    texts: Texts,
    kit: GroupKit,
) -> None:
    """Veil was mentioned or replied to: answer, in the group's turn.

    A mention alone, in a reply to someone's message, asks about that message (as a guest
    summons does); a mention alone and nothing to reply to (or a reply to an answer that
    failed before any text: ``failed_answer``) gets the usage line, unless the group turned
    answers off.
    """
    if await _media_refused(message, texts, kit):
        return
    if question:
        await answer_in_group(message, question, texts, kit)
        return
    context = replied_context(message, kit.editors.bot.id, texts.catalogs)
    if not context or failed_answer(message, kit.editors):
        if (await kit.groups.settings(message.chat.id)).answers:  # a group that turned it off
            await tell_alone(message, texts("ask_usage"), kit.editors)  # hears nothing from Veil
        return
    await answer_in_group(message, texts("guest_reply_question"), texts, kit, context=context)


async def on_unread(message: Message, bot: Bot, texts: Texts, kit: GroupKit) -> None:
    """A message Veil could not read (``handlers.replies.unread``): told to its sender alone.

    Only one meant for Veil: a mention of it, a reply to it (``addressed``), ``/ask``; once a
    message (Telegram may deliver it again), and not in a group that turned answers off. What
    was not read may be what the question is about: it is not asked.
    """
    if not (await addressed(message, bot) or await _ASK(message, bot)):
        return
    if not kit.editors.answered.first((message.chat.id, message.message_id)):
        return
    if (await kit.groups.settings(message.chat.id)).answers:
        log.info("unread.told", where="group")
        await tell_alone(message, texts("unread"), kit.editors)


async def on_edited(message: Message, texts: Texts, kit: GroupKit) -> None:
    """A member edited a question to Veil: it is answered as sent; they alone are told, once.

    Without this the edit went unseen: a member who fixed a typo in their question, or added
    the mention, waited for an answer to the new text that never came (the private chat says
    the same, ``edited``). Told at the group's pace, once a message (a second edit, or one
    Telegram sends for a change the member did not make, is not told again); one sent as a
    chat, and in a group that turned answers off, nothing.
    """
    if message.edit_date is None or message.sender_chat is not None:
        return
    if not kit.edits_told.first((message.chat.id, message.message_id)):
        return
    if not (await kit.groups.settings(message.chat.id)).answers:
        return
    log.info("groups.edit_not_read")
    await tell_alone(message, texts("edited"), kit.editors)


async def cmd_ask(message: Message, command: CommandObject, texts: Texts, kit: GroupKit) -> None:
    """``/ask question``: answer it (an empty /ask says how, unless answers are turned off)."""
    if await _media_refused(message, texts, kit):
        return
    question = (command.args or "").strip()
    if not question:
        if (await kit.groups.settings(message.chat.id)).answers:
            await tell_alone(message, texts("ask_usage"), kit.editors)
        return
    await answer_in_group(message, question, texts, kit)


async def _media_refused(message: Message, texts: Texts, kit: GroupKit) -> bool:
    """Whether ``message`` asks about media the model cannot see: not answered.

    In the caption of a photo, file or other media, or replying to one without a caption
    (``replies_to_unseen``): the model would answer blind ("what is in this photo?"), and the
    asker be charged for it. The asker alone is told why, unless the group turned answers off.
    """
    if message.text is not None:
        if not replies_to_unseen(message, files_read=False):
            return False
        notice = "group_replied_media"
    else:
        notice = "group_media"
    if not kit.editors.answered.first((message.chat.id, message.message_id)):
        return True  # delivered again: told already
    log.info("groups.media_refused", replied=notice == "group_replied_media")
    if (await kit.groups.settings(message.chat.id)).answers:
        await tell_alone(message, texts(notice), kit.editors)
    return True
