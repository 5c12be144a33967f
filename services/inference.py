"""The sealed inference client: the only way the bot reaches a model.

It seals every request to a gateway's verified key (``services.gateways``), signs the sealed
bytes with the bot's client key, spreads requests over the gateways that serve the model, fails
over when a gateway fails, is busy or refuses the request's time (its clock disagrees) before the
first byte of the answer, and opens the sealed stream, checking every chunk and the signed usage
receipt. It never retries once text has been yielded.

Stopping is billed, not free: when the caller sets the ``stop`` event, the client sends an
authenticated cancel (``services.control``) and keeps reading, still yielding text, until the
stream's final record, which carries a ``stopped`` receipt counting what was delivered. If the
stream breaks, or ``stop_grace`` seconds pass, it hangs up and fetches the receipt from the
gateway; if none can be had, the ``Completion`` carries no receipt and the caller bills its own
count of the delivered text. A stream cut or stalled after text was delivered likewise fetches
the receipt before it reports the error, so the error carries what billing needs.

The caller's ``stop`` is a ``StopSignal``: set once, it calls back, so an answer streaming waits
for its stop with a callback, not a task of its own (a task and its coroutine frame per answer
in progress); the cancel's task starts only once stop is asked.

Waiting for a connection to a gateway is bounded (``pool_wait``): a gateway whose pool stays
full counts as busy, and the next one is tried. An answer waits for its turn at a connection
before its request is sealed and built, so one waiting holds neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from common.waits import retry_after as read_retry_after
from sealed.auth import client_auth_headers
from sealed.errors import (
    ChunkOutOfOrder,
    ChunkTampered,
    MalformedMessage,
    ReceiptInvalid,
    SealedError,
    StreamError,
    StreamSpliced,
    StreamTruncated,
    TrailingData,
)
from sealed.request import REQUEST_ID_SIZE, new_request_secrets, seal_request
from sealed.stream import ACCEPT_HEADER, ACCEPT_RETRY_AFTER, ChunkOpener, Final, Reasoning
from services.control import FINISHED, STOPPING, ControlClient
from services.errors import (
    BackendError,
    ContextTooLong,
    InferenceBusy,
    InferenceError,
    InferenceUnavailable,
    ModelStalled,
    StreamCorrupted,
    UntrustedGateway,
)
from services.gateways import (
    UNREACHABLE,
    Gateway,
    GatewayPool,
    GatewayTrust,
    fingerprint,
    named_skew,
    refusal_code,
    refusal_reply,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Collection, Sequence

    from cryptography.hazmat.primitives.asymmetric import ed25519

    from sealed.bundle import SignedBundle
    from sealed.receipt import ReceiptStatus, SignedReceipt, UsageReceipt

log = structlog.get_logger("veil.inference")

_STREAM_REASONS: dict[type[SealedError], str] = {
    ChunkTampered: "tampered",
    ChunkOutOfOrder: "out_of_order",
    StreamSpliced: "spliced",
    StreamTruncated: "truncated",
    TrailingData: "trailing_data",
}
_FAILOVER_STATUSES = frozenset({408, 410, 429, 500, 502, 503, 504})
_BUSY_CODES = frozenset({"busy", "client_busy", "rate_limited"})
_HTTP_OK = 200
_HTTP_BAD_REQUEST = 400  # with ``stale_request``: the gateway's clock and ours disagree
_HTTP_UNAUTHENTICATED = 401
_HTTP_GONE = 410  # the key id was rotated out: refresh the bundle and try once more
_HTTP_TOO_MANY = 429
STOPPED = "stopped"


class Signal:
    """Set once (it is never cleared), seen by ``is_set``, acted on by callbacks or awaited.

    An ``asyncio.Event`` would do, but it keeps a deque of waiters (~0.8 KB) whether or not
    anyone waits, and can only be waited for by a task; this calls its callbacks when set, so
    whoever acts on it needs no task until it is set, and ``wait`` makes a future only while
    someone waits. Callbacks run inside ``set``: they must only schedule work, never raise.
    """

    __slots__ = ("_callbacks", "_set")

    def __init__(self) -> None:
        self._set = False
        self._callbacks: list[Callable[[], object]] = []

    def is_set(self) -> bool:
        """True once ``set`` was called."""
        return self._set

    def set(self) -> None:
        """Stop: call every callback registered (once; a second ``set`` does nothing)."""
        if self._set:
            return
        self._set = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_set(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` when set (now, if it already is)."""
        if self._set:
            callback()
        else:
            self._callbacks.append(callback)

    def discard(self, callback: Callable[[], object]) -> None:
        """Forget ``callback`` (registered with ``on_set``; called or gone already: fine)."""
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    async def wait(self) -> None:
        """Return once set (at once, if it is)."""
        if self._set:
            return
        done = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        self.on_set(wake)
        try:
            await done
        finally:
            self.discard(wake)


