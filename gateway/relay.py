"""One admitted request's stream: vLLM's deltas in, sealed records out, a signed receipt last.

Every stream ends with a final record holding a signed receipt, and the gateway keeps that
record for later fetches, however the stream ends:

    outcome          final record                   receipt status
    ok               DONE, the model's reason       complete
    stopped          DONE, ``stopped``              stopped   (the asker cancelled)
    time_limit       DONE, ``time_limit``           stopped   (``VEIL_MAX_STREAM_SECONDS``)
    client_gone      DONE, ``stopped`` (kept only)  stopped   (the client hung up)
    client_stalled   DONE, ``stopped`` (kept only)  stopped   (nothing read for
                                                               ``VEIL_CLIENT_IDLE_TIMEOUT``)
    shutdown         DONE, ``stopped``              stopped   (the gateway is stopping)
    stalled, backend, unavailable, context_length
                     ERROR with the kind            error

The response's head goes out once the request is on its way to the model server (not before:
asking the model comes first on the way to the first text), or, when the model server cannot be
asked, with the error record. How the records are timed and sized is ``gateway.shaping``'s:
unshaped, a record for each piece of text as it comes; shaped, the first piece at once, then
one record a tick at the stream's record size, and at the end the text still waiting and the
final record together. In ``tick+duration`` the end waits for its tick bucket; a client that
vanishes while it waits leaves the complete receipt of the finished answer.

A reasoning model's thinking (``ReasoningDelta``) goes out in ``REASONING`` records, the answer
in ``DELTA`` records, each in the order it came. Shaped, a tick's one record holds the thinking
waiting, if any, else the answer's text (which waits a tick more); the closing records carry
the thinking still waiting, if any, before the closing ``DELTA``.

A model server's ``Retry-After`` on an ``unavailable`` failure goes in the error record as
``retry_after`` only for a client that asked for it (``Veil-Accept: retry_after``,
docs/protocol.md §4); the record kept for later fetches never has it.

A relay that sent a ``Veil-Relay-Key`` (a bot relaying a Mini App's sealed bytes) gets the
same signed receipt once more right after the final chunk, sealed to its key
(``sealed.relay``), so it can bill without reading the answer.

Stopping closes the upstream response, so the model server stops generating. What the receipt
counts, and the metrics and log line of each stream, are ``gateway.settlement``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from common.connections import watch_connection
from common.sockets import reset_connection
from gateway.chat import estimate_prompt_tokens
from gateway.events import BackendFailure, ContentDelta, Finish, ReasoningDelta, failure_for
from gateway.settlement import Tally, record_outcome, settle
from gateway.shaping import RecordSize, held_until
from sealed.encoding import MAX_RECORD_PAYLOAD
from sealed.relay import seal_relay_receipt
from sealed.stream import (
    ACCEPT_HEADER,
    CHUNK_OVERHEAD,
    ChunkSealer,
    RecordType,
    accepts_retry_after,
    split_utf8,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.clients import ClientPolicy
    from gateway.events import Event
    from gateway.receipts import StreamControl
    from gateway.server import Gateway
    from gateway.upstream import ChatStream
    from sealed.request import OpenedRequest
    from sealed.stream import Final

SEALED_STREAM_TYPE = "application/vnd.veil.sealed-stream"
_GONE = frozenset({"client_gone", "client_stalled"})
_FRAMING = 32  # the most bytes HTTP's chunked framing adds to a write


@dataclass(frozen=True)
class RelayBinding:
    """A relay's key for the receipt sent after the final chunk, and the body it is bound to."""

    key: bytes
    body_hash: bytes


@dataclass(frozen=True)
class Admitted:
    """A request that passed every check: who asked, what goes upstream, its control.

    ``relay`` is set when a relay asked for the receipt after the final chunk
    (``sealed.relay``).
    """

    client: ClientPolicy
    opened: OpenedRequest
    chat: dict[str, Any]
    control: StreamControl
    received: float  # time.monotonic() when the request arrived
    relay: RelayBinding | None = None


