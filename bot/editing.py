"""Answers that stream by editing one message: inline, guest and group answers.

Telegram allows about 20 messages a minute in a group, edits included, and answers a bot that
edits faster with ``retry_after`` of minutes. A ``Pacer`` spaces every call into one chat (or
one inline message, whose chat the bot does not know; a guest answer's is its group's) at least
``60 / per_minute`` seconds apart, first come first served (notices to one member take at
most half of a group's slots, ``NOTICE_SHARE``; a pacer in use is never forgotten, ``Pacers``).
An ``EditSink`` edits its message only when its pacer has a slot free right now, the last
edit is at least ``interval`` old and the text grew by at least ``min_growth`` characters (so
a slow stream edits less), never with unchanged text; it always ends with one final, complete
edit, which waits for its slot, honours ``retry_after`` and is tried again after a server or
network error. An answer longer than one message ends with what fits and a button that opens
the whole answer in the private chat (kept in memory by ``services.answers.LongAnswers``, never
on disk).

With ``rich`` (``VEIL_RICH_MESSAGES``) the edits carry a rich message (Bot API 10.1:
``editMessageText`` takes ``rich_message``, for inline messages too): the model's Markdown as
the rich message's Markdown, the question above it escaped. One rich message holds far more
than 4096 characters, so the cut (and its button) comes only past ``bot.rich.MAX_CHARS``. At
the first rich edit Telegram refuses (400) this answer goes on in entities, then plain text,
as before: never a lost answer.

A reasoning model's thinking (``reason``) is kept in memory for this answer only and shown
once, in the final edit, collapsed before the answer (``VEIL_SHOW_REASONING``; off: dropped as
it arrives): a details block in a rich message, an expandable quote in entities. There is no
live thinking here: drafts, which have a thinking block, are for private chats only.

No task waits for the next edit, as in the draft sink: an answer whose text has not grown by
``min_growth`` waits for nothing (the next delta looks again); once it has, a timer goes off when
the edit may go out (``interval`` after the last edit, at its pacer's next free slot), and a task
lives only while the edit is in flight. So an answer in progress that has shown its newest text
holds no task, Event or future of the sink's, and a slow stream's sink never wakes to poll.
Deltas (and thinking) are appended, and joined when an edit goes out or when 32 have gathered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    EphemeralMessageParameters,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputRichMessage,
)

from bot import rich as rich_markdown
from bot.formatting import (
    MAX_ENTITIES,
    TELEGRAM_LIMIT,
    Rendered,
    preview,
    render_parts,
    utf16_len,
)
from bot.intake import waits_elsewhere
from bot.streaming import entities_of
from bot.telegram import FLOOD_WAITS, RETRY_WANTED, UnreadableReply
from bot.thinking import MAX_FOLDED, MIN_FOLDED, prepend, quote, tail
from common.folded import FoldedText
from common.logs import describe
from common.thought import MARK
from services.answers import Answered, LongAnswers, ReplyChains, Showing
from services.groups import Posting

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from aiogram import Bot

    from models.outbox import Outbound
    from services.questions import Sent


log = structlog.get_logger("veil.editing")

FINAL_TRIES = 5  # a final edit refused with retry_after is tried again this often
# The share of a group's slots notices to one member (or a chat) may take (``Editors.tell_one``):
# half, so answers keep at least ten calls a minute at Telegram's twenty, however many commands
# members send; in a quiet group a notice goes at once, one right after it six seconds later.
NOTICE_SHARE = 0.5
# Seconds of flood waits a placeholder's tries wait out in all (``Editors.post``): as the
# session's retries did, a minute for each of ``FINAL_TRIES`` tries, before they moved here.
POST_FLOOD_WAIT = 60.0 * FINAL_TRIES
# What Telegram says when the message an answer streams into is gone (deleted by a user, or in
# a topic deleted since) or can no longer be edited; a 403 (the bot removed from the chat) too,
# and a group upgraded to a supergroup (deactivated: nothing in it can be edited any more). So
# is a bot an admin demoted or restricted so it may not write there: the model wrote the rest
# of an answer nobody could see, charged whole.
_GONE = (
    "message to edit not found",
    "message_id_invalid",
    "message can't be edited",
    "chat not found",
    "not enough rights to send",
    "have no rights to send",
    "chat_write_forbidden",
)
# What Telegram says to a send into a closed forum topic of a bot that is no admin there.
_TOPIC_CLOSED = "TOPIC_CLOSED"
_MORE = "…"
_GAP = "\n\n"


class Pacer:
    """Spaces the bot's calls into one chat at least ``60 / per_minute`` seconds apart.

    Calls that ``wait`` are served first come first served, through a lock that exists only
    while one waits (a pacer is kept per chat and per inline message, mostly idle).
    """

    __slots__ = ("__weakref__", "_clock", "_next", "_queue", "_waiting", "gap")

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap = 60.0 / per_minute
        self._clock = clock
        self._next = 0.0
        self._queue: asyncio.Lock | None = None  # FIFO: waiters are served in arrival order
        self._waiting = 0  # calls in ``wait``, holding the lock or queued for it

    def free(self) -> bool:
        """True when a call may go out right now without making anyone wait."""
        return not self._waiting and self._clock() >= self._next

    def free_in(self) -> float:
        """Seconds until ``free`` may be true: the next slot, or a while when calls queue."""
        delay = self._next - self._clock()
        if self._waiting:  # those waiting take the next slots: look again in a while
            return max(delay, self.gap / 4)
        return max(delay, 0.0)

    def in_use(self) -> bool:
        """True while calls wait for it or its last slot's gap has not passed.

        Such a pacer must not be forgotten (``Pacers``): a fresh one for its chat would let a
        call out at once, alongside those it spaces.
        """
        return bool(self._waiting) or self._clock() < self._next

    def take(self) -> None:
        """Spend the free slot (check ``free`` first)."""
        self._next = self._clock() + self.gap

    def unspend(self) -> None:
        """The slot ``wait`` just gave went unused (the call was withdrawn): the next may have it.

        Only right after ``wait`` returned, before anything else awaits (the slot is the gap
        before ``_next`` then).
        """
        self._next -= self.gap

    async def wait(self) -> None:
        """Wait for the next slot, after everyone already waiting, and spend it.

        The slot is looked at again after each sleep: a call ``count``-ed or a flood wait told
        (``back_off``) meanwhile moves it, and the sleeper must not go out at the one it read.
        """
        if self.in_use():  # it waits: the update asking leaves the bot's intake meanwhile
            waits_elsewhere()
        if self._queue is None:
            self._queue = asyncio.Lock()
        self._waiting += 1
        try:
            async with self._queue:
                # The slot may move while this sleeps (a post counted, a flood wait told).
                while (delay := self._next - self._clock()) > 0:  # noqa: ASYNC110 -- a time, no flag
                    await asyncio.sleep(delay)
                self._next = self._clock() + self.gap
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._queue = None

    def count(self) -> None:
        """A call went out into this chat without waiting (it could not: a guest query's answer).

        It took a slot all the same: the next free one is a gap later than it was.
        """
        self._next = max(self._next, self._clock()) + self.gap

    def back_off(self, seconds: float) -> None:
        """Telegram said ``retry_after``: nothing goes to this chat before it has passed."""
        self._next = max(self._next, self._clock() + seconds)


class Pacers:
    """One ``Pacer`` a chat or inline message, the idle ones forgotten beyond ``keep``.

    Never one in use: whose calls wait, or whose last slot's gap has not passed
    (``Pacer.in_use``), nor one something still holds (an answer's sink between its edits, a
    post waiting), which its key finds again. Forgotten so, it left its chat to a second pacer
    alongside it, and twice the pace Telegram allows (its 429s followed).
    """

    def __init__(self, per_minute: float, keep: int = 10_000) -> None:
        self.per_minute = per_minute
        self._keep = keep
        self._pacers: OrderedDict[int | str, Pacer] = OrderedDict()
        self._held: weakref.WeakValueDictionary[int | str, Pacer] = weakref.WeakValueDictionary()

    def __call__(self, key: int | str) -> Pacer:
        """The pacer of chat id or inline message id ``key``."""
        pacer = self._pacers.pop(key, None) or self._held.get(key)
        if pacer is None:
            pacer = self._held[key] = Pacer(self.per_minute)
        self._pacers[key] = pacer
        self._forget()
        return pacer

    def _forget(self) -> None:
        """Drop the least recently used beyond ``keep``; one in use goes to the back instead."""
        looked = 0
        while len(self._pacers) > self._keep and looked < len(self._pacers):
            key, pacer = next(iter(self._pacers.items()))
            if pacer.in_use():
                self._pacers.move_to_end(key)
                looked += 1
            else:
                del self._pacers[key]


@dataclass(frozen=True, slots=True)
class Place:
    """The message an answer streams into: an inline message, or one in a chat."""

    inline_message_id: str | None = None
    chat_id: int | None = None
    message_id: int | None = None

    @property
    def key(self) -> int | str:
        """What its pacer is found by: the chat (all its messages share one budget)."""
        if self.inline_message_id is not None:
            return self.inline_message_id
        assert self.chat_id is not None  # noqa: S101 -- one of the two is always set
        return self.chat_id

    def address(self) -> dict[str, Any]:
        """The editMessageText fields that name the message."""
        if self.inline_message_id is not None:
            return {"inline_message_id": self.inline_message_id}
        return {"chat_id": self.chat_id, "message_id": self.message_id}


@dataclass(frozen=True)
class Pace:
    """How edited answers stream.

    ``interval``: seconds between one answer's edits; ``min_growth``: characters it must grow
    by between edits; ``group_per_minute``: calls into one group (Telegram's limit is 20);
    ``inline_per_minute``: edits of one inline message; ``notice_seconds``: how long a notice
    that could not be ephemeral stays before it is deleted; ``final_hold``: how long an answer
    waits for its final edit before leaving it to go on by itself (``EditSink.complete``).
    """

    interval: float = 3.0
    min_growth: int = 40
    group_per_minute: float = 20.0
    inline_per_minute: float = 20.0
    notice_seconds: float = 30.0
    final_hold: float = 5.0


@dataclass(frozen=True)
class Look:
    """What goes around the answer.

    ``header``: a first line (the question); ``stop_markup``: the stop button while it streams;
    ``more``: makes the button under a cut answer from the answer's whole text; ``gone``: called
    once if the message turns out to be gone (``EditSink``), to stop the answer.
    """

    header: str = ""
    stop_markup: InlineKeyboardMarkup | None = None
    more: Callable[[str], InlineKeyboardMarkup | None] | None = None
    gone: Callable[[], object] | None = None


@dataclass(frozen=True)
class Final:
    """A final edit in both forms: entities (``rendered``) and rich Markdown (``markdown``).

    ``markdown`` None: no rich form (a notice, or rich messages off). ``*_cut``: that form
    holds only the start of the answer, and the button to the whole goes under it.
    """

    rendered: Rendered
    rendered_cut: bool = False
    markdown: str | None = None
    markdown_cut: bool = False


class EditSink:
    """Streams one answer into one message by editing it at a group-safe pace."""

    __slots__ = (
        "_answer_shown",
        "_dirty",
        "_editing",
        "_finishing",
        "_header_markdown",
        "_last_edit",
        "_live",
        "_lost",
        "_more_markup",
        "_parts",
        "_received",
        "_shown",
        "_shown_final",
        "_text",
        "_thinking",
        "bot",
        "edits",
        "gone",
        "header",
        "more",
        "pace",
        "pacer",
        "place",
        "refused",
        "rich",
        "show_reasoning",
        "stop_markup",
        "written",
    )

    def __init__(  # noqa: PLR0913 -- each a part of the sink
        self,
        bot: Bot,
        place: Place,
        pacer: Pacer,
        pace: Pace,
        look: Look,
        *,
        rich: bool = False,
        show_reasoning: bool = True,
    ) -> None:
        self.bot = bot
        self.place = place
        self.pacer = pacer
        self.pace = pace
        self.header = look.header
        self.stop_markup = look.stop_markup
        self.more = look.more
        self.gone = look.gone
        self.rich = rich  # off for the rest of this answer once Telegram refuses a rich edit
        self.show_reasoning = show_reasoning
        self.edits = 0
        self._header_markdown = (
            rich_markdown.escape(look.header) + "\n\n" if look.header.strip() else ""
        )
        self._parts = FoldedText()
        self._thinking = FoldedText()  # the model's thinking (shown once, never kept)
        self._received = 0
        self._shown = 0
        self._last_edit = 0.0
        self._dirty = False  # text came that no progress edit has taken yet
        self._live = False  # progress edits go out: begun, not yet stopped
        self._lost = False  # the message is gone: nothing more is sent to it
        # The next progress edit: a timer until it may go out, then the edit's task while it is
        # in flight, else None. An edit that failed with a bug stays, so nothing more is sent
        # and ``complete`` or ``abort`` raises it.
        self._editing: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self._shown_final: Final | None = None
        self._answer_shown = False  # the final edit with answer text went through
        self._finishing: asyncio.Task[bool] | None = None  # that final edit, still under way
        self._text = ""  # the whole answer, for the button under a cut one
        self.written = False  # the whole answer was given: its final edit made or under way
        self.refused = False  # Telegram refused a final edit for good (not a flood, not a 5xx)
        self._more_markup: InlineKeyboardMarkup | None = None

    async def begin(self) -> None:
        """Edit as the text grows from now on (the placeholder is already on screen)."""
        self._live = True
        if self._dirty and self._editing is None:
            self._schedule()

    async def append(self, delta: str) -> None:
        """Add a piece of the answer; an edit shows it when the pace allows."""
        self._parts.append(delta)  # folded: edits held back (pace, 429) keep one string
        self._received += len(delta)
        self._dirty = True
        if self._live and self._editing is None:
            self._schedule()

    async def reason(self, delta: str) -> None:
        """Add a piece of the model's thinking; the final edit shows it collapsed."""
        if self.show_reasoning:
            self._thinking.append(delta)

    async def finished(self) -> bool:
        """Wait for the final edit if it is still under way; whether it showed the answer.

        True once answer text is in the message (a note may go under it).
        """
        finishing = self._finishing
        if finishing is not None:
            shown = await finishing
            if self._finishing is finishing:
                self._finishing = None
                self._answer_shown = shown
        return self._answer_shown

    async def complete(self, text: str) -> None:
        """The final, complete edit: what fits, and a button to the rest when it does not.

        A text of whitespace alone has nothing to show: the progress edits stop, the message is
        left as it is, and whoever follows the answer up puts a notice there (``say``).

        Waits at most ``Pace.final_hold`` for the edit: one Telegram holds back longer (a flood
        wait, honoured) goes on in a task of its own, so that the asker's answer ends (and their
        next question is not held up); ``finished`` waits for it, and ``note`` and ``say``
        come after it.
        """
        await self._stop()
        if not text.strip():
            self._thinking = FoldedText()
            return
        thought = self._thinking.text().strip()
        self._thinking = FoldedText()
        self._text = text
        self.written = True
        final = self._entity_final(text, thought)
        if self.rich:
            final = self._rich_final(final, text, thought)
        self._shown_final = final
        self._finishing = asyncio.create_task(self._final(final))
        done, _ = await asyncio.wait([self._finishing], timeout=self.pace.final_hold)
        if done:
            await self.finished()
        else:  # a long flood wait: the answer ends, its final edit goes on (``finished``)
            log.info("editing.final_later", seconds=self.pace.final_hold)

    def _entity_final(self, text: str, thought: str) -> Final:
        """The answer as entities: what fits one message, the thinking folded first."""
        room = TELEGRAM_LIMIT - utf16_len(self.header) - len(_MORE)
        folded = None
        fold = min(MAX_FOLDED, room // 2)
        if thought and fold >= MIN_FOLDED:
            folded = quote(thought, fold, expandable=True)
            room -= utf16_len(folded.text) + 1
        entities = MAX_ENTITIES if folded is None else MAX_ENTITIES - 1  # one for the thinking
        parts = render_parts(text, limit=room, max_entities=entities)
        cut = len(parts) > 1
        shown = Rendered(parts[0].text + (_MORE if cut else ""), parts[0].entities)
        if folded is not None:
            shown = prepend(folded, shown)
        return Final(shown, rendered_cut=cut)

    def _rich_final(self, final: Final, text: str, thought: str) -> Final:
        """``final`` with the rich form: the thinking as details, then what fits of the answer."""
        details = ""
        if thought:
            details = rich_markdown.thought_details(tail(thought, MAX_FOLDED), MARK) + "\n\n"
        room = (
            rich_markdown.MAX_CHARS
            - utf16_len(self._header_markdown)
            - utf16_len(details)
            - utf16_len(_GAP + _MORE)
        )
        blocks = rich_markdown.MAX_BLOCKS - rich_markdown.weight(self._header_markdown + details)
        parts = rich_markdown.rich_parts(text, limit=room, max_blocks=max(blocks, 1))
        if not parts:
            return final
        cut = len(parts) > 1
        markdown = details + parts[0] + (_GAP + _MORE if cut else "")
        return Final(final.rendered, final.rendered_cut, markdown, markdown_cut=cut)

    async def note(self, text: str) -> None:
        """Add a short line under the final answer (one more edit, paced): "cut at its limit"."""
        await self.finished()
        final = self._shown_final
        if final is None:
            return
        rendered = Rendered(f"{final.rendered.text}\n\n{text}", final.rendered.entities)
        if utf16_len(self.header) + utf16_len(rendered.text) > TELEGRAM_LIMIT:
            rendered = final.rendered  # no room left under the entity answer
        markdown = final.markdown
        if markdown is not None and self.rich:
            noted = f"{markdown}{_GAP}{rich_markdown.escape(text)}"
            if utf16_len(self._header_markdown + noted) <= rich_markdown.MAX_CHARS:
                markdown = noted
        if rendered is final.rendered and markdown == final.markdown:
            log.info("editing.note_skipped")  # no room left under the answer
            return
        await self._final(Final(rendered, final.rendered_cut, markdown, final.markdown_cut))

    async def abort(self) -> None:
        """Stop the updater; whoever reports the failure edits the message."""
        await self._stop()

    async def say(self, text: str) -> None:
        """Replace the message with a short notice (no stop button)."""
        await self._stop()
        await self.finished()
        self._answer_shown = False
        await self._final(Final(Rendered(text, ())), header=False)

    async def _stop(self) -> None:
        """No more progress edits: the timer off, the edit in flight cancelled."""
        self._live = self._dirty = False
        editing, self._editing = self._editing, None
        if editing is not None:
            editing.cancel()
        if isinstance(editing, asyncio.Task):
            with contextlib.suppress(asyncio.CancelledError):
                await editing

    def _schedule(self) -> None:
        """The next progress edit's timer, once the text has grown enough to be worth one.

        It goes off ``interval`` after the last edit, or at the pacer's next free slot if later.
        """
        if self._received - self._shown < self.pace.min_growth:
            return  # the next delta looks again
        now = time.monotonic()
        delay = max(self._last_edit + self.pace.interval - now, self.pacer.free_in())
        self._editing = asyncio.get_running_loop().call_later(max(delay, 0.0), self._edit_due)

    def _edit_due(self) -> None:
        """The timer: take the pacer's slot and edit, or wait for the next (someone took it)."""
        self._editing = None
        if not self.pacer.free():
            self._schedule()
            return
        self.pacer.take()
        self._dirty = False
        self._editing = asyncio.create_task(self._progress())

    async def _progress(self) -> None:
        """One progress edit in flight; the next one's timer if more text came meanwhile."""
        await self._send_progress()
        self._editing = None
        if self._dirty:
            self._schedule()

    async def _send_progress(self) -> None:
        text = self._parts.text()
        try:
            if self.rich:
                room = rich_markdown.MAX_CHARS - utf16_len(self._header_markdown)
                blocks = rich_markdown.MAX_BLOCKS - rich_markdown.weight(self._header_markdown)
                markdown = rich_markdown.draft_markdown(text, room, max(blocks, 1))
                if not markdown.strip():
                    return
                if await self._edit_rich(markdown, self.stop_markup, header=True):
                    self._shown = len(text)
                    return
            rendered = preview(text, limit=TELEGRAM_LIMIT - utf16_len(self.header))
            if not rendered.text.strip():
                return
            await self._edit(rendered, self.stop_markup, header=True)
        except TelegramRetryAfter as exc:
            self.pacer.back_off(exc.retry_after)
            log.info("editing.rate_limited", seconds=exc.retry_after)
            return
        except (TelegramAPIError, ClientDecodeError) as exc:  # a proxy's page: skipped too
            log.warning("editing.progress_failed", error=type(exc).__name__)
            if isinstance(exc, TelegramAPIError) and _is_gone(exc):
                self._lose()
            return
        self._shown = len(text)

    def _lose(self) -> None:
        """The message is gone: no more edits of it, and the answer is stopped (``gone``).

        Whatever the model would still write, nobody could see; the answer is charged, as any
        stopped one, for what it streamed before the stop.
        """
        if self._lost:
            return
        self._lost = True
        self._live = self._dirty = False
        log.info("editing.message_gone")
        if self.gone is not None:
            self.gone()

    async def _final(self, final: Final, *, header: bool = True) -> bool:
        """Edit in ``final``, honouring ``retry_after``; whether Telegram took it.

        A server or network error is tried again too (each try waits for the pacer's slot).
        """
        for _ in range(FINAL_TRIES):
            if self._lost:
                return False
            await self.pacer.wait()
            try:
                await self._show(final, header=header)
            except TelegramRetryAfter as exc:
                self.pacer.back_off(exc.retry_after)
                log.info("editing.rate_limited", seconds=exc.retry_after, final=True)
                continue
            except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as exc:
                # Not refused, only not done (a proxy's page in place of the Bot API's reply
                # too): the same edit again (an edit is idempotent), or the message keeps a
                # part of the answer and its stop button.
                log.warning("editing.final_retried", error=type(exc).__name__)
                continue
            except TelegramAPIError as exc:
                log.warning("editing.final_failed", error=type(exc).__name__)
                self.refused = True
                if _is_gone(exc):
                    self._lose()
                return False
            return True
        log.warning("editing.final_gave_up", tries=FINAL_TRIES)
        return False

    async def _show(self, final: Final, *, header: bool) -> None:
        """One final edit: rich while Telegram takes it, else entities, else plain text."""
        if final.markdown is not None and self.rich:
            markup = self._markup(cut=final.markdown_cut)
            if await self._edit_rich(final.markdown, markup, header=header):
                return
        await self._edit(final.rendered, self._markup(cut=final.rendered_cut), header=header)

    def _markup(self, *, cut: bool) -> InlineKeyboardMarkup | None:
        """The button under a cut answer (made once: one kept copy of the whole answer)."""
        if not cut or self.more is None:
            return None
        if self._more_markup is None:
            self._more_markup = self.more(self._text)
        return self._more_markup

    async def _edit_rich(
        self, markdown: str, markup: InlineKeyboardMarkup | None, *, header: bool
    ) -> bool:
        """Edit in a rich message; False when Telegram refused it (rich is off from now on)."""
        prefix = self._header_markdown if header else ""
        try:
            await self.bot.edit_message_text(
                rich_message=InputRichMessage(markdown=prefix + markdown),
                reply_markup=markup,
                **self.place.address(),
            )
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:
                return True  # the same content again: nothing to do
            if _is_gone(exc):
                raise  # not the rich message refused: the message itself is gone
            log.warning("editing.rich_rejected")
            self.rich = False
            return False
        self.edits += 1
        self._last_edit = time.monotonic()
        return True

    async def _edit(
        self, rendered: Rendered, markup: InlineKeyboardMarkup | None, *, header: bool
    ) -> None:
        prefix = self.header if header else ""
        shift = utf16_len(prefix)
        entities = [
            entity.model_copy(update={"offset": entity.offset + shift})
            for entity in entities_of(rendered)
        ]
        fields = {**self.place.address(), "reply_markup": markup}
        try:
            await self.bot.edit_message_text(
                text=prefix + rendered.text, entities=entities, **fields
            )
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:
                return  # the same text again: nothing to do
            if not entities or _is_gone(exc):
                raise
            # Telegram refused the formatting: the same text goes out plain.
            log.warning("editing.entities_rejected")
            await self.bot.edit_message_text(text=prefix + rendered.text, **fields)
        self.edits += 1
        self._last_edit = time.monotonic()


def _is_gone(exc: TelegramAPIError) -> bool:
    """Whether ``exc`` says the message cannot be edited any more (deleted, or the bot out).

    A group upgraded to a supergroup too: Telegram refuses every call naming it since
    (``TelegramMigrateToChat``), and the answer's reply-to is not in the supergroup.
    """
    if isinstance(exc, (TelegramForbiddenError, TelegramMigrateToChat)):
        return True
    return isinstance(exc, TelegramBadRequest) and any(
        words in exc.message.lower() for words in _GONE
    )


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
