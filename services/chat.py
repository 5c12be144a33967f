"""Conversations: one question in, one streamed answer out, history kept sealed.

``ChatService.answer`` builds the context from the user's decrypted history (trimmed to the
model's window), streams the answer from the sealed inference client into an ``AnswerSink``
(the bot's Telegram-facing side), and stores the exchange encrypted once it is finished or the
user stopped it. A failed answer stores nothing, and the prompt is kept in memory only, so
the user's Retry button can resend it.

``ChatService.cancel`` (the draft's stop button, ``/cancel``) does not kill the answer: it
signals the inference stream, which cancels at the gateway and reads on to the signed
``stopped`` receipt, showing the text that still arrives. Every answer is then settled by the
same rule: from its signed receipt if there is one (stopped and failed ones too); else, if text
reached the user, from the bot's own count of that text plus the prompt estimate; else nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import structlog

from models import StorageError
from services.errors import (
    AnswerInProgress,
    ContextTooLong,
    HistoryUnavailable,
    InferenceError,
    InferenceUnavailable,
)
from services.inference import Completion, GatewayTrust, InferenceClient, TextDelta

if TYPE_CHECKING:
    from models import Store, Turn
    from models.ledger import Charge, Outcome
    from sealed.receipt import SignedReceipt, UsageReceipt
    from services.billing import Billing, Hold

log = structlog.get_logger("veil.chat")

_RETRY_MEMORY = 10_000  # users whose last failed prompt is kept for the Retry button


class AnswerSink(Protocol):
    """Where an answer is shown while it streams; the bot implements it for Telegram."""

    async def begin(self) -> None:
        """The model was asked; show that something is happening."""

    async def update(self, text: str) -> None:
        """The answer so far (the whole text, not a delta). Must return quickly."""

    async def complete(self, text: str) -> None:
        """Deliver the final answer (also a stopped one's partial text)."""

    async def abort(self) -> None:
        """The answer failed or produced nothing; stop showing progress."""


@dataclass(frozen=True)
class Answer:
    """What ``ChatService.answer`` produced.

    ``outcome`` is how its hold was closed (``settled`` from the receipt, ``estimated`` from
    the bot's count, ``released``…); ``cost`` what the user paid, in µ★.
    """

    text: str
    model: str
    stopped: bool
    finish_reason: str | None
    receipt: UsageReceipt | None
    receipt_valid: bool
    cost: int = 0
    outcome: Outcome | None = None


@dataclass
class _Generation:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[Answer] | None = None


@dataclass
class _Context:
    messages: list[dict[str, str]]
    dropped: int = 0


@dataclass
class ChatService:
    """Answers users' questions through the sealed inference client."""

    store: Store
    inference: InferenceClient
    billing: Billing
    default_model: str | None = None
    context_tokens: int = 4096
    max_answer_tokens: int = 1024
    system_prompt: str | None = None
    _active: dict[int, _Generation] = field(default_factory=dict, init=False)
    _retry: OrderedDict[int, str] = field(default_factory=OrderedDict, init=False)

    # -- answering ---------------------------------------------------------------------------

    def is_busy(self, user_id: int) -> bool:
        """True while the user has an answer streaming."""
        return user_id in self._active

    async def answer(
        self, user_id: int, language: str | None, prompt: str, sink: AnswerSink
    ) -> Answer:
        """Answer ``prompt`` in the user's active conversation, streaming into ``sink``.

        Raises ``AnswerInProgress`` if the user already has one streaming, ``InferenceError``
        subclasses when the model cannot answer (the prompt is then kept for ``take_retry``),
        and ``HistoryUnavailable`` when the history cannot be read or written.
        """
        if user_id in self._active:
            raise AnswerInProgress("an answer is already streaming")
        generation = _Generation()
        self._active[user_id] = generation
        try:
            inner = asyncio.create_task(self._answer(user_id, language, prompt, sink, generation))
            generation.task = inner
            try:
                return await asyncio.shield(inner)
            except asyncio.CancelledError:
                inner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await inner
                raise
        finally:
            self._active.pop(user_id, None)

    def cancel(self, user_id: int) -> bool:
        """Ask the user's streaming answer to stop; False if none is streaming.

        The answer ends at the gateway's ``stopped`` receipt (within the client's stop grace):
        what was delivered is kept, shown and charged.
        """
        generation = self._active.get(user_id)
        if generation is None or generation.task is None or generation.task.done():
            return False
        generation.stop.set()
        return True

    def take_retry(self, user_id: int) -> str | None:
        """The prompt of the user's last failed answer, once (memory only)."""
        return self._retry.pop(user_id, None)

    def _remember_failed(self, user_id: int, prompt: str) -> None:
        self._retry[user_id] = prompt
        self._retry.move_to_end(user_id)
        while len(self._retry) > _RETRY_MEMORY:
            self._retry.popitem(last=False)

    async def _answer(
        self,
        user_id: int,
        language: str | None,
        prompt: str,
        sink: AnswerSink,
        generation: _Generation,
    ) -> Answer:
        try:
            user = await self.store.ensure_user(user_id, language)
            conversation = await self.store.active_conversation(user_id)
            history = await self.store.history(user_id, conversation)
        except StorageError as exc:
            raise HistoryUnavailable("cannot read the conversation") from exc
        model = await self.model_for(user.model)
        context = self._context(history, prompt, self._budget())
        prompt_tokens = sum(estimate_tokens(m["content"]) for m in context.messages)
        hold = await self.billing.hold(
            user_id, secrets.token_hex(16), model, prompt_tokens, self.max_answer_tokens
        )
        await sink.begin()
        parts: list[str] = []
        try:
            completion = await self._ask(
                history,
                prompt,
                context=context,
                model=model,
                cache_salt=user.cache_salt,
                sink=sink,
                parts=parts,
                stop=generation.stop,
            )
        except asyncio.CancelledError:  # shutdown, not a user's stop
            await self._settle(hold, None, "".join(parts))
            raise
        except InferenceError as exc:
            await self._settle(hold, exc.signed_receipt, "".join(parts), valid=True)
            self._remember_failed(user_id, prompt)
            await sink.abort()
            raise
        text = "".join(parts)
        charge = await self._settle(
            hold,
            completion.signed_receipt if completion else None,
            text,
            valid=completion.receipt_valid if completion else False,
        )
        stopped = generation.stop.is_set()
        if not text:
            await sink.abort()
            if completion is None and not stopped:
                self._remember_failed(user_id, prompt)
                raise InferenceUnavailable("the model returned an empty answer")
        else:
            await sink.complete(text)
            try:
                await self.store.add_turns(
                    user_id, conversation, [("user", prompt), ("assistant", text)]
                )
            except StorageError as exc:
                raise HistoryUnavailable("cannot store the conversation") from exc
        log.info(
            "chat.answered",
            user_id=user_id,
            model=model,
            stopped=stopped,
            finish_reason=completion.finish_reason if completion else None,
            outcome=charge.outcome,
            completion_tokens=charge.completion_tokens,
        )
        return Answer(
            text=text,
            model=model,
            stopped=stopped,
            finish_reason=completion.finish_reason if completion else None,
            receipt=completion.receipt if completion else None,
            receipt_valid=completion.receipt_valid if completion else False,
            cost=charge.units,
            outcome=charge.outcome,
        )

    async def _settle(
        self,
        hold: Hold,
        receipt: SignedReceipt | None,
        delivered: str,
        *,
        valid: bool = False,
    ) -> Charge:
        """Close the hold by the one rule every answer is billed by.

        From the receipt (the held amount if it did not verify); without one, from the bot's
        count of the text the user received; with neither, nothing is charged.
        """
        if receipt is not None:
            usage = receipt.receipt
            return await self.billing.settle(
                hold,
                usage.prompt_tokens,
                usage.completion_tokens,
                receipt_valid=valid,
                status=usage.status,
            )
        if delivered:
            return await self.billing.estimate(hold, estimate_tokens(delivered))
        return await self.billing.release(hold)

    async def _ask(  # noqa: PLR0913 -- one request's parts
        self,
        history: list[Turn],
        prompt: str,
        *,
        context: _Context,
        model: str,
        cache_salt: str,
        sink: AnswerSink,
        parts: list[str],
        stop: asyncio.Event,
    ) -> Completion | None:
        """Stream the answer; on a context-length error before any text, trim once and retry."""
        try:
            return await self._stream(
                context.messages, model, cache_salt, sink, parts=parts, stop=stop
            )
        except ContextTooLong:
            if parts or len(context.messages) <= 1 + bool(self.system_prompt):
                raise
        trimmed = self._context(history, prompt, self._budget() // 2)
        log.info("chat.context_trimmed", dropped=trimmed.dropped)
        return await self._stream(trimmed.messages, model, cache_salt, sink, parts=parts, stop=stop)

    async def _stream(  # noqa: PLR0913 -- one request's parts
        self,
        messages: list[dict[str, str]],
        model: str,
        cache_salt: str,
        sink: AnswerSink,
        *,
        parts: list[str],
        stop: asyncio.Event,
    ) -> Completion | None:
        completion = None
        stream = self.inference.stream(
            messages,
            model=model,
            cache_salt=cache_salt,
            max_tokens=self.max_answer_tokens,
            stop=stop,
        )
        async with contextlib.aclosing(stream):
            async for item in stream:
                if isinstance(item, TextDelta):
                    parts.append(item.text)
                    await sink.update("".join(parts))
                else:
                    completion = item
        return completion

    def _budget(self) -> int:
        """Tokens the context may take: the model's window less the answer's room."""
        return self.context_tokens - self.max_answer_tokens

    def _context(self, history: list[Turn], prompt: str, budget: int) -> _Context:
        """System prompt, the newest turns that fit ``budget`` tokens, then the prompt."""
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        tail = [{"role": "user", "content": prompt}]
        used = sum(estimate_tokens(m["content"]) for m in head + tail)
        kept: list[dict[str, str]] = []
        for turn in reversed(history):
            cost = estimate_tokens(turn.text)
            if used + cost > budget:
                break
            used += cost
            kept.append({"role": turn.role, "content": turn.text})
        kept.reverse()
        # A conversation must not open with an orphaned answer.
        while kept and kept[0]["role"] == "assistant":
            kept.pop(0)
        return _Context(head + kept + tail, dropped=len(history) - len(kept))

    # -- settings and conversations ----------------------------------------------------------

    async def models(self) -> tuple[str, ...]:
        """The models the verified gateways serve."""
        await self.inference.refresh()
        return self.inference.models()

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
        user = await self.store.get_user(user_id)
        return await self.model_for(user.model if user else None)

    async def set_model(self, user_id: int, language: str | None, model: str) -> bool:
        """Choose a model for the user; False if no gateway serves it."""
        if model not in await self.models():
            return False
        await self.store.ensure_user(user_id, language)
        await self.store.set_model(user_id, model)
        return True

    async def new_conversation(self, user_id: int, language: str | None) -> None:
        """Start a fresh conversation; the old one stays sealed in history."""
        await self.store.ensure_user(user_id, language)
        await self.store.new_conversation(user_id)

    async def forget(self, user_id: int) -> int:
        """Erase everything stored about the user (their data key first); returns turns erased.

        A streaming answer is stopped first and waited for (it is billed and would store its
        turn), so nothing is written after the erasure.
        """
        generation = self._active.get(user_id)
        if self.cancel(user_id) and generation is not None and generation.task is not None:
            await asyncio.wait([generation.task])
        self._retry.pop(user_id, None)
        try:
            return await self.store.forget(user_id)
        except StorageError as exc:
            raise HistoryUnavailable("cannot erase the conversation") from exc

    async def trust(self) -> list[GatewayTrust]:
        """The verification state of every gateway, refreshed."""
        await self.inference.refresh()
        return self.inference.trust()


def estimate_tokens(text: str) -> int:
    """A cautious token count: about three characters a token, plus per-message overhead."""
    return len(text) // 3 + 4
