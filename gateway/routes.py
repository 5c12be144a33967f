"""The gateway's HTTP routes: thin handlers over ``Gateway`` and ``relay``.

Public listener (``VEIL_GATEWAY_HOST``/``VEIL_GATEWAY_PORT``, guarded by
``common.connections``):

- ``GET /v1/keys``: the signed key bundle of the current HPKE key
- ``POST /v1/sealed/chat/completions``: sealed request in, sealed chunk stream out
- ``POST /v1/sealed/cancel``: ``{"request_id": hex, "proof": b64url}`` stops a stream;
  202 ``{"state": "stopping"}`` while it runs, 200 ``{"state": "finished"}`` once it has ended
- ``GET /v1/sealed/receipts/{request_id}`` with ``Veil-Proof``: the final record's payload
  (``Final.payload()`` as canonical JSON, the exact bytes the stream carried), 409 while the
  stream runs
- ``GET /health``: 200 when the current key is valid, the model server is up and lists a model
  the gateway can serve (``{"status": "no servable model"}`` if not), else 503

Metrics listener (``VEIL_METRICS_HOST``/``VEIL_METRICS_PORT``): ``GET /metrics``.

Refusals are JSON with the codes of ``gateway.refusals``; nothing here logs text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from yarl import URL

from common.connections import (
    ConnectionGuard,
    GuardedSite,
    connection_cap,
    guard_app,
    send_and_close,
    site_listening,
    stopping_runner,
)
from gateway.connections import read_body
from gateway.refusals import Refusal, refusal_for
from gateway.relay import relay
from gateway.server import UPSTREAM_SPARE, Gateway
from sealed.auth import PROOF_HEADER
from sealed.encoding import hex_bytes, json_str, parse_json_object
from sealed.errors import MalformedMessage, SealedError
from sealed.request import REQUEST_ID_SIZE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

log = structlog.get_logger("veil.gateway")

GATEWAY = web.AppKey("gateway", Gateway)
# The most bytes of a cancel body: two short fields.
CONTROL_BODY_LIMIT = 1024
# At a stop, a request still in hand once every stream has been told to stop (a body still
# on its way, a client not reading its last records) is cut within this many seconds: inside
# compose's default stop period of 10 s (aiohttp's own wait, a minute taken twice, was not).
STOP_WAIT_S = 5.0
_BODY_TIMEOUT = 408
_TOO_LARGE = 413


async def _reply(request: web.Request, refusal: Refusal) -> web.Response:
    response = web.json_response(refusal.body(), status=refusal.status, headers=refusal.headers())
    if refusal.status == _BODY_TIMEOUT:
        await send_and_close(request, response)  # the rest of the body is not worth waiting for
    elif refusal.status == _TOO_LARGE:
        response.force_close()  # aiohttp drains what is still sent (bounded), then closes
    return response


async def _refuse(request: web.Request, gateway: Gateway, refusal: Refusal) -> web.Response:
    gateway.metrics.requests.labels(refusal.code).inc()
    gateway.metrics.refusals.labels(refusal.code).inc()
    if refusal.warning is None:
        log.info("gateway.refused", status=refusal.status, code=refusal.code)
    else:
        event, figures = refusal.warning
        log.warning(event, status=refusal.status, code=refusal.code, **figures)
    return await _reply(request, refusal)


async def handle_keys(request: web.Request) -> web.Response:
    """Serve the current signed key bundle."""
    gateway = request.app[GATEWAY]
    await gateway.models_on_demand()
    return web.json_response(gateway.ring.bundle().to_wire())


async def handle_health(request: web.Request) -> web.Response:
    """503 unless the current key is valid, the model server answers and a model can be served.

    A model server up but listing no model the bundle may carry (only odd ids) left the bundle
    with no model, which bots read as "not heard from its model server yet", and every request
    refused (``no_models``), while ``/health`` said ok; the list is looked at again here, at
    most once in a few seconds (``Gateway.models_on_demand``).
    """
    gateway = request.app[GATEWAY]
    if not gateway.ring.serving(gateway.now()):
        return web.json_response({"status": "no valid key"}, status=503)
    if not await gateway.vllm.healthy():
        return web.json_response({"status": "model server unavailable"}, status=503)
    if not await gateway.models_on_demand():
        return web.json_response({"status": "no servable model"}, status=503)
    return web.json_response({"status": "ok"})


async def handle_sealed_chat(request: web.Request) -> web.StreamResponse:
    """Admit a sealed request, relay it to the model server and stream the sealed answer."""
    gateway = request.app[GATEWAY]
    received = time.monotonic()
    try:
        try:
            gateway.pinned(request.headers)  # a stranger's body is not worth reading
        except SealedError as exc:
            raise refusal_for(exc) from exc
        body = await read_body(request, limit=gateway.max_body, within=gateway.limits.body_timeout)
        admitted = gateway.admit(request.headers, body, received)
    except Refusal as refusal:
        return await _refuse(request, gateway, refusal)
    try:
        return await relay(gateway, request, admitted)
    finally:
        gateway.release(admitted)


async def handle_cancel(request: web.Request) -> web.Response:
    """Stop a stream for its asker; idempotent."""
    gateway = request.app[GATEWAY]
    try:
        body = await read_body(
            request, limit=CONTROL_BODY_LIMIT, within=gateway.limits.body_timeout
        )
        try:
            value = parse_json_object(body)
            if set(value) != {"request_id", "proof"}:
                raise MalformedMessage("a cancel is {request_id, proof}")
            request_id = hex_bytes(value["request_id"], REQUEST_ID_SIZE)
            proof = json_str(value["proof"], max_length=64)
        except MalformedMessage as exc:
            raise refusal_for(exc) from exc
        control = gateway.find_stream(request_id, proof, receipt=False)
    except Refusal as refusal:
        gateway.metrics.cancels.labels(refusal.code).inc()
        log.info("gateway.cancel_refused", status=refusal.status, code=refusal.code)
        return await _reply(request, refusal)
    if control.finished:
        gateway.metrics.cancels.labels("finished").inc()
        return web.json_response({"state": "finished"})
    control.stop("stopped")
    gateway.metrics.cancels.labels("stopping").inc()
    log.info("gateway.cancelled", request_id=request_id.hex())
    return web.json_response({"state": "stopping"}, status=202)


async def handle_receipt(request: web.Request) -> web.Response:
    """The final record of a finished stream, for its asker."""
    gateway = request.app[GATEWAY]
    try:
        try:
            request_id = hex_bytes(request.match_info["request_id"], REQUEST_ID_SIZE)
        except MalformedMessage as exc:
            raise refusal_for(exc) from exc
        control = gateway.find_stream(request_id, request.headers.get(PROOF_HEADER), receipt=True)
        if control.final is None:
            raise Refusal(409, "in_progress", "the stream is still running", retry_after=1)
    except Refusal as refusal:
        return await _reply(request, refusal)
    return web.Response(body=control.final, content_type="application/json")


async def handle_metrics(request: web.Request) -> web.Response:
    """Serve Prometheus metrics."""
    gateway = request.app[GATEWAY]
    gateway.metrics.receipts_kept.set(gateway.receipts.kept)
    return web.Response(body=gateway.metrics.render(), content_type="text/plain")


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A path the gateway does not serve, or a method it does not take there: a JSON refusal.

    aiohttp's router answers them with a plain-text page; every other refusal is the spec's
    JSON ``{"error": {"code", "message"}}``, which a client reads the same way.
    """
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        refusal = Refusal(exc.status, "method_not_allowed", f"use {', '.join(exc.allowed_methods)}")
        reply = web.json_response(refusal.body(), status=refusal.status)
        reply.headers["Allow"] = exc.headers["Allow"]
        return reply
    except web.HTTPNotFound:
        refusal = Refusal(404, "not_found", "no such path")
        return web.json_response(refusal.body(), status=refusal.status)


