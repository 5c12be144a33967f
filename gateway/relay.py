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

Stopping closes the upstream response, so the model server stops generating. Counts are the
model server's usage when it sent one; otherwise the prompt is counted by its ``/tokenize`` or,
failing that, by ``estimate_prompt_tokens``, the completion is the deltas relayed, and the
receipt is marked estimated. A failure before any delta bills nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from gateway.chat import estimate_prompt_tokens
from gateway.connections import reset_connection, watch_connection
from gateway.vllm import BackendFailure, ContentDelta, Finish, Usage
from sealed.encoding import canonical_json
from sealed.receipt import ReceiptStatus, UsageReceipt, sign_receipt
from sealed.stream import ChunkSealer, Final

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from gateway.clients import ClientPolicy
    from gateway.receipts import StreamControl
    from gateway.server import Gateway
    from sealed.request import OpenedRequest

log = structlog.get_logger("veil.gateway")

SEALED_STREAM_TYPE = "application/vnd.veil.sealed-stream"
_GONE = frozenset({"client_gone", "client_stalled"})
_FINISH_REASONS = {"stopped": "stopped", "time_limit": "time_limit"}


@dataclass(frozen=True)
class Admitted:
    """A request that passed every check: who asked, what goes upstream, its control."""

    client: ClientPolicy
    opened: OpenedRequest
    chat: dict[str, Any]
    control: StreamControl
    received: float  # time.monotonic() when the request arrived


@dataclass
class _Tally:
    """What one stream relayed so far."""

    asked: bool = False  # the model server was sent the request
    deltas: int = 0
    finish: str | None = None
    usage: Usage | None = None


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
    return stream.response


class _Stream:
    """One stream's parts while it runs."""

    def __init__(self, gateway: Gateway, request: web.Request, admitted: Admitted) -> None:
        self.gateway = gateway
        self.request = request
        self.admitted = admitted
        self.sealer = ChunkSealer(admitted.opened.response_key)
        self.response = web.StreamResponse(headers={"Content-Type": SEALED_STREAM_TYPE})
        self.tally = _Tally()
        self.idle = gateway.limits.client_idle_timeout

    async def run(self) -> None:
        """Relay, then sign, keep and send the final record."""
        failure: BackendFailure | None = None
        try:
            await _client_io(self.request, self.response.prepare(self.request), self.idle)
            outcome, failure = await self.pump()
        except _ClientGone as gone:
            outcome = gone.outcome
        final = await _final(self.gateway, self.admitted, self.tally, outcome, failure)
        if outcome not in _GONE:
            try:
                await self.send(self.response.write(self.sealer.final(final)))
                await _client_io(self.request, self.response.write_eof(), self.idle)
            except _ClientGone as gone:
                outcome = gone.outcome
        _count(self.gateway, self.admitted, self.tally, outcome)

    async def send(self, operation: Awaitable[object]) -> None:
        """Write one sealed chunk to the client."""
        await _client_io(self.request, operation, self.idle)
        self.gateway.metrics.chunks.inc()

    async def pump(self) -> tuple[str, BackendFailure | None]:
        """Relay deltas until the model finishes or fails, or the stream is stopped."""
        control, tally = self.admitted.control, self.tally
        loop = asyncio.get_running_loop()
        scope = asyncio.timeout_at(loop.time() + self.gateway.limits.max_stream_seconds)
        try:
            async with scope:
                control.bind(scope)
                tally.asked = True
                chat = self.gateway.vllm.stream_chat(self.admitted.chat)
                async with contextlib.aclosing(chat) as events:
                    async for event in events:
                        if isinstance(event, ContentDelta):
                            await self.delta(event.text)
                        elif isinstance(event, Finish):
                            tally.finish = event.reason
                        else:
                            tally.usage = event
        except TimeoutError:
            if not scope.expired():
                raise
            return control.stop_reason or "time_limit", None
        except BackendFailure as exc:
            return exc.kind, exc
        finally:
            control.bind(None)
        return "ok", None

    async def delta(self, text: str) -> None:
        """Seal and send one delta (counted when handed to the connection)."""
        if self.tally.deltas == 0:
            elapsed = time.monotonic() - self.admitted.received
            self.gateway.metrics.first_token.observe(elapsed)
        self.tally.deltas += 1
        await self.send(self.response.write(self.sealer.delta(text)))


async def _client_io(request: web.Request, operation: Awaitable[object], idle: float) -> None:
    """Run one write to the client; ``_ClientGone`` if it hung up or cannot drain for ``idle``."""
    try:
        async with asyncio.timeout(idle):
            await operation
    except TimeoutError as exc:
        reset_connection(request.transport)  # the queued bytes will never be read
        raise _ClientGone("client_stalled") from exc
    except ConnectionResetError as exc:
        raise _ClientGone("client_gone") from exc


async def _final(
    gateway: Gateway,
    admitted: Admitted,
    tally: _Tally,
    outcome: str,
    failure: BackendFailure | None,
) -> Final:
    """Sign the receipt, build the final record and keep its payload for receipt fetches."""
    prompt, completion, estimated = await _usage(gateway, admitted, tally, failure)
    if failure is not None:
        status = ReceiptStatus.ERROR
    elif outcome == "ok":
        status = ReceiptStatus.COMPLETE
    else:
        status = ReceiptStatus.STOPPED
    receipt = UsageReceipt(
        request_id=admitted.opened.request_id,
        model=str(admitted.chat["model"]),
        prompt_tokens=prompt,
        completion_tokens=completion,
        status=status,
        estimated=estimated,
        client=admitted.client.client_id,
    )
    signed = sign_receipt(receipt, gateway.ring.receipt_key)
    if failure is not None:
        final = Final(
            signed,
            error_kind=failure.kind,
            error_status=failure.status,
            error_message=failure.message,
        )
    else:
        reason = (tally.finish or "stop") if outcome == "ok" else _FINISH_REASONS.get(outcome)
        final = Final(signed, finish_reason=reason or "stopped")
    now = gateway.clock()
    gateway.receipts.finish(admitted.opened.request_id, canonical_json(final.payload()), now)
    gateway.limiter.charge(admitted.client, now, prompt + completion)
    gateway.metrics.prompt_tokens.inc(prompt)
    gateway.metrics.completion_tokens.inc(completion)
    return final


async def _usage(
    gateway: Gateway, admitted: Admitted, tally: _Tally, failure: BackendFailure | None
) -> tuple[int, int, bool]:
    """(prompt tokens, completion tokens, estimated) for the receipt."""
    if tally.usage is not None:
        return tally.usage.prompt_tokens, tally.usage.completion_tokens, False
    if not tally.asked or (failure is not None and tally.deltas == 0):
        return 0, 0, tally.asked
    model = str(admitted.chat["model"])
    messages = admitted.chat["messages"]
    counted = await gateway.vllm.count_prompt_tokens(model, messages)
    prompt = counted if counted is not None else estimate_prompt_tokens(messages)
    return prompt, tally.deltas, True


def _count(gateway: Gateway, admitted: Admitted, tally: _Tally, outcome: str) -> None:
    """Metrics and one log line for a finished stream (ids and counts only, never text)."""
    gateway.metrics.requests.labels(outcome).inc()
    if outcome == "stalled":
        gateway.metrics.stalls.inc()
    elif outcome == "client_stalled":
        gateway.metrics.client_stalls.inc()
    log.info(
        "gateway.relayed",
        outcome=outcome,
        client=admitted.client.name,
        chunks=tally.deltas,
        usage_reported=tally.usage is not None,
        seconds=round(time.monotonic() - admitted.received, 4),
    )
