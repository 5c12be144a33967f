"""Where edited answers come from: ``Editors`` makes their sinks, posts placeholders, tells.

One ``Editors`` serves the bot: it keeps the pacers (``bot.pacing``: a group's, its notices',
the inline messages'), posts a group answer's placeholder and makes the ``EditSink`` an inline,
guest or group answer streams into (``bot.editing``), lets one answer at a time stream in a
group (``turn``), and tells members notices at the group's pace (notices to one member take at
most half of a group's slots, ``NOTICE_SHARE``). Each of its calls is persisted through flood
waits and server errors (``_persist``) the way a final edit is.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections import Counter
from typing import TYPE_CHECKING

import structlog
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    EphemeralMessageParameters,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from bot.editing import FINAL_TRIES, EditSink, Look
from bot.pacing import Pace, Pacer, Pacers, Place
from bot.telegram import FLOOD_WAITS, RETRY_WANTED, UnreadableReply
from common.logs import describe
from services.answers import Answered, LongAnswers, ReplyChains, Showing
from services.groups import Posting

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from aiogram import Bot

    from models.outbox import Outbound
    from services.questions import Sent


log = structlog.get_logger("veil.editing")

# The share of a group's slots notices to one member (or a chat) may take (``Editors.tell_one``):
# half, so answers keep at least ten calls a minute at Telegram's twenty, however many commands
# members send; in a quiet group a notice goes at once, one right after it six seconds later.
NOTICE_SHARE = 0.5
# Seconds of flood waits a placeholder's tries wait out in all (``Editors.post``): as the
# session's retries did, a minute for each of ``FINAL_TRIES`` tries, before they moved here.
POST_FLOOD_WAIT = 60.0 * FINAL_TRIES
# What Telegram says to a send into a closed forum topic of a bot that is no admin there.
_TOPIC_CLOSED = "TOPIC_CLOSED"


async def _persist(
    call: Callable[[], Awaitable[object]], pacer: Pacer, *, paced: bool
) -> BaseException | None:
    """Make ``call`` until Telegram takes or refuses it; None, else why it did not go through.

    A flood wait holds the chat's pacer for as long as Telegram asked, and the call is tried
    again in the pacer's next slot; a 5xx, the network or a reply that is not the Bot API's is
    tried again too (an edit or a deletion made twice does no harm), ``FINAL_TRIES`` times in
    all. ``paced``: the first try waits for the pacer's slot as well. "Not modified" is taken.
    """
    failure: BaseException | None = None
    for attempt in range(FINAL_TRIES):
        if paced or attempt:
            await pacer.wait()
        try:
            await call()
        except TelegramRetryAfter as exc:
            pacer.back_off(exc.retry_after)
            failure = exc
        except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as exc:
            if isinstance(exc, UnreadableReply) and exc.taken:
                return None  # Telegram's "ok": it went through
            failure = exc
        except TelegramBadRequest as exc:
            return None if "not modified" in exc.message else exc
        except TelegramAPIError as exc:
            return exc
        else:
            return None
    return failure


def _notice_failed(exc: TelegramAPIError | ClientDecodeError, pacer: Pacer) -> None:
    """A notice Telegram refused is dropped (logged); a flood wait holds the chat's next call.

    One whose reply is not the Bot API's (a proxy's page) is dropped too; one Telegram took
    (its "ok", with a result that does not validate) went out: the member was told, and that
    is no failure. Either raised to the caller was a bug's traceback, and the member who had
    just been told was told "something went wrong" after it.
    """
    if isinstance(exc, TelegramRetryAfter):
        pacer.back_off(exc.retry_after)
    if isinstance(exc, UnreadableReply) and exc.taken:
        log.info("editing.notice_unreadable")
        return
    log.warning("editing.notice_failed", error=type(exc).__name__)


def _raise_flood(seconds: float) -> None:
    """A flood wait the session met (``FLOOD_WAITS``): raised to the caller, not waited out.

    Called as the session handles Telegram's ``TelegramRetryAfter``: that is raised again.
    """
    del seconds  # the refusal carries it
    flood = sys.exception()
    if not isinstance(flood, TelegramRetryAfter):  # pragma: no cover -- told of none
        return
    raise flood


class Editors:
    """Makes ``EditSink``s and posts placeholders, every call paced by its chat's ``Pacer``.

    Also keeps answers in one group in order: ``turn(chat_id)`` lets one answer at a time
    stream in a chat, first come first served. ``answers``, ``chains``, ``showing`` and
    ``answered`` are the memory ``services.answers`` describes.
    """

    def __init__(
        self, bot: Bot, pace: Pace, *, rich: bool = False, show_reasoning: bool = True
    ) -> None:
        self.bot = bot
        self.pace = pace
        self.rich = rich
        self.show_reasoning = show_reasoning
        self.group_pacers = Pacers(pace.group_per_minute)
        # Notices to one member (or a chat) wait for a slot of these before the group's own:
        # they take at most ``NOTICE_SHARE`` of the group's pace (``tell_one``).
        self.notice_pacers = Pacers(pace.group_per_minute * NOTICE_SHARE)
        self.inline_pacers = Pacers(pace.inline_per_minute)
        self._notices: set[asyncio.Task[None]] = set()
        # (chat, member or chat posting, text) of each notice waiting for its group's pace or
        # being sent
        self._telling: set[tuple[int, int, str]] = set()
        # (chat, message) of each placeholder left behind whose settling edit is on its way
        self._settling: set[tuple[int, int]] = set()
        self.answers = LongAnswers()
        self.chains = ReplyChains()
        self.showing = Showing()
        self.answered = Answered()
        self._turns: dict[int, asyncio.Lock] = {}
        self._in_turn: Counter[int] = Counter()  # answers holding or waiting for a chat's turn
        self._username: str | None = None

    @contextlib.asynccontextmanager
    async def turn(self, chat_id: int) -> AsyncIterator[None]:
        """Hold the chat's turn while one answer streams there.

        The turn is forgotten once no answer holds it or waits for it. Not once it is unlocked:
        it is, for a moment, as it is handed on (the next answer woken, not yet running), and an
        answer asking then took a fresh turn and streamed alongside, out of the order asked.
        """
        lock = self._turns.setdefault(chat_id, asyncio.Lock())
        self._in_turn[chat_id] += 1
        try:
            async with lock:
                yield
        finally:
            self._in_turn[chat_id] -= 1
            if not self._in_turn[chat_id]:
                del self._in_turn[chat_id], self._turns[chat_id]

    async def post(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int,
        markup: InlineKeyboardMarkup | None,
        posting: Posting | None = None,
    ) -> int | None:
        """Send a placeholder reply in a group, in its pacer's order; its message id.

        None: ``posting`` was withdrawn before a try went out (its asker's ``/stop`` as it
        waited for its slot, or for a flood wait to pass): nothing is sent, and the slot it
        waited for goes to the next call (``Pacer.unspend``). Looked at once the slot has
        come, right before the send: a stop that came after that is the placeholder's to tell,
        unless Telegram refuses that try with a flood wait, or fails it with a 5xx (the
        session's retry is not made, ``RETRY_WANTED``) or the network does: nothing more goes
        (None; ``Posting.owed`` says its asker is still to be told). A try the network failed
        may have gone up unseen, as one not stopped may: it is left, as that one's is.

        A reply Telegram took (its "ok") whose result does not validate still names the message
        it sent, mostly: that id is the placeholder's (logged). One that names none raises
        ``UnreadableReply`` (``taken``): the message is in the group, and the bot cannot tell
        which it is. A flood wait is waited out, each try after the last one's; one refused so
        ``FINAL_TRIES`` times raises the last ``TelegramRetryAfter``. With ``posting``, the
        flood waits are waited out here, in the group's pacer, not by the session
        (``RetryMiddleware``, which sent its retry unlooked-at, after a ``/stop``): so each try
        looks at ``posting`` again; they go on while the waits add up to at most
        ``POST_FLOOD_WAIT`` seconds (each counted as at least one, as the session counts them).
        """
        pacer = self.group_pacers(chat_id)
        own = posting or Posting()
        waited = 0.0
        for attempt in itertools.count():
            await pacer.wait()
            if own.withdrawn and not own.out:
                pacer.unspend()
                log.info("editing.post_withdrawn")
                return None
            own.out = True
            told = None if posting is None else FLOOD_WAITS.set(_raise_flood)
            wanted = None if posting is None else RETRY_WANTED.set(lambda: not own.withdrawn)
            try:
                return await self._send_placeholder(chat_id, text, reply_to, markup)
            except (TelegramServerError, TelegramNetworkError):
                if not own.withdrawn:
                    raise
                log.info("editing.post_withdrawn", in_flight=True)  # a 5xx not retried too
                return None
            except TelegramRetryAfter as exc:
                pacer.back_off(exc.retry_after)
                if own.withdrawn:  # stopped as this try was in flight: nothing went up
                    log.info("editing.post_withdrawn", in_flight=True)
                    return None
                own.out = False  # not sent: withdrawable again
                waited += max(exc.retry_after, 1)
                if waited > POST_FLOOD_WAIT if posting else attempt == FINAL_TRIES - 1:
                    raise
            finally:
                if told is not None:
                    FLOOD_WAITS.reset(told)
                if wanted is not None:
                    RETRY_WANTED.reset(wanted)
        raise AssertionError  # pragma: no cover -- tries until one returns or raises

    async def _send_placeholder(
        self, chat_id: int, text: str, reply_to: int, markup: InlineKeyboardMarkup | None
    ) -> int:
        try:
            sent = await self.bot.send_message(
                chat_id, text, reply_to_message_id=reply_to, reply_markup=markup
            )
        except UnreadableReply as exc:
            if exc.message_id is None:
                raise
            log.warning("editing.posted_unreadable", error=describe(exc))
            return exc.message_id
        return sent.message_id

    async def inline(  # noqa: PLR0913 -- the message, what goes around it, and where it is
        self,
        inline_message_id: str,
        *,
        header: str,
        stop_markup: InlineKeyboardMarkup | None,
        more_label: str,
        gone: Callable[[], object] | None = None,
        posted_in: int | None = None,
    ) -> EditSink:
        """A sink editing an inline (or guest) message, the question as its ``header``.

        ``gone`` is called if the message turns out to be gone (it stops the answer).
        ``posted_in``: the chat the message was just posted in, where the bot knows it (a
        guest answer's): Telegram counts its edits against that chat's limit, so they take
        that chat's pace, shared with every other answer there, and the post took one of its
        slots. An inline message's chat is unknown: it is paced on its own.
        """
        place = Place(inline_message_id=inline_message_id)
        more = await self._more(more_label)
        look = Look(header, stop_markup, more, gone)
        if posted_in is None:
            return self._sink(place, self.inline_pacers(place.key), look)
        pacer = self.group_pacers(posted_in)
        pacer.count()
        return self._sink(place, pacer, look)

    async def in_chat(
        self,
        chat_id: int,
        message_id: int,
        *,
        stop_markup: InlineKeyboardMarkup | None,
        more_label: str,
        gone: Callable[[], object] | None = None,
    ) -> EditSink:
        """A sink editing the bot's message ``message_id`` in group ``chat_id``.

        ``gone`` is called if the message turns out to be gone (it stops the answer).
        """
        place = Place(chat_id=chat_id, message_id=message_id)
        look = Look("", stop_markup, await self._more(more_label), gone)
        return self._sink(place, self.group_pacers(place.key), look)

    async def edit_again(self, place: Outbound, text: str, more_label: str) -> Sent:
        """Edit an answer a restart found undelivered into its message (``models.outbox``).

        The group's placeholder, or the inline (guest) message with its question line, gets
        the final answer as its final edit would have, at the chat's (or message's) pace, and
        loses its stop button. An edit shows the same text once however often it is made.
        """
        if place.inline_message_id is not None:
            where = Place(inline_message_id=place.inline_message_id)
            pacer = self.inline_pacers(where.key)
        else:
            where = Place(chat_id=place.chat_id, message_id=place.message_id)
            pacer = self.group_pacers(where.key)
        sink = self._sink(where, pacer, Look(place.header, None, await self._more(more_label)))
        await sink.complete(text)
        if await sink.finished():
            return "sent"
        return "refused" if sink.refused else "later"

    def _sink(self, place: Place, pacer: Pacer, look: Look) -> EditSink:
        return EditSink(
            self.bot,
            place,
            pacer,
            self.pace,
            look,
            rich=self.rich,
            show_reasoning=self.show_reasoning,
        )

    async def _more(self, label: str) -> Callable[[str], InlineKeyboardMarkup]:
        """Makes the button under a cut answer: ``label``, opening the whole in private."""
        link = await self.deep_link("a_")

        def button(text: str) -> InlineKeyboardMarkup:
            token = self.answers.keep(text)
            more = InlineKeyboardButton(text=label, url=link + token)
            return InlineKeyboardMarkup(inline_keyboard=[[more]])

        return button

    async def replace_inline(
        self,
        inline_message_id: str,
        text: str,
        markup: InlineKeyboardMarkup | None,
        *,
        posted_in: int | None = None,
    ) -> None:
        """Put a short notice in an inline message, paced (Telegram refusing it: logged).

        It takes the placeholder's place, and its stop button's: a flood wait or a failure of
        Telegram's own is waited out and the edit tried again, as the final edit is
        (``_persist``). ``posted_in``: the chat the message was posted in, where known (a guest
        answer's): the notice takes that chat's pace, as the answer's edits do (``inline``).
        """

        def edit() -> Awaitable[object]:
            return self.bot.edit_message_text(
                text=text, inline_message_id=inline_message_id, reply_markup=markup
            )

        pacer = (
            self.inline_pacers(inline_message_id)
            if posted_in is None
            else self.group_pacers(posted_in)
        )
        refused = await _persist(edit, pacer, paced=True)
        if refused is not None:
            log.warning("editing.notice_failed", error=type(refused).__name__)

    async def retract(self, chat_id: int, message_id: int) -> None:
        """Delete the bot's placeholder ``message_id`` (gone already: fine).

        At once, outside the group's pace (a deletion is no message); a flood wait or a failure
        of Telegram's own is waited out and the deletion tried again (``_persist``), or the
        placeholder stayed with its stop button.
        """

        def delete() -> Awaitable[object]:
            return self.bot.delete_message(chat_id, message_id)

        refused = await _persist(delete, self.group_pacers(chat_id), paced=False)
        if refused is not None:
            log.info("editing.retract_failed", error=type(refused).__name__)

    async def settle_left(self, chat_id: int, message_id: int, text: str) -> None:
        """Put ``text`` in the bot's message ``message_id`` in a group, its buttons gone, paced.

        A placeholder left behind (``on_stop``): Telegram took it, the bot never learned which
        message it was, and it stood with "⏳ …" and a stop button for good. A flood wait or a
        failure of Telegram's own is waited out and the edit tried again (``_persist``); a
        refusal (the message deleted, past the 48 hours a bot may edit) is logged. A press
        while that edit is on its way asks none of its own: each took a slot of the group's
        pace, which its members' answers wait for, to change nothing.
        """
        key = (chat_id, message_id)
        if key in self._settling:
            return

        def edit() -> Awaitable[object]:
            return self.bot.edit_message_text(
                chat_id=chat_id, message_id=message_id, text=text, reply_markup=None
            )

        self._settling.add(key)
        try:
            refused = await _persist(edit, self.group_pacers(chat_id), paced=True)
        finally:
            self._settling.discard(key)
        if refused is not None:
            log.info("editing.left_unsettled", error=type(refused).__name__)

    async def redraw(
        self, chat_id: int, message_id: int, markup: InlineKeyboardMarkup | None
    ) -> None:
        """Put ``markup`` under the bot's message ``message_id`` in a group, at its pace.

        ``/groupsettings``' panel after a press: redrawn at once, admins pressing again and
        again met Telegram's 429s in the group, ahead of members' answers. A flood wait or a
        failure of Telegram's own is waited out and the edit tried again (``_persist``); the
        same buttons again ("not modified", two presses at once) are taken; a refusal (the
        panel deleted meanwhile) is logged: the setting changed all the same.
        """

        def edit() -> Awaitable[object]:
            return self.bot.edit_message_reply_markup(
                chat_id=chat_id, message_id=message_id, reply_markup=markup
            )

        refused = await _persist(edit, self.group_pacers(chat_id), paced=True)
        if refused is not None:
            log.info("editing.redraw_failed", error=type(refused).__name__)

    async def tell_chat(
        self,
        chat_id: int,
        sender_id: int,
        text: str,
        *,
        reply_to: int,
        markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Tell a chat that posted in a group (an anonymous admin, a channel): a reply, paced.

        A chat cannot be told alone: the notice is a reply to its message, in the group's pace
        (``post``; Telegram's refusal is the caller's). As for ``tell_one``, a notice that chat
        already waits for is not queued again: its burst takes one of the group's slots. A
        reply that is not the Bot API's, or Telegram's "ok" naming no message, is a notice's
        (``_notice_failed``), not a bug apologised for in public. So is ``/groupsettings``'
        panel (``markup``: its buttons) for the admin ``sender_id`` who opened it: public, for
        every admin to use, and paced as a notice is, once while one waits.
        """
        with self._not_queued_twice((chat_id, sender_id, text)) as new:
            if new:
                await self.notice_pacers(chat_id).wait()
                try:
                    await self.post(chat_id, text, reply_to=reply_to, markup=markup)
                except ClientDecodeError as exc:
                    _notice_failed(exc, self.group_pacers(chat_id))

    @contextlib.contextmanager
    def _not_queued_twice(self, telling: tuple[int, int, str]) -> Iterator[bool]:
        """Whether ``telling`` (group, whom, text) is new; while it waits, the same is not."""
        if telling in self._telling:
            log.info("editing.notice_waiting")
            yield False
            return
        self._telling.add(telling)
        try:
            yield True
        finally:
            self._telling.discard(telling)

    async def tell_one(  # noqa: PLR0913 -- where, to whom, what, and its buttons
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to: int,
        markup: InlineKeyboardMarkup | None,
        thread_id: int | None = None,
    ) -> None:
        """Tell one member of a group: an ephemeral message, else a reply deleted soon.

        Ephemeral messages (Bot API 10.2) show to ``user_id`` only; a server without them
        refuses the field, and the notice is a reply to their message, deleted after
        ``notice_seconds``; one that ignores the field (it sends the notice to all) has it
        deleted so too. Either goes to the forum topic ``thread_id``, if given; one closed
        (400 ``TOPIC_CLOSED``: Veil is no admin there) takes neither, and the notice is dropped
        after its one try (``editing.topic_closed``).

        A notice the member is already waiting for is not queued again: the group's pace is
        first come first served, and a member's burst (bare mentions, mentions while their
        question waits) would otherwise take the group's next slots, one a message, ahead of
        the answers others asked for. Notices take at most ``NOTICE_SHARE`` of the group's
        slots: each waits for a slot of the group's notice pacer first, so one notice at most
        stands in the group's queue, and an answer's placeholder or final edit waits for that
        one, not for every notice members' commands queued before it (a progress edit, which
        goes only when the group's pacer is free, finds it free between them).
        """
        with self._not_queued_twice((chat_id, user_id, text)) as new:
            if new:
                await self._tell_one(
                    chat_id, user_id, text, reply_to=reply_to, markup=markup, thread_id=thread_id
                )

    async def _tell_one(  # noqa: PLR0913 -- as tell_one
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to: int,
        markup: InlineKeyboardMarkup | None,
        thread_id: int | None,
    ) -> None:
        pacer, share = self.group_pacers(chat_id), self.notice_pacers(chat_id)
        await share.wait()
        await pacer.wait()
        try:
            told = await self.bot.send_message(
                chat_id,
                text,
                message_thread_id=thread_id,
                reply_markup=markup,
                ephemeral_message_parameters=EphemeralMessageParameters(receiver_user_id=user_id),
            )
        except TelegramBadRequest as exc:
            if _TOPIC_CLOSED in exc.message:  # no reply of Veil's goes there either
                log.info("editing.topic_closed")
                return
            log.info("editing.ephemeral_refused")
        except (TelegramAPIError, ClientDecodeError) as exc:
            _notice_failed(exc, pacer)
            return
        else:
            if told.ephemeral_message_id is None and told.receiver_user is None:
                # A server older than ephemeral messages ignores the field, as the Bot API
                # does any it does not know: the notice went up for everyone to read.
                log.info("editing.ephemeral_ignored")
                self._delete_soon(chat_id, told.message_id)
            return
        await share.wait()
        await pacer.wait()
        try:
            sent = await self.bot.send_message(
                chat_id,
                text,
                message_thread_id=thread_id,
                reply_to_message_id=reply_to,
                reply_markup=markup,
            )
        except (TelegramAPIError, ClientDecodeError) as exc:
            _notice_failed(exc, pacer)
            if isinstance(exc, UnreadableReply) and exc.message_id is not None:
                self._delete_soon(chat_id, exc.message_id)  # it went up, for everyone
            return
        self._delete_soon(chat_id, sent.message_id)

    def _delete_soon(self, chat_id: int, message_id: int) -> None:
        """Delete the notice ``message_id``, seen by all, once ``notice_seconds`` have passed."""
        task = asyncio.create_task(self._delete_later(chat_id, message_id))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _delete_later(self, chat_id: int, message_id: int) -> None:
        await asyncio.sleep(self.pace.notice_seconds)
        await self.retract(chat_id, message_id)

    async def close(self) -> None:
        """Delete the notices still waiting for their time (the bot is stopping)."""
        for task in list(self._notices):
            task.cancel()
        for task in list(self._notices):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def deep_link(self, start: str) -> str:
        """``https://t.me/<bot>?start=<start>``: opens the private chat with that payload."""
        if self._username is None:
            me = await self.bot.me()
            self._username = me.username or ""
        return f"https://t.me/{self._username}?start={start}"