def build_app(gateway: Gateway, guard: ConnectionGuard | None = None) -> web.Application:
    """The public aiohttp application serving ``gateway``.

    With ``guard``, guarded as ``guard_app`` guards: its middleware, and replies that name the
    server ``Veil`` only, not aiohttp's and Python's versions. A path or method it does not
    serve is refused in JSON, as every other refusal (``_json_errors``).
    """
    app = web.Application(client_max_size=gateway.max_body, middlewares=[_json_errors])
    app[GATEWAY] = gateway
    app.router.add_get("/v1/keys", handle_keys)
    app.router.add_post("/v1/sealed/chat/completions", handle_sealed_chat)
    app.router.add_post("/v1/sealed/cancel", handle_cancel)
    app.router.add_get("/v1/sealed/receipts/{request_id}", handle_receipt)
    app.router.add_get("/health", handle_health)
    return app if guard is None else guard_app(app, guard)


def build_metrics_app(gateway: Gateway) -> web.Application:
    """The operator's application: ``GET /metrics`` only."""
    app = web.Application()
    app[GATEWAY] = gateway
    app.router.add_get("/metrics", handle_metrics)
    return app


@dataclass(frozen=True)
class Listeners:
    """The public and the metrics listener of a running gateway."""

    gateway: Gateway
    public: web.AppRunner
    metrics: web.AppRunner
    url: str
    metrics_url: str
    max_connections: int

    def closed(self) -> tuple[str, str] | None:
        """A listener that takes no connections any more (``site_listening``): which, its URL.

        ``("public", url)`` or ``("metrics", metrics_url)``, the public one first; None while
        both listen.
        """
        for which, runner, url in (
            ("public", self.public, self.url),
            ("metrics", self.metrics, self.metrics_url),
        ):
            sites = list(runner.sites)
            if not sites or not all(site_listening(site) for site in sites):
                return which, url
        return None

    async def close(self) -> None:
        """Stop listening, end every stream with a stopped receipt, then close the rest."""
        try:
            for site in list(self.public.sites):
                await site.stop()
            for control in self.gateway.receipts.running():
                control.stop("shutdown")
            await self.public.cleanup()
        finally:
            await self.metrics.cleanup()


