"""Conversations: one question in, one streamed answer out, history kept sealed.

``ChatService.answer`` builds the context from the user's decrypted history (trimmed to the
model's window by token ceilings, an answer stored with its receipt's count by that count and
a question by its request's prompt count where that is lower, ``services.tokens``), holds
credit for it under the sealed request's own id, streams the answer from the sealed inference
client into an ``AnswerSink`` (the bot's Telegram-facing side), settles, and stores the
exchange encrypted once it is finished or the user stopped it.
The model's window is the one the gateways' signed bundles state for it, at most
``context_tokens`` (also the window of a model they state none for); the answer may have what
the context leaves of it, at most ``max_answer_tokens`` (the rules: ``services.fitting``). A
question too long on its own for that by its ceiling (a text file, a long paste) is asked with
the answer's room all the same, and if the model server refuses it, fitted by the count its
refusal states (``Fitter.refit``): asked again for what the window leaves, or a text file
(``Question.document``) cut to its start, the user told how much of it was read
(``Answer.file_read``). A failed answer stores nothing (the
text that arrived intact before the failure is still delivered, since it is paid for), and the
prompt is kept in memory only, so the user's Retry button can resend it (a text file's whole,
fitted anew: ``Failed``): under a key of its own that the failure carries (``InferenceError.retry``,
``Answer.retry``) for its button, so each button asks its own question (``retry_question``). A
refusal no Retry can help (the question alone too long; the window filled under text that
went out) keeps nothing.

Stopping touches only the stream. ``ChatService.cancel`` (the draft's stop button, for the
draft it names; ``/cancel``) signals the inference stream, which cancels at the gateway and
reads on to the signed ``stopped`` receipt; the hold, the settlement, the delivery of the
text and its storage always run to the end. So does shutdown: ``close`` stops every answer
and waits for each to be settled, delivered and stored. An answer streams for at most
``max_answer_seconds``; ``sweep`` releases holds older than the longest an answer can take
(left by a crash), sparing the answers still running. A stop button shown before its answer
began (an inline article's, a guest answer's: ``offer``) stops it ahead: once its asker pressed
it, ``start`` answers nothing, so nothing is held, asked or charged.

``start`` runs an answer detached from its caller, in a task the service owns: an update's
handler claims the user (``AnswerInProgress`` at once if they have an answer streaming;
``ErasureInProgress``, a kind of it, while ``forget`` erases their data; a question sent once
the previous answer's stream has ended, or once the user stopped it, waits for its settlement,
delivery and storage, so the user who saw the final message is answered, in order, in the
conversation it was sent in: ``/new`` or a switch waits for it to open it), starts
the answer and returns, so the update and everything its handling keeps are freed while the
answer streams. What follows the answer, or its failure, goes to a ``Followup`` the caller
gives; shutdown waits for these tasks (``wait_idle``, then ``close``).

An answer's charge also writes where its final message goes and its text, sealed, for a
restart or a later pass to deliver what a crash or Telegram kept from its user
(``services.delivery``: the service's ``deliveries``).

Every answer is settled by one rule: from its signed receipt if there is one (stopped and
failed ones too), kept with its proof for the audit; else, if text reached the user, from the
bot's own ceiling of that text plus the prompt's; else nothing.

An answer the model cut at its length limit (``finish_reason`` ``length``) in the user's
conversation can be continued: ``take_continuation`` says whether the answer a Continue button
names is still its conversation's latest, and cut (kept in memory only, like the Retry prompt:
one a topic, or the chat's own; an answer in another topic leaves it as it is), and
``CONTINUE_PROMPT`` is the question that asks the model to go on, a new turn billed as any
(``Question.continues``): where the context cannot hold the cut answer whole (a window of
2048 tokens leaves the context no more than the answer's own room), its end goes quoted before
it, so the model always sees where it stopped; where it cannot hold the question the cut
answer answers (a text file), that question goes cut in its middle before the answer
(``Fitter.continuing``), so the model still sees what it was answering. A continuation that failed
is asked again by Retry as a continuation (``Failed.continues``), fitted the same way.

A reasoning model's thinking goes to a sink that takes it (``ReasoningSink.reason``) and
nowhere else: it is never part of the answer's text, the stored history or the retry prompt.
So does thinking a model served without a reasoning parser writes into the text itself, a
``<think>…</think>`` opening the answer (``services.think_tags``).

Conversations: a question in the private chat itself continues the user's active conversation;
one asked in a topic (``Question.thread_id``, where the bot has topics in private chats)
continues that topic's own, started there and then for a topic the store does not know. The
first answer stored in a conversation comes back with ``Answer.naming``, and
``name_conversation`` then asks the model for a short title in a second, small sealed request
(``services.titles``), billed from its own receipt like any answer, and keeps it sealed. It runs
after the answer was delivered and never raises: a title that fails is only logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from common.folded import FoldedText
from common.shielded import finished, written
from common.visible import shows_nothing
from models import ConversationNotFound, TokenCount
from models.outbox import Finish, Outbound
from models.store import Writer
from sealed.request import REQUEST_ID_SIZE
from services.audit import proof_for
from services.closing import CloseDeadline
from services.credit import MIN_ANSWER_TOKENS
from services.delivery import DELIVER_WITHIN_S, Deliveries
from services.errors import (
    AnswerInProgress,
    ContextTooLong,
    ErasureInProgress,
    HistoryUnavailable,
    InferenceError,
    InferenceUnavailable,
    LedgerUnavailable,
    ModelStalled,
    QuestionTooLong,
    StreamCorrupted,
    VeilError,
    history_failures,
    settings_failures,
)
from services.fitting import Context, Fitter, Turn
from services.inference import (
    ChatRequest,
    Completion,
    GatewayTrust,
    InferenceClient,
    ReasoningDelta,
    Signal,
    StopSignal,
    TextDelta,
)
from services.kept import Kept, Offers
from services.questions import (
    Answer,
    AnswerSink,
    Failed,
    Followup,
    Naming,
    Question,
    ReasoningSink,
    StopTag,
)
from services.think_tags import Piece, ThinkTags
from services.titles import TITLE_TOKENS, clean_title, title_messages
from services.tokens import answer_tokens, prompt_tokens, text_tokens

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Coroutine

    from models import Conversation, Store, UserRecord
    from models.holds import AnswerChat, Charge
    from models.outbox import Ending
    from models.store import TurnsWriter
    from sealed.bundle import SignedBundle
    from sealed.receipt import SignedReceipt, UsageReceipt
    from services.credit import Credit, Hold
    from services.documents import TextFile

log = structlog.get_logger("veil.chat")

REFITS = 3  # how often a question alone too long is fitted by the model server's count again
_RETRY_MEMORY = 10_000  # failed questions kept for Retry buttons (cut answers for Continue), in all
KEPT_PER_USER = 8  # a user's newest failed questions kept (their topics' cut answers)
# Before a conversation's answer id while it ends (``ChatService._cut_begins``): no Continue
# button carries it (a request id is hex), so none is taken for it.
_ENDING = "ending:"
# Beyond the longest stream and the stop grace: a settlement waiting for a locked database.
SWEEP_SLACK_S = 120.0
CLOSE_SLACK_S = 30.0  # how long ``close`` waits beyond the stop grace for answers to finish
CUT = "length"  # the finish reason of an answer cut at its length limit
# The question a Continue button asks, in the model's own language of instructions; it is
# stored as the user's turn like any question, so the history reads as what happened.
CONTINUE_PROMPT = (
    "Your previous answer was cut off by the length limit. Continue it exactly from where it "
    "stopped, without repeating anything or starting over."
)


@dataclass(slots=True)
class _Generation:
    """One answer in progress: what can stop it, and the holds it has open."""

    stop_tag: StopTag | None = None
    stop: StopSignal = field(default_factory=StopSignal)
    task: asyncio.Task[Answer] | None = None
    stoppable: bool = True  # until the stream has ended (then a next question waits for it)
    holds: set[str] = field(default_factory=set)
    claimed: Question | None = None  # ``start`` claimed the user for this question
    after: _Generation | None = None  # the user's previous answer, finishing: waited for first
    thought: bool = False  # the model began its answer by thinking (shown or not)
    thread_id: int | None = None  # the topic it is asked in (None: the chat itself)
    private: bool = False  # asked in the user's private chat (not a group's, inline or guest)
    left: bool = False  # its conversation was left while it ran (``/new``): no Continue, no Retry
    # Set once it has read which conversation it is asked in (or will read none): ``_opened``.
    opened: Signal = field(default_factory=Signal)

    def with_previous(self) -> list[_Generation]:
        """This answer, and the user's previous one while this one waits for it."""
        return [self] if self.after is None else [self, self.after]


