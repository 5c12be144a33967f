"""Untrusted middlemen and rude clients between the bot and the gateway, on 127.0.0.1.

- ``RecordingProxy``: a TCP proxy that forwards bytes both ways and keeps a copy, to prove what
  the network sees; ``drop()`` closes the connections open at that moment; ``hold`` slows one
  request on its way while the rest pass, ``hold_replies`` one reply on its way back.
- ``SegmentingRelay``: a TCP proxy that hands the client's bytes on in small delayed segments,
  the way a slow or fragmenting network delivers a large body.
- ``TamperingRelay``: an HTTP reverse proxy that forwards requests to the gateway and rewrites
  the sealed body on the way (in either direction, or a byte of an answer as it streams), to
  prove that every change is caught, or holds requests back (``stall``), or an answer's last
  bytes, those after its final chunk (``hold_after_final``); or answers a sealed path itself
  with an error of its own, as a broken or hostile proxy does.
- ``HalfOpenClients``: raw connections that send part of a request head and then nothing, to
  prove a server times them out and caps how many it holds.
- ``SlowReader``: a raw connection that sends a whole request and then stops reading the
  reply, to prove a server does not wait on it forever.

The two clients tell whether the server closed a connection from the kernel's TCP state
(Linux ``TCP_INFO``), so asking never reads and never unblocks the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
from typing import TYPE_CHECKING, Self

import aiohttp
from aiohttp import web

from playground.served import Served
from sealed.relay import StreamFramer

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

_TCP_ESTABLISHED = 1  # tcpi_state, the first byte of Linux's struct tcp_info
_TCP_INFO_SIZE = 104
_HALF_REQUEST = b"POST /v1/sealed/chat/completions HTTP/1.1\r\nHost: x\r\n"
# What one relayed connection's two pipes share (each pipe task runs in a copy of the context
# its connection's handler set this in).
_CONNECTION: contextvars.ContextVar[dict[str, bool]] = contextvars.ContextVar("connection")


class _TcpRelay(Served):
    """Forwards each TCP connection it accepts to ``target``; subclasses shape the bytes.

    ``connections`` counts the connections accepted so far; ``target`` (host, port) is where
    the next one goes (a test may point it at a server that is down, then back).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Future[None]] = set()  # one a connection, ended by close()
        self._pipes: set[asyncio.Task[None]] = set()
        self._closing = False
        self.url = ""

    async def start(self) -> str:
        """Listen on a free port; return ``http://127.0.0.1:PORT``."""
        self._closing = False
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening, cut open connections and wait until each is closed."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        # The connection handlers are left to finish, not cancelled: asyncio logs an error for
        # a cancelled client_connected_cb task.
        await asyncio.gather(*self._pipes, *self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def drop(self) -> None:
        """Close every connection open now, as a network that goes dark does; keep listening."""
        pipes = list(self._pipes)
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        done = asyncio.get_running_loop().create_future()
        self._handlers.add(done)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            if self._closing:
                return
            _CONNECTION.set({})
            pipes = (
                asyncio.create_task(self._pipe(reader, up_writer, upstream=True)),
                asyncio.create_task(self._pipe(up_reader, writer, upstream=False)),
            )
            self._pipes.update(pipes)
            await asyncio.gather(*pipes, return_exceptions=True)
            self._pipes.difference_update(pipes)
        except OSError:
            pass  # the target is down: the client just sees its connection closed
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(OSError):
                        await w.wait_closed()
            self._handlers.discard(done)
            done.set_result(None)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                await self._forward(data, writer, upstream=upstream)
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()

    async def _forward(self, data: bytes, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        """Send one read on; ``upstream`` is True for client → server bytes."""
        del upstream  # the plain relay treats both directions alike
        writer.write(data)
        await writer.drain()


class RecordingProxy(_TcpRelay):
    """Forwards TCP connections to ``target`` and records every byte in both directions."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.upstream = bytearray()  # client → server
        self.downstream = bytearray()  # server → client
        self.open = asyncio.Event()  # cleared: client → server bytes wait (a stalled network)
        self.open.set()
        # Set ``hold`` to how a request starts (b"POST /app/api/relay"), and a connection that
        # sends one passes nothing more on until ``release`` is set (``holding`` is set once one
        # waits): one request slow on its way while the others pass, as on a mobile network.
        self.hold: bytes | None = None
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self._held: set[asyncio.StreamWriter] = set()
        # Set ``hold_replies`` to how a request starts (b"POST /v1/sealed/chat"): the server's
        # reply on a connection that sends one waits until ``replies_released`` is set (the
        # request itself passes): a reply slow on its way back, or a proxy that buffers it.
        self.hold_replies: bytes | None = None
        self.replies_held = asyncio.Event()  # set once a reply waits
        self.replies_released = asyncio.Event()
        # Set ``stall_replies`` likewise, and such a reply's first piece passes (its head, so
        # the stream has begun), the rest waits until ``replies_released``: a stream that
        # stalls on its way back (``replies_held`` is set once it does).
        self.stall_replies: bytes | None = None

    @property
    def captured(self) -> bytes:
        """Everything that crossed the proxy."""
        return bytes(self.upstream) + bytes(self.downstream)

    async def _forward(self, data: bytes, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        connection = _CONNECTION.get()
        if upstream and self.hold_replies is not None and data.startswith(self.hold_replies):
            connection["replies_held"] = True
        if upstream and self.stall_replies is not None and data.startswith(self.stall_replies):
            connection["stalls"] = True
        if not upstream and connection.get("replies_held"):
            self.replies_held.set()
            await self.replies_released.wait()
        if not upstream and connection.get("stalls"):
            if connection.get("begun"):
                self.replies_held.set()
                await self.replies_released.wait()
            connection["begun"] = True
        if upstream:
            await self.open.wait()
            if writer in self._held or (self.hold is not None and data.startswith(self.hold)):
                self._held.add(writer)
                self.holding.set()
                await self.release.wait()
        (self.upstream if upstream else self.downstream).extend(data)
        await super()._forward(data, writer, upstream=upstream)


class SegmentingRelay(_TcpRelay):
    """Forwards TCP connections to ``target``, client → server bytes in delayed segments.

    Each read from the client goes on in segments of at most ``segment`` bytes (one Ethernet
    TCP segment by default) with ``delay`` seconds between them, so the server sees a large
    body arrive over many reads; server → client bytes pass unchanged. ``segments`` counts the
    client → server segments sent.
    """

    def __init__(
        self, target_host: str, target_port: int, *, segment: int = 1448, delay: float = 0.005
    ) -> None:
        if segment < 1:
            raise ValueError("segment must be at least one byte")
        super().__init__(target_host, target_port)
        self.segment = segment
        self.delay = delay
        self.segments = 0

    async def _forward(self, data: bytes, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        if not upstream:
            await super()._forward(data, writer, upstream=upstream)
            return
        for start in range(0, len(data), self.segment):
            if self.segments:
                await asyncio.sleep(self.delay)
            self.segments += 1
            await super()._forward(data[start : start + self.segment], writer, upstream=upstream)


class TamperingRelay(Served):
    """An HTTP relay to ``target`` that may rewrite sealed bodies.

    ``rewrite_request`` / ``rewrite_response`` take the whole body and return what to send on;
    ``None`` forwards unchanged (a reply as it comes). ``refusal`` (a path prefix, status,
    content type, body) answers every request under that prefix with it instead of forwarding:
    a proxy's own error page. ``redirect`` (a path prefix, status, location) answers every
    request under that prefix with a redirect there instead. Other paths (``/v1/keys``,
    ``/health``) pass through untouched.
    """

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.rewrite_request: Callable[[bytes], bytes] | None = None
        self.rewrite_response: Callable[[bytes], bytes] | None = None
        self.refusal: tuple[str, int, str, bytes] | None = None
        self.redirect: tuple[str, int, str] | None = None
        self.replay_last = False
        # Set to (a path prefix, an event), requests under it wait until the event is set
        # before they go on (``stalled`` is set once one waits): a proxy that is slow to pass.
        self.stall: tuple[str, asyncio.Event] | None = None
        self.stalled = asyncio.Event()
        # Set, a sealed answer streamed on as it comes has its byte at this offset flipped:
        # tampering on the way that the bot, which cannot open the stream, hands on unseen.
        self.flip_streamed_at: int | None = None
        # Set, a sealed answer (``/v1/sealed/chat/``) streamed on passes up to the end of its
        # final chunk, and what follows (the relay receipt, the stream's end) waits until it is
        # set (``held_after_final`` is set once it does): the last bytes slow on the way. Set
        # ``break_after_final`` too, and the relay then hangs up instead, those bytes unsent.
        self.hold_after_final: asyncio.Event | None = None
        self.held_after_final = asyncio.Event()
        self.break_after_final = False
        self.last_request: bytes | None = None
        self.last_headers: dict[str, str] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        """Listen on a free port; return its base URL."""
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop the relay."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        # What a relay forwards: the content type and Veil's own headers (client signature).
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() == "content-type" or name.lower().startswith("veil-")
        }
        sealed = request.path.startswith("/v1/sealed/")
        if self.stall is not None and request.path.startswith(self.stall[0]):
            self.stalled.set()
            await self.stall[1].wait()
        if self.redirect is not None and request.path.startswith(self.redirect[0]):
            _, status, location = self.redirect
            return web.Response(status=status, headers={"Location": location})
        if self.refusal is not None and request.path.startswith(self.refusal[0]):
            _, status, content_type, payload = self.refusal
            return web.Response(body=payload, status=status, headers={"Content-Type": content_type})
        if sealed:
            if self.replay_last and self.last_request is not None:
                body, headers = self.last_request, self.last_headers
            self.last_request, self.last_headers = body, headers
            if self.rewrite_request is not None:
                body = self.rewrite_request(body)
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body or None, headers=headers
        ) as upstream:
            if upstream.status == 200 and self.rewrite_response is None:
                flip = self.flip_streamed_at if sealed else None
                answer = request.path.startswith("/v1/sealed/chat/")
                held = self.hold_after_final if answer else None
                return await self._stream(request, upstream, flip, held)
            payload = await upstream.read()
            if sealed and upstream.status == 200 and self.rewrite_response is not None:
                payload = self.rewrite_response(payload)
            return web.Response(
                body=payload,
                status=upstream.status,
                content_type=upstream.content_type,
            )

    async def _stream(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        flip: int | None = None,
        held: asyncio.Event | None = None,
    ) -> web.StreamResponse:
        """Hand a reply on as it comes, as a proxy does a streamed answer; hang up with it.

        ``flip``: the offset of a byte of the reply to flip on the way; ``held``: what follows
        the final chunk waits for it (``hold_after_final``).
        """
        response = web.StreamResponse(headers={"Content-Type": upstream.content_type})
        await response.prepare(request)
        framer = StreamFramer(expect_receipt=True) if held is not None else None
        offset = 0
        whole = 0  # the stream's bytes up to the end of its last whole chunk
        async for data in upstream.content.iter_any():
            piece = bytearray(data)
            if flip is not None and offset <= flip < offset + len(piece):
                piece[flip - offset] ^= 0x40
            if held is not None and framer is not None:
                whole += len(framer.feed(bytes(piece)))
                if framer.finished:
                    framer = None  # (held once)
                    await response.write(bytes(piece[: whole - offset]))
                    self.held_after_final.set()
                    await held.wait()
                    if request.transport is None or request.transport.is_closing():
                        return response  # the client hung up meanwhile
                    if self.break_after_final:
                        request.transport.abort()  # the connection lost, the stream unfinished
                        return response
                    del piece[: whole - offset]
                    offset = whole
            offset += len(piece)
            await response.write(bytes(piece))
        await response.write_eof()
        return response


class _RawClients:
    """Raw TCP connections (``async with`` opens and closes them) that see a server hang up."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._socks: list[socket.socket] = []

    def closed_by_server(self) -> int:
        """How many of the connections the server has closed or reset, judged without reading.

        Valid inside the ``async with`` block.
        """
        return sum(not _established(sock) for sock in self._socks)

    async def wait_closed_by_server(self, count: int | None = None) -> None:
        """Return once at least ``count`` (default: all) connections are closed by the server.

        Wrap it in ``asyncio.timeout`` to bound the wait.
        """
        wanted = len(self._socks) if count is None else count
        while self.closed_by_server() < wanted:  # noqa: ASYNC110 - TCP state has no event
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> Self:
        try:
            await self._open()
        except BaseException:
            self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    async def _open(self) -> None:
        raise NotImplementedError

    async def _connect(self, *, rcvbuf: int | None = None) -> socket.socket:
        """Connect one more socket; ``rcvbuf`` is set before connecting, so it sets the window."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socks.append(sock)
        sock.setblocking(False)  # noqa: FBT003 - socket's own positional-only API
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        return sock

    def _close(self) -> None:
        for sock in self._socks:
            sock.close()


class HalfOpenClients(_RawClients):
    """``count`` connections that each send the start of a request head, then nothing.

    ``partial`` is sent whole on every connection; the blank line that would end the head never
    comes. Connections the server closes at once (a connection cap) count as closed too.
    """

    def __init__(self, host: str, port: int, count: int, *, partial: bytes = _HALF_REQUEST) -> None:
        super().__init__(host, port)
        self.count = count
        self.partial = partial

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.count):
            sock = await self._connect()
            with contextlib.suppress(ConnectionError):  # already turned away: closed_by_server
                await loop.sock_sendall(sock, self.partial)


class SlowReader(_RawClients):
    """One connection that sends ``request`` whole, reads the reply's status line, then stops.

    Its receive buffer is the smallest the kernel allows, set before connecting so the server
    sees a tiny window: once that and the server's send buffer are full, the server's writes
    block. ``status_line`` is the reply's first line (b"" when the server hung up first) and
    ``received`` everything read so far. A server that closes with unsent bytes still queued
    sends its FIN behind them, so ``closed_by_server()`` sees that close only after
    ``read_rest()``; a reset shows at once.
    """

    def __init__(self, host: str, port: int, request: bytes) -> None:
        super().__init__(host, port)
        self.request = request
        self.status_line = b""
        self.received = bytearray()

    @property
    def status(self) -> int:
        """The reply's status code, or 0 without a well-formed status line."""
        parts = self.status_line.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    async def read_rest(self) -> bytes:
        """Read again, to the end of the connection; return every byte the server sent."""
        await self._read(until_line=False)
        return bytes(self.received)

    async def _open(self) -> None:
        sock = await self._connect(rcvbuf=1)
        with contextlib.suppress(ConnectionError):
            await asyncio.get_running_loop().sock_sendall(sock, self.request)
        await self._read(until_line=True)
        self.status_line = bytes(self.received).split(b"\r\n", 1)[0]

    async def _read(self, *, until_line: bool) -> None:
        """Read until the end of the connection, or only until the first line is in."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError):
            while not (until_line and b"\r\n" in self.received):
                data = await loop.sock_recv(self._socks[0], 64 if until_line else 65536)
                if not data:
                    return
                self.received += data


def _established(sock: socket.socket) -> bool:
    """Whether the kernel still has the connection established: no FIN or reset from the peer."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    return info[0] == _TCP_ESTABLISHED
