"""Connection hardening for the public listener: a cap, a header timeout, bounded body reads.

aiohttp has neither a header read timeout nor a connection cap, so the public port is served by
``GuardedSite``, whose protocol is ``GuardedRequestHandler``:

- a connection past ``max_connections`` is closed as soon as it is accepted (the cap itself
  comes from ``gateway.descriptors``, which keeps it within the descriptor limit);
- each connection has a timer, armed when it opens and re-armed when a request ends (by
  ``ConnectionGuard.middleware``), disarmed when a request head is complete: a connection that
  does not finish its next head within ``header_timeout`` is closed, whether it sent part of
  one or nothing at all (so idle keep-alive connections close after that time too);
- a request's handler may watch its connection (``watch_connection``) to hear at once that the
  client hung up, instead of at the next write.

``read_body`` reads a body whole (however it is segmented), bounded in size and time.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from yarl import URL

from gateway.refusals import Refusal, malformed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.metrics import GatewayMetrics


class ConnectionGuard:
    """The limits one listener enforces on its connections, and their counts."""

    def __init__(
        self, *, max_connections: int, header_timeout: float, metrics: GatewayMetrics
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.metrics = metrics
        self.open = 0

    def admit(self) -> bool:
        """Count a new connection; False (and count a refusal) when the cap is reached."""
        if self.open >= self.max_connections:
            self.metrics.connections_refused.inc()
            return False
        self.open += 1
        self.metrics.connections.set(self.open)
        return True

    def release(self) -> None:
        """Count a connection that has closed."""
        self.open -= 1
        self.metrics.connections.set(self.open)

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Stop the header timer while a request is handled; re-arm it when it ends."""
        protocol = request.protocol
        if not isinstance(protocol, GuardedRequestHandler):
            return await handler(request)
        protocol.request_started()
        try:
            return await handler(request)
        finally:
            protocol.request_finished()


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's HTTP protocol with the guard's cap, header timer and hang-up callbacks."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:  # noqa: ANN401 -- aiohttp's handler options
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._admitted = False
        self._busy = 0
        self._timer: asyncio.TimerHandle | None = None
        self._on_lost: list[Callable[[], None]] = []

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
        self._disarm()

    def request_finished(self) -> None:
        """A handler has returned: the next head must come within the header timeout."""
        self._busy -= 1
        if self._busy == 0 and self._admitted:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._timer = self._loop.call_later(self._guard.header_timeout, self._header_timeout)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        if self._busy == 0 and self.transport is not None:
            self._guard.metrics.header_timeouts.inc()
            self.force_close()


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


class GuardedSite(web.BaseSite):
    """A TCP listener for an ``AppRunner`` whose connections ``guard`` limits."""

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
            GuardedRequestHandler, server, guard=self._guard, loop=loop, access_log=None
        )
        self._server = await loop.create_server(
            factory, self._host, self._port, backlog=self._backlog
        )


async def read_body(request: web.Request, *, limit: int, within: float) -> bytes:
    """The whole body, however it arrives; ``Refusal`` 413 past ``limit``, 408 after ``within``."""
    if request.content_length is not None and request.content_length > limit:
        raise Refusal(413, "too_large", "request body is too large")
    body = bytearray()
    try:
        async with asyncio.timeout(within):
            while chunk := await request.content.readany():
                body += chunk
                if len(body) > limit:
                    raise Refusal(413, "too_large", "request body is too large")
    except TimeoutError as exc:
        raise Refusal(408, "body_timeout", "the request body did not arrive in time") from exc
    except RequestPayloadError as exc:
        raise malformed("the request body is not valid HTTP") from exc
    return bytes(body)