@dataclass(frozen=True)
class _Asked:
    """Who asked what, where, of which model."""

    user_id: int
    prompt: str
    conversation: int | None  # None: a one-off question, nothing stored
    model: str
    naming: Naming | None = None  # set when the exchange would be the conversation's first
    thread_id: int | None = None  # the topic asked in (None: the chat itself)
    file_read: int | None = None  # the percent of the question's file the model read, if cut
    document: TextFile | None = field(default=None, repr=False)  # the file asked about, if any
    private: bool = False  # asked in the user's private chat (``Question.private``)
    retry: Failed = field(default_factory=Failed, repr=False)  # asked again by Retry, if it fails
    retried: str | None = None  # the Retry key it was asked by (``Question.retried``)
    outbound: Outbound | None = None  # where its final message goes (``Question.outbound``)
    reply_to: int | None = None  # the message that asked it (``Question.reply_to``)


@dataclass(frozen=True, slots=True)
class _Opened:
    """The asker, the conversation to store into (None: one-off), the turns before it."""

    user: UserRecord
    conversation: int | None
    history: list[Turn]
    unnamed: bool = False  # a conversation with no turns and no title yet


@dataclass(frozen=True)
class _Ended:
    """A stream that ended: its hold, the final record (if any), the text."""

    hold: Hold
    completion: Completion | None
    text: str


@dataclass(slots=True)
class _Fitting:
    """The prompt asked and its context, as fitted again after the model server's refusals."""

    prompt: str
    context: Context
    retried: bool = False  # the history trimmed once more
    refits: int = 0  # the question alone fitted by the model server's count
    kept: int | None = None  # the characters of the question's file read (None: all)


@dataclass(frozen=True, slots=True)
class _Refused:
    """A refusal as too long: the error, the turns before, the window, whether the answer began.

    ``streamed``: text (blanks even) or thinking came before it: the window filled as the
    model wrote, so the question fit and is neither cut nor asked again. ``left``: its
    conversation was left meanwhile (``_Generation.left``): no Retry.
    """

    error: ContextTooLong
    history: list[Turn]
    window: int
    streamed: bool = False
    left: bool = False


