"""The gateway's HTTP server: opens sealed requests, asks vLLM, seals the stream back.

Routes:

- ``GET /v1/keys``: the signed key bundle of the current HPKE key
- ``POST /v1/sealed/chat/completions``: sealed request in, sealed chunk stream out
- ``GET /health``: 200 when vLLM's ``/health`` is 200, else 503
- ``GET /metrics``: Prometheus text

Refusals before the stream are JSON ``{"error": {"code", "message"}}`` with a clear status:
400 (cannot open / malformed / stale), 409 (replay), 410 (unknown or expired key id),
413 (too large), 503 (too many streams). vLLM is never called for them. After the stream
starts, every failure is a sealed error record. Nothing here logs text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from gateway.metrics import GatewayMetrics
from gateway.vllm import BackendFailure, ContentDelta, Finish, Usage, VLLMClient
from sealed.errors import (
    MalformedMessage,
    OpenFailed,
    ReplayedRequest,
    RequestError,
    RequestTooLarge,
    StaleRequest,
    UnknownKey,
)
from sealed.receipt import UsageReceipt, sign_receipt
from sealed.request import OpenedRequest, RequestHeader, max_request_size, open_request
from sealed.stream import ChunkSealer, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.keys import KeyRing

log = structlog.get_logger("veil.gateway")

SEALED_STREAM_TYPE = "application/vnd.veil.sealed-stream"
_ALLOWED_CHAT_KEYS = frozenset(
    {"model", "messages", "max_completion_tokens", "temperature", "top_p", "stop", "cache_salt"}
)
_STATUS = {
    OpenFailed: (400, "cannot_open"),
    MalformedMessage: (400, "malformed"),
    StaleRequest: (400, "stale_request"),
    ReplayedRequest: (409, "replayed"),
    UnknownKey: (410, "unknown_key"),
    RequestTooLarge: (413, "too_large"),
}


class ReplayCache:
    """Request ids seen within the replay window (twice the allowed clock skew)."""

    def __init__(self, window: int) -> None:
        self._window = window
        self._seen: dict[bytes, int] = {}

    def check_and_add(self, request_id: bytes, now: int) -> None:
        """Raise ``ReplayedRequest`` if ``request_id`` was seen; else remember it."""
        if len(self._seen) > 1024:  # noqa: PLR2004 -- prune in batches, not on every call
            self._seen = {rid: exp for rid, exp in self._seen.items() if exp > now}
        expiry = self._seen.get(request_id)
        if expiry is not None and expiry > now:
            raise ReplayedRequest("request id already seen")
        self._seen[request_id] = now + self._window


@dataclass
class Gateway:
    """The state one gateway process holds."""

    ring: KeyRing
    vllm: VLLMClient
    max_streams: int
    max_skew: int
    clock: Callable[[], float] = time.time
    fixed_models: tuple[str, ...] = ()
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    replays: ReplayCache = field(init=False)
    active: int = 0

    def __post_init__(self) -> None:
        self.replays = ReplayCache(2 * self.max_skew)

    def now(self) -> int:
        """Current time in whole seconds from the gateway's clock."""
        return int(self.clock())

    async def refresh_models(self) -> None:
        """Ask vLLM which models it serves (unless they are fixed by settings)."""
        if self.fixed_models:
            self.ring.set_models(self.fixed_models)
            return
        try:
            self.ring.set_models(await self.vllm.models())
        except BackendFailure as exc:
            log.warning("gateway.models_unavailable", status=exc.status)

    def open(self, body: bytes) -> OpenedRequest:
        """Find the key, open the request, check its time and id; raise ``RequestError``."""
        header = RequestHeader.parse(body)
        if len(body) > max_request_size(header.suite):
            raise RequestTooLarge("request exceeds the largest bucket")
        now = self.now()
        opened = open_request(body, self.ring.find(header.key_id, now))
        if abs(opened.timestamp - now) > self.max_skew:
            raise StaleRequest("request timestamp outside the allowed clock skew")
        self.replays.check_and_add(opened.request_id, now)
        return opened


def _refusal(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _chat_body(chat: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in chat.items() if k in _ALLOWED_CHAT_KEYS}
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MalformedMessage("chat request has no messages")
    if not isinstance(body.get("model"), str):
        raise MalformedMessage("chat request has no model")
    return body


async def handle_keys(request: web.Request) -> web.Response:
    """Serve the current signed key bundle."""
    gateway: Gateway = request.app[GATEWAY]
    if not gateway.ring.models:
        await gateway.refresh_models()
    return web.json_response(gateway.ring.bundle().to_wire())


async def handle_health(request: web.Request) -> web.Response:
    """Reflect vLLM's health."""
    gateway: Gateway = request.app[GATEWAY]
    if await gateway.vllm.healthy():
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "model server unavailable"}, status=503)


async def handle_metrics(request: web.Request) -> web.Response:
    """Serve Prometheus metrics."""
    gateway: Gateway = request.app[GATEWAY]
    return web.Response(body=gateway.metrics.render(), content_type="text/plain")


