"""Groups Veil is a member of: it answers when mentioned, when replied to, or to ``/ask``.

Anything else in a group is not for Veil, and it stays silent (with privacy mode on, Telegram
only sends it those messages anyway). An answer is a reply to the question that streams by
editing at the group's pace (into a rich message where Telegram takes one, ``bot.editing``);
answers in one group go one at a time, in the order asked, so a burst of mentions stays within
Telegram's 20 messages a minute per group. It is charged to the
asker, a one-off (nothing from or to their private history); a reply to one of Veil's answers
carries that thread as context when the group allows it. The answer runs detached from its
update (``ChatService.detach``), waiting for the group's turn in a task of its own, so a queue
of mentions does not keep their updates; a member has one question at a time there (another
one meanwhile is told to wait, until the answer is written whole), so one member's burst is not
answered ahead of everyone else. A question whose asker left the group, or was banned, while it
waited behind another answer is let go in its turn, unanswered and uncharged (``_asker_gone``:
one look-up of Telegram's, never waited out; a second, as it waits, only in a channel's
discussion group that takes anyone's comments, serving the turn too when Telegram answers it
once the turn came). Notices for one person (no credit, busy, the usage line, "admins only",
the apology for a bug) go to that person only, at the group's pace and in their forum topic, as
the errors router tells them (``handlers.failures``); a failure after part of the answer was
shown is noted under that part instead, which stays (it is paid for); one for an asker gone
from the group is dropped, a part shown still noted for anyone (``_GroupAnswer.failed``). A reply
deleted mid-answer (or the bot removed, or refused the right to write there) stops the answer;
a mention delivered again is not answered twice (``editors.answered``); one edited is answered
as sent, and its asker told so alone (``on_edited``). A question sent as a chat (an anonymous
admin, a channel) names no person to charge: it gets a reply asking to write as oneself.
Admins set the group's settings with ``/groupsettings`` (checked with getChatMember; one
posting as the group itself is an admin). ``/terms`` and ``/paysupport`` in a group are told
to the member alone, as notices are, and so is ``/help`` (or ``/start@veil``): how to
ask here. ``/stop`` or ``/cancel`` stops the sender's own answer in that group and topic, as
its button does (``cmd_stop``). A group upgraded to a supergroup (a new chat id) takes its
settings along (``on_upgraded``).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, cast

import structlog
from aiogram import F, Router
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandObject, or_f
from aiogram.methods import GetChat, GetChatMember
from aiogram.types import (
    ChatMember,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberRestricted,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ResultChatMemberUnion,
)

from common.logs import describe
from handlers.callbacks import GroupSet, GroupToggle
from handlers.commands import forwarded
from handlers.failures import Asker, apologise_outside, apology_key, tell_outside
from handlers.replies import (
    EDITS_REMEMBERED,
    forum_topic,
    names_veil,
    new_tag,
    one_off,
    replied_context,
    replies_to_unseen,
    stop_keyboard,
    unread,
    went_out,
    without_mentions,
)
from models.outbox import Outbound
from services.answers import Shown
from services.errors import AnswerInProgress, InsufficientCredit, VeilError
from services.fitting import quoted
from services.groups import Posting
from services.kept import Firsts
from services.questions import Question

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from aiogram import Bot
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import TelegramMethod
    from aiogram.types import CallbackQuery, Message, MessageEntity, User

    from common.texts import Catalogs, Texts
    from handlers.sinks import EditedAnswer, Editors
    from services.answers import Said
    from services.chat import ChatService
    from services.groups import Groups, GroupSetting, GroupSettings

log = structlog.get_logger("veil.groups")

ADMINS = frozenset({"creator", "administrator"})
MEMBER_WAIT = 3.0  # seconds a look-up of whether an asker stayed may take (``at_once``)
# Telegram not saying what a member is (refused, a flood wait, unreadable, not within the wait).
UNSAID = (TelegramAPIError, ClientDecodeError, TimeoutError)
GROUPS_REMEMBERED = 10_000  # supergroups whose kind (``GroupKit.members_only``) is remembered
# How long a getChat that failed (``GroupKit.members_only``) is not asked again, in seconds.
# Telegram refusing (400 "chat not found", 403 the bot removed) is its considered answer about
# the chat, which asking again within minutes does not change; a 5xx, a network failure, an
# unreadable reply or one not within ``MEMBER_WAIT`` is Telegram (or the path to it) passing
# trouble, usually over in seconds: asked again a minute on. Meanwhile a question there is
# looked up as where Telegram does not say what the group is.
KIND_REFUSED_FOR = 600.0
KIND_UNSAID_FOR = 60.0
KIND_REFUSALS = (TelegramBadRequest, TelegramForbiddenError, TelegramNotFound)
# What an asker was in the group as they asked (``_GroupAnswer._joined``); None: not known.
Joined = Literal["in", "out", "members_only"] | None
GROUPS = frozenset({"group", "supergroup"})
# Telegram refusing a message in a group: the replied message deleted, the bot removed or muted,
# the group upgraded to a supergroup (a new chat, where the question is not): nobody to tell.
REFUSED = (TelegramBadRequest, TelegramForbiddenError, TelegramMigrateToChat)
TOPIC_CLOSED = "TOPIC_CLOSED"  # Telegram's description of a send into a closed forum topic
# Failures of an answer as it begins (the asker's credit, their answer elsewhere): its asker was
# in the group a moment before, asking or looked up in their turn, and is not looked up again.
BEGINNING = (InsufficientCredit, AnswerInProgress)
# Placeholders posted for one answer at most: one Telegram took without naming it is left.
PLACEHOLDER_TRIES = 2
_ASK = Command("ask", ignore_case=True)
T = TypeVar("T")


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
    failed before any text: ``_failed_answer``) gets the usage line, unless the group turned
    answers off.
    """
    if await _media_refused(message, texts, kit):
        return
    if question:
        await answer_in_group(message, question, texts, kit)
        return
    context = replied_context(message, kit.editors.bot.id, texts.catalogs)
    if not context or _failed_answer(message, kit.editors):
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