@dataclass
class ChatService:
    """Answers users' questions through the sealed inference client."""

    store: Store
    inference: InferenceClient
    credit: Credit
    default_model: str | None = None
    context_tokens: int = 4096
    max_answer_tokens: int = 1024
    min_answer_tokens: int = MIN_ANSWER_TOKENS
    max_answer_seconds: float = 600.0
    stop_grace: float = 10.0
    system_prompt: str | None = None
    titles: bool = True
    deliver_within: float = DELIVER_WITHIN_S
    clock: Callable[[], float] = time.time
    _active: dict[int, _Generation] = field(default_factory=dict, init=False)
    # user -> the key a Retry button carries -> (the topic it failed in, its question)
    _retry: Kept[str, tuple[int | None, Failed]] = field(
        default_factory=lambda: Kept(per_user=KEPT_PER_USER, most=_RETRY_MEMORY), init=False
    )
    # user -> the topic (None: the chat itself) -> its conversation's latest answer, if cut
    _cut: Kept[int | None, str] = field(
        default_factory=lambda: Kept(per_user=KEPT_PER_USER, most=_RETRY_MEMORY), init=False
    )
    # The stop buttons shown before their answers began (inline, guest): ``offer``
    _offers: Offers[StopTag] = field(
        default_factory=lambda: Offers(per_user=KEPT_PER_USER, most=_RETRY_MEMORY), init=False
    )
    _titling: dict[int, list[_Titling]] = field(default_factory=dict, init=False)
    _detached_tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    # user -> their answers' tasks started with ``start``, followups included (``forget``)
    _following: dict[int, set[asyncio.Task[None]]] = field(default_factory=dict, init=False)
    # user -> their erasures running or waiting their turn (``forget``)
    _forgetting: dict[int, _Erasing] = field(default_factory=dict, init=False)
    _erasures: OrderedDict[int, int] = field(default_factory=OrderedDict, init=False)
    # Holds of answers delivered whose charge could not be written (left open to the sweep):
    # their users have the answer, so the sweep does not leave them to be told it was cut off.
    _delivered_open: set[str] = field(default_factory=set, init=False)
    # The answers' final messages and their rows (``services.delivery``).
    deliveries: Deliveries = field(init=False)
    _shutting_down: bool = field(default=False, init=False)  # no title is asked from then on
    _close_deadline: CloseDeadline = field(default_factory=CloseDeadline, init=False)
    # The served models the settings were last checked against (``_check_model_settings``).
    _checked_against: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        # The clock and the lifetime read through the service at each use: a test may set
        # its clock later, and the lifetime follows ``max_answer_seconds``.
        self.deliveries = Deliveries(
            self.store,
            clock=self._now,
            lifetime=lambda: self.hold_lifetime,
            within=self.deliver_within,
        )

    def _now(self) -> float:
        return self.clock()

    # -- answering ---------------------------------------------------------------------------

    async def answer(self, question: Question, sink: AnswerSink) -> Answer:
        """Answer ``question``, streaming into ``sink``.

        In the user's active conversation when ``question.keep_history``; else as a one-off
        with only ``question.context`` before it, nothing read or stored. Raises
        ``AnswerInProgress`` if the user already has one in progress, ``InsufficientCredit``
        when not even a short answer can be paid for, ``InferenceError`` subclasses when the
        model cannot answer (the prompt is then kept for ``retry_question``), and
        ``HistoryUnavailable`` when the history cannot be read or written. Cancelling the
        caller stops the stream only: the answer is still settled, delivered and stored
        before the cancellation goes on.
        """
        user_id = question.user_id
        generation = self._active.get(user_id)
        if generation is None or generation.claimed is not question:
            for taken in self._generations():  # its claim, stopped and followed, opens nothing
                if taken.claimed is question:
                    taken.opened.set()
            generation = self._claim(question)
        generation.claimed = None
        try:
            inner = asyncio.create_task(self._answer(question, sink, generation))
            generation.task = inner
            try:
                return await asyncio.shield(inner)
            except asyncio.CancelledError:
                generation.stop.set()  # end the stream; the rest of the answer runs on
                await finished(inner)
                raise
        finally:
            generation.opened.set()  # ended: it reads no conversation now
            if self._active.get(user_id) is generation:  # not a next question's, waiting
                del self._active[user_id]

    def start(self, question: Question, sink: AnswerSink, followup: Followup) -> None:
        """Answer ``question`` in a task of the service's own, detached from the caller.

        Returns at once, so the caller (an update's handler) ends and its objects are freed
        while the answer streams. The user is claimed before it returns: ``AnswerInProgress``
        is raised here, to the caller, if they already have an answer in progress. The task
        runs ``answer``, then ``followup.answered``; a failure of either (any ``Exception``)
        goes to ``followup.failed`` (``detach``).

        A question whose stop button was offered (``offer``) and pressed by its asker before
        this is not answered: no credit held, no model asked, nothing charged; its followup is
        told it stopped with nothing written.
        """
        tag = question.stop_tag
        if tag is not None and self._offers.take(question.user_id, tag):
            log.info("chat.stopped_ahead", user_id=question.user_id)
            work = self._stopped_ahead(followup)
        else:
            self._claim(question).claimed = question
            work = self._answer_then(question, sink, followup)
        task = self.detach(work, followup.failed)
        following = self._following.setdefault(question.user_id, set())
        following.add(task)
        task.add_done_callback(functools.partial(self._followed, question.user_id))

    def _followed(self, user_id: int, task: asyncio.Task[None]) -> None:
        """An answer of ``start``'s ended, its followup too: ``forget`` need not wait for it."""
        following = self._following.get(user_id)
        if following is not None:
            following.discard(task)
            if not following:
                del self._following[user_id]

    def detach(
        self, work: Coroutine[Any, Any, None], failed: Callable[[Exception], Awaitable[None]]
    ) -> asyncio.Task[None]:
        """Run ``work`` (an answer and what goes with it) in a task the service owns.

        For work that must wait before its user can be claimed (a group answer waits for the
        group's turn); ``start`` is the usual way. A failure of ``work`` (any ``Exception``)
        goes to ``failed``; one of ``failed`` itself is logged. ``close`` stops the answers and
        waits for these tasks, and ``wait_idle`` waits for them to end on their own. Returns
        the task.
        """
        task = asyncio.create_task(self._detached(work, failed))
        self._detached_tasks.add(task)
        task.add_done_callback(self._detached_tasks.discard)
        return task

    @property
    def running(self) -> int:
        """Answers started with ``start`` or ``detach`` that have not ended (all their work)."""
        return len(self._detached_tasks)

    async def wait_idle(self, within: float) -> bool:
        """Wait until no detached answer runs, at most ``within`` seconds; True if none does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._detached_tasks:
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.wait(list(self._detached_tasks), timeout=left)
        return True

    def _claim(self, question: Question) -> _Generation:
        """Make ``question`` the user's answer in progress; ``AnswerInProgress`` if one streams.

        An answer whose stream has ended is only being settled, delivered and stored, and one
        the user stopped only reads on to its ``stopped`` receipt: the new one waits for it
        (``after``) rather than being refused ("stop it with /cancel", just after /cancel), and
        reads the history after it.
        """
        if question.user_id in self._forgetting:  # read nothing that is being erased
            raise ErasureInProgress("the user's data is being erased")
        previous = self._active.get(question.user_id)
        if previous is not None and previous.stoppable and not previous.stop.is_set():
            raise AnswerInProgress("an answer is already in progress")  # streaming, or to begin
        generation = _Generation(
            stop_tag=question.stop_tag,
            after=previous,
            thread_id=question.thread_id,
            private=question.private,
        )
        self._active[question.user_id] = generation
        return generation

    def _generations(self) -> list[_Generation]:
        """Every answer in progress: the users' own and the finishing ones they wait for."""
        return [g for current in self._active.values() for g in current.with_previous()]

    async def _answer_then(self, question: Question, sink: AnswerSink, followup: Followup) -> None:
        await followup.answered(await self.answer(question, sink))

    @staticmethod
    async def _stopped_ahead(followup: Followup) -> None:
        """A question stopped before its answer began: it ends as a stop before a word does."""
        stopped = Answer(
            text="", model="", stopped=True, finish_reason=None, receipt=None, receipt_valid=False
        )
        await followup.answered(stopped)

    def offer(self, user_id: int, stop_tag: StopTag) -> None:
        """Remember a stop button about to be shown before its answer begins (inline, guest).

        Until ``start`` begins its answer, the asker's press of it stops that answer ahead
        (``cancel``), and it shows as in progress (``shows``). In memory only, bounded (a
        user's newest ``KEPT_PER_USER``): a restart, or newer offers, forget it.
        """
        self._offers.offer(user_id, stop_tag)

    def withdraw(self, stop_tag: StopTag) -> None:
        """Forget an offered stop button whose message was not shown (``offer``)."""
        self._offers.withdraw(stop_tag)

    async def _detached(
        self, work: Coroutine[Any, Any, None], failed: Callable[[Exception], Awaitable[None]]
    ) -> None:
        with self.deliveries.following():
            try:
                await work
            except Exception as exc:  # noqa: BLE001 -- every failure is the caller's to report
                try:
                    await failed(exc)
                except Exception as unreported:  # noqa: BLE001 -- the edge: a log line, no text
                    log.warning(
                        "chat.failure_unreported",
                        error=type(exc).__name__,
                        reporting=type(unreported).__name__,
                    )

    def cancel(self, user_id: int, stop_tag: StopTag | None = None) -> bool:
        """Ask the user's streaming answer to stop; False if none is streaming.

        With ``stop_tag`` (a stop button's), only the answer shown where that button sits
        stops: a late press never stops the next answer, and nobody but the asker stops one.
        The answer ends at the gateway's ``stopped`` receipt (within the client's stop grace):
        what was delivered is kept, shown and charged. Once the stream has ended, nothing is
        left to stop. A button offered before its answer began (``offer``) stops it ahead: its
        asker's press is remembered, and ``start`` then answers nothing.
        """
        generation = self._active.get(user_id)
        if (
            generation is not None
            and generation.stoppable
            and (stop_tag is None or generation.stop_tag == stop_tag)
        ):
            generation.stop.set()
            return True
        return stop_tag is not None and self._offers.press(user_id, stop_tag)

    def streams_elsewhere(self, user_id: int) -> bool:
        """Whether the answer ``cancel`` would stop is written outside the user's private chat.

        A group's, an inline or a guest answer: a private ``/cancel`` stops it there (one
        answer a user at a time, and the "busy" notice says to), where the private chat would
        show nothing of it.
        """
        generation = self._active.get(user_id)
        return generation is not None and generation.stoppable and not generation.private

    def shows(self, stop_tag: StopTag) -> bool:
        """Whether an answer (anyone's) under the stop button ``stop_tag`` is in progress.

        One offered and not begun yet (``offer``) is. None is once it has ended, or for a
        button whose answer never began: a placeholder Telegram took without the bot learning
        which message it is (the send timed out, or its reply named none) keeps a stop button
        nothing stands behind.
        """
        return self._offers.offered(stop_tag) or any(
            g.stop_tag == stop_tag for g in self._generations()
        )

    async def close(self, within: float | None = None) -> None:
        """Stop every answer and title request in progress; wait until each is settled.

        Answers are settled, delivered and stored (those started with ``start`` also run their
        followup); a stopped title request is settled and its title dropped. Waits at most
        ``within`` seconds (the stop grace plus ``CLOSE_SLACK_S`` unless given); one still
        running then is left to the loop's teardown (its hold is released at the next start).
        The first call sets the deadline: a later one (the bot's teardown after ``drain``)
        waits only for what is left of it, so the stop keeps within the time it is given, and
        answers still running then are told once (``CloseDeadline``).
        """
        self._close_deadline.start(self.stop_grace + CLOSE_SLACK_S if within is None else within)
        self.stop_titles()
        generations = self._generations()
        titlings = [t for running in self._titling.values() for t in running]
        for generation in [*generations, *(t.generation for t in titlings)]:
            generation.stop.set()
        tasks: list[asyncio.Task[Any]] = [
            g.task for g in generations if g.task is not None and not g.task.done()
        ]
        tasks += [task for task in self._detached_tasks if not task.done()]  # their followups too
        ends = [asyncio.create_task(t.ended.wait()) for t in titlings if not t.ended.is_set()]
        if tasks or ends:
            timeout = self._close_deadline.left()
            done, running = await asyncio.wait([*tasks, *ends], timeout=timeout)
            for task in done:
                if task not in ends and not task.cancelled():
                    task.exception()  # retrieved: the answer's caller reports it
            for end in ends:
                end.cancel()
            if running and self._close_deadline.overrun():
                log.warning("chat.close_timed_out", answers=len(running))

    def stop_titles(self) -> None:
        """Shutdown has begun: no title request starts from now on (``name_conversation``).

        Answers in progress still finish within the grace; a title asked after one would be
        stopped by ``close`` and settled, billed for a title nobody sees, or end with the
        process before it is stored.
        """
        self._shutting_down = True

    @property
    def hold_lifetime(self) -> float:
        """The longest a hold can stay open for a running answer (seconds)."""
        return self.max_answer_seconds + self.stop_grace + SWEEP_SLACK_S

    async def sweep(self, spare: Collection[str] = ()) -> int:
        """Release holds older than ``hold_lifetime`` that no answer here is using.

        Titles being asked are spared as the answers are. ``spare``: the holds of answers
        this process runs elsewhere (the Mini App's relay: ``RelayService.holding``), whose
        gateway may take its read timeout to begin before the answer's own time runs. Swept,
        a running answer's credit was free to spend twice until its late charge.
        """
        titles = [t.generation for each in self._titling.values() for t in each]
        keep = {request_id for g in [*self._generations(), *titles] for request_id in g.holds}
        keep.update(spare)
        delivered = frozenset(self._delivered_open)
        released = await self.credit.recover(self.hold_lifetime, keep=keep, delivered=delivered)
        self._delivered_open -= delivered
        if released:
            log.warning("chat.holds_swept", count=released)
        return released

    def retry_question(self, user_id: int, key: str, thread_id: int | None) -> Failed | None:
        """The failed question a Retry button kept under ``key`` asks again, if still kept.

        Each failure's button names its own question, so an older button asks its own, not
        the newest. It stays kept until an answer to it begins (``Question.retried``): a press
        refused before that (no credit, an answer in progress) leaves the button working. Only
        where it failed (topic ``thread_id``, None: the chat itself), while its conversation is
        still that one's. Memory only: a restart, ``forget``, a new conversation there
        (``new_conversation``, ``switch_conversation``) or the bound (``KEPT_PER_USER`` a user)
        lets go of it.
        """
        kept = self._retry.get(user_id, key)
        if kept is None or kept[0] != thread_id:
            return None
        return kept[1]

    def take_continuation(self, user_id: int, request_id: str, thread_id: int | None) -> bool:
        """Whether ``request_id`` is the latest answer of its conversation, stored and cut (once).

        The conversation is the topic's (``thread_id``), or the chat's own (None). A later
        answer in the same conversation, ``/new`` or switching it there, or a restart, makes
        an older Continue button stale: it then asks nothing. One in another topic does not.
        """
        if self._cut.get(user_id, thread_id) != request_id:
            return False
        self._cut.pop(user_id, thread_id)
        return True

    def keep_continuation(self, user_id: int, request_id: str, thread_id: int | None) -> None:
        """Give back what ``take_continuation`` just gave, not asked (refused, or busy).

        An answer in the same conversation makes it stale when it ends; one ending there now
        (``_cut_begins``) already has.
        """
        if (self._cut.get(user_id, thread_id) or "").startswith(_ENDING):
            return
        self._cut.put(user_id, thread_id, request_id)

    def _cut_begins(self, user_id: int, thread_id: int | None, request_id: str) -> None:
        """The conversation's answer ``request_id`` is ending: an older Continue there is stale.

        Its slot holds a mark no button carries (``_ENDING``) until ``_cut_ends``: a ``/new``,
        a switch or ``forget`` while its final message is still going out (Telegram slow or
        down: then the outbox sends it) lets go of the mark, and its Continue is not kept.
        """
        self._cut.put(user_id, thread_id, _ENDING + request_id)

    def _cut_ends(self, user_id: int, thread_id: int | None, request_id: str, *, cut: bool) -> None:
        """Keep the answer's Continue if it was ``cut`` (and stored), still its slot's mark.

        Nothing changes where the mark is gone: the user started or switched to another
        conversation there (or erased everything) since, and Continue would go on in that one,
        from an answer it does not hold.
        """
        if self._cut.get(user_id, thread_id) != _ENDING + request_id:
            return
        if cut:
            self._cut.put(user_id, thread_id, request_id)
        else:
            self._cut.pop(user_id, thread_id)

    def _leave(self, user_id: int, thread_id: int | None) -> None:
        """The conversation there is left (``/new``, a switch): its answer keeps no button.

        Streaming, or its final message going out: its Continue would go on in the fresh
        conversation from an answer that one does not hold, its Retry (if it fails) ask its
        question there without the turns it followed on from (``_Generation.left``).
        """
        current = self._active.get(user_id)
        for generation in [] if current is None else current.with_previous():
            if generation.thread_id == thread_id:
                generation.left = True

    def _remember_failed(
        self,
        user_id: int,
        thread_id: int | None,
        failed: Failed,
        *,
        private: bool,
        retried: str | None = None,
    ) -> str | None:
        """Keep the failed question for a Retry button (``Failed.of``: a file's whole, say).

        Returns the key the button carries: ``retried``, the key it was asked again by, or a
        new one. Only a private chat's (``private``; None otherwise): Retry is a button there,
        and a group's or an inline question's text must not be asked in the private chat by it.
        """
        if not private:
            return None
        key = retried or secrets.token_hex(8)
        self._retry.put(user_id, key, (thread_id, failed))
        return key

    async def _answer(
        self, question: Question, sink: AnswerSink, generation: _Generation
    ) -> Answer:
        user_id = question.user_id
        opened = await self._open(question, generation)
        user, conversation = opened.user, opened.conversation
        model = await self.model_for(user.model)
        window = self._window(model)
        prompt, context = self._fit.asking(
            question,
            [turn.for_model(model) for turn in opened.history],
            window,
            self._fit.budget(window),
        )
        fitting = _Fitting(prompt, self._fit.with_room(context, window))
        parts = FoldedText()
        begun = False
        while True:
            request_id = secrets.token_bytes(REQUEST_ID_SIZE)
            context = fitting.context
            try:
                hold = await self._hold(
                    user_id, request_id, model, context, generation, chat=question.chat
                )
            except BaseException:
                if begun:  # a retry could not be held: stop showing progress
                    await sink.abort()
                raise
            if not begun:
                await sink.begin()
                begun = True
                if question.retried is not None:  # asked now: its button has done its work
                    self._retry.pop(user_id, question.retried)
            try:
                request = ChatRequest(
                    context.messages,
                    model,
                    user.cache_salt,
                    max_tokens=hold.max_completion_tokens,
                    request_id=request_id,
                )
                completion = await self._stream(request, sink, parts, generation)
            except InferenceError as exc:
                # A refusal as too long before any text (a refusal after some, sent as an error
                # by a gateway or a model server whose window filled, is the answer failing
                # there: what the user saw stays, billed by its receipt) is fitted again.
                if isinstance(exc, ContextTooLong) and not _shown("".join(parts)):
                    await self._settle(hold, exc.signed_receipt, "", verified_by=exc.verified_by)
                    generation.holds.discard(hold.request_id)
                    # A new sealed request, so a new hold.
                    # Thinking streamed: the window filled as the model thought, the question
                    # fit (neither cut nor asked again, billed twice).
                    streamed = bool(parts) or generation.thought
                    refused = _Refused(
                        exc, opened.history, window, streamed=streamed, left=generation.left
                    )
                    await self._fit_again(question, fitting, refused, sink)  # or raises
                    continue
                generation.stoppable = False
                # The window filled under what went out: asking again would fill it again.
                if not (isinstance(exc, ContextTooLong) and _shown("".join(parts))):
                    exc.retry = self._remember_failed(
                        user_id,
                        question.thread_id,
                        Failed.of(question, fitting.prompt),
                        private=question.private and not generation.left,
                        retried=question.retried,
                    )
                await self._broken_off(question, hold, _shown("".join(parts)), exc, sink)
                raise
            except asyncio.CancelledError:  # the loop is tearing down: settle, then go
                await self._torn_down(hold, _shown("".join(parts)), sink)
                raise
            break
        generation.stoppable = False
        prompt, kept, document = fitting.prompt, fitting.kept, question.document
        asked = _Asked(
            user_id,
            prompt,
            conversation,
            model,
            self._naming(opened, prompt, model),
            question.thread_id,
            None if kept is None or document is None else document.percent(kept),
            document,
            question.private,
            Failed.of(question, prompt),
            question.retried,
            question.outbound,
            question.reply_to,
        )
        ended = _Ended(hold, completion, _shown("".join(parts)))
        return await self._finish(asked, ended, sink, generation)

    async def _torn_down(self, hold: Hold, shown: str, sink: AnswerSink) -> None:
        """A stream the loop's teardown cancelled: its sink stopped, then what went out charged.

        Stopped first: a draft or "typing…" timer left set called Telegram after the bot had
        closed aiogram's session, which made a new session nobody closed.
        """
        try:
            await sink.abort()
        finally:
            await self._settle(hold, None, shown)

    async def _broken_off(
        self,
        question: Question,
        hold: Hold,
        delivered: str,
        exc: InferenceError,
        sink: AnswerSink,
    ) -> None:
        """Charge the text that went out before the stream failed, and deliver it as an answer.

        It is paid for and stays (nothing is stored in the conversation): in a private chat
        it goes through the outbox as a whole answer does, with the note the live one has
        (``Finish.ending``, its Retry), so a crash or a Telegram down past its tries does not
        lose it. An edited answer's partial goes out as before, without a row: its final
        edit is waited for where its failure is told (``handlers``), which marks nothing.
        A ledger that cannot be written leaves the hold to the sweep, as for a whole answer.
        Cancelled while its charge is written (the loop tearing down), it stays cancelled once
        the charge is: nothing more goes out from a stopping process; its row, given back,
        sends the part.
        """
        place = question.outbound if question.private else None
        finish = Finish(question.reply_to, _ending(exc), exc.retry)
        row = self.deliveries.row_for(question.user_id, place, hold.request_id, delivered, finish)
        settling = asyncio.ensure_future(
            self._settle(hold, exc.signed_receipt, delivered, verified_by=exc.verified_by, also=row)
        )
        try:
            await written(settling)  # charged before its text goes out, as before
        except asyncio.CancelledError:  # the loop is tearing down: its row sends it
            await self.deliveries.sent(place, row, hold.request_id, sent=False)
            await sink.abort()  # no draft or "typing…" after it, the bot's session closed
            raise
        await self.deliveries.deliver(
            sink,
            delivered,
            hold.request_id,
            place=place,
            row=row,
            settling=settling,
            notes=finish.notes,
        )
        if _charged(settling, hold, question.user_id) is None and delivered:
            self._delivered_open.add(hold.request_id)

    async def _fit_again(
        self, question: Question, fitting: _Fitting, refused: _Refused, sink: AnswerSink
    ) -> None:
        """Fit a question the model server refused as too long again (``fitting``), or raise.

        The question alone, nothing streamed: by the model server's count (``Fitter.refit``), at
        most ``REFITS`` times. With history: trimmed once more, every turn by its ceiling now
        (the model server may have counted more than the stored counts said; the opened turns
        are, until ``Turn.for_model``), and the part quoted (a reply's, a continuation's) as
        much as fits that. Else the refusal is the user's (``QuestionTooLong`` for a question
        alone: /new would not help, it must shrink), its prompt kept for Retry.
        """
        exc, window = refused.error, refused.window
        alone = self._fit.alone(fitting.context)
        refit = None
        if not refused.streamed and alone and fitting.refits < REFITS:
            refit = self._fit.refit(question, fitting.context, exc.message, window, fitting.kept)
        if refit is not None:
            fitting.prompt, fitting.context, fitting.kept = refit
            fitting.refits += 1
            log.info("chat.question_refitted", cut=fitting.kept is not None)
            return
        if refused.streamed or fitting.retried or alone:
            await sink.abort()
            if not refused.streamed and alone:  # the same question would not fit: no Retry
                raise _question_too_long(exc) from exc
            exc.retry = self._remember_failed(
                question.user_id,
                question.thread_id,
                Failed.of(question, fitting.prompt),
                private=question.private and not refused.left,
                retried=question.retried,
            )
            raise exc
        fitting.prompt, fitting.context = self._fit.asking(
            question, refused.history, window, self._fit.budget(window) // 2
        )
        fitting.retried = True
        log.info("chat.context_trimmed", dropped=fitting.context.dropped)

    def _naming(self, opened: _Opened, prompt: str, model: str) -> Naming | None:
        """What naming the conversation will need, if this exchange is its first (and untitled)."""
        if not (opened.unnamed and opened.conversation is not None and self.titles):
            return None
        user = opened.user
        erasures = self._erasures.get(user.user_id, 0)
        return Naming(
            user.user_id, opened.conversation, model, user.cache_salt, prompt, "", erasures
        )

    async def _open(self, question: Question, generation: _Generation) -> _Opened:
        """The asker's record, the conversation to store into (None: one-off), turns before.

        Read once the user's previous answer, if this one waits for it, has stored its exchange;
        a switch of the conversation there waits for this read (``_opened``).
        """
        try:
            await _previous_finished(generation)
            history = [Turn.said(role, text) for role, text in question.context]
            with history_failures("cannot read the conversation"):
                if not question.keep_history:
                    user = await self.store.ensure_user(question.user_id, question.language)
                    return _Opened(user, None, history)
                opened = await self.store.open_conversation(
                    question.user_id, question.language, question.thread_id
                )
        finally:
            generation.opened.set()
        if question.reads_history:
            history += [Turn.said(turn.role, turn.text, turn.tokens) for turn in opened.turns]
        unnamed = not opened.turns and not opened.titled
        return _Opened(opened.user, opened.conversation_id, history, unnamed=unnamed)

    async def _finish(
        self, asked: _Asked, ended: _Ended, sink: AnswerSink, generation: _Generation
    ) -> Answer:
        """Settle, deliver and store a stream that ended (stopped or not)."""
        user_id, conversation, model = asked.user_id, asked.conversation, asked.model
        hold, completion, text = ended.hold, ended.completion, ended.text
        stopped = generation.stop.is_set()
        # Not stopped and nothing to show: the model gave no answer, which costs nothing (the
        # user is told and may Retry).
        billed = completion if text or stopped else None
        # The exchange is stored in the charge's transaction: a crash between two writes left
        # an answer charged (and delivered) that its conversation then lacked.
        exchange = _Exchange(asked, completion, text)
        turns = exchange.writer(self.store) if text and conversation is not None else None
        # And the answer, to deliver at the next start if the final message does not go out.
        finish_reason = completion.finish_reason if completion else None
        ending: Ending | None = "cut" if finish_reason == CUT and not stopped else None
        finish = Finish(asked.reply_to, ending, file_read=asked.file_read)
        outbound = self.deliveries.row_for(user_id, asked.outbound, hold.request_id, text, finish)
        # The user watched the text arrive in the drafts: the final message goes out while the
        # charge is written, not after it (when many answers end at once, the database's one
        # queue is the slowest part of their ends). Both are done before the answer is.
        settling = asyncio.ensure_future(
            self._settle(
                hold,
                billed.signed_receipt if billed else None,
                text,
                verified_by=billed.verified_by if billed else None,
                also=Writer.joined(turns, outbound),
            )
        )
        naming = None
        # A newer answer there makes its Continue stale; one whose conversation was left
        # meanwhile keeps none (it would go on in the fresh one).
        if conversation is not None and not generation.left:
            self._cut_begins(user_id, asked.thread_id, hold.request_id)
        # Not delivered now, the outbox sends it with its Continue: that button then goes on.
        cut = functools.partial(self._left_cut, asked, hold.request_id, turns)
        await self.deliveries.deliver(
            sink,
            text,
            hold.request_id,
            place=asked.outbound,
            row=outbound,
            settling=settling,
            left=cut if ending == "cut" else None,
            notes=finish.notes,
        )
        charge = _charged(settling, hold, user_id)
        if charge is None and text:  # delivered, the hold left open: never "cut off"
            self._delivered_open.add(hold.request_id)
        retry = None
        if not text:
            if conversation is not None:
                self._cut_ends(user_id, asked.thread_id, hold.request_id, cut=False)
            if not stopped:
                retry = self._remember_failed(
                    user_id,
                    asked.thread_id,
                    asked.retry,
                    private=asked.private and not generation.left,
                    retried=asked.retried,
                )
                if completion is None:
                    empty = InferenceUnavailable("the model returned an empty answer")
                    empty.retry = retry
                    raise empty
        elif turns is not None:
            try:
                await exchange.stored(self.store, turns)
            except HistoryUnavailable:  # told instead of its notes: they will not follow
                await self.deliveries.unnoted(asked.outbound, outbound, hold.request_id)
                raise
            self._cut_ends(user_id, asked.thread_id, hold.request_id, cut=finish_reason == CUT)
            if asked.naming is not None:
                naming = dataclasses.replace(asked.naming, answer=text)
        log.info(
            "chat.answered",
            user_id=user_id,
            model=model,
            stopped=stopped,
            finish_reason=finish_reason,
            outcome=charge.outcome if charge else None,
            completion_tokens=charge.completion_tokens if charge else None,
        )
        return Answer(
            text=text,
            model=model,
            stopped=stopped,
            finish_reason=finish_reason,
            receipt=completion.receipt if completion else None,
            receipt_valid=completion.receipt_valid if completion else False,
            cost=charge.units if charge else 0,
            outcome=charge.outcome if charge else None,
            request_id=hold.request_id,
            naming=naming,
            file_read=asked.file_read,
            retry=retry,
        )

    def _left_cut(self, asked: _Asked, request_id: str, turns: TurnsWriter | None) -> None:
        """A cut answer left to the outbox (``deliver``'s ``left``): its Continue goes on.

        As for one delivered, only once its exchange is stored in its conversation, and only
        while that is still the conversation there (``_cut_ends``).
        """
        stored = turns is not None and bool(turns.stored)
        self._cut_ends(asked.user_id, asked.thread_id, request_id, cut=stored)

    async def _hold(  # noqa: PLR0913 -- one request's figures and where it is answered
        self,
        user_id: int,
        request_id: bytes,
        model: str,
        context: Context,
        generation: _Generation,
        *,
        chat: AnswerChat | None = None,
    ) -> Hold:
        """Hold credit for one sealed request; its id is the request's, hex.

        ``chat``: the private chat the answer is written in (told if a restart cuts it off).

        The prompt is held at most the window the gateways bill it by: a long file is sent
        whole and counted by its bytes, often far over what the model can read (and would be
        billed), which would refuse a user whose credit pays for what it can.

        The write runs to its end even if this task is cancelled meanwhile; the hold is then
        released at once, so no stop or shutdown leaves credit or free tokens reserved.
        """
        generation.holds.add(request_id.hex())
        billable = self.inference.widest_window(model)
        prompt = context.tokens if billable is None else min(context.tokens, billable)
        write = asyncio.ensure_future(
            self.credit.hold(
                user_id,
                request_id.hex(),
                model,
                prompt,
                context.max_answer,
                min_completion_tokens=self.min_answer_tokens,
                chat=chat,
            )
        )
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            await finished(write)
            if not write.cancelled() and write.exception() is None:
                await self.credit.release(write.result())
            raise
        except BaseException:
            generation.holds.discard(request_id.hex())
            raise

    async def _settle(
        self,
        hold: Hold,
        receipt: SignedReceipt | None,
        delivered: str,
        *,
        verified_by: SignedBundle | None = None,
        also: Writer[Any] | None = None,
    ) -> Charge:
        """Close the hold by the one rule every answer is billed by (shielded from cancel).

        From the receipt (the held amount if it did not verify: no ``verified_by``, the bundle
        whose key verified it), kept with its proof; without one, from the bot's ceiling of the
        text the user received; with neither, nothing. ``also`` (the exchange of an answer with
        text, a title) is stored in the charge's transaction.
        """
        if receipt is not None:
            usage = receipt.receipt
            settling = self.credit.settle(
                hold,
                usage.prompt_tokens,
                usage.completion_tokens,
                receipt_valid=verified_by is not None,
                status=usage.status,
                proof=proof_for(receipt, verified_by),
                also=also,
            )
        elif delivered:
            settling = self.credit.estimate(hold, text_tokens(delivered), also=also)
        else:
            settling = self.credit.release(hold)
        task = asyncio.ensure_future(settling)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await finished(task)
            raise

    async def _stream(
        self,
        request: ChatRequest,
        sink: AnswerSink,
        parts: FoldedText | list[str],
        generation: _Generation,
    ) -> Completion | None:
        """Stream one sealed request into ``sink``; stop it after ``max_answer_seconds``.

        Thinking the model wrote into its text (``<think>…</think>`` opening it: a model
        served without a reasoning parser, ``services.think_tags``) goes where the stream's
        own reasoning goes, never into ``parts``.
        """
        completion = None
        loop = asyncio.get_running_loop()
        time_limit = loop.call_later(self.max_answer_seconds, generation.stop.set)
        stream = self.inference.stream(request, stop=generation.stop)
        thinker = sink if isinstance(sink, ReasoningSink) else None
        tags = ThinkTags()

        async def show(pieces: list[Piece]) -> None:
            for kind, text in pieces:
                if kind == "text":
                    parts.append(text)
                    await sink.append(text)
                else:
                    await think(text)

        async def think(text: str) -> None:
            generation.thought = True
            if thinker is not None:
                await thinker.reason(text)

        try:
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if isinstance(item, TextDelta):
                        await show(tags.feed(item.text))
                    elif isinstance(item, ReasoningDelta):
                        await think(item.text)
                    else:
                        completion = item
        finally:
            time_limit.cancel()
        await show(tags.end())  # a tag's start held to the end was text (or thinking)
        return completion

    @property
    def _fit(self) -> Fitter:
        """The rules this service fits a question into its model's window by."""
        return Fitter(self.system_prompt, self.max_answer_tokens, self.min_answer_tokens)

    def _window(self, model: str) -> int:
        """``model``'s window: the bundles' for it, at most ``context_tokens`` (their default)."""
        stated = self.inference.window(model)
        return self.context_tokens if stated is None else min(stated, self.context_tokens)

    # -- settings and conversations ----------------------------------------------------------

    async def models(self) -> tuple[str, ...]:
        """The models the verified gateways serve."""
        await self.inference.refresh()
        served = self.inference.models()
        self._check_model_settings(served)
        return served

    def _check_model_settings(self, served: tuple[str, ...]) -> None:
        """Warn when ``VEIL_DEFAULT_MODEL`` or a model ``VEIL_PRICES`` names is not served.

        Either, misspelt or left from another model, did nothing and said nothing: users got
        the first served model, and a model priced under a wrong name was billed at the ``*``
        price. Told once for each set of served models (none served tells nothing: the
        gateways may only be away).
        """
        if not served or served == self._checked_against:
            return
        self._checked_against = served
        if self.default_model and self.default_model not in served:
            log.warning(
                "chat.default_model_unserved", model=self.default_model, served=list(served)
            )
        priced = sorted(set(self.credit.prices.models) - set(served))
        if priced:
            log.warning("chat.priced_model_unserved", models=priced, served=list(served))

    async def model_for(self, chosen: str | None) -> str:
        """The model to use: the user's choice if still served, else the default."""
        served = await self.models()
        if chosen and chosen in served:
            return chosen
        if self.default_model and (self.default_model in served or not served):
            return self.default_model
        if served:
            return served[0]
        return self.default_model or chosen or "default"

    async def current_model(self, user_id: int) -> str:
        """The model the user's next answer will use."""
        with history_failures("cannot read the user's settings"):
            user = await self.store.get_user(user_id)
        return await self.model_for(user.model if user else None)

    async def set_model(self, user_id: int, language: str | None, model: str) -> bool:
        """Choose a model for the user; False if no gateway serves it.

        Saved once the user's erasure in progress, if any, has ended (``_erasure_ended``).
        """
        if model not in await self.models():
            return False
        await self._erasure_ended(user_id)
        with history_failures("cannot save the user's model"):
            await self.store.ensure_user(user_id, language)
            await self.store.set_model(user_id, model)
        return True

    async def keeps_inline_history(self, user_id: int) -> bool:
        """Whether the user's inline answers join their conversation (off until they opt in)."""
        with history_failures("cannot read the user's settings"):
            user = await self.store.get_user(user_id)
        return user is not None and user.inline_history

    async def keep_inline_history(self, user_id: int, language: str | None, *, keep: bool) -> None:
        """Opt in (or out again) to inline answers joining the user's conversation.

        Raises ``SettingsUnavailable`` when the database cannot take it (nothing changed).
        Saved once the user's erasure in progress, if any, has ended (``_erasure_ended``).
        """
        await self._erasure_ended(user_id)
        with settings_failures():
            await self.store.ensure_user(user_id, language)
            await self.store.set_inline_history(user_id, keep=keep)

    async def new_conversation(
        self, user_id: int, language: str | None, thread_id: int | None = None
    ) -> None:
        """Start a fresh conversation; the old one stays sealed in history.

        With ``thread_id`` it is the new topic's conversation; the active one stays as it was.
        The conversation that ends lets go of its Retry and Continue buttons' questions: asked
        now, they would land in the fresh one, without the turns they followed on from.
        """
        await self._opened(user_id, thread_id)
        self._cut.pop(user_id, thread_id)
        self._retry.discard(user_id, lambda kept: kept[0] == thread_id)
        self._leave(user_id, thread_id)
        with history_failures("cannot start a conversation"):
            await self.store.ensure_user(user_id, language)
            await self.store.new_conversation(user_id, thread_id)

    async def open_topic(self, user_id: int, language: str | None, thread_id: int) -> bool:
        """Make sure topic ``thread_id`` has a conversation; True if it had to be started now.

        A topic the bot does not know (the user made it in their app, or its conversation was
        erased) starts afresh; the caller may say so.
        """
        with history_failures("cannot open the topic's conversation"):
            _conversation, fresh = await self.store.topic_conversation(user_id, language, thread_id)
        return fresh

    async def conversations(self, user_id: int, *, limit: int = 10) -> list[Conversation]:
        """The user's recent conversations in the chat itself (not topics), newest first.

        Read once the user's erasure in progress, if any, has ended (``_erasure_ended``): read
        before, they were listed (a /history tap said "Continuing …") and then erased.
        """
        await self._erasure_ended(user_id)
        with history_failures("cannot list the conversations"):
            return await self.store.conversations(user_id, limit=limit, chat_only=True)

    async def switch_conversation(self, user_id: int, conversation_id: int) -> bool:
        """Continue an earlier conversation of the user's; False if it is not theirs (or gone).

        A question sent before it, still waiting for the previous answer, is asked in the
        conversation it was sent in (``_opened``). One pressed while the user's erasure runs
        is made after it (``_erasure_ended``): the conversation is gone by then (False).
        """
        await self._erasure_ended(user_id)
        await self._opened(user_id, None)
        with history_failures("cannot switch the conversation"):
            try:
                await self.store.switch_conversation(user_id, conversation_id)
            except ConversationNotFound:
                return False
        self._cut.pop(user_id, None)  # the chat's conversation is another now
        self._retry.discard(user_id, lambda kept: kept[0] is None)
        self._leave(user_id, None)
        return True

    async def _opened(self, user_id: int, thread_id: int | None) -> None:
        """Wait until the user's questions there have read which conversation they are in.

        There: topic ``thread_id``, None the chat itself; ``/new`` or a switch then changes it.
        A question sent once the previous answer's stream had ended waits for that answer to be
        stored (its final message may still be going out) before it opens its conversation; a
        /history switch (or /new) sent right after it moved it to the conversation switched to,
        asked there without the answer it followed on from, and stored there. The switch now
        waits for it to open the one it was sent in, which takes no longer than the previous
        answer's end: the question is answered where it was asked, in the order it was sent.
        """
        while (current := self._active.get(user_id)) is not None:
            waiting = [
                g
                for g in current.with_previous()
                if g.thread_id == thread_id and not g.opened.is_set()
            ]
            if not waiting:
                return
            await waiting[0].opened.wait()

    async def name_conversation(self, naming: Naming) -> str | None:
        """Ask the model for the conversation's title, keep it sealed and return it.

        A second, small sealed request (``services.titles``), held and settled from its own
        receipt like any answer. Never raises for a failure (no credit, the model failing, the
        history unwritable): it is logged and the conversation stays unnamed (None). Nor is a
        title asked once ``forget`` erases (or has erased) what it would be made of, nor once
        shutdown has begun (``stop_titles``).
        """
        user_id = naming.user_id
        if self._shutting_down:
            log.info("chat.title_skipped", user_id=user_id)
            return None
        if user_id in self._forgetting or self._erasures.get(user_id, 0) != naming.erasures:
            log.info("chat.title_stopped", user_id=user_id)
            return None
        titling = _Titling()
        self._titling.setdefault(naming.user_id, []).append(titling)
        try:
            return await self._name(naming, titling.generation)
        finally:
            titling.ended.set()
            running = self._titling.get(naming.user_id, [])
            if titling in running:
                running.remove(titling)
            if not running:
                self._titling.pop(naming.user_id, None)

    async def _name(self, naming: Naming, generation: _Generation) -> str | None:
        try:
            most = self._window(naming.model) - TITLE_TOKENS
            messages = title_messages(naming.prompt, naming.answer, most)
            if messages is None:  # not even a short title request fits the model's window
                log.info("chat.title_unfitted", user_id=naming.user_id)
                return None
            written = await self._ask_title(naming, messages, generation)
            if written is not None and written.stored is not None:  # kept with its charge
                return written.stored
            if generation.stop.is_set():  # /forget or shutdown: no title from a cut reply
                log.info("chat.title_stopped", user_id=naming.user_id)
                return None
            if written is None:
                log.info("chat.title_empty", user_id=naming.user_id)
                return None
            with history_failures("cannot store the title"):
                raise written.error or HistoryUnavailable("the title was not stored")
        except VeilError as exc:
            log.info("chat.title_failed", user_id=naming.user_id, error=type(exc).__name__)
            return None

    async def _ask_title(
        self, naming: Naming, messages: list[dict[str, str]], generation: _Generation
    ) -> Writer[str] | None:
        """One title request (``messages``, fitted): held, streamed without a sink, settled.

        The title stored in its charge's transaction (None: none to store, the reply empty or
        the request stopped), so a crash never charges a title it did not keep.
        """
        request_id = secrets.token_bytes(REQUEST_ID_SIZE)
        context = Context(messages, prompt_tokens(messages), TITLE_TOKENS)
        hold = await self._hold(naming.user_id, request_id, naming.model, context, generation)
        parts: list[str] = []
        completion: Completion | None = None
        request = ChatRequest(
            messages,
            naming.model,
            naming.cache_salt,
            max_tokens=hold.max_completion_tokens,
            request_id=request_id,
        )
        try:
            completion = await self._stream(request, _Quiet(), parts, generation)
        except InferenceError as exc:
            await self._settle(
                hold, exc.signed_receipt, "".join(parts), verified_by=exc.verified_by
            )
            raise
        except asyncio.CancelledError:
            await self._settle(hold, None, "".join(parts))
            raise
        receipt = completion.signed_receipt if completion else None
        verified_by = completion.verified_by if completion else None
        text = "".join(parts)
        title = None if generation.stop.is_set() else clean_title(text)
        written = None
        if title is not None:
            written = self.store.title_writer(naming.user_id, naming.conversation_id, title)
        await self._settle(hold, receipt, text, verified_by=verified_by, also=written)
        return written

    async def forget(self, user_id: int, begun: Callable[[], None] | None = None) -> int | None:
        """Erase everything stored about the user (their data key first); returns turns erased.

        None when nothing was stored about them (no key): erased already, say by a press of
        the same confirmation before a restart (Telegram may deliver it again, the user may
        press it again), so "0 messages are gone" would not read as what happened.

        A streaming answer is stopped first and waited for (it is billed and would store its
        turn), and so are a question waiting for it and a title request (it would store a title
        made from what is erased, in a conversation that may reuse the id), so nothing is
        written after the erasure; a title its answer's followup would ask later is not asked,
        and its followup's notes are waited for (``_followups_ended``): the user is told the
        erasure is done after them, never before.
        Until it is done, a new question is refused (``ErasureInProgress``): it would read the
        history being erased; a settings or model choice, and /history, wait for it to end
        (``_erasure_ended``).
        Erasures of one user (the confirmation pressed on the phone and on the laptop) run one
        after the other: both waited for the answer, then both found the key, and the second
        said "your key and 0 stored messages are gone"; the second now finds nothing stored
        (None). The user is open again when the last one ends. ``begun`` is called once new
        questions are refused, before an erasure waits its turn (the user's next update may
        then be handled: held behind the wait, a question, a /cancel or a payment waited for
        the first erasure's end).
        """
        erasing = self._forgetting.setdefault(user_id, _Erasing())
        erasing.count += 1
        if begun is not None:
            begun()
        try:
            async with erasing.turn:
                await self._answers_ended(user_id)
                for titling in list(self._titling.get(user_id, [])):
                    titling.generation.stop.set()
                    await titling.ended.wait()
                await self._followups_ended(user_id)
                self._retry.drop(user_id)
                self._cut.drop(user_id)
                with history_failures("cannot erase the conversation"):
                    if await self.store.get_user(user_id) is None:
                        log.info("chat.forget_nothing", user_id=user_id)
                        return None
                    return await self.store.forget(user_id)
        finally:
            erasing.count -= 1
            if not erasing.count:
                del self._forgetting[user_id]
                erasing.ended.set()
            self._erased(user_id)

    async def _erasure_ended(self, user_id: int) -> None:
        """Wait until no erasure of the user's runs (a choice saved before one ends is erased).

        A /settings or /model choice pressed while ``forget`` waited for the user's answer to
        end was saved and said "Saved.", then erased with the rest. It is pressed after the
        erasure, so it is saved after it, on the fresh row: refusing it, as a question is, would
        only have the user press again once the erasure is done (a question is refused because
        it would read the history being erased; a choice reads nothing of it). So are /history's
        list and its switch: a tap said "Continuing …" of a conversation then erased.
        """
        while (erasing := self._forgetting.get(user_id)) is not None:
            await erasing.ended.wait()

    def _erased(self, user_id: int) -> None:
        """Count an erasure of the user's: a naming made before it asks no title (memory only)."""
        self._erasures[user_id] = self._erasures.get(user_id, 0) + 1
        self._erasures.move_to_end(user_id)
        while len(self._erasures) > _RETRY_MEMORY:
            self._erasures.popitem(last=False)

    async def _followups_ended(self, user_id: int) -> None:
        """Wait until what follows the user's answers (``start``'s followups) has been said.

        A note under an answer (its Continue, the part of a file read, "Stopped.", a failure
        told: a flood wait may hold one a minute) went out after the user had been told the
        history was erased, about a conversation no longer there. Nothing of the followups
        waits for the erasure: a title they would ask is not asked once it has begun
        (``name_conversation``), and a question is refused until it ends, so none starts.
        """
        while following := self._following.get(user_id):
            await asyncio.wait(list(following))  # never cancels them

    async def _answers_ended(self, user_id: int) -> None:
        """Stop the user's answers (one waiting, and the one it waits for); wait for their end."""
        while (generation := self._active.get(user_id)) is not None:
            for stopping in generation.with_previous():
                stopping.stop.set()
            task = generation.task
            if task is None or task.done():
                # Claimed by ``start``, its task begins on the loop's next turn; done, its
                # ``answer`` lets go of the user on the next.
                await asyncio.sleep(0)
            else:
                await finished(task)  # a waiting question's task waits for its previous

    async def trust(self) -> list[GatewayTrust]:
        """The verification state of every gateway, refreshed."""
        await self.inference.refresh()
        return self.inference.trust()