async def listen(  # noqa: PLR0913 -- two listeners' addresses
    gateway: Gateway,
    *,
    host: str,
    port: int,
    metrics_host: str,
    metrics_port: int,
    stop_wait: float = STOP_WAIT_S,
) -> Listeners:
    """Serve ``gateway`` on the public and the metrics listener; port 0 picks a free one.

    At ``close`` a request still in hand (a body still arriving, a client not reading its
    stream's last records) is cut within ``stop_wait`` seconds.
    """
    cap = connection_cap(
        gateway.limits.max_connections, upstream=gateway.max_streams + UPSTREAM_SPARE
    )
    guard = ConnectionGuard(
        max_connections=cap, header_timeout=gateway.limits.header_timeout, metrics=gateway.metrics
    )
    public = stopping_runner(build_app(gateway, guard), cut_within=stop_wait)
    metrics = web.AppRunner(build_metrics_app(gateway), access_log=None)
    await public.setup()
    await metrics.setup()
    try:
        site = GuardedSite(public, host, port, guard=guard)
        await site.start()
        metrics_site = web.TCPSite(metrics, metrics_host, metrics_port)
        await metrics_site.start()
    except BaseException:
        await public.cleanup()
        await metrics.cleanup()
        raise
    return Listeners(
        gateway,
        public,
        metrics,
        url=str(URL.build(scheme="http", host=host, port=site.port)),
        metrics_url=str(URL.build(scheme="http", host=metrics_host, port=metrics_site.port))
        + "/metrics",
        max_connections=cap,
    )