async def handle_sealed_chat(request: web.Request) -> web.StreamResponse:
    """Open a sealed request, relay it to vLLM and stream the sealed answer back."""
    gateway: Gateway = request.app[GATEWAY]
    received = time.monotonic()
    limit = max_request_size(gateway.ring.current.keypair.suite)
    if request.content_length is not None and request.content_length > limit:
        gateway.metrics.requests.labels("too_large").inc()
        return _refusal(413, "too_large", "sealed request is too large")
    body = await request.content.read(limit + 1)
    try:
        opened = gateway.open(body)
        chat = _chat_body(opened.chat)
    except RequestError as exc:
        status, code = _STATUS.get(type(exc), (400, "rejected"))
        return _refuse(gateway, status, code, str(exc))
    except MalformedMessage as exc:
        return _refuse(gateway, 400, "malformed", str(exc))
    if gateway.active >= gateway.max_streams:
        gateway.metrics.requests.labels("busy").inc()
        response = _refusal(503, "busy", "too many streams; try another gateway")
        response.headers["Retry-After"] = "1"
        return response
    gateway.active += 1
    gateway.metrics.active_streams.inc()
    try:
        return await _relay(gateway, request, opened, chat, received)
    finally:
        gateway.active -= 1
        gateway.metrics.active_streams.dec()


def _refuse(gateway: Gateway, status: int, code: str, message: str) -> web.Response:
    gateway.metrics.requests.labels(code).inc()
    log.info("gateway.refused", status=status, code=code)
    return _refusal(status, code, message)


async def _relay(
    gateway: Gateway,
    request: web.Request,
    opened: OpenedRequest,
    chat: dict[str, Any],
    received: float,
) -> web.StreamResponse:
    sealer = ChunkSealer(opened.response_key)
    response = web.StreamResponse(headers={"Content-Type": SEALED_STREAM_TYPE})
    await response.prepare(request)
    model = str(chat["model"])
    deltas = 0
    finish: str | None = None
    usage: Usage | None = None
    outcome = "ok"
    try:
        try:
            async with contextlib.aclosing(gateway.vllm.stream_chat(chat)) as events:
                async for event in events:
                    if isinstance(event, ContentDelta):
                        if deltas == 0:
                            gateway.metrics.first_token.observe(time.monotonic() - received)
                        deltas += 1
                        await response.write(sealer.delta(event.text))
                        gateway.metrics.chunks.inc()
                    elif isinstance(event, Finish):
                        finish = event.reason
                    else:
                        usage = event
        except BackendFailure as exc:
            outcome = exc.kind
            final = _final(gateway, opened, model, usage, deltas, complete=False, error=exc)
        else:
            final = _final(gateway, opened, model, usage, deltas, complete=True, finish=finish)
        await response.write(sealer.final(final))
        gateway.metrics.chunks.inc()
        await response.write_eof()
    except ConnectionResetError:
        outcome = "client_gone"  # the client hung up (a user's stop): vLLM's stream is closed
    except asyncio.CancelledError:
        outcome = "client_gone"
        raise
    finally:
        gateway.metrics.requests.labels(outcome).inc()
        if usage is not None:
            gateway.metrics.completion_tokens.inc(usage.completion_tokens)
        log.info(
            "gateway.relayed",
            outcome=outcome,
            chunks=deltas,
            completion_tokens=usage.completion_tokens if usage else None,
            seconds=round(time.monotonic() - received, 4),
        )
    return response


def _final(  # noqa: PLR0913 -- one record, many parts
    gateway: Gateway,
    opened: OpenedRequest,
    model: str,
    usage: Usage | None,
    deltas: int,
    *,
    complete: bool,
    finish: str | None = None,
    error: BackendFailure | None = None,
) -> Final:
    receipt = UsageReceipt(
        request_id=opened.request_id,
        model=model,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else deltas,
        complete=complete,
    )
    signature = sign_receipt(receipt, gateway.ring.receipt_key)
    if error is None:
        return Final(receipt, signature, finish_reason=finish or "stop")
    return Final(
        receipt,
        signature,
        error_kind=error.kind,
        error_status=error.status,
        error_message=error.message,
    )


GATEWAY = web.AppKey("gateway", Gateway)


def build_app(gateway: Gateway) -> web.Application:
    """The aiohttp application serving ``gateway``."""
    app = web.Application(client_max_size=max_request_size(gateway.ring.current.keypair.suite))
    app[GATEWAY] = gateway
    app.router.add_get("/v1/keys", handle_keys)
    app.router.add_post("/v1/sealed/chat/completions", handle_sealed_chat)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    return app


async def rotate_forever(gateway: Gateway, interval: float) -> None:
    """Rotate the HPKE key every ``interval`` seconds and refresh the model list."""
    while True:
        await asyncio.sleep(interval)
        gateway.ring.rotate(gateway.now())
        await gateway.refresh_models()
        log.info("gateway.key_rotated", key_id=gateway.ring.current.keypair.key_id.hex())
