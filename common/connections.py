"""Connection hardening for a listener that faces clients: a cap, a header timeout, bounded bodies.

aiohttp has neither a header read timeout nor a connection cap, so a listener that faces
clients (the gateway's public port, the bot's webhook and Mini App) is served by
``GuardedSite``, whose protocol is ``GuardedRequestHandler``:

- a connection past ``max_connections`` is closed as soon as it is accepted (``connection_cap``
  keeps the cap within the descriptor limit);
- each connection has a timer, armed when it opens and re-armed when a request ends (by
  ``ConnectionGuard.middleware``), disarmed when a request head is complete: a connection that
  does not finish its next head within ``header_timeout`` is closed, whether it sent part of
  one or nothing at all (so idle keep-alive connections close after that time too). A request
  being handled, however long it streams, is never cut by it;
- a request's handler may watch its connection (``watch_connection``) to hear at once that the
  client hung up, instead of at the next write.
- the replies of an app ``guard_app`` guards name the server ``Veil``, not aiohttp's and Python's
  versions;
- a request that is not valid HTTP (a broken head, a header line past aiohttp's limit, a bad
  chunk size) gets a bare 400 and one log line, ``http.malformed`` with the error's class:
  aiohttp would log each as an error with its traceback (anyone on the internet could fill the
  operator's log with them) and echo the offending bytes back in its reply. A body sent in a
  transfer coding other than a lone ``chunked`` (``gzip, chunked``, which aiohttp reads as plain
  chunked; empty list elements such as ``, chunked``'s are ignored) gets a bare 501 the same
  way (``ConnectionGuard.middleware``);
- a body a handler leaves unread (a refused one), or the 501's, is drained after the reply, so
  that a client still sending it can read the reply, but only up to ``LINGER_BYTES`` of it (the
  next request's bytes do not count): then the connection is closed (aiohttp alone drains for
  10 s however much arrives);
- requests are parsed one at a time (``GuardedRequestHandler._parse_one_at_a_time``), so bytes
  that are not HTTP after a request are refused after it is answered, not instead;
- a connection the header timer closes with replies unsent to a client that does not read them
  is cut once they have not moved for another header timeout (a close waits for them for ever).

``read_body`` reads a body whole (however it is segmented), bounded in size and time, and
refuses one sent with a ``Content-Encoding`` unread (aiohttp would inflate it: a kilobyte made
into the largest body; none of the listeners' clients compresses); what it refuses
(``BodyRefused``) each listener answers in its own words. Nothing here knows a
protocol: the gateway counts into its metrics (``ConnectionCounts``) and maps refusals to its
own table (``gateway.connections``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import socket
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from aiohttp import StreamReader, web
from aiohttp.helpers import DEFAULT_CHUNK_SIZE
from aiohttp.http import HttpRequestParser
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from yarl import URL

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

log = structlog.get_logger("veil.connections")

# What a guarded app's replies (and a malformed request's) give as ``Server``: aiohttp's
# default names its version and Python's, a guide to which published flaws to try.
SERVER_NAME = "Veil"

# The most bytes of a body left unread (a refused one) that a connection reads and drops after
# the reply, so that a client still sending the rest of its body can then read the reply (a close
# with unread bytes is a reset, which can lose it); past this the connection is closed. aiohttp
# alone drains for 10 s however much arrives: gigabytes from one client on a fast link.
LINGER_BYTES = 4 << 20

# Descriptors kept free for everything but client connections: the listeners, the event
# loop, logging, the files, a subprocess or two.
FD_MARGIN = 32


def connection_cap(configured: int, *, upstream: int, soft_limit: int | None = None) -> int:
    """The most client connections to hold: ``configured``, lowered to fit the descriptors.

    ``upstream`` is the most connections the process opens itself (to a model server, to
    Telegram), each of which may pair with a client connection; ``soft_limit`` defaults to this
    process's RLIMIT_NOFILE.
    """
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    room = soft_limit - FD_MARGIN
    cap = room // 2 if room // 2 <= upstream else room - upstream
    return max(1, min(configured, cap))


def bind_failure(listeners: Sequence[tuple[str, str, int]], exc: OSError) -> str:
    """One line naming the listener whose address could not be bound, and why.

    ``listeners``: (setting prefix, host, port) each, as ``VEIL_WEBHOOK`` names
    ``VEIL_WEBHOOK_HOST`` and ``VEIL_WEBHOOK_PORT``. asyncio says ``error while attempting to
    bind on address ('127.0.0.1', 9601): address already in use``: the listener with that host
    and port is named, else those with that port (a host name is bound as its address), else
    every listener.
    """
    message = str(exc)
    on_port = [item for item in listeners if re.search(rf", {item[2]}[,)]", message)]
    at_address = [item for item in on_port if f"('{item[1]}', {item[2]}" in message]
    named = " or ".join(
        f"{name}_HOST:{name}_PORT ({host}:{port})"
        for name, host, port in at_address or on_port or listeners
    )
    reason = message.rpartition("): ")[2] if "attempting to bind" in message else None
    return f"veil: cannot listen on {named}: {reason or exc.strerror or message}"


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


class _Counter(Protocol):
    def inc(self) -> None: ...


class ConnectionCounts(Protocol):
    """Where a guard counts its connections (the gateway's Prometheus metrics, say)."""

    @property
    def connections(self) -> _Gauge:
        """Connections open now."""
        ...

    @property
    def connections_refused(self) -> _Counter:
        """Connections closed on accept because the cap was reached."""
        ...

    @property
    def header_timeouts(self) -> _Counter:
        """Connections closed because a request head did not arrive in time."""
        ...


class ConnectionGuard:
    """The limits one listener enforces on its connections, and their counts.

    ``open``, ``refused`` and ``timed_out`` count here whether or not ``metrics`` is given.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        header_timeout: float,
        metrics: ConnectionCounts | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.metrics = metrics
        self.open = 0
        self.refused = 0
        self.timed_out = 0

    def admit(self) -> bool:
        """Count a new connection; False (and count a refusal) when the cap is reached."""
        if self.open >= self.max_connections:
            self.refused += 1
            if self.metrics is not None:
                self.metrics.connections_refused.inc()
            return False
        self.open += 1
        if self.metrics is not None:
            self.metrics.connections.set(self.open)
        return True

    def release(self) -> None:
        """Count a connection that has closed."""
        self.open -= 1
        if self.metrics is not None:
            self.metrics.connections.set(self.open)

    def header_timed_out(self) -> None:
        """Count a connection closed by its header timer."""
        self.timed_out += 1
        if self.metrics is not None:
            self.metrics.header_timeouts.inc()

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Stop the header timer while a request is handled; re-arm it when it ends.

        A body in a transfer coding we do not read is refused here, before any handler.
        """
        protocol = request.protocol
        if not isinstance(protocol, GuardedRequestHandler):
            return await handler(request)
        if not transfer_coding_taken(request):
            protocol.bound_drain(request)
            return _unsupported_transfer_coding()
        protocol.request_started()
        try:
            return await handler(request)
        finally:
            protocol.request_finished(request)


def transfer_coding_taken(request: web.BaseRequest) -> bool:
    """Whether the body's ``Transfer-Encoding`` is one we read: none, or a lone ``chunked``.

    aiohttp reads ``gzip, chunked`` as plain chunked (the gzip ignored, nothing inflated); RFC
    9112 §6.1: a server that receives a transfer coding it does not understand should answer
    501. Every ``Transfer-Encoding`` header counts, each a list (``chunked`` twice is chunked
    applied twice, not one chunked body) whose empty elements are ignored (RFC 9110 §5.6.1:
    ``, chunked`` is ``chunked``). aiohttp's parser refuses an empty element after ``chunked``
    itself, with the bare 400 (it takes it for the final coding, RFC 9112 §6.3).
    """
    if "Transfer-Encoding" not in request.headers:
        return True
    codings = ",".join(request.headers.getall("Transfer-Encoding"))
    return transfer_codings(codings) == ["chunked"]


def transfer_codings(field: str) -> list[str]:
    """The codings a ``Transfer-Encoding`` list names, lower-case, its empty elements dropped."""
    return [coding for coding in (c.strip(" \t").lower() for c in field.split(",")) if coding]


def _unsupported_transfer_coding() -> web.Response:
    """The bare 501 (then the close) for a body sent in a transfer coding we do not read."""
    status = HTTPStatus.NOT_IMPLEMENTED
    log.info("http.malformed", status=status.value, error="UnsupportedTransferCoding")
    response = web.Response(status=status, text=status.phrase, headers={"Server": SERVER_NAME})
    response.force_close()
    return response


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's HTTP protocol with the guard's cap, header timer and hang-up callbacks."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:  # noqa: ANN401 -- aiohttp's handler options
        super().__init__(manager, **kwargs)
        self._parse_one_at_a_time(kwargs)
        self._guard = guard
        self._admitted = False
        self._busy = 0
        self._timer: asyncio.TimerHandle | None = None
        self._on_lost: list[Callable[[], None]] = []
        self._unread: StreamReader | None = None  # the body left unread by the last request
        self._unread_length: int | None = None  # its Content-Length (None: chunked)
        self._linger_left = 0

    def _parse_one_at_a_time(self, options: dict[str, Any]) -> None:
        """Parse the next request only once the one before it is taken from the queue.

        aiohttp parses all it has read at once: a request followed in the same read by bytes
        that are not HTTP (what a client sends past a ``Content-Length`` shorter than its body)
        raises at those bytes, and the whole request before them is dropped (its client gets
        only the bare 400). With a queue of one request the parser stops after each, and the
        bytes after it are parsed (and refused) only once it is being handled, so it is answered
        first. Pipelined requests are still served, one after another.
        """
        self._max_msg_queue_size = 1
        self._msg_queue_resume_size = 0
        self._parser = HttpRequestParser(
            self,
            self._loop,
            options.get("read_bufsize", DEFAULT_CHUNK_SIZE),
            max_line_size=options.get("max_line_size", 8190),
            max_field_size=options.get("max_field_size", 8190),
            max_headers=options.get("max_headers", 128),
            payload_exception=RequestPayloadError,
            auto_decompress=options.get("auto_decompress", True),
            max_msg_queue_size=1,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the connection, or close it at once when the cap is reached."""
        if not self._guard.admit():
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Release the slot and tell the watchers before aiohttp tears down."""
        if not self._admitted:
            return
        self._admitted = False
        self._guard.release()
        self._disarm()
        callbacks, self._on_lost = self._on_lost, []
        for callback in callbacks:
            callback()
        super().connection_lost(exc)

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the connection is lost; returns a function that unwatches."""
        self._on_lost.append(callback)

        def unwatch() -> None:
            if callback in self._on_lost:
                self._on_lost.remove(callback)

        return unwatch

    def request_started(self) -> None:
        """A request head is complete: its handler runs now."""
        self._busy += 1
        self._unread = None
        self._disarm()

    def request_finished(self, request: web.BaseRequest) -> None:
        """A handler has returned: the next head must come within the header timeout.

        A body it left unread is drained after the reply (aiohttp's lingering close) only up
        to ``LINGER_BYTES``.
        """
        self._busy -= 1
        self.bound_drain(request)
        if self._busy == 0 and self._admitted:
            self._arm()

    def bound_drain(self, request: web.BaseRequest) -> None:
        """After the reply, drain the rest of ``request``'s body for at most ``LINGER_BYTES``.

        Called for a body a handler left unread and for one refused before any handler (501).
        """
        if not request.content.is_eof():
            self._unread = request.content
            self._unread_length = request.content_length
            self._linger_left = LINGER_BYTES

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` as aiohttp does; past ``LINGER_BYTES`` of an unread body, close.

        Only the body's own bytes count: once it has all arrived, or past its
        ``Content-Length``, what follows is the next request (a chunked body's end is known
        only once parsed, so all of a read before it counts).
        """
        unread = self._unread
        if unread is not None:
            if unread.is_eof():
                self._unread = None
            else:
                self._linger_left -= self._of_unread(unread, len(data))
                if self._linger_left < 0:
                    self._unread = None
                    self.force_close()
                    unread.feed_eof()  # aiohttp's drain of it ends now, not after its 10 s
                    return
        super().data_received(data)

    def _of_unread(self, unread: StreamReader, size: int) -> int:
        """How many of ``size`` bytes just read belong to the unread body (all, when chunked)."""
        if self._unread_length is None:
            return size
        return min(size, self._unread_length - unread.total_bytes)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request that is not valid HTTP: one log line and a bare reply, then the close.

        Any other failure is aiohttp's to answer (and log) as it does.
        """
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        log.info("http.malformed", status=status, error=type(exc).__name__)
        response = web.Response(
            status=status, text=HTTPStatus(status).phrase, headers={"Server": SERVER_NAME}
        )
        response.force_close()
        return response

    def _arm(self) -> None:
        self._disarm()
        self._timer = self._loop.call_later(self._guard.header_timeout, self._header_timeout)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        transport = self.transport
        if self._busy == 0 and transport is not None:
            self._guard.header_timed_out()
            self.force_close()
            self._watch_close(transport, transport.get_write_buffer_size())

    def _watch_close(self, transport: asyncio.Transport, pending: int) -> None:
        """Cut a closing connection whose replies have not moved for a header timeout.

        A close waits for the replies still buffered to be sent: for ever, to a client that
        pipelines requests and never reads them. One still reading (a page's script on a slow
        link) is waited for as long as what is left keeps shrinking.
        """
        if pending == 0:
            return
        self._loop.call_later(self._guard.header_timeout, self._stalled, transport, pending)

    def _stalled(self, transport: asyncio.Transport, pending: int) -> None:
        left = transport.get_write_buffer_size()
        if left < pending:
            self._watch_close(transport, left)
        else:
            transport.abort()


async def send_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Send ``response`` now and close the connection after it (unread body bytes ignored)."""
    with contextlib.suppress(ConnectionError):
        await response.prepare(request)
        await response.write_eof()
    transport = request.transport
    if transport is not None:
        transport.close()


def watch_connection(request: web.Request, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` if ``request``'s client hangs up; returns a function that unwatches."""
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        return protocol.watch(callback)
    return lambda: None


def site_listening(site: web.BaseSite) -> bool:
    """Whether a TCP listener still takes connections: each of its sockets open, listening.

    On uvloop an ``accept()`` failure that libuv leaves to Python (ENOBUFS, ENOMEM, EPERM,
    EINVAL; not EAGAIN, ECONNABORTED, nor EMFILE/ENFILE, which libuv handles) closes the
    listener for good and reports nothing (uvloop's ``UVStreamServer._fatal_error`` tells
    the loop of errors other than ``OSError`` only): its socket is then missing from the
    server's ``sockets`` (None) or has no descriptor left. A socket that no longer listens
    (shut down) is no listener either.
    """
    server = site._server  # noqa: SLF001 -- aiohttp keeps the started server here only
    sockets = [] if server is None else list(server.sockets)  # type: ignore[attr-defined]
    if not sockets:
        return False
    for sock in sockets:
        if sock is None or sock.fileno() < 0:
            return False
        try:
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return False
        except OSError:
            return False
    return True


class GuardedSite(web.BaseSite):
    """A TCP listener for an ``AppRunner`` whose connections ``guard`` limits.

    The runner's application must have ``guard.middleware`` (``guard_app`` adds it), or the
    header timer would also run while a request is handled.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def port(self) -> int:
        """The bound port (the asked one before ``start``)."""
        if self._server is not None and self._server.sockets:  # type: ignore[attr-defined]
            port: int = self._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            return port
        return self._port

    @property
    def name(self) -> str:
        """The listener's URL."""
        return str(URL.build(scheme="http", host=self._host, port=self.port))

    async def start(self) -> None:
        """Listen; each accepted connection gets a ``GuardedRequestHandler``."""
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting a site")
        loop = asyncio.get_running_loop()
        factory = partial(
            GuardedRequestHandler,
            server,
            guard=self._guard,
            loop=loop,
            access_log=None,
            auto_decompress=False,  # a compressed body is refused (read_body), never inflated
        )
        self._server = await loop.create_server(
            factory, self._host, self._port, backlog=self._backlog
        )


async def _name_server(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME


def guard_app(app: web.Application, guard: ConnectionGuard) -> web.Application:
    """Put ``guard``'s middleware first in ``app`` (not yet started); returns ``app``.

    Its replies name the server ``SERVER_NAME`` only, not aiohttp's and Python's versions.
    """
    app.middlewares.insert(0, guard.middleware)
    app.on_response_prepare.append(_name_server)
    return app


def stopping_runner(app: web.Application, *, cut_within: float) -> web.AppRunner:
    """A runner for ``app`` whose ``cleanup`` cuts a request still in hand within ``cut_within``.

    aiohttp waits its ``shutdown_timeout`` for a request's handler to end, then fails the
    request's body and waits as long again before it cancels the handler: a handler still
    reading its body ends after the first wait, one past it (writing a journal, waiting on a
    database) only after the second. So each wait is half of ``cut_within``.
    """
    return web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=cut_within / 2
    )


class BodyRefused(Exception):
    """A request body not read whole: ``status`` is the HTTP status it deserves."""

    status = 400


class BodyTooLarge(BodyRefused):
    """More than the limit (declared, or sent)."""

    status = 413


class BodyTimedOut(BodyRefused):
    """The body did not arrive whole in time."""

    status = 408


class BodyMalformed(BodyRefused):
    """The body's framing is not valid HTTP (a broken chunked encoding, say)."""

    status = 400


class BodyEncoded(BodyRefused):
    """The body was sent with a ``Content-Encoding`` (compressed): refused before any is read."""

    status = 400


def encoded(request: web.Request) -> bool:
    """Whether the body is sent with a coding other than ``identity`` (compressed).

    Every ``Content-Encoding`` header counts, each a list (RFC 9110 §5.3: two headers are the
    one list joined by commas): ``identity`` and then ``gzip`` is a gzip body.
    """
    codings = ",".join(request.headers.getall("Content-Encoding", ()))
    return any(coding.strip().lower() not in {"", "identity"} for coding in codings.split(","))


async def read_body(request: web.Request, *, limit: int, within: float) -> bytes:
    """The whole body, however it arrives; ``BodyTooLarge`` past ``limit``, ``BodyTimedOut``.

    ``within`` is the seconds the whole body may take, however steadily it trickles. A body
    with a ``Content-Encoding`` is ``BodyEncoded``, none of it read: aiohttp would inflate what
    is read, however small the compressed bytes (``GuardedSite``'s connections do not, so what
    aiohttp drains after the reply is not inflated either).
    """
    if encoded(request):
        raise BodyEncoded("the body is sent as is, without a Content-Encoding")
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge("request body is too large")
    body = bytearray()
    try:
        async with asyncio.timeout(within):
            while chunk := await request.content.readany():
                body += chunk
                if len(body) > limit:
                    raise BodyTooLarge("request body is too large")
    except TimeoutError as exc:
        raise BodyTimedOut("the request body did not arrive in time") from exc
    except RequestPayloadError as exc:
        raise BodyMalformed("the request body is not valid HTTP") from exc
    return bytes(body)