async def _previous_finished(generation: _Generation) -> None:
    """Wait until the answer ``generation`` waits for (``after``) is settled, shown and stored.

    Cancelled meanwhile (the loop tearing down), it still lets that answer's writes end, then
    goes no further: the waiting question is never asked.
    """
    previous = generation.after
    if previous is not None and previous.task is not None:
        try:
            await asyncio.wait([previous.task])  # never cancels it
        except asyncio.CancelledError:
            await finished(previous.task)
            raise
    generation.after = None


@dataclass(frozen=True)
class _Exchange:
    """A question and the answer it got, to store in its conversation."""

    asked: _Asked
    completion: Completion | None
    text: str

    def _turns(self) -> tuple[list[tuple[str, str]], list[TokenCount | None]]:
        prompt, text, completion = self.asked.prompt, self.text, self.completion
        return (
            [("user", prompt), ("assistant", text)],
            [_asked(completion, prompt), _counted(completion, text)],
        )

    def writer(self, store: Store) -> TurnsWriter:
        """The turns to write in the charge's transaction (``Store.turns_writer``)."""
        conversation = self.asked.conversation
        if conversation is None:
            raise ValueError("a one-off answer has no conversation to store into")
        turns, tokens = self._turns()
        return store.turns_writer(self.asked.user_id, conversation, turns, tokens=tokens)

    async def stored(self, store: Store, written: TurnsWriter) -> None:
        """Raise what kept the turns from being written; write them alone if the charge was not.

        A charge that could not be written (the ledger locked past the busy timeout) took the
        turns with it: they are tried on their own, as the user has the answer.
        """
        conversation = self.asked.conversation
        if conversation is None:
            raise ValueError("a one-off answer has no conversation to store into")
        with history_failures("cannot store the conversation"):
            if written.error is not None:
                raise written.error
            if written.stored is None:
                turns, tokens = self._turns()
                await store.add_turns(self.asked.user_id, conversation, turns, tokens=tokens)


