"""A question put to Veil in a group, queued for the group's turn (``answer_in_group``).

One question a member at a time in a group; the thread a reply carries (``thread_of``), when
the group allows it, and the answer a bare mention asks about, read once written
(``being_written``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from handlers.failures import Asker
from handlers.groups.answer import GroupAnswer
from handlers.groups.telling import ask_as_yourself
from handlers.replies import forum_topic, replied_context

if TYPE_CHECKING:
    from aiogram.types import Message

    from common.texts import Catalogs, Texts
    from handlers.groups.kit import GroupKit
    from handlers.sinks import Editors
    from services.answers import Said
    from services.groups import GroupSettings

log = structlog.get_logger("veil.groups")


async def answer_in_group(
    message: Message,
    question: str,
    texts: Texts,
    kit: GroupKit,
    *,
    context: tuple[Said, ...] | None = None,
) -> None:
    """Start the reply to ``message`` with the answer to ``question``, streamed by paced edits.

    ``context``: the turns before the question (a bare mention's: the message it asks about),
    else the thread the message replies to.

    The answer runs detached from the update (``ChatService.detach``): it waits for the
    group's turn, then posts its placeholder and streams, while the update is already freed.
    """
    user = message.from_user
    if user is None or not kit.editors.answered.first((message.chat.id, message.message_id)):
        return  # no asker, or delivered again: it is answered (or being answered) already
    settings = await kit.groups.settings(message.chat.id)
    if not settings.answers:
        return
    if message.sender_chat is not None:
        await ask_as_yourself(message, texts, kit.editors)
        return
    asking = (message.chat.id, user.id)
    previous = kit.asking.get(asking)
    if previous is not None and not previous.written:
        # One question a member at a time in a group: a burst of mentions would otherwise be
        # queued, and answered, ahead of everyone who asks after it. Once their answer is
        # written they may ask again: the answer stands whole before Telegram says it took the
        # last edit (a flood wait, a cut answer's note at the group's pace), and it is read.
        log.info("groups.asked_again")
        await kit.editors.tell_one(
            message.chat.id,
            user.id,
            texts("group_wait_your_turn"),
            reply_to=message.message_id,
            markup=None,
            thread_id=forum_topic(message),
        )
        return
    queued = any(chat_id == message.chat.id for chat_id, _ in kit.asking)
    answer = GroupAnswer(
        kit,
        texts,
        Asker(message.chat.id, user.id, message.message_id, forum_topic(message)),
        user.language_code,
        question,
        thread_of(message, kit.editors, settings, texts.catalogs) if context is None else context,
        threads_on(message, settings) if context is None else being_written(message, kit.editors),
        asks_about=context is not None,
        queued=queued,
        basic=message.chat.type == "group",
    )
    kit.asking[asking] = answer  # let go by ``answer.run`` however it ends: nothing raises between
    kit.chat.detach(answer.run(), answer.failed)


def failed_answer(message: Message, editors: Editors) -> bool:
    """Whether ``message`` replies to the placeholder of an answer that failed before any text.

    Such a placeholder ends an empty thread (``GroupAnswer._run``): a bare mention about it
    would ask the model about the placeholder, or the failure told in it, and be charged.
    """
    replied = message.reply_to_message
    return replied is not None and editors.chains.get(message.chat.id, replied.message_id) == ()


def thread_of(
    message: Message, editors: Editors, settings: GroupSettings, catalogs: Catalogs
) -> tuple[Said, ...]:
    """The turns a reply carries: the thread behind the answer it replies to, if allowed."""
    replied = message.reply_to_message
    if replied is None or not settings.reply_context:
        return ()
    known = editors.chains.get(message.chat.id, replied.message_id)
    if known is not None:
        return known
    return replied_context(message, editors.bot.id, catalogs)


def threads_on(message: Message, settings: GroupSettings) -> int | None:
    """The message whose thread ``message`` goes on, if the group lets replies carry one."""
    replied = message.reply_to_message
    if replied is None or not settings.reply_context:
        return None
    return replied.message_id


def being_written(message: Message, editors: Editors) -> int | None:
    """The answer of Veil's that ``message`` replies to, if it was not written yet when sent.

    A bare mention asks about the message it replies to, read as Telegram shows it; an answer
    still streaming showed its placeholder (or a part): it is read in the mention's turn, once
    written (``GroupAnswer._thread``). None for any other message, and an answer written.

    An answer that failed before any text (its thread empty) is not written: the mention found
    it still streaming (``failed_answer`` said no), and it failed while the group's settings
    were read. Read as shown, the placeholder went to the model as what to comment on, charged;
    read in its turn, the empty thread has nothing to ask (``GroupAnswer._nothing_to_ask``).
    """
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != editors.bot.id:
        return None
    if editors.chains.get(message.chat.id, replied.message_id):
        return None  # written: read as shown
    return replied.message_id