class _ClientGone(Exception):
    """The client hung up, or read nothing for the idle timeout (its connection is aborted)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


async def relay(gateway: Gateway, request: web.Request, admitted: Admitted) -> web.StreamResponse:
    """Stream the sealed answer to ``admitted`` and end it with a signed receipt."""
    stream = _Stream(gateway, request, admitted)
    unwatch = watch_connection(request, lambda: admitted.control.stop("client_gone"))
    try:
        await stream.run()
    finally:
        unwatch()
        stream.unsubscribe()
    return stream.response


class _Stream:
    """One stream's parts while it runs.

    Unshaped, each batch of text the model server sends goes out at once, a record for each
    piece. Shaped (``gateway.shaping``), the first piece goes out at once; after it the model
    server's bytes wait in the kernel (``ChatStream.gather``) and are taken in only at ticks and
    at its end, and each tick sends one record: the gateway wakes once a tick, not a token. A
    tick's record is usually made and written in the ticker's own call (``on_tick``), without
    waking the stream's task.
    """

    def __init__(self, gateway: Gateway, request: web.Request, admitted: Admitted) -> None:
        self.gateway = gateway
        self.request = request
        self.admitted = admitted
        self.shaping = gateway.shaping
        self.sealer = ChunkSealer(admitted.opened.response_key)
        self.response = web.StreamResponse(headers={"Content-Type": SEALED_STREAM_TYPE})
        self.tally = Tally()
        self.idle = gateway.limits.client_idle_timeout
        self.size = RecordSize()
        self.pending: list[str] = []  # text received and not yet sent (shaped streams)
        self.thinking: list[str] = []  # reasoning received and not yet sent (shaped streams)
        self.failure: BackendFailure | None = None
        self.model_ended = False  # the model finished or failed (not stopped)
        self.wake = asyncio.Event()  # a tick came or the model server's reply ended
        self.due = False  # a tick came and its record is not sent yet
        self.ticks = 0  # ticks since the first record
        self.unsubscribe: Callable[[], None] = _nothing
        self.written = 0  # chunks handed to the connection
        self.upstream: ChatStream | None = None  # the model's reply, once ticks are followed
        self.parked = False  # waiting in ``by_ticks`` for a tick or the reply's end
        self.scope: asyncio.Timeout | None = None  # the time limit, which a stop moves to now

    async def run(self) -> None:
        """Relay, then sign, keep and send the final record."""
        try:
            outcome = await self.pump()
        except _ClientGone as gone:
            outcome = gone.outcome
        ended_well = self.model_ended and self.failure is None
        final = await settle(
            self.gateway, self.admitted, self.tally, "ok" if ended_well else outcome, self.failure
        )
        wait = None if self.failure is None else self.failure.retry_after
        # Every field line of the list counts, as if joined by commas (RFC 9110 §5.3).
        accept = ",".join(self.request.headers.getall(ACCEPT_HEADER, ()))
        if wait is not None and accepts_retry_after(accept):
            final = replace(final, error_retry_after=wait)
        if outcome not in _GONE:
            try:
                await self.send(self.closing(final))
                await _client_io(self.request, self.response.write_eof(), self.idle)
            except _ClientGone as gone:
                outcome = gone.outcome
        record_outcome(self.gateway, self.admitted, self.tally, outcome, self.sealer.sealed)

    async def pump(self) -> str:
        """Relay until the model ends (or the held end), or the stream is stopped: the outcome."""
        control = self.admitted.control
        loop = asyncio.get_running_loop()
        scope = asyncio.timeout_at(loop.time() + self.gateway.limits.max_stream_seconds)
        self.scope = scope
        try:
            async with scope:
                control.bind(scope)
                try:
                    await self.relay_model()
                except BackendFailure as exc:
                    self.failure = exc
                self.model_ended = True
                if self.shaping.holds_duration and self.ticks_started:
                    await self.hold()
        except TimeoutError:
            if not scope.expired():
                raise
            reason = control.stop_reason
            if not self.model_ended or reason in _GONE:
                return reason or "time_limit"
        finally:
            control.bind(None)
        return self.failure.kind if self.failure is not None else "ok"

    async def fitted_chat(self) -> dict[str, Any]:
        """The upstream chat; when the client named no ``max_completion_tokens``, fitted.

        The client's ceiling alone may be more than the model's window holds beside the prompt
        (which the model server refuses); the room is the window less the prompt, counted by
        the model server's ``/tokenize`` (else the gateway's estimate, never below the count).
        A client's own number is sent as it is.

        A prompt the count puts at the window or past it is refused here, in vLLM's words (a
        ``context_length`` failure: the model never asked, nothing billed), whatever the model
        server would take: the window the bundle states is the most a prompt is held and
        billed by (a model server restarted with a larger window read a long paste whole, and
        its usage was charged over the client's hold, until the next key rotation told it).
        """
        chat = self.admitted.chat
        window = self.gateway.ring.windows.get(chat["model"])
        if window is None:
            return chat
        estimate = estimate_prompt_tokens(chat["messages"])
        if estimate + chat["max_tokens"] <= window:
            return chat
        counted = await self.gateway.vllm.count_prompt_tokens(chat["model"], chat["messages"])
        if counted is not None and counted >= window:
            raise failure_for(400, _too_long(window, counted))
        if "max_completion_tokens" in self.admitted.opened.chat:
            return chat
        prompt = estimate if counted is None else counted
        if prompt >= window:
            return chat  # no room at all: the model server's refusal says so
        tokens = min(chat["max_tokens"], window - prompt)
        return {**chat, "max_completion_tokens": tokens, "max_tokens": tokens}

    async def relay_model(self) -> None:
        """Ask the model server and relay its answer until it has finished."""
        chat = await self.fitted_chat()
        # Asked from here on (not while the prompt is counted: a stop then costs nothing).
        self.tally.asked = True
        async with self.gateway.vllm.open_chat(chat, sent=self.head) as upstream:
            if not self.shaping.shaped:
                while not upstream.finished:
                    texts = self.absorb(await upstream.read())
                    if texts:
                        self.first_sent()
                        await self.send(
                            b"".join(
                                self.sealer.delta_utf8(
                                    text.text.encode("utf-8"),
                                    kind=RecordType.DELTA
                                    if isinstance(text, ContentDelta)
                                    else RecordType.REASONING,
                                )
                                for text in texts
                            )
                        )
                return
            while not upstream.finished and not (self.pending or self.thinking):
                self.absorb(await upstream.read())
            if self.pending or self.thinking:
                self.first_sent()
                kind = self.due_kind
                data = self.take(first=True, kind=kind)
                await self.send(self.sealer.delta_utf8(data, pad_to=self.size.size, kind=kind))
                await self.by_ticks(upstream)

    async def by_ticks(self, upstream: ChatStream) -> None:
        """After the first record: read the model server at ticks and its end; a record a tick."""
        self.upstream = upstream
        self.unsubscribe = self.shaping.ticker.subscribe(self.on_tick)
        unwatch = upstream.watch(self.wake.set)
        upstream.gather()  # no wakeup a token: the kernel holds the bytes until a tick
        try:
            while not upstream.finished:
                if not upstream.ended:
                    self.parked = True
                    try:
                        await self.wake.wait()
                    finally:
                        self.parked = False
                    self.wake.clear()
                self.absorb(upstream.collect())
                if self.due and (self.shaping.holds_duration or not upstream.finished):
                    await self.tick_record()  # (unless the closing records go out now)
        except asyncio.CancelledError:
            # Stopped (a cancel, the time limit, shutdown): the text that came still goes out,
            # then the stop goes on. The read is bounded: the bytes are already here.
            with contextlib.suppress(BackendFailure):
                self.absorb(upstream.collect())
            raise
        finally:
            unwatch()

    async def hold(self) -> None:
        """``tick+duration``: go on ticking until the end's bucket (``held_until``)."""
        until = held_until(self.ticks)
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.ticks >= until:
                return
            if self.due:
                await self.tick_record()

    @property
    def ticks_started(self) -> bool:
        """True once the first record went out and the stream follows the ticks."""
        return self.unsubscribe is not _nothing

    def on_tick(self) -> None:
        """The ticker's call: a record is due.

        While the stream waits for ticks and nothing else, the record is made and handed to
        the connection right here (``tick_now``): no turn of the event loop for the stream's
        task a tick. Anything else (the reply's end, a failure, a client that is not reading
        fast enough, an error here) wakes the stream, which does it the general way.
        """
        self.ticks += 1
        self.due = True
        sent = False
        try:
            sent = self.parked and not self.wake.is_set() and self.tick_now()
        finally:
            if not sent:
                self.wake.set()

    def tick_now(self) -> bool:
        """Send the due record now if the write cannot wait; False when the task must wake.

        The write cannot wait when the connection's buffer stays under its low-water mark
        with the record in it (``_may_wait``): aiohttp's write then returns without
        suspending, and is run to its end here (a record that grows past the estimate is
        weighed again, and left to the task if it may wait). Should the write suspend after
        all, its bytes are already handed over and only the wait for the buffer is dropped:
        the next tick finds the buffer full and leaves the write, with its timer, to the
        stream. A tick whose read brings the reply's failure still sends its record, as the
        task does at a tick (the failure is the task's, raised by its next read); at the
        reply's end the closing records are the task's, and so they are once a stop is on
        its way (``stopping``).
        """
        upstream = self.upstream
        if (
            upstream is None
            or self.stopping
            or _may_wait(self.request, self.size.size + CHUNK_OVERHEAD)
        ):
            return False
        try:
            self.absorb(upstream.collect())
        except BackendFailure:
            return False  # kept by the reply: the stream's own read raises it
        if upstream.finished and not self.shaping.holds_duration:
            return False  # the closing records are the stream's to send
        kind = self.due_kind
        estimate = self.size.size
        data = self.take(kind=kind)
        grew = self.size.size > estimate and not upstream.ended
        if grew and _may_wait(self.request, self.size.size + CHUNK_OVERHEAD):
            # The text grew the record past what the buffer takes without waiting: the task
            # writes it, with the client idle timer (its take gives the same text and size).
            # (At the reply's end the task's read raises the failure before any tick's
            # record, and its next writes, the closing ones, run under the timer anyway.)
            self.queue(kind).insert(0, data.decode("utf-8"))
            return False
        self.due = False
        record = self.sealer.delta_utf8(data, pad_to=self.size.size, kind=kind)
        write = self.response.write(record)
        try:
            write.send(None)
        except StopIteration:
            pass
        except ConnectionResetError:
            return False  # the client hung up: the stream's next write says so
        else:
            write.close()  # waiting for the buffer to drain: the bytes are handed over
        self.counted(len(record))
        return not upstream.ended

    @property
    def stopping(self) -> bool:
        """True once the stream's time limit has passed: a stop is on its way to its task.

        A stop (a cancel, the client's hang-up, shutdown) moves the limit to now. The limit's
        timer cancels the task (a turn of the event loop later, for a stop), which sends the
        text that came in the closing records, no tick's record before them.
        """
        scope = self.scope
        deadline = None if scope is None else scope.when()
        return deadline is not None and deadline <= asyncio.get_running_loop().time()

    def absorb(self, events: list[Event]) -> list[ContentDelta | ReasoningDelta]:
        """Take in a batch of the model server's events; the pieces of text among them.

        Shaped, their texts wait in ``pending`` (the answer) and ``thinking`` (reasoning) for a
        tick.
        """
        tally = self.tally
        texts: list[ContentDelta | ReasoningDelta] = []
        pending, thinking = (self.pending, self.thinking) if self.shaping.shaped else ([], [])
        for event in events:
            if isinstance(event, ContentDelta):
                texts.append(event)
                pending.append(event.text)
                tally.deltas += event.pieces
            elif isinstance(event, ReasoningDelta):
                texts.append(event)
                thinking.append(event.text)
                tally.deltas += event.pieces
            elif isinstance(event, Finish):
                tally.finish = event.reason
            else:
                tally.usage = event
        return texts

    @property
    def due_kind(self) -> RecordType:
        """What the next text record carries: thinking that waits first, else the answer."""
        return RecordType.REASONING if self.thinking else RecordType.DELTA

    def queue(self, kind: RecordType) -> list[str]:
        """The text waiting for ``kind``'s records: the thinking's or the answer's."""
        return self.thinking if kind is RecordType.REASONING else self.pending

    def take(
        self,
        *,
        first: bool = False,
        limit: int = MAX_RECORD_PAYLOAD,
        kind: RecordType = RecordType.DELTA,
    ) -> bytes:
        """Text waiting to be sent, as UTF-8: the first piece only, or all; at most ``limit``.

        ``kind`` says which text: the answer's (``DELTA``) or the thinking (``REASONING``).
        """
        queue = self.queue(kind)
        if first:
            text = queue.pop(0)
        else:
            text = "".join(queue)
            queue.clear()
        data = text.encode("utf-8")
        if len(data) > limit:
            head = split_utf8(data, limit)[0]
            queue.insert(0, data[len(head) :].decode("utf-8"))
            data = head
        self.size.fit(len(data))
        return data

    async def tick_record(self) -> None:
        """The tick's record: the text since the last one (or none), at the stream's size.

        Thinking that waits goes first; the answer's text then waits for the next tick.
        """
        self.due = False
        kind = self.due_kind
        data = self.take(kind=kind)
        await self.send(self.sealer.delta_utf8(data, pad_to=self.size.size, kind=kind))

    def closing(self, final: Final) -> bytes:
        """The last chunks: for a shaped stream the text still waiting (always), then the final.

        Thinking still waiting (rare: a model cut while it thought) goes in a record before.
        A relay that asked for it gets the relay receipt right behind the final chunk.
        """
        if not self.shaping.shaped:
            chunks = self.sealer.final(final)
        else:
            # Both records at one size: what the larger of them needs (``take`` grows the size).
            thinking = (
                self.take(limit=sys.maxsize, kind=RecordType.REASONING) if self.thinking else None
            )
            data = self.take(limit=sys.maxsize)
            size = self.size.size
            thought = b""
            if thinking is not None:
                thought = self.sealer.delta_utf8(thinking, pad_to=size, kind=RecordType.REASONING)
            rest = self.sealer.delta_utf8(data, pad_to=size)
            chunks = thought + rest + self.sealer.final(final, pad_to=self.size.final_size)
        relay = self.admitted.relay
        if relay is None or final.receipt is None:
            return chunks
        return chunks + seal_relay_receipt(relay.key, relay.body_hash, final.receipt)

    def first_sent(self) -> None:
        """Count the time to the first text (as it is handed to the connection)."""
        if not self.sealer.sealed:
            elapsed = time.monotonic() - self.admitted.received
            self.gateway.metrics.first_token.observe(elapsed)

    async def head(self) -> None:
        """Send the response's head, once: as soon as the model server has the request."""
        if not self.response.prepared:
            _buffer_marks(self.request)
            await _client_io(self.request, self.response.prepare(self.request), self.idle)

    async def send(self, data: bytes) -> None:
        """Write sealed chunks to the client (counted when handed to the connection)."""
        await self.head()  # (here first when the model server could not be asked)
        waits = _may_wait(self.request, len(data))
        await _client_io(self.request, self.response.write(data), self.idle, may_wait=waits)
        self.counted(len(data))

    def counted(self, size: int) -> None:
        """Count the chunks sealed since the last count, ``size`` bytes, as handed over."""
        before, self.written = self.written, self.sealer.sealed
        self.gateway.metrics.chunks.add(self.written - before, size)


def _nothing() -> None:
    """What there is to undo before the stream follows any ticks."""


# The client connection's write buffer marks, whatever the event loop: asyncio's defaults.
# uvloop's own low mark is 16 bytes, which no record fits under: every write was weighed as
# one that may wait (``_may_wait``), and no tick's record went out in the tick's own call.
CLIENT_BUFFER_HIGH = 64 * 1024
CLIENT_BUFFER_LOW = 16 * 1024


def _buffer_marks(request: web.Request) -> None:
    """Set the marks ``_may_wait`` weighs a write against on the request's connection."""
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.set_write_buffer_limits(high=CLIENT_BUFFER_HIGH, low=CLIENT_BUFFER_LOW)


def _may_wait(request: web.Request, size: int) -> bool:
    """False when a write of ``size`` bytes cannot wait for the client to read.

    aiohttp's write waits only while the connection's transport has paused it, which happens
    above the transport's high-water mark and lasts until the buffer is back to the low one: a
    buffer that stays at or below the low mark with the write in it was not paused and will not
    be. The usual case for a shaped stream's records (the buffer is empty). The pause itself is
    read too: uvloop lets the buffer fall below the low mark before it resumes the writer (on
    its write's callback), and a write in between waits however small the buffer is.
    """
    transport = request.transport
    if transport is None or transport.is_closing() or request.protocol.writing_paused:
        return True
    low, _ = transport.get_write_buffer_limits()
    return transport.get_write_buffer_size() + size + _FRAMING > low


async def _client_io(
    request: web.Request, operation: Awaitable[object], idle: float, *, may_wait: bool = True
) -> None:
    """Run one write to the client; ``_ClientGone`` if it hung up or cannot drain for ``idle``.

    A write that cannot wait (``may_wait`` false, ``_may_wait``) runs without a timer.
    """
    try:
        if not may_wait:
            await operation
            return
        async with asyncio.timeout(idle):
            await operation
    except TimeoutError as exc:
        reset_connection(request.transport)  # the queued bytes will never be read
        raise _ClientGone("client_stalled") from exc
    except ConnectionResetError as exc:
        raise _ClientGone("client_gone") from exc


def _too_long(window: int, prompt: int) -> str:
    """The refusal of a prompt the window cannot hold, in vLLM's words (clients read them)."""
    return (
        f"This model's maximum context length is {window} tokens. However, your request has "
        f"{prompt} input tokens. Please reduce the length of the input messages."
    )