class StopSignal(Signal):
    """Asks an answer to stop; the stream's cancel is its callback (no task until asked)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of a reasoning model's thinking: shown apart, never part of the answer."""

    text: str


StreamItem = TextDelta | ReasoningDelta


@dataclass(frozen=True)
class Completion:
    """The end of an answer: the usage receipt and whether its signature verified.

    ``signed_receipt`` keeps the exact signed bytes (for an audit); ``request_id`` is the sealed
    request's id, which the receipt names. ``fetched`` is True when the receipt came from the
    gateway's receipt store after the stream was cut or given up. A stopped answer whose receipt
    could not be had at all has ``receipt`` None and ``finish_reason`` ``stopped``: the caller
    bills its own count of the delivered text.
    """

    receipt: UsageReceipt | None
    finish_reason: str
    gateway: str
    signed_receipt: SignedReceipt | None = None
    request_id: bytes = b""
    fetched: bool = False
    verified_by: SignedBundle | None = None  # the bundle whose key verified the receipt

    @property
    def receipt_valid(self) -> bool:
        """Whether the receipt's signature verified (under ``verified_by``)."""
        return self.verified_by is not None

    @property
    def status(self) -> ReceiptStatus | None:
        """How the gateway says the stream ended (complete, stopped, error), if it said."""
        return self.receipt.status if self.receipt is not None else None


@dataclass(slots=True)
class _Attempt:
    """One sealed request to one gateway, and how far it got."""

    gateway: Gateway
    signed: SignedBundle
    request_id: bytes
    response_key: bytes
    model: str
    stop: StopSignal
    streamed: bool = False  # text was yielded

    @property
    def stopping(self) -> bool:
        """True once the caller asked to stop."""
        return self.stop.is_set()


