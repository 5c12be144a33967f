"""Members' commands in a group: ``/stop`` (``/cancel``), ``/help``, ``/terms``, ``/paysupport``.

Each is told to the member who sent it alone, at the group's pace, as notices are
(``tell_alone``): a public reply to a command would let one member flood the group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from handlers.groups.posted import place_of, stop_tag, through_veil
from handlers.groups.telling import tell_alone
from handlers.replies import forum_topic

if TYPE_CHECKING:
    from aiogram.filters import CommandObject
    from aiogram.types import Message

    from common.texts import Texts
    from handlers.groups.kit import GroupKit

log = structlog.get_logger("veil.groups")


async def cmd_stop(message: Message, command: CommandObject, texts: Texts, kit: GroupKit) -> None:
    """``/stop`` or ``/cancel`` in a group: the sender's own answer there stops, as its button.

    Only theirs, in this group and this forum topic (``GroupAnswer.stop``), a question of
    theirs to the group or an inline answer they posted there (``posted``): never another
    member's, nor theirs in another group, topic or their private chat. With nothing of theirs
    to stop, ``/stop@veil`` is told so, alone (they named Veil: a word back is owed, and a
    notice to one person does not disturb the group), and so is a bare ``/stop``: the group's
    command menu holds it, and Telegram's apps send a command tapped there bare where the group
    has one bot, so a member who tapped it is owed a word as one who asked bare for ``/help``
    (were it typed for another bot, the notice still reaches that member alone). A bare
    ``/cancel``, in no menu of Veil's in a group and many bots' own, stays silent.
    One replying to another member's answer (or question) in progress is meant for it,
    as its button pressed by them: it stops nothing, and they are told so alone. One sent as a
    chat (an anonymous admin, a channel) has no answer to stop, and a word back to a chat is
    public: it gets nothing.
    """
    if not kit.editors.answered.first((message.chat.id, message.message_id)):
        return  # delivered again: done already
    user = message.from_user
    if user is None or message.sender_chat is not None:
        return  # a chat asks nothing (``ask_as_yourself``), and a reply to it is public
    if _replies_to_anothers(message, user.id, kit):
        log.info("groups.stop_not_yours")
        await tell_alone(message, texts("stop_not_yours"), kit.editors)
        return
    if await _stopped(message, user.id, texts, kit):
        return
    if command.mention is None and command.command.lower() != "stop":
        return  # a bare /cancel: more likely another bot's
    if not (await kit.groups.settings(message.chat.id)).answers:
        return
    await tell_alone(message, texts("group_nothing_to_stop"), kit.editors)


async def _stopped(message: Message, user_id: int, texts: Texts, kit: GroupKit) -> bool:
    """Whether an answer of the sender's in this group and topic stopped, or was withdrawn.

    Their question to the group (``GroupAnswer.stop``), else an inline answer of theirs posted
    there, stopped as its button would (``ChatService.cancel`` with its tag, ``posted``): the
    part shown stays, charged, or the message says it stopped. Their answer elsewhere carries
    another tag, and stops not.
    """
    answer = kit.asking.get((message.chat.id, user_id))
    if answer is not None and answer.asker.thread_id == forum_topic(message):
        stopped = answer.stop()
        if stopped is not None:
            log.info("groups.stopped_by_command", how=stopped)
            if stopped == "withdrawn":
                await tell_alone(message, texts("group_question_withdrawn"), kit.editors)
            return True
    tags = kit.inline_posts.tags(place_of(message, user_id))
    if any(kit.chat.cancel(user_id, stop_tag=tag) for tag in tags):
        log.info("groups.stopped_by_command", how="inline")
        return True
    return False


def _replies_to_anothers(message: Message, user_id: int, kit: GroupKit) -> bool:
    """Whether ``message`` replies to another member's question, or its answer, in progress.

    Such a ``/stop`` is meant for that answer, as its stop button pressed would be: it stops
    nothing of the sender's (their own question waiting for its turn was withdrawn by it).
    An answer in progress until its last edit is confirmed (``GroupKit.asking``): one written
    whole may show its stop button still, its final edit waiting out a flood. An inline answer
    another member posted through Veil is in progress while the message replied to, as Telegram
    hands it, shows its stop button (``posted``): the answer's last edit takes the button away.
    """
    replied = message.reply_to_message
    if replied is None:
        return False
    if (
        through_veil(replied, kit.editors.bot)
        and replied.from_user is not None
        and replied.from_user.id != user_id
        and stop_tag(replied) is not None
    ):
        return True
    for (chat_id, asker), answer in kit.asking.items():
        if chat_id != message.chat.id or asker == user_id:
            continue
        shown = answer.shown
        if replied.message_id == answer.asker.message_id or (
            shown is not None and shown.message_id == replied.message_id
        ):
            return True
    return False


async def cmd_help(message: Message, command: CommandObject, texts: Texts, kit: GroupKit) -> None:
    """``/help`` or ``/start@veil`` in a group: how to use Veil here, told alone.

    They were silent in a group, as if Veil were broken. ``/help`` is in the group's command
    menu, and a tap on it sends it bare where Veil is the group's only bot (the apps add
    ``@veil`` only among several): a bare ``/help`` is told too, to its sender alone, so
    nothing shows in the group even where another bot answers it as well. A bare ``/start``
    stays silent (not in the menu; more likely another bot's). So is one in a group that
    turned answers off, as the usage line is there. One sent as a chat (an anonymous admin, a
    channel) cannot be told alone: a public reply each, kept, let a channel fill the group
    with Veil's help, at its pace; it gets nothing (a question sent so is told to ask as
    oneself, ``ask_as_yourself``).
    """
    if message.sender_chat is not None:
        return
    if command.mention is None and command.command.lower() != "help":
        return
    if not kit.editors.answered.first((message.chat.id, message.message_id)):
        return
    if (await kit.groups.settings(message.chat.id)).answers:
        await tell_alone(message, texts("group_help"), kit.editors)


async def cmd_terms(
    message: Message, texts: Texts, kit: GroupKit, terms_text: str | None = None
) -> None:
    """``/terms`` in a group: the terms, told to the member who asked alone (``tell_alone``).

    A public reply a command, outside the group's pace, would let one member flood the group.
    """
    await tell_alone(message, terms_text or texts("terms"), kit.editors)


async def cmd_paysupport(
    message: Message, texts: Texts, kit: GroupKit, paysupport_text: str | None = None
) -> None:
    """``/paysupport`` in a group: told to the member who asked alone, as ``/terms`` is."""
    await tell_alone(message, paysupport_text or texts("paysupport"), kit.editors)