def _charged(settling: asyncio.Future[Charge], hold: Hold, user_id: int) -> Charge | None:
    """The charge a finished settlement made; None, logged, if the ledger was unavailable.

    The user watched the text arrive and it is delivered all the same. The hold stays open
    until the sweep releases it (the answer then goes unbilled, and it is logged; its user,
    who has it, is not told it was cut off).
    """
    try:
        return settling.result()
    except LedgerUnavailable:
        log.exception("chat.settle_failed", request_id=hold.request_id, user_id=user_id)
        return None


@dataclass(eq=False)
class _Erasing:
    """A user's erasures running or waiting: one at a time, and when the last has ended."""

    count: int = 0
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Titling:
    """A title request in progress: what stops it, and when it has ended (stored or not)."""

    generation: _Generation = field(default_factory=_Generation)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class _Quiet:
    """The sink of a request whose text nobody watches stream (a title)."""

    async def begin(self) -> None:
        """Nothing to show."""

    async def append(self, delta: str) -> None:
        """Nothing to show."""

    async def complete(self, text: str) -> None:
        """Nothing to show."""

    async def abort(self) -> None:
        """Nothing to show."""


def _measured(completion: Completion | None) -> UsageReceipt | None:
    """The receipt of ``completion`` if it verified and holds the model server's own usage."""
    if completion is None or not completion.receipt_valid or completion.receipt is None:
        return None
    return None if completion.receipt.estimated else completion.receipt