class _Failover(Exception):
    """This gateway failed before the first byte: try the next one."""

    def __init__(  # noqa: PLR0913 -- what one failover says, each optional
        self,
        reason: str,
        *,
        busy: bool = False,
        retry_after: float | None = None,
        model_wait: bool = False,
        skewed: bool = False,
        skew: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.busy = busy
        self.retry_after = retry_after
        self.model_wait = model_wait  # the model server's wait, for the asked model only
        self.skewed = skewed  # the gateway refused the request's time (``skew``, if named)
        self.skew = skew


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One question for the model: the OpenAI-style fields the sealed request carries.

    ``request_id`` (16 bytes; a fresh random one when None) is the sealed request's id, which
    the receipt will name: the caller's hold id.
    """

    messages: list[dict[str, str]]
    model: str
    cache_salt: str
    max_tokens: int | None = None
    temperature: float | None = None
    request_id: bytes | None = None


class InferenceClient:
    """Streams answers from a pool of sealed gateways.

    ``session`` carries the answer streams; size its connector to the gateways' stream
    capacity. ``control_session`` (default: the same) carries bundle fetches, cancels and
    receipt fetches, so they never queue behind streams waiting for a connection.
    """

    def __init__(  # noqa: PLR0913 -- settings of one client
        self,
        gateways: Sequence[str],
        operator_keys: Collection[bytes],
        session: aiohttp.ClientSession,
        *,
        client_key: ed25519.Ed25519PrivateKey,
        control_session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        skew: int = 120,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        pool_wait: float = 10.0,
        stop_grace: float = 10.0,
        receipt_retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0),
    ) -> None:
        control = control_session or session
        self._pool = GatewayPool(gateways, operator_keys, control, clock=clock, skew=skew)
        self._gateways = self._pool.gateways
        self._pinned = frozenset(operator_keys)
        self._control = ControlClient(control, retry_delays=receipt_retry_delays)
        self._session = session
        self._client_key = client_key
        self._clock = clock
        self._stop_grace = stop_grace
        self._pool_wait = pool_wait
        self._turns: dict[int, asyncio.Semaphore] = {}  # per gateway: its connections' turns
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=pool_wait, sock_connect=connect_timeout, sock_read=read_timeout
        )

    # -- bundles -----------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> None:
        """Fetch and verify the bundles of all gateways that need it (concurrently)."""
        await self._pool.refresh(force=force)

    def models(self) -> tuple[str, ...]:
        """The models served by gateways with a verified bundle, in first-seen order."""
        return self._pool.models()

    def window(self, model: str) -> int | None:
        """``model``'s context window as the verified bundles state it; None if they do not."""
        return self._pool.window(model)

    def widest_window(self, model: str) -> int | None:
        """The most prompt tokens a request for ``model`` can be billed; None if unknown."""
        return self._pool.widest_window(model)

    def trust(self) -> list[GatewayTrust]:
        """The verification state of every gateway, for the user to see."""
        return self._pool.trust()

    @property
    def pool(self) -> GatewayPool:
        """The gateways and their verified bundles (shared with the Mini App's relay)."""
        return self._pool

    def bundles(self) -> list[SignedBundle]:
        """The verified bundles now held (their receipt keys sign usage receipts)."""
        return [g.bundle for g in self._pool.gateways if g.bundle is not None]

    # -- streaming ---------------------------------------------------------------------------

    async def stream(
        self, request: ChatRequest, *, stop: StopSignal | None = None
    ) -> AsyncGenerator[StreamItem | Completion, None]:
        """Yield the answer's text deltas, then one ``Completion``.

        Setting ``stop`` ends the answer early but billed: text keeps coming until the
        gateway's ``stopped`` final record (at most ``stop_grace`` seconds). If ``stop`` is set
        before any gateway answered, the stream ends with nothing (nothing was generated).
        Raises ``InferenceError``
        subclasses; once a delta has been yielded, no other gateway is tried.
        """
        request_id = request.request_id
        if request_id is not None and len(request_id) != REQUEST_ID_SIZE:
            raise ValueError(f"request_id must be {REQUEST_ID_SIZE} bytes")
        stop = stop or StopSignal()
        candidates = await self._candidates(request.model)
        chat: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "cache_salt": request.cache_salt,
        }
        if request.max_tokens is not None:
            chat["max_completion_tokens"] = request.max_tokens
        if request.temperature is not None:
            chat["temperature"] = request.temperature
        failures: list[_Failover] = []
        for gateway in candidates:
            if stop.is_set():
                return  # stopped before any gateway answered: nothing was generated
            try:
                async for item in self._stream_from(gateway, chat, stop, request_id=request_id):
                    yield item
            except _Failover as exc:
                failures.append(exc)
                model = request.model if exc.model_wait else None
                self._pool.failed(gateway, exc.retry_after, model=model)
                if exc.skewed:
                    self._pool.skewed(gateway, exc.skew)
                log.warning("inference.failover", gateway=gateway.index, reason=exc.reason)
                continue
            self._pool.succeeded(gateway, request.model)
            return
        if stop.is_set():
            return
        raise self._none_answered(failures)

    async def _candidates(self, model: str) -> list[Gateway]:
        """The gateways to try for ``model``; raise when there are none."""
        await self.refresh()
        candidates = self._pool.candidates(model)
        if candidates:
            return candidates
        if not self._pool.any_verified():
            raise self._unverified()
        raise InferenceUnavailable("no gateway serves this model")

    def _none_answered(self, failures: list[_Failover]) -> InferenceError:
        """The failure when every candidate gateway failed before its first byte."""
        if any(failure.busy for failure in failures):
            return InferenceBusy("every gateway is busy")
        if failures and all(failure.skewed for failure in failures):
            # Not out of reach: each refused the request's time, a clock to set, not a wait.
            return InferenceError(f"gateway refused the request: {failures[-1].reason}")
        if not self._pool.any_verified():
            # A gateway that said its key was rotated out (410) and then served a bundle that
            # does not verify (restarted under an operator key this bot does not pin) is told
            # as such now, not as out of reach for this question and untrusted for the next.
            return self._unverified()
        return InferenceUnavailable(failures[-1].reason if failures else "no gateway answered")

    def _unverified(self) -> InferenceError:
        """The failure when no gateway has a verified bundle: out of reach, or untrusted."""
        problems = self._pool.problems()
        if problems == [UNREACHABLE]:
            return InferenceUnavailable("no gateway is reachable")
        return UntrustedGateway("no gateway served a bundle that verifies: " + ", ".join(problems))

    async def _stream_from(
        self,
        gateway: Gateway,
        chat: dict[str, Any],
        stop: StopSignal,
        *,
        request_id: bytes | None = None,
        retried: bool = False,
    ) -> AsyncGenerator[StreamItem | Completion, None]:
        rotated: bytes | None = None  # the key the gateway said it no longer holds (410)
        gateway.in_flight += 1
        try:
            turns = await self._turn(gateway)
            try:
                signed = gateway.bundle
                if signed is None:
                    raise _Failover("no verified bundle")
                fresh_id, response_key = new_request_secrets()
                request_id = request_id or fresh_id
                body = seal_request(
                    signed.bundle,
                    chat,
                    request_id=request_id,
                    response_key=response_key,
                    timestamp=int(self._clock()),
                )
                attempt = _Attempt(
                    gateway, signed, request_id, response_key, str(chat["model"]), stop
                )
                response = await self._post(attempt, body)
                del body  # sent: not held while the answer streams
                async with response:
                    if response.status == _HTTP_GONE and not retried:
                        # The key was rotated out: refresh (unless done since), retry once.
                        rotated = signed.bundle.key_id
                    else:
                        await _raise_for_refusal(response, gateway)
                        stopper: list[asyncio.Task[None]] = []  # the cancel, once stop is asked

                        def stop_asked() -> None:
                            cancel = self._stop(attempt, response)
                            stopper.append(asyncio.create_task(cancel))

                        stop.on_set(stop_asked)
                        try:
                            async for item in self._read(response, attempt):
                                yield item
                        finally:
                            stop.discard(stop_asked)
                            for task in stopper:
                                task.cancel()
                                with contextlib.suppress(asyncio.CancelledError):
                                    await task
            finally:
                turns.release()
        finally:
            gateway.in_flight -= 1
        if rotated is not None:
            await self._pool.refresh_one(gateway, refused=rotated)
            async for item in self._stream_from(
                gateway, chat, stop, request_id=request_id, retried=True
            ):
                yield item

    async def _turn(self, gateway: Gateway) -> asyncio.Semaphore:
        """Wait (at most ``pool_wait``) until a connection to ``gateway`` is free; its turns.

        The request is sealed and built only then: aiohttp builds a request before it waits
        for a connection, so every answer waiting for one held its sealed body and request
        (~10 KB). Waiting too long is a busy gateway (the next one is tried).
        """
        turns = self._turns.get(gateway.index)
        if turns is None:
            connector = self._session.connector
            limit = connector.limit_per_host or connector.limit if connector is not None else 0
            turns = self._turns[gateway.index] = asyncio.Semaphore(limit or sys.maxsize)
        try:
            async with asyncio.timeout(self._pool_wait):
                await turns.acquire()
        except TimeoutError as exc:
            raise _Failover("busy", busy=True) from exc
        return turns

    async def _post(self, attempt: _Attempt, body: bytes) -> aiohttp.ClientResponse:
        """Send the sealed request; a gateway we cannot get a connection to is a failover."""
        gateway = attempt.gateway
        try:
            return await self._session.post(
                f"{gateway.url}/v1/sealed/chat/completions",
                data=body,
                headers={
                    "Content-Type": "application/vnd.veil.sealed-request",
                    ACCEPT_HEADER: ACCEPT_RETRY_AFTER,  # an unavailable error's wait, below
                    **client_auth_headers(self._client_key, body),
                },
                timeout=self._timeout,
                allow_redirects=False,  # a redirect's target is no gateway we were given
            )
        except aiohttp.ConnectionTimeoutError as exc:
            busy = self._pool_full(gateway)
            raise _Failover("busy" if busy else "connect_timeout", busy=busy) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Failover(type(exc).__name__) from exc

    def _pool_full(self, gateway: Gateway) -> bool:
        """True when more streams want this gateway (or all) than the pool allows."""
        connector = self._session.connector
        if connector is None:
            return False
        per_host = connector.limit_per_host
        total = connector.limit
        everywhere = sum(g.in_flight for g in self._pool.gateways)
        return bool(per_host and gateway.in_flight > per_host) or bool(total and everywhere > total)

    async def _stop(self, attempt: _Attempt, response: aiohttp.ClientResponse) -> None:
        """Stop was asked: cancel at the gateway, then hang up when the grace is over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_grace
        state = await self._control.cancel(
            attempt.gateway, attempt.request_id, attempt.response_key
        )
        if state in {STOPPING, FINISHED}:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            log.warning("inference.stop_grace_passed", gateway=attempt.gateway.index)
        response.close()  # the gateway sees us gone: it stops the model and keeps the receipt

    async def _read(
        self, response: aiohttp.ClientResponse, attempt: _Attempt
    ) -> AsyncGenerator[StreamItem | Completion, None]:
        """Open the sealed stream; on a break, recover the receipt (see ``_recover``)."""
        opener = ChunkOpener(attempt.response_key)
        broken: str
        try:
            async for data in response.content.iter_any():
                items = _open(opener, data, attempt)
                del data  # neither a burst's bytes nor its records are kept while the
                for item in items:  # next bytes are awaited (a paused model holds them long)
                    yield self._finish(item, attempt) if isinstance(item, Final) else item
                del items
            opener.close()
        except StreamTruncated:
            broken = "cut"
        except (StreamError, MalformedMessage) as exc:
            raise StreamCorrupted(_STREAM_REASONS.get(type(exc), "malformed")) from exc
        except aiohttp.ClientPayloadError:
            broken = "cut"
        except TimeoutError:  # no byte within the read timeout (aiohttp's sock_read)
            broken = "stalled"
        except aiohttp.ClientError:
            broken = "lost"
        else:
            return
        if opener.finished:
            return  # the final record was already yielded; only the goodbye was lost
        response.close()  # so the gateway sees us gone and settles the stream's receipt
        yield await self._recover(attempt, broken)

    async def _recover(self, attempt: _Attempt, broken: str) -> Completion:
        """The end of a stream that broke (``cut``, ``lost``, ``stalled``) before its final.

        Before any text and without a stop, the gateway simply failed (failover, or a
        truncated stream). Otherwise the receipt is fetched: a stopped answer completes with
        it (or without one, to be billed by the caller's count); any other break becomes the
        error it is, carrying the receipt.
        """
        if not attempt.streamed and not attempt.stopping:
            if broken == "cut":
                raise StreamCorrupted("truncated")
            raise _Failover("read_timeout" if broken == "stalled" else "connection_lost")
        final = await self._control.fetch_receipt(
            attempt.gateway, attempt.request_id, attempt.response_key
        )
        receipt = self._verified(final.receipt, attempt) if final is not None else None
        if attempt.stopping:
            reason = final.finish_reason if final is not None and final.finish_reason else STOPPED
            log.info(
                "inference.stopped",
                gateway=attempt.gateway.index,
                broken=broken,
                receipt=receipt is not None,
            )
            return self._completion(attempt, receipt, reason)
        if final is not None and final.is_error:
            raise self._error(final, attempt, receipt)
        verified_by = attempt.signed if receipt is not None else None
        if broken == "stalled":
            raise ModelStalled("client", receipt=receipt, verified_by=verified_by)
        raise StreamCorrupted("truncated", receipt=receipt, verified_by=verified_by)

    def _finish(self, record: Final, attempt: _Attempt) -> Completion:
        """The stream's own final record: a ``Completion``, or the error it reports."""
        receipt = self._verified(record.receipt, attempt)
        if record.is_error:
            raise self._error(record, attempt, receipt)
        if record.finish_reason == STOPPED and not attempt.stopping:
            raise self._gateway_stopped(attempt, receipt)
        if record.receipt is None:
            log.warning("inference.receipt_missing", gateway=attempt.gateway.index)
        return Completion(
            receipt=record.receipt.receipt if record.receipt is not None else None,
            finish_reason=record.finish_reason or "stop",
            gateway=attempt.gateway.url,
            signed_receipt=record.receipt,
            request_id=attempt.request_id,
            verified_by=attempt.signed if receipt is not None else None,
        )

    @staticmethod
    def _completion(attempt: _Attempt, receipt: SignedReceipt | None, reason: str) -> Completion:
        """A fetched receipt's completion (``receipt`` verified, or None)."""
        return Completion(
            receipt=receipt.receipt if receipt is not None else None,
            finish_reason=reason,
            gateway=attempt.gateway.url,
            signed_receipt=receipt,
            request_id=attempt.request_id,
            fetched=True,
            verified_by=attempt.signed if receipt is not None else None,
        )

    @staticmethod
    def _gateway_stopped(
        attempt: _Attempt, receipt: SignedReceipt | None
    ) -> InferenceError | _Failover:
        """A stream the gateway stopped though the bot did not ask: the gateway is stopping.

        A restart (an upgrade, a key rotation) ends each stream at once with a ``stopped``
        receipt. Before any text the next gateway is tried; after some, the answer failed
        (billed by the receipt), never a finished answer cut short without a word.
        """
        log.warning(
            "inference.gateway_stopped", gateway=attempt.gateway.index, streamed=attempt.streamed
        )
        if not attempt.streamed:
            return _Failover("gateway stopping")
        verified_by = attempt.signed if receipt is not None else None
        return InferenceUnavailable(
            "the gateway stopped the answer (it is shutting down)",
            receipt=receipt,
            verified_by=verified_by,
        )

    @staticmethod
    def _error(
        record: Final, attempt: _Attempt, receipt: SignedReceipt | None
    ) -> InferenceError | _Failover:
        """The error an error record reports (a failover if the model server was down).

        ``receipt`` is the record's receipt verified under the attempt's bundle, or None. A
        model server that was there but refused with 429 (its load) is a busy failover. The
        model server's Retry-After, which the gateway passes on, keeps the gateway in back-off
        for that model at least that long.
        """
        message = record.error_message or "unknown error"
        if record.error_kind == "unavailable" and not attempt.streamed:
            wait = record.error_retry_after
            busy = record.error_status == _HTTP_TOO_MANY
            reason = "model server busy" if busy else "model server unavailable"
            return _Failover(reason, busy=busy, retry_after=wait, model_wait=True)
        verified_by = attempt.signed if receipt is not None else None
        if record.error_kind == "stalled":
            log.warning("inference.model_stalled", gateway=attempt.gateway.index)
            return ModelStalled("gateway", receipt=receipt, verified_by=verified_by)
        error_class = ContextTooLong if record.error_kind == "context_length" else BackendError
        return error_class(
            message, status=record.error_status, receipt=receipt, verified_by=verified_by
        )

    def _verified(self, receipt: SignedReceipt | None, attempt: _Attempt) -> SignedReceipt | None:
        """The receipt if it verifies for this request id and model, else None (logged)."""
        if receipt is None:
            return None
        try:
            receipt.verify(
                attempt.signed.bundle.receipt_verify_key(),
                request_id=attempt.request_id,
                model=attempt.model,
            )
        except (ReceiptInvalid, MalformedMessage):
            log.warning("inference.receipt_invalid", request_id=attempt.request_id.hex())
            return None
        return receipt


def _open(opener: ChunkOpener, data: bytes, attempt: _Attempt) -> list[StreamItem | Final]:
    """The text and reasoning deltas and final record the bytes complete (empty ones dropped).

    Reasoning counts as streamed: once the user may have seen any, no other gateway is tried.
    """
    items: list[StreamItem | Final] = []
    for record in opener.feed(data):
        if isinstance(record, Final):
            items.append(record)
        elif record.text:
            attempt.streamed = True
            kind = ReasoningDelta if isinstance(record, Reasoning) else TextDelta
            items.append(kind(record.text))
    return items


async def _raise_for_refusal(response: aiohttp.ClientResponse, gateway: Gateway) -> None:
    """Turn a gateway's refusal into a failover (its fault or its load) or an error (ours)."""
    if response.status == _HTTP_OK:
        return
    body = await refusal_reply(response)
    code = refusal_code(body)
    problem = f"HTTP {response.status} {code}"
    if response.status == _HTTP_UNAUTHENTICATED:
        # This gateway has not pinned our client key: only the operator can fix that.
        log.error("inference.unauthenticated", gateway=gateway.index, code=code)
        raise _Failover(problem)
    if response.status in _FAILOVER_STATUSES:
        busy = response.status == _HTTP_TOO_MANY or code in _BUSY_CODES
        raise _Failover(problem, busy=busy, retry_after=_retry_after(response))
    if response.status == _HTTP_BAD_REQUEST and code == "stale_request":
        # The gateway's clock and ours disagree: it refused before taking the request (nothing
        # ran, nothing is charged, its id is not kept), and another gateway's clock may agree.
        raise _Failover(problem, skewed=True, skew=named_skew(body))
    raise InferenceError(f"gateway refused the request: {problem}")


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """The ``Retry-After`` seconds of a refusal, given as a number or as an HTTP-date."""
    return read_retry_after(response.headers.get("Retry-After"), time.time())


__all__ = [
    "Completion",
    "GatewayTrust",
    "InferenceClient",
    "InferenceError",
    "ReasoningDelta",
    "StopSignal",
    "StreamItem",
    "TextDelta",
    "fingerprint",
]
