"""Answers that stream by editing one message: inline, guest and group answers.

Every call into a chat waits for its slot (``bot.pacing.Pacer``); ``bot.editors.Editors``
makes the sinks, posts the placeholders and tells the notices. An ``EditSink`` edits its
message only when its pacer has a slot free right now, the last edit is at least ``interval``
old and the text grew by at least ``min_growth`` characters (so a slow stream edits less),
never with unchanged text; it always ends with one final, complete
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
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
from bot.streaming import entities_of
from bot.thinking import MAX_FOLDED, MIN_FOLDED, prepend, quote, tail
from common.folded import FoldedText
from common.thought import MARK

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiogram import Bot

    from bot.pacing import Pace, Pacer, Place


log = structlog.get_logger("veil.editing")

FINAL_TRIES = 5  # a final edit refused with retry_after is tried again this often
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
_MORE = "…"
_GAP = "\n\n"


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
