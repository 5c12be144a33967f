"""The Mini App's HTTP routes: the page, and the relay's API behind Telegram's ``initData``.

Served under the path of ``VEIL_WEBAPP_URL`` (``PREFIX``, ``/app/`` say):

- ``GET PREFIX``: the page (its script pinned by hash, the operator keys it pins inside it)
- ``GET PREFIX veil.js``: the page's one script, the committed bundle (``webapp/``)
- ``GET PREFIX api/account``: balance, free tokens, models, and the limits the page fits the
  history to (the bot's window limit, the answer's most and fewest tokens) and the longest an
  answer may run (``max_answer_seconds``; a cut at it is told by ``TIME_LIMIT_MARK``)
- ``POST PREFIX api/prepare`` ``{"model", "size"}``: the gateways' bundles (as served, for the
  page to verify against its own pinned keys) and the answer tokens the user can pay for
- ``POST PREFIX api/relay``: the sealed bytes in, the sealed chunks out; the page declares the
  gateway, request id, model, answer tokens and its receipt proof in ``Veil-*`` headers, and
  with ``Veil-Accept: retry_after`` that it reads a model server's wait in an error record
  (the relay then asks the gateway for it). An answer the bot cut at its time limit ends
  whole with ``TIME_LIMIT_MARK`` after its chunks
- ``POST PREFIX api/stop`` ``{"request_id", "proof"}``: the page's cancel, forwarded

Every API call carries ``Authorization: tma <initData>``; the signature (HMAC-SHA256 keyed with
the bot token, aiogram's ``safe_parse_webapp_init_data``) and its age (``VEIL_WEBAPP_MAX_AGE``)
are checked first: forged or stale is 401 with a polite message (``bot_clock`` when Telegram
dated it ahead of the bot's clock: the bot's fault, which reopening cannot mend). Errors are JSON
``{"error": {"code", "message"}}`` from one table, aiohttp's own refusals under ``api/`` (no
such path, a method the path does not take) and a bug's 500 (one log line) included; a body
that does not arrive whole within the client timeout is 408 ``body_timeout`` and its
connection is closed. Every API reply is
``Cache-Control: no-store``: a balance or a sealed answer is one user's, never a cache's to keep.
Nothing here logs initData or any bytes of a request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import structlog
from aiogram.utils.web_app import safe_parse_webapp_init_data
from aiohttp import web

from common.connections import BodyRefused, BodyTimedOut, BodyTooLarge, read_body, send_and_close
from common.sockets import reset_connection
from sealed.encoding import MAX_JSON_INT, b64d, hex_bytes
from sealed.errors import MalformedMessage
from sealed.request import REQUEST_ID_SIZE, max_request_size
from sealed.stream import ACCEPT_HEADER, accepts_retry_after
from sealed.suites import Suite
from services.errors import (
    AnswerInProgress,
    BadRelayRequest,
    GatewayRefused,
    InferenceUnavailable,
    InsufficientCredit,
    LedgerUnavailable,
    RequestIdTaken,
    StoppedBeforeAnswer,
    UntrustedGateway,
    VeilError,
)
from services.prices import format_units
from services.relay import RelayService
from services.relayed import Ticket

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

log = structlog.get_logger("veil.webapp")

SEALED_STREAM_TYPE = "application/vnd.veil.sealed-stream"
# Written after the chunks of an answer the bot cut at ``max_answer_seconds`` before its final
# chunk (never after that: nothing may follow it), so that the page tells that cut by what the
# bot says rather than by its own clock: a length prefix of zero, which no chunk has (the page
# reads it, ``webapp/src/protocol.js``).
TIME_LIMIT_MARK = bytes(4)
GATEWAY_HEADER = "Veil-Gateway"
REQUEST_ID_HEADER = "Veil-Request-Id"
MODEL_HEADER = "Veil-Model"
MAX_TOKENS_HEADER = "Veil-Max-Tokens"
PROOF_HEADER = "Veil-Proof"
_SMALL_BODY = 4096  # the JSON of prepare and stop
# Seconds the page may take to send a whole request body, or to take in one piece of an answer
# (VEIL_WEBAPP_CLIENT_TIMEOUT): a page that stalls longer is refused, or taken as gone.
CLIENT_TIMEOUT = 30.0
MAX_RETRY_AFTER = 3600  # seconds: the most of a gateway's Retry-After passed on to the page
# Where the page may load from and talk to: itself only, no inline script, no style but the
# page's own <style> blocks (each pinned by its hash: page_headers); framed only by Telegram's
# web apps (the mobile and desktop apps open it in a webview of their own), and by the origins
# VEIL_WEBAPP_FRAME_ANCESTORS adds (the playground's page, which plays Telegram's web client).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src {styles}; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self' https://web.telegram.org https://*.telegram.org"
)
_STYLE_BLOCK = re.compile(rb"<style>(.*?)</style>", re.DOTALL)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

# Every API reply's: one user's data, never stored by a cache; JSON never sniffed as a page.
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# aiohttp's own refusals under api/ (its router's), as the page's JSON errors.
_HTTP_ERRORS = {
    404: ("not_found", "There is no such request."),
    405: ("method_not_allowed", "This request cannot be made that way."),
}

# One table from an error to (HTTP status, code, message for the page).
_ERRORS: list[tuple[type[VeilError], int, str, str]] = [
    (BadRelayRequest, 400, "bad_request", "The request could not be read."),
    (AnswerInProgress, 409, "busy", "An answer is still being written."),
    (RequestIdTaken, 409, "request_id_taken", "This request was sent before."),
    (StoppedBeforeAnswer, 409, "stopped", "The answer was stopped before it began."),
    (InsufficientCredit, 402, "insufficient_credit", "Not enough credit for an answer."),
    (GatewayRefused, 502, "gateway_refused", "The model server refused the request."),
    (UntrustedGateway, 503, "untrusted", "No model server could be verified."),
    (InferenceUnavailable, 503, "unavailable", "No model server is available now."),
    (LedgerUnavailable, 503, "ledger", "Balances cannot be read right now."),
]


@dataclass(frozen=True)
class Page:
    """The page as served: its HTML (pins inside) and its one script."""

    html: bytes
    script: bytes


@dataclass(frozen=True)
class WebUser:
    """Who a checked ``initData`` names."""

    id: int
    language: str | None


class Unauthorized(Exception):
    """``initData`` missing, forged, stale, or dated ahead of the bot's clock; ``code`` says which.

    ``ahead``: dated past the bot's clock (and its skew), by so many seconds (``bot_clock``).
    """

    def __init__(self, code: str, ahead: float | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.ahead = ahead


@dataclass(frozen=True)
class InitDataCheck:
    """Checks Telegram's ``initData``: the bot token's HMAC and an ``auth_date`` not too old.

    Launch data that is not ASCII, gives a field twice, or names no positive user id within
    JSON's exact integers is refused like a forgery, before anything reads it.
    """

    token: str
    max_age: float
    clock: Callable[[], float] = time.time
    # Launch data Telegram dated this far ahead of our clock is still taken: its ``auth_date``
    # is whole seconds, and a clock a little behind Telegram's should not refuse every launch.
    # No further: the page stamps its sealed requests by this clock (its replies' ``Date``),
    # which a gateway refuses past its two minutes' skew, so a clock further behind could not
    # be answered anyway; and launch data taken from further ahead would live that much longer
    # than ``max_age``. Past it the launch is ``bot_clock``, not ``stale``: reopening cannot help.
    skew: float = 60.0

    def user(self, authorization: str | None, *, aged: bool = False) -> WebUser:
        """The user an ``Authorization: tma <initData>`` header proves; ``Unauthorized``.

        ``aged``: launch data older than ``max_age`` is taken too (still Telegram's, not from
        the future): for a stop of the answer the user already has running.
        """
        scheme, _, init_data = (authorization or "").partition(" ")
        if scheme.lower() != "tma" or not init_data:
            raise Unauthorized("unauthorized")
        # Telegram's launch data is URL-encoded ASCII, each field once: anything else is not
        # its (and non-ASCII would break the signature's comparison, not fail it).
        if not init_data.isascii():
            raise Unauthorized("unauthorized")
        fields = [name for name, _ in parse_qsl(init_data, keep_blank_values=True)]
        if len(set(fields)) != len(fields):
            raise Unauthorized("unauthorized")
        try:
            data = safe_parse_webapp_init_data(self.token, init_data)
        except (ValueError, RecursionError) as exc:
            raise Unauthorized("unauthorized") from exc
        age = self.clock() - data.auth_date.timestamp()
        if age < -self.skew:  # our clock is behind Telegram's: the user can do nothing
            raise Unauthorized("bot_clock", ahead=-age)
        if age > self.max_age and not aged:
            raise Unauthorized("stale")
        if data.user is None or not 0 < data.user.id <= MAX_JSON_INT:
            raise Unauthorized("unauthorized")
        return WebUser(data.user.id, data.user.language_code)


_UNAUTHORIZED = {
    "unauthorized": "Open this page from the Veil bot in Telegram.",
    "stale": "This page was opened too long ago: close it and open it again from the bot.",
    "bot_clock": "The bot's clock is off, so it cannot accept this page right now. This is not"
    " your doing: please try again later.",
}


def style_sources(html: bytes) -> str:
    """The policy's ``style-src``: the hash of each ``<style>`` block of ``html``.

    Hashed as browsers hash it: its text, line ends made LF as the HTML parser does. ``'none'``
    when there is none.
    """
    hashes = [
        "'sha256-{}'".format(
            base64.b64encode(hashlib.sha256(block.replace(b"\r\n", b"\n")).digest()).decode()
        )
        for block in _STYLE_BLOCK.findall(html)
    ]
    return " ".join(hashes) or "'none'"


def page_headers(html: bytes, frame_ancestors: Sequence[str] = ()) -> dict[str, str]:
    """The headers of the page ``html``.

    Its policy lets the page's own ``<style>`` blocks style it, and ``frame_ancestors`` frame it
    besides Telegram.
    """
    policy = CONTENT_SECURITY_POLICY.format(styles=style_sources(html))
    return PAGE_HEADERS | {"Content-Security-Policy": " ".join([policy, *frame_ancestors])}


RELAY = web.AppKey("relay", RelayService)
CHECK = web.AppKey("check", InitDataCheck)
PAGE = web.AppKey("page", Page)
HEADERS = web.AppKey("headers", dict[str, str])
API_PREFIX = web.AppKey("api_prefix", str)
STALL = web.AppKey("stall", float)


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:  # noqa: ANN401 -- JSON fields
    """An API error's reply, with the API's headers (one sent before ``api_replies`` adds them)."""
    return web.json_response(
        {"error": {"code": code, "message": message, **extra}}, status=status, headers=API_HEADERS
    )


def error_response(exc: VeilError) -> web.Response:
    """The reply for a service error (one table for every route).

    A gateway's refusal names its status and code; a busy one's ``Retry-After`` is passed on
    (whole seconds, in the JSON as ``retry_after`` and as the reply's own header), for the
    page to say when to try again. A stop that gave up on a gateway which had begun the answer
    after all says what its receipt charged (``_charged``).
    """
    for kind, status, code, message in _ERRORS:
        if isinstance(exc, kind):
            extra: dict[str, Any] = {}
            if isinstance(exc, InsufficientCredit):
                extra = {"needed": format_units(exc.needed), "balance": format_units(exc.balance)}
            elif isinstance(exc, StoppedBeforeAnswer):
                extra = _charged(exc)
            elif isinstance(exc, GatewayRefused):
                extra = {"gateway_status": exc.status, "gateway_code": exc.code}
                if exc.retry_after is not None:
                    extra["retry_after"] = max(1, math.ceil(min(exc.retry_after, MAX_RETRY_AFTER)))
            reply = _error(status, code, message, **extra)
            if "retry_after" in extra:
                reply.headers["Retry-After"] = str(extra["retry_after"])
            return reply
    return _error(500, "error", "Something went wrong.")


def _charged(exc: StoppedBeforeAnswer) -> dict[str, Any]:
    """What a stopped answer's receipt charged, for the page to tell; nothing without one.

    ``settling``: the gateway has not told yet whether it had begun (nor what it used).
    """
    if exc.settling:
        return {"settling": True}
    charge = exc.charge
    if charge is None or charge.outcome != "settled":
        return {}
    return {
        "charged": {
            "prompt_tokens": charge.prompt_tokens,
            "completion_tokens": charge.completion_tokens,
            "status": charge.receipt_status,
            "units": format_units(charge.units),
        }
    }


@web.middleware
async def api_replies(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every reply under ``api/`` private (``API_HEADERS``), its errors JSON like the table's.

    aiohttp's router answers a path it does not know, or a method a path does not take, in
    plain text, and a bug with its plain-text 500; the page shows the JSON
    ``{"error": {"code", "message"}}`` instead, and a bug is one log line (``webapp.failed``).
    """
    if not request.path.startswith(request.app[API_PREFIX]):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as refused:
        if refused.status < 400:  # noqa: PLR2004 -- not an error: as aiohttp sends it
            raise
        code, message = _HTTP_ERRORS.get(
            refused.status, ("bad_request", "The request could not be read.")
        )
        log.info("webapp.refused", reason=code, path=_route(request))
        response = _error(refused.status, code, message)
        if "Allow" in refused.headers:
            response.headers["Allow"] = refused.headers["Allow"]
    except Exception as exc:  # a bug (the edge that turns it into a reply and a log line)
        log.exception("webapp.failed", error=type(exc).__name__, path=_route(request))
        if request.writer.output_size:  # an answer already streaming: its connection drops
            raise
        return _error(500, "error", "Something went wrong.")
    if not response.prepared:  # (a streamed answer sets its own before it starts)
        response.headers.update(API_HEADERS)
    return response


def _route(request: web.Request) -> str | None:
    """``request``'s path when it is one of the app's routes; None for any other path.

    A path no route has is the sender's own text (launch data a page put there by mistake, a
    line end to forge log lines with): it is not logged.
    """
    routes = {resource.canonical for resource in request.app.router.resources()}
    return request.path if request.path in routes else None


def _authorized(
    handler: Callable[[web.Request, RelayService, WebUser], Awaitable[web.StreamResponse]],
    *,
    aged: bool = False,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Check ``initData`` first (``aged``: past its age too); map service errors to replies."""

    async def route(request: web.Request) -> web.StreamResponse:
        try:
            user = request.app[CHECK].user(request.headers.get("Authorization"), aged=aged)
        except Unauthorized as refused:
            if refused.ahead is not None:
                # Telegram dated the launch ahead of our clock: every launch is refused so until
                # the clock is set. The page tells its user so (``bot_clock``), not to reopen it.
                log.warning(
                    "webapp.launch_ahead", ahead_s=round(refused.ahead), path=_route(request)
                )
            else:
                log.info("webapp.refused", reason=refused.code, path=_route(request))
            return _error(401, refused.code, _UNAUTHORIZED[refused.code])
        try:
            return await handler(request, request.app[RELAY], user)
        except VeilError as exc:
            log.info("webapp.error", error=type(exc).__name__, user_id=user.id)
            return error_response(exc)
        except BodyTimedOut:
            log.info("webapp.body_timeout", user_id=user.id, path=_route(request))
            reply = _error(408, "body_timeout", "The request did not arrive in time.")
            await send_and_close(request, reply)  # the rest of the body is not worth waiting for
            return reply
        except BodyTooLarge:
            log.info("webapp.too_large", user_id=user.id, path=_route(request))
            return _error(413, "too_large", "The request is too large.")

    return route


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however it is split on the way, within the client timeout.

    ``BodyTooLarge`` (413) when it is larger than ``limit``; ``BadRelayRequest`` when it is not
    valid HTTP; ``BodyTimedOut`` (408, the connection closed) when it does not arrive whole in
    time.
    """
    try:
        return await read_body(request, limit=limit, within=request.app[STALL])
    except (BodyTimedOut, BodyTooLarge):
        raise
    except BodyRefused as exc:
        raise BadRelayRequest(str(exc)) from exc


async def _small_json(request: web.Request) -> dict[str, Any]:
    """A small JSON object body; ``BadRelayRequest`` otherwise."""
    raw = await _read_body(request, _SMALL_BODY)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRelayRequest("not JSON") from exc
    if not isinstance(value, dict):
        raise BadRelayRequest("not a JSON object")
    return value


async def handle_page(request: web.Request) -> web.Response:
    """The page: HTML whose script is pinned by its hash and which pins the operator keys."""
    return web.Response(
        body=request.app[PAGE].html,
        content_type="text/html",
        charset="utf-8",
        headers=request.app[HEADERS],
    )


async def handle_script(request: web.Request) -> web.Response:
    """The page's one script: the committed bundle, byte for byte."""
    return web.Response(
        body=request.app[PAGE].script,
        content_type="text/javascript",
        charset="utf-8",
        headers=request.app[HEADERS],
    )


async def handle_account(_request: web.Request, relay: RelayService, user: WebUser) -> web.Response:
    """Balance, free tokens left today, what is held, and the models."""
    account = await relay.account(user.id)
    return web.json_response(
        {
            "balance": format_units(account.balance.units),
            "free_tokens_left": account.balance.free_tokens_left,
            "held": format_units(account.balance.held),
            "models": list(account.models),
            "default_model": account.default_model,
            "context_tokens": relay.context_tokens,
            "max_answer_tokens": relay.max_answer_tokens,
            "min_answer_tokens": relay.min_answer_tokens,
            "max_answer_seconds": relay.max_answer_seconds,
            "busy": relay.busy(user.id),
        }
    )


async def handle_prepare(request: web.Request, relay: RelayService, user: WebUser) -> web.Response:
    """Where to seal a question of ``size`` bytes for ``model``, and how long an answer."""
    body = await _small_json(request)
    model, size = body.get("model"), body.get("size")
    if not isinstance(model, str) or not isinstance(size, int) or isinstance(size, bool):
        raise BadRelayRequest("expected {model, size}")
    offer = await relay.prepare(user.id, model, size)
    return web.json_response(
        {
            "gateways": [{"gateway": g.index, "bundle": g.bundle} for g in offer.gateways],
            "max_completion_tokens": offer.max_completion_tokens,
        }
    )


def _ticket(request: web.Request) -> Ticket:
    """What the page declares about the sealed bytes, from its ``Veil-*`` headers."""
    headers = request.headers
    try:
        gateway = int(headers.get(GATEWAY_HEADER, ""))
        max_tokens = int(headers.get(MAX_TOKENS_HEADER, ""))
        request_id = hex_bytes(headers.get(REQUEST_ID_HEADER, ""), REQUEST_ID_SIZE)
        proof = headers.get(PROOF_HEADER, "")
        if len(b64d(proof)) != 32:  # noqa: PLR2004 -- an HMAC-SHA256 proof
            raise MalformedMessage("a proof is 32 bytes")
    except (ValueError, MalformedMessage) as exc:
        raise BadRelayRequest("bad Veil-* headers") from exc
    model = unquote(headers.get(MODEL_HEADER, ""))  # percent-encoded: a header is Latin-1 at most
    if not model or not 0 < gateway <= MAX_JSON_INT or not 0 < max_tokens <= MAX_JSON_INT:
        raise BadRelayRequest("bad Veil-* headers")
    # Every field line of the list counts, as if joined by commas (RFC 9110 §5.3).
    accept = accepts_retry_after(",".join(headers.getall(ACCEPT_HEADER, ())))
    return Ticket(gateway, request_id, model, max_tokens, proof, retry_after=accept)


async def handle_relay(
    request: web.Request, relay: RelayService, user: WebUser
) -> web.StreamResponse:
    """Relay the sealed bytes; stream the gateway's chunks back as they come.

    A page that does not take a piece of the answer within the client timeout (its network
    went dark, or it stopped reading) is taken as gone, like one that hung up: the relay hangs
    up on the gateway, which stops the model, and the answer is charged what was generated.
    """
    body = await _read_body(request, max_request_size(Suite.MLKEM768_X25519))  # 413 first
    ticket = _ticket(request)
    answer = await relay.relay(user.id, ticket, body, request.transport)
    response = web.StreamResponse(headers={"Content-Type": SEALED_STREAM_TYPE, **API_HEADERS})
    stall = request.app[STALL]
    try:
        async with asyncio.timeout(stall):
            await response.prepare(request)
        async for data in answer:  # (the gateway's pace is the relay's to bound, not ours)
            async with asyncio.timeout(stall):
                await response.write(data)
        if (answer.broken or answer.reason == "shutdown") and not answer.whole:
            # The gateway's stream broke, or the bot is shutting down, before the final chunk:
            # the page's breaks too, once what came has gone, told as cut on the way (never as
            # the bot's time limit, which the bot says with ``TIME_LIMIT_MARK``). After it, the
            # page has the whole answer and its receipt: its stream ends whole.
            if request.transport is not None:
                request.transport.close()  # (a flush first; aiohttp's end then finds it closed)
            return response
        async with asyncio.timeout(stall):
            if answer.cut_at_time_limit:
                await response.write(TIME_LIMIT_MARK)
            await response.write_eof()
    except TimeoutError:
        log.info("webapp.page_stalled", user_id=user.id)
        answer.abandon("page_stalled")
        reset_connection(request.transport)  # what is queued for it will never be read
    except (ConnectionResetError, RuntimeError):
        answer.abandon()  # the page went away: hang up, settle from the late receipt
    except BaseException:
        answer.abandon()
        raise
    return response


async def handle_stop(request: web.Request, relay: RelayService, user: WebUser) -> web.Response:
    """Forward the page's cancel proof for its running answer."""
    body = await _small_json(request)
    try:
        request_id = hex_bytes(body.get("request_id"), REQUEST_ID_SIZE)
        proof = body.get("proof")
        if not isinstance(proof, str) or len(b64d(proof)) != 32:  # noqa: PLR2004 -- HMAC size
            raise MalformedMessage("a proof is 32 bytes")
    except MalformedMessage as exc:
        raise BadRelayRequest("expected {request_id, proof}") from exc
    state = await relay.stop(user.id, request_id, proof)
    if state is None:
        return _error(404, "not_running", "That answer is not being written.")
    return web.json_response({"state": state})


def build_webapp(  # noqa: PLR0913 -- the routes' parts and the page's limits
    relay: RelayService,
    check: InitDataCheck,
    page: Page,
    prefix: str,
    frame_ancestors: Sequence[str] = (),
    *,
    client_timeout: float = CLIENT_TIMEOUT,
) -> web.Application:
    """The Mini App's aiohttp application, its routes under ``prefix`` (``/`` or ``/app/``).

    ``frame_ancestors``: origins besides Telegram's web apps that may show the page in a frame;
    ``client_timeout``: seconds a page may take to send a body or to take a piece of an answer.
    """
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    app = web.Application(
        client_max_size=max_request_size(Suite.MLKEM768_X25519) + 1, middlewares=[api_replies]
    )
    app[API_PREFIX] = prefix + "api/"
    app[RELAY] = relay
    app[CHECK] = check
    app[PAGE] = page
    app[HEADERS] = page_headers(page.html, frame_ancestors)
    app[STALL] = client_timeout
    app.router.add_get(prefix, handle_page)
    app.router.add_get(prefix + "veil.js", handle_script)
    app.router.add_get(prefix + "api/account", _authorized(handle_account))
    app.router.add_post(prefix + "api/prepare", _authorized(handle_prepare))
    app.router.add_post(prefix + "api/relay", _authorized(handle_relay))
    # A stop is taken from launch data that aged past its limit while the answer ran: the
    # answer began when it was fresh, and would otherwise run on, charged in full.
    app.router.add_post(prefix + "api/stop", _authorized(handle_stop, aged=True))
    return app