async def cmd_stop(message: Message, command: CommandObject, texts: Texts, kit: GroupKit) -> None:
    """``/stop`` or ``/cancel`` in a group: the sender's own answer there stops, as its button.

    Only theirs, in this group and this forum topic (``_GroupAnswer.stop``): never another
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
    answer = kit.asking.get((message.chat.id, user.id))
    if answer is not None and answer.asker.thread_id == forum_topic(message):
        stopped = answer.stop()
        if stopped is not None:
            log.info("groups.stopped_by_command", how=stopped)
            if stopped == "withdrawn":
                await tell_alone(message, texts("group_question_withdrawn"), kit.editors)
            return
    if command.mention is None and command.command.lower() != "stop":
        return  # a bare /cancel: more likely another bot's
    if not (await kit.groups.settings(message.chat.id)).answers:
        return
    await tell_alone(message, texts("group_nothing_to_stop"), kit.editors)


def _replies_to_anothers(message: Message, user_id: int, kit: GroupKit) -> bool:
    """Whether ``message`` replies to another member's question, or its answer, in progress.

    Such a ``/stop`` is meant for that answer, as its stop button pressed would be: it stops
    nothing of the sender's (their own question waiting for its turn was withdrawn by it).
    An answer in progress until its last edit is confirmed (``GroupKit.asking``): one written
    whole may show its stop button still, its final edit waiting out a flood.
    """
    replied = message.reply_to_message
    if replied is None:
        return False
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


def _outside(member: ChatMember) -> bool:
    """Whether ``member`` is not in the group: left (or never joined), or restricted outside it."""
    return isinstance(member, ChatMemberLeft) or (
        isinstance(member, ChatMemberRestricted) and not member.is_member
    )


async def at_once(bot: Bot, method: TelegramMethod[T]) -> T:
    """``method`` asked of Telegram once, within ``MEMBER_WAIT``: a flood wait is not waited out.

    For the look-ups that decide whether an asker is still in the group: a courtesy, never a
    gate. Through the session's retries a flood wait was waited out with the group's turn held
    (up to ``MEMBER_WAIT``, every answer queued behind it waiting too); asked once, Telegram's
    429 is an answer like any other refusal, and the question is answered at once. The call
    goes past the session's middlewares (its retries among them), so it is not counted in the
    Bot API metrics. A 401 is handed to them all the same (``told_refused``): a webhook bot
    learns from it that its token was revoked (and the metrics count it). Within the same
    wait: the token check it makes (``getMe``, through the retries) held the group's turn
    for as long as it took; one not done by then is dropped, and the next call that goes
    through the session (the placeholder) is checked instead.
    """
    async with asyncio.timeout(MEMBER_WAIT):
        try:
            return await bot.session.make_request(bot, method)
        except TelegramUnauthorizedError as exc:
            return await told_refused(bot, method, exc)


async def told_refused(bot: Bot, method: TelegramMethod[T], exc: TelegramUnauthorizedError) -> T:
    """Raise ``exc``, ``method``'s 401, through the session's middlewares, as if made there.

    A webhook bot gets its updates after its token is revoked: only its own calls are refused,
    and the middleware that watches them for a 401 (``bot.conflict.RefusedToken``) asks
    Telegram about the token and stops the bot. A look-up made past the middlewares (``at_once``)
    left that to the next call that went through them, if any came. Nothing is asked again
    here: the middlewares see the refusal Telegram gave.
    """

    async def refused(bot: Bot, method: TelegramMethod[T]) -> NoReturn:
        del bot, method  # the chain's own: the refusal is Telegram's, ``exc``
        raise exc

    chain: NextRequestMiddlewareType[T] = bot.session.middleware.wrap_middlewares(refused)
    return cast("T", await chain(bot, method))


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


class GroupKit:
    """What a group answer needs from the bot: the chat service, the editors, the settings.

    ``asking``: (group, member) → the answer to their question waiting for its group's turn or
    being written; let go once written (``_GroupAnswer.written``).
    """

    def __init__(self, chat: ChatService, editors: Editors, groups: Groups) -> None:
        self.chat = chat
        self.editors = editors
        self.groups = groups
        self.asking: dict[tuple[int, int], _GroupAnswer] = {}
        # (group, message) of the edited questions told of, newest ``EDITS_REMEMBERED`` kept
        self.edits_told: Firsts[tuple[int, int]] = Firsts(EDITS_REMEMBERED)
        # supergroup → what ``members_only`` learnt, the newest ``GROUPS_REMEMBERED`` kept
        self._members_only: dict[int, bool] = {}
        # supergroup → until when (``time.monotonic``) a getChat that failed is not asked
        # again, and whether Telegram refused it (``KIND_REFUSALS``)
        self._kind_unsaid: dict[int, tuple[float, bool]] = {}
        # supergroup → the getChat about it in flight, which every question there then waits for
        self._kind_asking: dict[int, asyncio.Future[bool | None]] = {}
        # When (``time.monotonic``) the flood wait Telegram last set on a look-up ends.
        self._flood_ends = 0.0

    async def look_up(self, method: TelegramMethod[T]) -> T:
        """``method`` asked ``at_once``, unless a flood wait Telegram set on a look-up lasts.

        ``at_once`` goes past the session's retries, which keep every other call out of a
        flood wait: a look-up within one would make it longer (Telegram counts the calls
        there too), and each queued question in its turn made one. Until it ends, a look-up
        raises ``TelegramRetryAfter`` without asking: the question is answered as when
        Telegram does not say.
        """
        left = self._flood_ends - time.monotonic()
        if left > 0:
            raise TelegramRetryAfter(method, "the flood wait is not over", math.ceil(left))
        try:
            return await at_once(self.editors.bot, method)
        except TelegramRetryAfter as exc:
            self._flood_ends = max(self._flood_ends, time.monotonic() + exc.retry_after)
            raise

    async def members_only(self, chat_id: int, *, basic: bool, fresh: bool = False) -> bool | None:
        """Whether only the group's members can write in it; None: Telegram did not say.

        A basic group, always. A supergroup too, unless it is a channel's discussion group
        (``linked_chat_id``) that lets anyone comment without joining (``join_to_send_messages``
        off): there, one out of the group may have asked from outside it. Asked of Telegram
        (getChat) once a supergroup. ``fresh``: a group remembered as members-only is asked
        again (its admins may have opened it to comments since); one remembered as open is
        not: were it closed since, one out of it is taken for a commenter, as where Telegram
        does not say. A getChat that failed is not asked again for a while
        (``KIND_REFUSED_FOR``, ``KIND_UNSAID_FOR``): each question waiting there made one,
        each failing as the one before it. Nor is one in flight: a question there meanwhile
        waits for its answer (two made at once each failed, each a call).
        """
        if basic:
            return True
        remembered = self._members_only.get(chat_id)
        if remembered is not None and not (fresh and remembered):
            return remembered
        if self._kind_unsaid.get(chat_id, (0.0, False))[0] > time.monotonic():
            return None
        asking = self._kind_asking.get(chat_id)
        if asking is None:
            asking = self._kind_asking[chat_id] = asyncio.ensure_future(self._ask_kind(chat_id))
            asking.add_done_callback(lambda _: self._kind_asking.pop(chat_id, None))
        return await asyncio.shield(asking)  # one asker's cancel is not the others'

    async def _ask_kind(self, chat_id: int) -> bool | None:
        """``members_only``'s getChat, its answer or its failure remembered."""
        try:
            chat = await self.look_up(GetChat(chat_id=chat_id))
        except UNSAID as exc:
            log.info("groups.kind_unknown", error=type(exc).__name__)
            if not isinstance(exc, TelegramRetryAfter):  # kept by ``look_up`` already
                refused = isinstance(exc, KIND_REFUSALS)
                wait = KIND_REFUSED_FOR if refused else KIND_UNSAID_FOR
                _remember(self._kind_unsaid, chat_id, (time.monotonic() + wait, refused))
            return None
        only = chat.linked_chat_id is None or bool(chat.join_to_send_messages)
        self._kind_unsaid.pop(chat_id, None)
        _remember(self._members_only, chat_id, only)
        return only

    def posted(self, chat_id: int) -> None:
        """Telegram took a post of the bot's in ``chat_id``: a getChat refusal there is stale.

        Telegram refuses getChat (403, 400 "chat not found") about a group the bot was taken
        out of; put back, it is in the group again, and its refusal, kept ``KIND_REFUSED_FOR``,
        had each question looked up as where Telegram does not say (an asker who left taken
        for a commenter). Passing trouble is kept its minute: a post says nothing of it.
        """
        if self._kind_unsaid.get(chat_id, (0.0, False))[1]:
            del self._kind_unsaid[chat_id]


