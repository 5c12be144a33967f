"""Answer sinks: how a streaming answer is shown in Telegram.

``DraftSink`` (private chats) shows the answer growing in a ``sendMessageDraft`` preview with a
stop button, at most once per ``interval`` seconds and never sooner than a ``retry_after``
allows, then sends the final answer as real messages, rendered from Markdown and split at
4096 UTF-16 units; if Telegram rejects the entities, the same text goes out plain.

With ``rich`` (``VEIL_RICH_MESSAGES``), drafts are ``sendRichMessageDraft`` and the final answer
``sendRichMessage``: the model's Markdown as the rich message's Markdown, split at block
boundaries (``bot.rich``). Whatever Telegram refuses there (400) falls back, in order, to the
entity rendering and then to plain text, from the first part not yet sent: never a lost answer,
never a part twice. Once a rich draft is refused, this answer's drafts stay plain drafts.

In a private chat's topic (``thread_id``), every draft, message and notice carries its
``message_thread_id``, so the whole answer stays in that topic.

A reasoning model's thinking (``reason``) is kept in memory for this answer only. With
``show_reasoning``, the draft shows its tail in a quote while no answer text has come, and the
final answer opens with it folded in an expandable quote (``bot.thinking``); without, it is
dropped as it arrives. Rich drafts show it in a thinking block; before a rich answer it is a
message of its own, folded the same way. The thinking is only shown: a message with it that
Telegram refuses, or does not take in all its tries, is followed by the answer alone.

Each try of a final message waits ``FINAL_TIMEOUT`` (10 s) for Telegram's reply, so a Telegram
that never answers holds an answer's delivery (and the user's next question, which waits for
it) about a minute per message, not the session's five (``delivered``).

Draft updates happen in the background, so a slow or rate-limited Bot API never slows the
model's stream; only the newest text is ever sent. No task waits for them: a timer goes off when
the next draft may go out, and a task lives only while a call is in flight (the "typing…"
action's the same, every 4.5 s until the first text), so an answer in progress that has shown
its newest text holds no task of the sink's. Deltas are appended, and joined only when a
draft goes out (at most once per ``interval``) or when 32 have gathered, so a long answer costs
no work per token and holds about its own size, not a string object per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Literal

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
    InputRichBlockThinking,
    InputRichMessage,
    Message,
    MessageEntity,
    ReplyParameters,
)

from bot.formatting import Rendered, plain_parts, preview, render_parts
from bot.rich import draft_markdown, rich_parts
from bot.telegram import FLOOD_WAITS, UnreadableReply
from bot.thinking import DRAFT_THOUGHT, MAX_FOLDED, draft_thought, quote, tail, with_thought
from common.folded import FoldedText
from common.logs import describe
from models.outbox import Progress

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiogram import Bot
    from aiogram.types import InlineKeyboardMarkup

log = structlog.get_logger("veil.streaming")

_TYPING_EVERY = 4.5  # seconds; Telegram shows "typing…" for about 5
# A part of the final answer Telegram could not take (a 5xx past the session's one retry, the
# network, a reply that is not the Bot API's: a proxy's page) is sent again this often, after
# 1, 2, 4, 8 s (a sink's ``retry_wait``, ``VEIL_FINAL_RETRY_WAIT``, doubled each time).
FINAL_TRIES = 5
# Each try of a final part waits this long for Telegram's reply before the next goes out
# (seconds; the session's own timeout is aiogram's 60 s). Against a Telegram that takes the
# connection and never answers, a part gives up after 5 * 10 + 1 + 2 + 4 + 8 = 65 s, where it
# took 5 * 60 + 15 = 315 s; the user's next question, which waits for this answer's delivery,
# is answered after that. The thinking's message, once it has failed, is followed by the answer
# alone: 130 s at most.
FINAL_TIMEOUT = 10
# A try Telegram has not answered in ``FINAL_TIMEOUT`` stays in flight this long (the session's
# own timeout): a slow Telegram's late reply says the part went out (``delivered``).
LATE_TIMEOUT = 60
_NOT_TAKEN = (TelegramServerError, TelegramNetworkError, ClientDecodeError)


async def delivered(
    send: Callable[..., Awaitable[object]],
    withdraw: Callable[[int], Awaitable[None]],
    late: set[asyncio.Task[BaseException | None]],
    *,
    retry_wait: float,
) -> None:
    """Send one part of a final answer; a server or network error (or a proxy's page) is retried.

    ``send`` is a Bot API call that takes aiogram's ``request_timeout``. The user has paid for
    the answer and watched it arrive in drafts, which vanish: a part that never goes out is
    lost. A try that Telegram has not answered within ``FINAL_TIMEOUT`` is not given up: it
    stays in flight (for the session's ``LATE_TIMEOUT``, held in ``late``) while the next try
    goes out, for a slow Telegram may still take it, and a dead connection never answers. The
    first try Telegram takes is the part; one it takes after that (the slow one, answering
    late) is a copy, taken back (``withdraw``: deleted), so a slow Telegram no longer shows the
    part twice. A try waiting out a flood wait (the session's retries, ``FLOOD_WAITS``) was
    answered: the next goes out only if it is still unanswered ``FINAL_TIMEOUT`` after the
    wait, or every try would go out into the flood, and each be taken once it ends. The last
    try waits ``FINAL_TIMEOUT`` at most, as each try did. A 5xx, a cut
    connection or a proxy's page may still hide a message Telegram took (no reply names it): a
    part may then show twice, never not at all. A refusal (4xx) is the caller's. A reply whose
    "ok" says Telegram took the part, however unreadable its result, is not sent again. A try
    not taken is followed by the next ``retry_wait`` seconds later, twice that after the next.
    """
    part = _Part(send, withdraw)
    loop = asyncio.get_running_loop()
    for attempt in range(FINAL_TRIES):
        last = attempt == FINAL_TRIES - 1
        task = asyncio.create_task(part.send(FINAL_TIMEOUT if last else LATE_TIMEOUT))
        late.add(task)
        task.add_done_callback(late.discard)
        await part.settled(task, None if last else FINAL_TIMEOUT)
        # Waiting out a flood wait Telegram answered with: not slow; its ``FINAL_TIMEOUT``
        # counts from the wait's end, and no other try goes out into the flood meanwhile.
        while not (part.taken.is_set() or task.done()) and (
            (left := part.paced_until + FINAL_TIMEOUT - loop.time()) > 0
        ):
            await part.settled(task, left)
        if part.taken.is_set():
            return
        failure = task.result() if task.done() else None
        if failure is not None and (last or not isinstance(failure, _NOT_TAKEN)):
            raise failure
        error = "TimeoutError" if failure is None else type(failure).__name__
        log.warning("streaming.final_retried", error=error, tries=attempt + 1)
        await part.settled(None, retry_wait * 2**attempt)  # a late reply may end it meanwhile
        if part.taken.is_set():
            return


class _Part:
    """The tries of one final part: the first Telegram takes is kept, any later one withdrawn."""

    __slots__ = ("_send", "_withdraw", "paced_until", "taken")

    def __init__(
        self, send: Callable[..., Awaitable[object]], withdraw: Callable[[int], Awaitable[None]]
    ) -> None:
        self._send = send
        self._withdraw = withdraw
        self.taken = asyncio.Event()
        self.paced_until = 0.0  # the loop's time a flood wait of a try ends (``FLOOD_WAITS``)

    def _paced(self, seconds: float) -> None:
        """A try waits out a flood wait of ``seconds``: Telegram answered it."""
        ends = asyncio.get_running_loop().time() + seconds
        self.paced_until = max(self.paced_until, ends)

    async def send(self, timeout: int) -> BaseException | None:  # noqa: ASYNC109 -- aiogram's
        """One try: None once Telegram took it (kept, or withdrawn as a copy); else its error."""
        FLOOD_WAITS.set(self._paced)  # this try's own task: its flood waits are told here
        try:
            sent = await self._send(request_timeout=timeout)
        except UnreadableReply as exc:
            if not exc.taken:
                return exc
            log.warning("streaming.final_unreadable", error=describe(exc))  # "ok": it went out
            sent_id = exc.message_id
        except (TelegramAPIError, ClientDecodeError) as exc:
            return exc
        else:
            sent_id = sent.message_id if isinstance(sent, Message) else None
        if self.taken.is_set() and sent_id is not None:  # another try went first: a copy
            await self._withdraw(sent_id)
        self.taken.set()
        return None

    async def settled(
        self, task: asyncio.Task[BaseException | None] | None, within: float | None
    ) -> None:
        """Wait for ``task`` to end, or a try to be taken, or ``within`` seconds."""
        taken = asyncio.ensure_future(self.taken.wait())
        try:
            await asyncio.wait(
                {taken} if task is None else {taken, task},
                timeout=within,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            taken.cancel()


def entities_of(rendered: Rendered) -> list[MessageEntity]:
    """The entities of a rendered text as aiogram objects."""
    return [MessageEntity(**entity.to_api()) for entity in rendered.entities]


class DraftSink:
    """Streams one answer into a private chat with drafts, then sends it for real."""

    __slots__ = (
        "_dirty",
        "_drafting",
        "_late",
        "_next_allowed",
        "_parts",
        "_received",
        "_record",
        "_shown",
        "_thinking",
        "_thought",
        "_thought_shown",
        "_typing",
        "bot",
        "chat_id",
        "completed",
        "draft_id",
        "final_markup",
        "interval",
        "left_to_outbox",
        "progress",
        "reply_to",
        "retry_wait",
        "rich",
        "rich_drafts",
        "show_reasoning",
        "thread_id",
    )

    def __init__(  # noqa: PLR0913 -- each a setting of the sink
        self,
        bot: Bot,
        chat_id: int,
        *,
        interval: float = 1.0,
        final_markup: InlineKeyboardMarkup | None = None,
        show_reasoning: bool = True,
        rich: bool = False,
        thread_id: int | None = None,
        reply_to: int | None = None,
        retry_wait: float = 1.0,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.thread_id = thread_id  # the private chat's topic the answer is in (None: the chat)
        # The message the first final message replies to, until one is taken (an answer sent
        # again, maybe after others: linked to its question, which may be deleted since).
        self.reply_to = reply_to
        self.interval = interval
        self.retry_wait = retry_wait  # before a final part not taken goes again (``delivered``)
        self.final_markup = final_markup
        self.completed = False  # the final answer (or the part that arrived) went out
        self.left_to_outbox = False  # not sent now, its row kept: the outbox sends it (``kept``)
        self.progress = Progress()  # the final answer's messages Telegram took so far
        self._record: Callable[[Progress], Awaitable[None]] | None = None  # told each one taken
        self.show_reasoning = show_reasoning
        self.rich_drafts = rich  # off for the rest of this answer once Telegram refuses one
        self.rich = rich
        self._thinking = FoldedText()  # the model's thinking so far (shown only, never kept)
        self._thought = 0  # characters of thinking received
        self._thought_shown = 0  # characters of thinking the last draft showed
        self.draft_id = secrets.randbelow(2**31 - 2) + 1
        self._parts = FoldedText()  # the answer so far, joined only when a draft goes out
        self._received = 0  # characters appended so far
        self._shown = 0  # characters the last draft showed
        self._dirty = False  # something came that no draft has shown yet
        self._next_allowed = 0.0
        # The next draft and the next "typing…": each a timer until it is due, then the call's
        # task while it is in flight, else None. A call that failed with a bug stays, so nothing
        # more is sent and ``complete`` or ``abort`` raises it.
        self._drafting: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self._typing: asyncio.TimerHandle | asyncio.Task[None] | None = None
        # Tries of final parts Telegram has not answered yet, left in flight (``delivered``).
        self._late: set[asyncio.Task[BaseException | None]] = set()

    async def begin(self) -> None:
        """Show "typing…" until the first text arrives; drafts follow the text from now on."""
        self._typing = asyncio.create_task(self._send_typing())

    async def append(self, delta: str) -> None:
        """Add a piece of the answer; a draft shows the whole when Telegram allows."""
        self._parts.append(delta)  # folded: drafts held back (a 429) keep one string, not many
        self._received += len(delta)
        self._changed()

    async def reason(self, delta: str) -> None:
        """Add a piece of the model's thinking; shown while no answer text has come."""
        if not self.show_reasoning:
            return
        self._thinking.append(delta)
        self._thought += len(delta)
        if not self._received:
            self._changed()  # the thinking shows: no more "typing…"

    async def complete(self, text: str, progress: Progress | None = None) -> None:
        """Stop the drafts and send the final answer as messages.

        ``progress``: the messages of it Telegram took before (a delivery pass's: only the rest
        go out). ``self.progress`` counts them as they are taken (and ``recording``'s callback
        is told each): when one is not taken now (the error raised), what a later delivery
        leaves out.
        """
        await self._stop()
        self.progress = progress or Progress()
        await self._send_final(text)
        self.completed = True

    def recording(self, record: Callable[[Progress], Awaitable[None]]) -> None:
        """Tell ``record`` (awaited before the next message goes out) each message taken."""
        self._record = record

    def kept(self) -> None:
        """Not sent now, but its row went with the charge: the outbox sends it."""
        self.left_to_outbox = True

    async def note_taken(self) -> None:
        """Telegram took one more note under the final answer: counted, and recorded.

        An answer sent again from its row (``handlers.chat.note_ending``): the count says which
        of its notes a later delivery leaves out, as ``progress.parts`` does for its messages.
        """
        await self._took(replace(self.progress, notes=self.progress.notes + 1))

    async def _took(self, progress: Progress) -> None:
        """One more of the final answer's messages taken: counted, and recorded."""
        self.progress = progress
        if self._record is not None:
            await self._record(progress)

    async def abort(self) -> None:
        """Stop showing progress."""
        await self._stop()

    async def say(self, text: str) -> None:
        """Send ``text`` as a plain message in the chat (a notice, not the answer)."""
        await self._notice(text, None)

    async def note(self, text: str, markup: InlineKeyboardMarkup) -> None:
        """Send ``text`` as a plain message with ``markup`` (a notice after the answer)."""
        await self._notice(text, markup)

    async def _notice(self, text: str, markup: InlineKeyboardMarkup | None) -> None:
        """Send a notice; Telegram's "ok" to a result that does not validate is one sent.

        The notice went out (``UnreadableReply.taken``): raised, it read as not sent, and the
        notes under an answer sent again stopped there, the row deleted with the rest unsent.
        """
        try:
            await self.bot.send_message(
                chat_id=self.chat_id,
                message_thread_id=self.thread_id,
                text=text,
                reply_markup=markup,
            )
        except UnreadableReply as exc:
            if not exc.taken:
                raise
            log.warning("streaming.notice_unreadable", error=describe(exc))

    async def _stop(self) -> None:
        """No more drafts or "typing…": timers off, the calls in flight cancelled."""
        self._dirty = False
        pending = [self._drafting, self._typing]
        self._drafting = self._typing = None
        for waiting in pending:
            if waiting is not None:
                waiting.cancel()
        for waiting in pending:
            if isinstance(waiting, asyncio.Task):
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting

    def _changed(self) -> None:
        """New text or thinking: no more "typing…"; a draft goes out when Telegram allows."""
        if isinstance(self._typing, asyncio.TimerHandle):
            self._typing.cancel()
            self._typing = None
        self._dirty = True
        if self._drafting is None:
            self._drafting = self._later_call(self._next_allowed, self._draft_now)

    def _draft_now(self) -> None:
        self._drafting = asyncio.create_task(self._flush_draft())

    async def _flush_draft(self) -> None:
        """Send the newest text (or thinking); the next draft's timer if more came meanwhile."""
        self._dirty = False
        if not self._received:
            if self._thought != self._thought_shown:
                await self._send_thought()
        elif self._received != self._shown:
            await self._send_draft(self._parts.text())
            # Counted from when Telegram answered, so arrivals are never closer than interval.
            self._next_allowed = max(self._next_allowed, time.monotonic() + self.interval)
        self._drafting = None
        if self._dirty:
            self._drafting = self._later_call(self._next_allowed, self._draft_now)

    async def _send_typing(self) -> None:
        """Send "typing…", and again in ``_TYPING_EVERY`` seconds unless text came meanwhile."""
        if self._received or self._thought:  # text came before this call went out
            self._typing = None
            return
        with contextlib.suppress(TelegramAPIError, ClientDecodeError):  # skipped: the next one
            await self.bot.send_chat_action(
                chat_id=self.chat_id, message_thread_id=self.thread_id, action="typing"
            )
        self._typing = None
        if not (self._received or self._thought):
            self._typing = self._later_call(time.monotonic() + _TYPING_EVERY, self._type_again)

    def _type_again(self) -> None:
        self._typing = asyncio.create_task(self._send_typing())

    @staticmethod
    def _later_call(when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """``callback`` at ``when`` (``time.monotonic``), or soon if that has passed."""
        delay = max(0.0, when - time.monotonic())
        return asyncio.get_running_loop().call_later(delay, callback)

    def _later(self, refused: TelegramRetryAfter) -> None:
        """A draft refused with 429: the newest text or thinking goes out once the wait is over."""
        self._next_allowed = time.monotonic() + refused.retry_after
        self._thought_shown = 0  # shown again after the wait while no answer text has come
        self._dirty = True
        log.info("streaming.draft_rate_limited", seconds=refused.retry_after)

    async def _send_thought(self) -> None:
        """Show the thinking's tail while the model has not started its answer."""
        self._thought_shown = self._thought
        if self.rich_drafts:
            thought = tail(self._thinking.text(), DRAFT_THOUGHT)
            if not thought:
                return
            block = InputRichBlockThinking(text=thought)
            if await self._rich_draft(InputRichMessage(blocks=[block])) != "refused":
                return
        rendered = draft_thought(self._thinking.text())
        if not rendered.text.strip():
            return
        try:
            await self.bot.send_message_draft(
                chat_id=self.chat_id,
                message_thread_id=self.thread_id,
                draft_id=self.draft_id,
                text=rendered.text,
                entities=entities_of(rendered),
                can_stop=True,
            )
        except TelegramRetryAfter as exc:
            self._later(exc)
        except (TelegramAPIError, ClientDecodeError) as exc:  # a proxy's page: skipped too
            log.warning("streaming.thought_draft_failed", error=type(exc).__name__)

    async def _rich_draft(self, message: InputRichMessage) -> Literal["sent", "later", "refused"]:
        """Send a rich draft: sent, to be sent again later, or refused (plain drafts from now)."""
        try:
            await self.bot.send_rich_message_draft(
                chat_id=self.chat_id,
                message_thread_id=self.thread_id,
                draft_id=self.draft_id,
                rich_message=message,
                can_stop=True,
            )
        except TelegramRetryAfter as exc:
            self._later(exc)
            return "later"
        except TelegramBadRequest:
            log.warning("streaming.rich_draft_rejected")
            self.rich_drafts = False
            return "refused"
        except (TelegramAPIError, ClientDecodeError) as exc:  # a proxy's page: skipped too
            log.warning("streaming.draft_failed", error=type(exc).__name__)
            return "later"
        return "sent"

    async def _send_draft(self, text: str) -> None:
        if self.rich_drafts:
            markdown = draft_markdown(text)
            if not markdown.strip():
                return
            outcome = await self._rich_draft(InputRichMessage(markdown=markdown))
            if outcome == "sent":
                self._shown = len(text)
            if outcome != "refused":
                return
        rendered = preview(text)
        if not rendered.text.strip():
            return
        try:
            await self.bot.send_message_draft(
                chat_id=self.chat_id,
                message_thread_id=self.thread_id,
                draft_id=self.draft_id,
                text=rendered.text,
                entities=entities_of(rendered),
                can_stop=True,
            )
        except TelegramRetryAfter as exc:
            self._later(exc)
            return
        except TelegramBadRequest:
            with contextlib.suppress(TelegramAPIError, ClientDecodeError):
                tail = plain_parts(text)[-1:] or [""]
                await self.bot.send_message_draft(
                    chat_id=self.chat_id,
                    message_thread_id=self.thread_id,
                    draft_id=self.draft_id,
                    text=tail[0],
                    can_stop=True,
                )
        except (TelegramAPIError, ClientDecodeError) as exc:  # a proxy's page: skipped too
            log.warning("streaming.draft_failed", error=type(exc).__name__)
            return
        self._shown = len(text)

    async def _send_final(self, text: str) -> None:
        """Send the final answer's messages not taken yet (``progress``), counting each taken."""
        if self.rich or self.progress.rich:
            text = await self._send_rich(text)
            if not text:
                return
        parts = render_parts(text)
        start = self.progress.parts  # the same text splits the same way: go on from there
        thought = self._thinking.text()
        if thought.strip() and not start:
            start = await self._send_thought_first(thought, parts)
        plain = False
        for index in range(start, len(parts)):
            part = parts[index]
            markup = self.final_markup if index == len(parts) - 1 else None
            if not plain:
                try:
                    await self._deliver(part.text, entities_of(part), markup)
                except TelegramBadRequest:
                    # Telegram refused the formatting: the same text goes out plain.
                    log.warning("streaming.entities_rejected", part=index)
                    plain = True
                else:
                    await self._took(replace(self.progress, parts=index + 1))
                    continue
            await self._deliver(part.text, markup=markup)
            await self._took(replace(self.progress, parts=index + 1))

    async def _send_thought_first(self, thought: str, parts: list[Rendered]) -> int:
        """Send the answer's first message with the thinking folded in; how many parts it took.

        The thinking is only shown: if Telegram refuses that message, or does not take it in
        all its tries, the answer goes on without it (its first part again, alone), never lost
        to its thinking. A message that was not taken may have been shown after all: then the
        answer's first part shows twice. A thinking too long to join the first part is a
        message of its own: no part of the answer taken (0).
        """
        folded = with_thought(thought, parts)
        first = folded[0]
        markup = self.final_markup if len(folded) == 1 else None
        try:
            await self._deliver(first.text, entities_of(first), markup)
        except (TelegramBadRequest, *_NOT_TAKEN) as exc:
            log.warning("streaming.thought_dropped", error=type(exc).__name__)
            return 0
        if len(folded) > len(parts):  # the thinking alone
            return 0
        await self._took(replace(self.progress, parts=1))
        return 1

    async def _deliver(
        self,
        text: str,
        entities: list[MessageEntity] | None = None,
        markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Send one message of the final answer (``delivered``: sent again if not taken)."""
        await delivered(
            partial(
                self.bot.send_message,
                chat_id=self.chat_id,
                message_thread_id=self.thread_id,
                text=text,
                entities=entities,
                reply_markup=markup,
                reply_parameters=self._replying(),
            ),
            self._withdraw,
            self._late,
            retry_wait=self.retry_wait,
        )
        self.reply_to = None

    def _replying(self) -> ReplyParameters | None:
        """What the next message replies to: the question, for the first one (or none)."""
        if self.reply_to is None:
            return None
        return ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)

    async def _withdraw(self, message_id: int) -> None:
        """Delete a final part's copy that a slow Telegram took after another try of it."""
        try:
            await self.bot.delete_message(chat_id=self.chat_id, message_id=message_id)
        except (TelegramAPIError, ClientDecodeError) as exc:
            log.warning("streaming.copy_kept", error=type(exc).__name__)
        else:
            log.info("streaming.copy_withdrawn")

    async def _send_rich(self, text: str) -> str:
        """Send the answer as rich messages; what Telegram refused, left for the fallback.

        The thinking, when shown, goes first as a folded quote of its own (then the fallback
        does not repeat it). Parts go out in order, from the first not taken yet
        (``progress.rich``); at the first one refused (400) the rest of the answer, from that
        part on, is returned for the entity rendering (the whole text, at the first part), as
        it is at once where an earlier delivery fell back already (``progress.parts``) or rich
        messages are off now.
        """
        parts = rich_parts(text)
        if not parts:
            return text
        taken = self.progress.rich
        if not self.rich or self.progress.parts:
            self._thinking = FoldedText()
            return _rest(text, parts, taken)
        thought = self._thinking.text()
        if thought.strip() and not taken:
            folded = quote(thought, MAX_FOLDED, expandable=True)
            try:
                await self._deliver(folded.text, entities_of(folded))
            except (TelegramBadRequest, *_NOT_TAKEN) as exc:  # only shown: the answer goes on
                log.warning("streaming.thought_dropped", error=type(exc).__name__)
        self._thinking = FoldedText()
        for index in range(taken, len(parts)):
            part = parts[index]
            markup = self.final_markup if index == len(parts) - 1 else None
            try:
                await delivered(
                    partial(
                        self.bot.send_rich_message,
                        chat_id=self.chat_id,
                        message_thread_id=self.thread_id,
                        rich_message=InputRichMessage(markdown=part),
                        reply_markup=markup,
                        reply_parameters=self._replying(),
                    ),
                    self._withdraw,
                    self._late,
                    retry_wait=self.retry_wait,
                )
                self.reply_to = None
            except TelegramBadRequest:
                log.warning("streaming.rich_rejected", part=index, parts=len(parts))
                return _rest(text, parts, index)
            await self._took(replace(self.progress, rich=index + 1))
        return ""


def _rest(text: str, parts: list[str], taken: int) -> str:
    """The answer after its first ``taken`` rich messages, for the entity rendering.

    The whole text where none was taken (the model's own Markdown, as without rich messages),
    so a count of entity parts means the same whichever way the answer began.
    """
    return "\n\n".join(parts[taken:]) if taken else text
