"""What a question to the chat service is, what its answer is, and where an answer is shown.

``services.chat.ChatService`` answers a ``Question`` into an ``AnswerSink`` (the bot's
Telegram-facing side: a private chat's drafts and messages, an edited inline or group
message, the Mini App's stream), optionally a ``CountingSink`` (a private answer of several
messages, each counted as Telegram takes it) or a ``ReasoningSink`` (one that shows a model's
thinking), and hands what follows a detached answer to a ``Followup``. ``Answer`` is what came
of it; ``Naming`` what naming its conversation needs; ``Failed`` the question a Retry button
asks again. The service's own bookkeeping of answers in progress stays in ``services.chat``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from models.holds import AnswerChat
from models.outbox import Outbound, Progress

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from models.holds import Outcome
    from sealed.receipt import UsageReceipt
    from services.documents import TextFile


class AnswerSink(Protocol):
    """Where an answer is shown while it streams; the bot implements it for Telegram."""

    async def begin(self) -> None:
        """The model was asked; show that something is happening."""

    async def append(self, delta: str) -> None:
        """The next piece of the answer (only the new text). Must return quickly."""

    async def complete(self, text: str) -> None:
        """Deliver the final answer (also a stopped one's partial text)."""

    async def abort(self) -> None:
        """The answer failed or produced nothing; stop showing progress."""


@runtime_checkable
class CountingSink(Protocol):
    """A sink of several final messages that counts those Telegram took (the optional part).

    A private chat's: an answer not taken whole is delivered again from the first message
    not taken (``models.outbox``), never from its start.
    """

    @property
    def progress(self) -> Progress:
        """The final answer's messages Telegram took so far."""

    def recording(self, record: Callable[[Progress], Awaitable[None]]) -> None:
        """Have ``record`` told (and awaited) each time Telegram takes one more message.

        Its answer's row then says what a restart must not send again, part by part: a bot
        killed between two messages resends from the first not taken, not from the last
        count a failure recorded.
        """

    def kept(self) -> None:
        """Its final message did not go out now, but its row went with the charge.

        The outbox sends it (the next delivery pass): whoever tells the user about the
        failure says it will follow, rather than "send that again", which would ask (and
        charge) the same question twice.
        """


@runtime_checkable
class ReasoningSink(Protocol):
    """A sink that also shows a reasoning model's thinking (the optional part of a sink)."""

    async def reason(self, delta: str) -> None:
        """The next piece of the model's thinking (only the new text). Must return quickly."""


class Followup(Protocol):
    """What an answer started with ``ChatService.start`` hands its end to (the bot's side)."""

    async def answered(self, answer: Answer) -> None:
        """The answer was delivered: whatever follows it (a note, naming the conversation)."""

    async def failed(self, error: Exception) -> None:
        """The answer (or ``answered``) failed with ``error``: tell the user, log it."""


@dataclass(frozen=True)
class Answer:
    """What ``ChatService.answer`` produced.

    ``outcome`` is how its hold was closed (``settled`` from the receipt, ``estimated`` from
    the bot's count, ``released``…); ``cost`` what the user paid, in µ★; ``request_id`` the
    sealed request's id (hex), which is also its hold's and its receipt's. ``text`` is empty
    when the model wrote nothing but blanks (``_shown``).
    """

    text: str
    model: str
    stopped: bool
    finish_reason: str | None
    receipt: UsageReceipt | None
    receipt_valid: bool
    cost: int = 0
    outcome: Outcome | None = None
    request_id: str = ""
    naming: Naming | None = None
    file_read: int | None = None  # the percent of the question's file the model read, if cut
    retry: str | None = None  # no answer: the key its question is kept under for Retry


@dataclass(frozen=True)
class Naming:
    """What naming a conversation after its first exchange needs (``name_conversation``)."""

    user_id: int
    conversation_id: int
    model: str
    cache_salt: str = field(repr=False)
    prompt: str = field(repr=False)
    answer: str = field(repr=False)
    erasures: int = 0  # the user's erasures (``forget``) before it: a later one voids it


Said = tuple[str, str]
"""One earlier turn given to the model: (role, text)."""

StopTag = int | str
"""What a stop button names: a draft id (private chats) or an answer message's key."""

Sent = Literal["sent", "refused", "later"]
"""What delivering an answer again came to: Telegram took it, refused it for good, or not now.

A ``Progress`` instead: not taken whole now, these of its messages taken (the rest later).
"""


@dataclass(frozen=True, slots=True)
class Question:
    """One question to answer.

    ``stop_tag`` names the stop button that may stop it. ``keep_history``: asked in the user's
    conversation (read before, stored after): the active one, or with ``thread_id`` that topic's;
    else a one-off, where ``context`` (earlier turns as (role, text), oldest first: a reply
    chain in a group) is all the model sees before it. ``replied``: the text of the message
    the question replies to; the model reads it quoted before the question unless the context
    holds it already (an answer of an earlier conversation, after /new, it does not).
    ``continues``: the question asks the model to go on with the cut answer that ends the
    conversation (``CONTINUE_PROMPT``); its end goes quoted before it unless the context holds
    it whole. ``document``: the text file ``prompt`` asks about (``TextFile.question``): where
    the model's window cannot hold it with room for an answer, the model reads its start.
    ``reads_history``: False for a question kept in the conversation whose answer is posted
    where others read it (an inline answer the user keeps): the model reads none of the
    conversation's turns, which could otherwise be echoed into that chat.
    ``retried``: the key of the failed question a Retry button asks again (``retry_question``):
    let go of once the model is asked, kept under it again if this answer fails too.
    """

    user_id: int
    language: str | None
    prompt: str
    stop_tag: StopTag | None = None
    context: tuple[Said, ...] = ()
    keep_history: bool = True
    thread_id: int | None = None
    private: bool = False  # asked in the user's private chat: told there if a restart cuts it off
    replied: str | None = field(default=None, repr=False)
    continues: bool = False
    document: TextFile | None = field(default=None, repr=False)
    reads_history: bool = True
    retried: str | None = None
    shown_in: Outbound | None = None  # the message an edited answer (group, inline) ends in
    reply_to: int | None = None  # the private chat's message that asked it (a resend replies)

    @property
    def chat(self) -> AnswerChat | None:
        """The private chat the answer is written in (the user's id), None outside one."""
        return AnswerChat(self.user_id, self.thread_id) if self.private else None

    @property
    def outbound(self) -> Outbound | None:
        """Where the final message goes, for a restart to deliver it (None: not the bot's)."""
        if self.private:
            return Outbound.private(self.user_id, self.thread_id)
        return self.shown_in


@dataclass(frozen=True, slots=True)
class Failed:
    """The question of a failed answer, kept in memory for the user's Retry button.

    ``said``: the prompt to ask again; ``document``: instead, the text file it asks about
    (``Question.document``), asked whole again and fitted anew, as the first time, since a
    prompt alone cannot be cut to the file's start (its text is not kept twice).
    ``continues``: a continuation's (``Question.continues``), its request as asked, fitted
    anew as Continue fits it (the cut answer's end quoted, or its question cut around it):
    fitted once, it is not the question again.
    """

    said: str = field(default="", repr=False)
    document: TextFile | None = field(default=None, repr=False)
    continues: bool = False

    @classmethod
    def of(cls, question: Question, prompt: str) -> Failed:
        """What Retry asks again for ``question``, sent as ``prompt``."""
        if question.continues:
            return cls(question.prompt, continues=True)
        return cls(prompt) if question.document is None else cls(document=question.document)

    @property
    def prompt(self) -> str:
        """What to ask again: the prompt, or the file's whole question."""
        return self.said if self.document is None else self.document.question()