def _remember(kept: dict[int, T], chat_id: int, value: T) -> None:
    """Keep ``value`` for ``chat_id`` as the newest; the oldest beyond ``GROUPS_REMEMBERED`` go."""
    kept.pop(chat_id, None)
    kept[chat_id] = value
    if len(kept) > GROUPS_REMEMBERED:
        del kept[next(iter(kept))]


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
    answer = _GroupAnswer(
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


@dataclass(eq=False)
class _GroupAnswer:
    """One group answer, detached from its update: plain fields only.

    ``shown`` is its placeholder while it streams (where a failure is told, to the asker);
    ``sink`` what streams into it (a failure after part of the answer is shown is noted there).
    """

    kit: GroupKit
    texts: Texts
    asker: Asker
    language: str | None
    question: str
    context: tuple[Said, ...]
    replied_to: int | None = None  # the answer it replies to, whose thread may be known later
    asks_about: bool = False  # a bare mention: about that answer alone, not the thread behind it
    queued: bool = False  # asked while another answer in the group waited or was written
    basic: bool = False  # asked in a basic group (only members write there), not a supergroup
    joined: Joined = None  # what the asker was in the group as they asked, once learnt
    turn_came: bool = False  # the question's turn came: a reading made since serves it too
    read_in_turn: ResultChatMemberUnion | None = None  # ``_joined``'s, once the turn came
    shown: Shown | None = None
    sink: EditedAnswer | None = None
    stop_tag: str | None = None  # its stop button's, once its turn came
    # Its placeholder on the way; withdrawn by ``/stop`` before the model was asked (``stop``)
    posting: Posting = field(default_factory=Posting)

    async def run(self) -> None:
        """In the group's turn: the placeholder, the answer streamed into it, its note.

        Then (or failing) the asker may ask in the group again.
        """
        # What the asker was in the group as they asked, learnt while the question waits.
        joined = asyncio.create_task(self._joined()) if self.queued else None
        try:
            await self._run(joined)
        finally:
            if joined is not None:
                joined.cancel()
            self._free_asker()

    def stop(self) -> Literal["stopped", "withdrawn"] | None:
        """``/stop`` from the asker: stop this answer as its button would; None: nothing to stop.

        Streaming, it stops as a pressed stop button stops it (``ChatService.cancel`` with the
        button's tag, never another answer of the asker's): the part shown stays, charged, or
        the placeholder says it stopped. Waiting for the group's turn, or in it for the
        placeholder's slot (the group's pace, a flood wait), it is withdrawn: let go unposted,
        unasked and uncharged ("withdrawn": the asker is told alone, nothing public says it),
        and the asker may ask again at once. Once the placeholder is on its way (sent, not yet
        answered), it ends there as one stopped before a word; unless Telegram refuses that
        try (a flood wait), or takes it without naming it: then it is let go as a withdrawn
        one, its asker told alone (``_placeholder``). A placeholder posted and then edited to
        say so took two of the group's slots, and the asker heard nothing until then.
        """
        if self.written:
            return None
        if self.sink is None:
            if not self.posting.withdraw():
                return "stopped"
            self._free_asker()
            return "withdrawn"
        return (
            "stopped" if self.kit.chat.cancel(self.asker.user_id, stop_tag=self.stop_tag) else None
        )

    def _free_asker(self) -> None:
        """Let the asker ask in the group again: this question of theirs is done with."""
        asking = (self.asker.chat_id, self.asker.user_id)
        if self.kit.asking.get(asking) is self:  # not their next question, asked since
            del self.kit.asking[asking]

    @property
    def withdrawn(self) -> bool:
        """Whether ``/stop`` came before the model was asked (``stop``)."""
        return self.posting.withdrawn

    @property
    def written(self) -> bool:
        """Whether the model's answer is whole in the group (its last edit made or under way)."""
        return self.sink is not None and self.sink.written

    async def _run(self, joined: asyncio.Task[Joined] | None) -> None:
        """The answer in the group's turn; what it ends remembered (``ReplyChains``).

        An answer that showed no text ends no thread: a reply to its placeholder, sent while
        it stood, carried the placeholder as Veil's words, quoted above the question, and so
        did every reply down that reply's thread. Remembered before the turn is let go, so such
        a reply, next in the turn, knows it; a bare mention about it has nothing to ask.
        """
        editors, texts, chat_id = self.kit.editors, self.texts, self.asker.chat_id
        async with editors.turn(chat_id):
            if self.withdrawn or (joined is not None and await self._asker_gone(joined)):
                return  # withdrawn as it waited (``stop``): nothing of Telegram's to ask
            thread = self._thread()
            if self.asks_about and not thread:  # about an answer that failed before any text
                await self._nothing_to_ask()
                return
            tag = self.stop_tag = new_tag()
            opened = await self._open(tag)
            if opened is None:
                return
            placeholder, sink = opened
            context, replied = one_off(thread)
            asked = Question(
                self.asker.user_id,
                self.language,
                self.question,
                stop_tag=tag,
                context=context,
                keep_history=False,
                replied=replied,
                shown_in=Outbound.message(chat_id, placeholder),  # a restart edits it in there
            )
            self.sink = sink
            try:
                answer = await self.kit.chat.answer(asked, sink)
            except Exception:
                if not await sink.finished():  # the placeholder is taken back (``failed``)
                    editors.chains.remember(chat_id, placeholder, ())
                raise
            # The final edit, if a flood wait outlasted the answer; then the answer is delivered.
            shown = await sink.finished()
            if answer.text:
                await self.kit.chat.deliveries.delivered(answer.request_id, shown=shown)
            self.shown = None
            if not answer.text:  # never a placeholder left with its stop button
                editors.chains.remember(chat_id, placeholder, ())
                await sink.say(texts("cancelled" if answer.stopped else "error_backend"))
                return
            if answer.finish_reason == "length" and not answer.stopped:
                await sink.note(texts("answer_cut_here"))
        question = self.question
        if replied is not None and not context:  # an answer alone: it went quoted before it
            question = quoted(replied, self.question)
        said = (*context, ("user", question), ("assistant", answer.text))
        editors.chains.remember(chat_id, placeholder, said)

    async def _open(self, tag: str) -> tuple[int, EditedAnswer] | None:
        """The placeholder with the stop button ``tag``, posted, and the sink streaming into it.

        None: nobody to answer (``_placeholder``), or the asker stopped it (``stop``): as it
        waited for its turn (they were told, nothing is posted), or as the placeholder went
        up, which then says it stopped, as one stopped by its button before a word does.
        Nothing is asked of the model or charged either way.
        """
        editors, texts, chat_id = self.kit.editors, self.texts, self.asker.chat_id
        stop = stop_keyboard(texts, tag)
        placeholder = await self._placeholder(stop)
        if placeholder is None:
            return None
        self.kit.posted(chat_id)
        self.shown = Shown(self.asker.user_id, chat_id=chat_id, message_id=placeholder)
        sink = await editors.in_chat(
            chat_id,
            placeholder,
            stop_markup=stop,
            more_label=texts("read_whole"),
            gone=partial(self.kit.chat.cancel, self.asker.user_id, stop_tag=tag),
        )
        if self.withdrawn:  # ``/stop`` as the placeholder went up
            log.info("groups.withdrawn", posted=True)
            editors.chains.remember(chat_id, placeholder, ())
            self.shown = None
            await sink.say(texts("cancelled"))
            return None
        return placeholder, sink

    async def _asker_gone(self, joined: Awaitable[Joined] | None) -> bool:
        """Whether the asker left the group, or was banned, since they asked.

        Then the question is let go in its turn (``joined``: what they were as they asked,
        learnt while it waited): the answer would go to a group they no longer read (or whose
        admins banned them), charged to them. A failure is not told them either (``failed``).
        Asked of Telegram once, in the turn (``at_once``), and once more as the question waits
        only where one out of the group could have asked it (``_joined``); that reading serves
        the turn too when Telegram gave it once the turn had come (a short wait, or a slow
        look-up): a second one, a moment later, would say the same. Out of the group now
        is no reason by itself: a channel's discussion group takes comments from anyone, and
        Telegram lists one who never joined as ``left``; only one who was in it when they asked,
        or is banned now, is gone. Telegram failing to say, or not saying within
        ``MEMBER_WAIT`` seconds, is no reason to drop it either (``groups.asker_unknown``,
        naming why): it is answered, or told.
        """
        asker = self.asker
        try:
            async with asyncio.timeout(MEMBER_WAIT):
                if joined is not None:
                    self.turn_came = True
                    self.joined = await joined
                now = self.read_in_turn
                if now is None:
                    now = await self.kit.look_up(
                        GetChatMember(chat_id=asker.chat_id, user_id=asker.user_id)
                    )
        except UNSAID as exc:
            log.info("groups.asker_unknown", error=type(exc).__name__)
            return False
        finally:
            # The turn's alone, used or not (a wait that ran out as it came): a failure's
            # look-up later asks again.
            self.read_in_turn = None
        gone = isinstance(now, ChatMemberBanned) or (_outside(now) and await self._was_in())
        if gone:
            log.info("groups.asker_gone", status=now.status)
        return gone

    async def _joined(self) -> Joined:
        """What the asker was in the group as they asked, learnt while the question waits.

        Where only members write (``GroupKit.members_only``), they were in it: nothing to ask
        of them. Elsewhere, or Telegram not saying which, as Telegram lists them now.
        """
        asker = self.asker
        if await self.kit.members_only(asker.chat_id, basic=self.basic):
            return "members_only"
        method = GetChatMember(chat_id=asker.chat_id, user_id=asker.user_id)
        try:
            member = await self.kit.look_up(method)
        except UNSAID:
            return None
        if self.turn_came:  # Telegram said it once the turn came: what they are in it too
            self.read_in_turn = member
        return "out" if _outside(member) else "in"

    async def _was_in(self) -> bool:
        """Whether the asker, out of the group now, was in it as they asked.

        Learnt as they waited (``joined``). Else as the group takes messages now, asked of
        Telegram again where it is remembered as members-only: its admins may have opened it
        to comments since it was taken for such, by this question as it waited or by an
        earlier one (a failed answer's notice, ``failed``, is dropped for one taken as gone),
        and one who never joined asked. One remembered as open is not asked again
        (``GroupKit.members_only``).
        """
        if self.joined in {"in", "out"}:
            return self.joined == "in"
        return bool(await self.kit.members_only(self.asker.chat_id, basic=self.basic, fresh=True))

    def _thread(self) -> tuple[Said, ...]:
        """The turns before the question, as known in its turn.

        A reply to an answer still streaming when it came waits for that answer (one at a time
        in a group): its thread is known once its turn comes, not when it was sent (then only
        the placeholder, or a part of the answer, was there to read). A bare mention asking
        about such an answer reads the answer alone, once written.
        """
        if self.replied_to is None:
            return self.context
        known = self.kit.editors.chains.get(self.asker.chat_id, self.replied_to)
        if known is None:
            return self.context
        return known[-1:] if self.asks_about else known

    async def _nothing_to_ask(self) -> None:
        """A bare mention about an answer that failed before any text: the usage line, alone.

        Its thread is empty (``_run``): it would ask the model about nothing, and be charged.
        """
        await self._tell_asker("ask_usage")

    async def _tell_asker(self, key: str) -> None:
        """Tell the asker alone the text ``key``, in reply to their question (its topic)."""
        asker = self.asker
        await self.kit.editors.tell_one(
            asker.chat_id,
            asker.user_id,
            self.texts(key),
            reply_to=asker.message_id,
            markup=None,
            thread_id=asker.thread_id,
        )

    async def _placeholder(self, stop: InlineKeyboardMarkup) -> int | None:
        """Post the placeholder the answer streams into; its id, or None: nobody to answer.

        Nor one withdrawn by its asker as it waited for its turn, or in it for the slot it is
        posted in (``stop``, ``Editors.post``): nothing is posted. Nor one withdrawn as a try
        was in flight that Telegram refused with a flood wait or a 5xx, took without naming it,
        or whose reply the network lost or a proxy replaced: nothing more is posted, and the
        asker is told alone (``_told_withdrawn``), as for a stop before the first try; a fresh
        placeholder posted only to say "Stopped." took two of the group's slots, and a failure
        told ("send that again") asked them to send what they had just stopped.

        Telegram refusing it means the question was deleted before its turn came, the bot
        removed from the group, the group upgraded to a supergroup meanwhile (the question is
        not in the supergroup), or its forum topic closed (``not_answered``): nothing is asked
        of the model or charged. An asker who stopped it as that try was in flight, their
        question deleted, is told alone all the same (``_told_withdrawn``): their ``/stop``
        left the word to a placeholder that never came. One Telegram took
        but answered without naming it (its "ok", with a result that does not validate or
        names no message) is in the group, and the bot cannot edit it or take its stop button
        back: it is logged (``groups.placeholder_orphaned``) and the answer streams into a fresh
        placeholder, whose stop button it shares (the same answer: either stops it); a stop as
        that one waits for its slot withdraws it, as before the first try. A second
        one that comes back so is Telegram's path failing: it goes to ``failed``.
        """
        if self.withdrawn:  # by ``/stop`` as it waited (``stop``): the asker was told
            log.info("groups.withdrawn")
            return None
        editors, text = self.kit.editors, self.texts("group_placeholder")
        for attempt in range(PLACEHOLDER_TRIES):
            try:
                posted = await editors.post(
                    self.asker.chat_id,
                    text,
                    reply_to=self.asker.message_id,
                    markup=stop,
                    posting=self.posting,
                )
            except REFUSED as exc:
                await self._refused(exc)
                return None
            except ClientDecodeError as exc:
                last = attempt == PLACEHOLDER_TRIES - 1
                if went_out(exc) and not last:
                    log.warning("groups.placeholder_orphaned", error=type(exc).__name__)
                if self.posting.withdrawn:  # stopped as it went up: no fresh one to say so
                    await self._told_withdrawn()  # nor a failure told, for what they stopped
                    return None
                if not went_out(exc) or last:
                    raise
                self.posting.out = False  # the orphan is left; a stop now withdraws the next
            else:
                if posted is None:  # by ``/stop`` as it waited for its slot, or was refused
                    log.info("groups.withdrawn", posted=False)
                    await self._told_withdrawn()
                return posted
        return None  # pragma: no cover -- the last try returns or raises

    async def _refused(self, exc: Exception) -> None:
        """Telegram refused the placeholder (``not_answered``); an asker who stopped it is told.

        Its question deleted, their ``/stop`` as the try was in flight left the word to a
        placeholder that never came. Not where nothing of Veil's can reach them: the bot
        removed, the group upgraded, the topic closed.
        """
        not_answered(exc)
        if isinstance(exc, TelegramBadRequest) and TOPIC_CLOSED not in exc.message:
            await self._told_withdrawn()

    async def _told_withdrawn(self) -> None:
        """Tell the asker alone their question was withdrawn, if their ``/stop`` did not.

        A stop that came as the placeholder's try was in flight was left to the placeholder
        to tell ("Stopped."); Telegram refused that try (a flood wait, a 5xx not retried, the
        question deleted), and nothing went up.
        """
        if not self.posting.owed:
            return
        self.posting.owed = False
        self._free_asker()
        await self._tell_asker("group_question_withdrawn")

    async def failed(self, error: Exception) -> None:
        """As the errors router would: a notice for the asker alone, a bug's apology too.

        Not for an asker gone from the group since they asked (``_let_go``). A failure as the
        answer begins (``BEGINNING``) is told without asking Telegram: the asker was there a
        moment ago.
        """
        if not isinstance(error, BEGINNING) and await self._asker_gone(None):
            await self._let_go(error)
            return
        editors, shown = self.kit.editors, self.shown
        if isinstance(error, VeilError):
            await tell_outside(error, self.texts, editors, shown, self.asker, answer=self.sink)
        else:
            await apologise_outside(error, self.texts, editors, shown, self.asker, answer=self.sink)

    async def _let_go(self, error: Exception) -> None:
        """A failure of the answer of an asker gone from the group: nothing told to them.

        A notice for them alone cannot reach one out of the group (Telegram shows none to a
        non-member), and went up as a reply in it instead, naming one no longer there, to
        everyone who stayed: it is dropped (``groups.notice_dropped``), the placeholder taken
        back. A part of the answer shown stays, with a note for anyone under it: the one a
        model's failure leaves, or for any other failure (a bug, Telegram away) that it broke
        off there (``answer_failed_here``), not the asker's apology: the note a present
        asker's part gets beside their apology (``apologise_outside``). Without it the group
        read the part as if it were the whole answer. The failure is logged as ever (a bug
        with its trace).
        """
        sink = self.sink
        if sink is not None and await self._part_shown():
            if isinstance(error, VeilError):
                await tell_outside(error, self.texts, self.kit.editors, None, None, answer=sink)
                return
            apology_key(error)  # its log line: a bug, or Telegram away
            log.info("groups.notice_dropped", error=type(error).__name__, noted=True)
            await sink.note(self.texts("answer_failed_here"))
            return
        if self.shown is not None and self.shown.message_id is not None:
            await self.kit.editors.retract(self.asker.chat_id, self.shown.message_id)
        if not isinstance(error, VeilError):
            apology_key(error)  # its log line: a bug, or Telegram away
        log.info("groups.notice_dropped", error=type(error).__name__)

    async def _part_shown(self) -> bool:
        """Whether part of the answer is in the group; not when its final edit failed so."""
        if self.sink is None:
            return False
        try:
            return await self.sink.finished()
        except Exception:  # noqa: BLE001 -- the failure being told: told already
            return False


def _failed_answer(message: Message, editors: Editors) -> bool:
    """Whether ``message`` replies to the placeholder of an answer that failed before any text.

    Such a placeholder ends an empty thread (``_GroupAnswer._run``): a bare mention about it
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
    written (``_GroupAnswer._thread``). None for any other message, and an answer written.

    An answer that failed before any text (its thread empty) is not written: the mention found
    it still streaming (``_failed_answer`` said no), and it failed while the group's settings
    were read. Read as shown, the placeholder went to the model as what to comment on, charged;
    read in its turn, the empty thread has nothing to ask (``_GroupAnswer._nothing_to_ask``).
    """
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != editors.bot.id:
        return None
    if editors.chains.get(message.chat.id, replied.message_id):
        return None  # written: read as shown
    return replied.message_id


def settings_keyboard(texts: Texts, settings: GroupSettings) -> InlineKeyboardMarkup:
    """Two toggles, each showing its state."""
    rows = [
        [
            InlineKeyboardButton(
                text=texts(f"group_{setting}_{'on' if getattr(settings, setting) else 'off'}"),
                callback_data=GroupSet(
                    setting=setting, on="no" if getattr(settings, setting) else "yes"
                ).pack(),
            )
        ]
        for setting in ("answers", "reply_context")
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def is_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Whether ``user_id`` administers ``chat_id``, as Telegram says now."""
    member = await bot.get_chat_member(chat_id, user_id)
    return member.status in ADMINS


async def sent_by_admin(message: Message, bot: Bot) -> bool:
    """Whether an admin of the group sent ``message``.

    One sent as the group itself is an anonymous admin's (only admins can post so); one sent as
    a channel is anybody's; a person's, as Telegram says now (never asked about a pseudo-user).
    """
    if message.sender_chat is not None:
        return message.sender_chat.id == message.chat.id
    user = message.from_user
    return user is not None and await is_admin(bot, message.chat.id, user.id)


async def cmd_groupsettings(message: Message, bot: Bot, texts: Texts, kit: GroupKit) -> None:
    """Admins: the group's settings as toggles; anyone else: a short refusal.

    The panel is a public reply (every admin may use it) at the group's pace, as a notice to
    a chat is (``tell_chat``): sent at once, an admin tapping the command again and again
    spent the group's messages a minute, and met Telegram's 429s, ahead of members' answers.
    """
    if not await sent_by_admin(message, bot):
        await tell_alone(message, texts("group_admins_only"), kit.editors)
        return
    settings = await kit.groups.settings(message.chat.id)
    panel = settings_keyboard(texts, settings)
    await tell_chat(message, texts("group_settings"), kit.editors, panel)


async def on_group_set(
    query: CallbackQuery, callback_data: GroupSet, bot: Bot, texts: Texts, kit: GroupKit
) -> None:
    """An admin pressed a setting's button: set it as the button offered, show the new state."""
    await _change_setting(query, bot, texts, kit, callback_data.setting, callback_data.on == "yes")


async def on_group_toggle(
    query: CallbackQuery, callback_data: GroupToggle, bot: Bot, texts: Texts, kit: GroupKit
) -> None:
    """An admin pressed a panel's button from before ``GroupSet``: flip it, show the new state."""
    await _change_setting(query, bot, texts, kit, callback_data.setting, None)


async def _change_setting(  # noqa: PLR0913, PLR0917 -- the press, and what changes
    query: CallbackQuery,
    bot: Bot,
    texts: Texts,
    kit: GroupKit,
    setting: GroupSetting,
    on: bool | None,  # noqa: FBT001 -- None: flip
) -> None:
    """Change ``setting`` (to ``on``, or the other way) if an admin of a group pressed it.

    A press forged under another message (a private chat's, an inline one) changes nothing.
    Two presses at once both redraw the panel: the second redraw, unchanged, is no failure.
    The redraw goes at the group's pace (``Editors.redraw``), in the order the changes were
    made: the panel ends showing the last.
    """
    message = query.message
    if message is None or message.chat.type not in GROUPS:
        await query.answer()
        return
    if not await is_admin(bot, message.chat.id, query.from_user.id):
        await query.answer(texts("group_admins_only"), show_alert=True)
        return
    await query.answer()  # before the database: it may be slow to take the change
    if on is None:
        settings = await kit.groups.flip(message.chat.id, setting)
    else:
        settings = await kit.groups.set(message.chat.id, setting, on=on)
    panel = settings_keyboard(texts, settings)
    await kit.editors.redraw(message.chat.id, message.message_id, panel)


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


async def on_upgraded(message: Message, kit: GroupKit) -> None:
    """The group was upgraded to a supergroup, a chat with a new id: its settings go along.

    Telegram tells it twice: ``migrate_to_chat_id`` in the group, ``migrate_from_chat_id`` in
    the supergroup; whichever comes first moves them, the other finds nothing left to move.
    """
    if message.migrate_to_chat_id is not None:
        group, supergroup = message.chat.id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id is not None:
        group, supergroup = message.migrate_from_chat_id, message.chat.id
    else:  # pragma: no cover -- the filter lets only these through
        return
    log.info("groups.upgraded")
    await kit.groups.moved(group, supergroup)


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type.in_(GROUPS))
    router.message.register(on_unread, unread)  # first: nothing else may take what stands for it
    # A forwarded command is someone else's words, an inline bot's result that bot's: not run.
    own = ~F.forward_origin & ~F.via_bot
    router.message.register(cmd_ask, Command("ask", ignore_case=True), own)
    router.message.register(cmd_stop, Command("stop", "cancel", ignore_case=True), own)
    router.message.register(cmd_help, Command("help", "start", ignore_case=True), own)
    router.message.register(cmd_groupsettings, Command("groupsettings", ignore_case=True), own)
    router.message.register(cmd_terms, Command("terms", ignore_case=True), own)
    router.message.register(cmd_paysupport, Command("paysupport", ignore_case=True), own)
    router.message.register(on_upgraded, F.migrate_to_chat_id | F.migrate_from_chat_id)
    router.message.register(on_addressed, addressed)
    asked = or_f(Command("ask", ignore_case=True), addressed)
    router.edited_message.register(on_edited, F.chat.type.in_(GROUPS), own, asked)
    router.callback_query.register(on_group_set, GroupSet.filter())
    router.callback_query.register(on_group_toggle, GroupToggle.filter())
    return router
