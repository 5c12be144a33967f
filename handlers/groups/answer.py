"""One question in a group, answered detached from its update, in the group's turn.

The answer waits for its group's turn (``Editors.turn``), posts its placeholder with a stop
button, streams the model's answer into it by paced edits and remembers the thread it ends
(``ReplyChains``). ``/stop`` withdraws it unposted while it waits, or stops it as its button
would once it streams (``GroupAnswer.stop``). A failure is told to the asker alone, a part
shown noted under it; for an asker gone from the group (``Presence``) the notice is dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal

import structlog
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest

from handlers.failures import apologise_outside, apology_key, tell_outside
from handlers.groups.presence import Presence
from handlers.groups.telling import REFUSED, TOPIC_CLOSED, not_answered
from handlers.replies import new_tag, one_off, stop_keyboard, went_out
from models.outbox import Outbound
from services.answers import Shown
from services.errors import AnswerInProgress, InsufficientCredit, VeilError
from services.fitting import quoted
from services.groups import Posting
from services.questions import Question

if TYPE_CHECKING:
    from aiogram.types import InlineKeyboardMarkup

    from common.texts import Texts
    from handlers.failures import Asker
    from handlers.groups.kit import GroupKit
    from handlers.groups.presence import Joined
    from handlers.sinks import EditedAnswer
    from services.answers import Said

log = structlog.get_logger("veil.groups")

# Failures of an answer as it begins (the asker's credit, their answer elsewhere): its asker was
# in the group a moment before, asking or looked up in their turn, and is not looked up again.
BEGINNING = (InsufficientCredit, AnswerInProgress)
# Placeholders posted for one answer at most: one Telegram took without naming it is left.
PLACEHOLDER_TRIES = 2


@dataclass(eq=False)
class GroupAnswer:
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
    shown: Shown | None = None
    sink: EditedAnswer | None = None
    stop_tag: str | None = None  # its stop button's, once its turn came
    # Its placeholder on the way; withdrawn by ``/stop`` before the model was asked (``stop``)
    posting: Posting = field(default_factory=Posting)
    # What it learns of whether the asker is still in the group (``Presence``)
    presence: Presence = field(init=False)

    def __post_init__(self) -> None:
        """The asker's presence, looked up as the question waits and in its turn."""
        self.presence = Presence(self.kit, self.asker, basic=self.basic)

    async def run(self) -> None:
        """In the group's turn: the placeholder, the answer streamed into it, its note.

        Then (or failing) the asker may ask in the group again.
        """
        # What the asker was in the group as they asked, learnt while the question waits.
        joined = asyncio.create_task(self.presence.as_asked()) if self.queued else None
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
            if self.withdrawn or (joined is not None and await self.presence.gone(joined)):
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
        if not isinstance(error, BEGINNING) and await self.presence.gone(None):
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