def _counted(completion: Completion | None, text: str) -> TokenCount | None:
    """An upper count of an answer's tokens from its receipt, if the receipt can give one.

    Only a receipt that verified, with the model server's own usage (not ``estimated``): its
    completion tokens with the margin for reading the text back (``answer_tokens``), for the
    model it names. None (the text's ceiling) for anything else.
    """
    receipt = _measured(completion)
    if receipt is None:
        return None
    return TokenCount(answer_tokens(text, receipt.completion_tokens), receipt.model)


def _asked(completion: Completion | None, prompt: str) -> TokenCount | None:
    """An upper count of the question's tokens from its answer's receipt, where it is lower.

    The prompt the model server counted held the question whole, so its count is one; it is
    below the question's ceiling where little else was asked with it (a text file opening a
    conversation), and then keeps the question in the window the next time. None otherwise.
    """
    receipt = _measured(completion)
    if receipt is None or receipt.prompt_tokens >= text_tokens(prompt):
        return None
    return TokenCount(receipt.prompt_tokens, receipt.model)


def _shown(text: str) -> str:
    """What of an answer's text there is to show and keep: nothing when it shows nothing.

    Blanks, and invisible characters alone (a zero-width space): Telegram holds such a text
    empty, and the asker would read nothing the model said.
    """
    return "" if shows_nothing(text) else text


def _question_too_long(exc: ContextTooLong) -> QuestionTooLong:
    """``exc`` for a question sent alone (no history left to drop): it must shrink itself."""
    return QuestionTooLong(
        exc.message, status=exc.status, receipt=exc.signed_receipt, verified_by=exc.verified_by
    )


def _ending(error: InferenceError) -> Ending:
    """How an answer whose stream failed after text ended (the note under it says so)."""
    if isinstance(error, StreamCorrupted):  # cut (or tampered with) on the way
        return "lost"
    if isinstance(error, ModelStalled):
        return "stalled"
    if isinstance(error, ContextTooLong):  # the window filled as it wrote
        return "window_full"
    return "broke_off"
