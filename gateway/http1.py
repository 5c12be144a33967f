"""A lean HTTP/1.1 client for the model server's streamed replies: one request a connection.

The gateway asks the model server for a chat completion over a connection of its own
(``Connection: close``) and reads the reply's body straight from the event loop's protocol
callbacks: no parser object or stream-reader entry per HTTP chunk. ``ChatStream``
(``gateway.upstream``) takes the reply's bytes at its own times (a shaped stream: once a tick)
and ``BodyDecoder`` undoes the body's framing with bytes operations, a few a chunk.

It is as strict as a general HTTP client: a status line and header fields of the form RFC 9112
gives (CRLF line ends, no folded lines), a head of at most ``MAX_HEAD_BYTES``; a body framed
by ``Transfer-Encoding: chunked`` (hexadecimal sizes, extensions and trailers allowed and
ignored, each line bounded; empty elements of the ``Transfer-Encoding`` list, as in
``chunked,``, ignored), by ``Content-Length``, or by the connection's close. A reply with both
framings, several different lengths, or another transfer or content coding is refused. A
connection that closes before its body's end is a failure (``backend``, "closed the stream"),
never a short body. Nothing here raises anything but ``BackendFailure``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import re
import socket
from typing import TYPE_CHECKING

from common.connections import transfer_codings
from gateway.events import BackendFailure, stalled

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

# The longest reply head (status line and header fields) taken.
MAX_HEAD_BYTES = 64 << 10
# The longest chunk-size line (the size and any extensions), and all trailer fields together.
MAX_SIZE_LINE = 4096
MAX_TRAILER_BYTES = 64 << 10
# Received bytes held before the connection stops reading until they are taken.
HIGH_WATER = 1 << 20
# One read straight from the socket (``Reply.read_now``), as asyncio's own reads.
READ_SIZE = 256 << 10
# The longest wait for the TCP (and TLS) connection to the model server.
CONNECT_TIMEOUT = 10.0
# How long a looked-up address of the model server's host is used (as aiohttp's default).
DNS_TTL = 10.0
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*")
_HEX = b"0123456789abcdefABCDEF"
_CHUNK_HEAD = re.compile(rb"([0-9a-fA-F]{1,15})\r\n")  # a size line without extensions
_MAX_SIZE_DIGITS = 15  # 2**60 bytes: beyond any body
_SWITCHING = 101
_OK_MIN = 200


def malformed(what: str) -> BackendFailure:
    """The failure of a reply that breaks HTTP/1.1."""
    return BackendFailure("backend", 502, f"model server sent a malformed reply ({what})")


def truncated() -> BackendFailure:
    """The failure of a reply whose connection closed before its body's end."""
    return BackendFailure("backend", 502, "model server closed the stream")


def unreachable() -> BackendFailure:
    """The failure of a model server that cannot be reached, or closed before any reply."""
    return BackendFailure("unavailable", 503, "model server unreachable")


class _Connection(asyncio.Protocol):
    """The connection's bytes as they arrive, held until taken; its end, and who to tell."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.held: list[bytes] = []
        self.size = 0  # bytes held
        self.closed = False  # the model server closed, or the connection failed
        self.on_close: Callable[[], None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # a stream transport

    def data_received(self, data: bytes) -> None:
        self.held.append(data)
        self.size += len(data)
        if self.size > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._closed()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()
        _ = exc  # a reset reads as a close: the body's framing says whether it was whole

    def _closed(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake()
            if self.on_close is not None:
                self.on_close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def read_now(self, fd: int) -> None:
        """Read the socket ``fd`` directly until it has nothing more (or ``HIGH_WATER``)."""
        taken = 0
        while taken < HIGH_WATER and not self.closed:
            try:
                data = os.read(fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # a reset: the connection is over
                self._closed()
                return
            if not data:
                self._closed()
                return
            self.data_received(data)
            taken += len(data)
            if len(data) < READ_SIZE:
                return  # the kernel had no more a moment ago: the next read would wait

    def abort(self) -> None:
        """Drop the connection at once (nothing more is read or sent)."""
        if self.transport is not None:
            self.transport.abort()

    def take(self) -> bytes:
        """Every byte held, in order (empty when none); reading resumes if it had stopped."""
        held = self.held
        if not held:
            return b""
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        self.size = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def wait(self) -> None:
        """Return once bytes are held or the connection has closed."""
        if self.held or self.closed:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None


class BodyDecoder:
    """A reply body's framing undone, a received piece at a time (``feed``).

    ``length`` is the ``Content-Length``; ``chunked`` for ``Transfer-Encoding: chunked``;
    neither: the body runs to the connection's close. ``complete`` turns true at the
    body's end; malformed framing raises ``BackendFailure`` (the body decoded before it is
    returned first by ``feed``, the failure by the next call).
    """

    def __init__(self, *, length: int | None = None, chunked: bool = False) -> None:
        self._chunked = chunked
        self._left = length if length is not None else -1  # -1: to the close
        self._rest = b""  # an unfinished size line, chunk end or trailer kept for the next feed
        self._in_data = False  # inside a chunk's data (``_left`` bytes of it still to come)
        self._trailers = -1  # trailer bytes so far; -1: not in the trailers
        self._failure: BackendFailure | None = None
        self.complete = length == 0 and not chunked

    def feed(self, data: bytes) -> bytes:
        """The body bytes ``data`` completes (framing removed)."""
        if self._failure is not None:
            raise self._failure
        if self.complete:
            return b""
        if not self._chunked:
            if self._left < 0:
                return data
            body = data[: self._left]
            self._left -= len(body)
            self.complete = self._left == 0
            return body
        if self._rest:
            data = self._rest + data
            self._rest = b""
        out: list[bytes] = []
        try:
            self._dechunk(data, out)
        except BackendFailure as exc:
            if not out:
                raise
            self._failure = exc
        return out[0] if len(out) == 1 else b"".join(out)

    def end(self) -> None:
        """The connection closed: the body ends here if it runs to the close, else it is cut."""
        if self._failure is not None:
            raise self._failure
        if self.complete:
            return
        if self._chunked or self._left >= 0:
            self._failure = truncated()
            raise self._failure
        self.complete = True

    def _dechunk(self, data: bytes, out: list[bytes]) -> None:  # noqa: C901, PLR0912 -- one loop, its states
        pos = 0
        end = len(data)
        while pos < end:
            if self._trailers >= 0:
                pos = self._trailer(data, pos)
                if pos < 0:
                    return
                continue
            if self._in_data:
                take = min(self._left, end - pos)
                out.append(data[pos : pos + take])
                pos += take
                self._left -= take
                if self._left:
                    return
                self._in_data = False
                continue
            if self._left == 0:  # a chunk's data is over: its CRLF
                if end - pos < 2:  # noqa: PLR2004 -- the CRLF's two bytes
                    self._rest = data[pos:]
                    return
                if data[pos : pos + 2] != b"\r\n":
                    raise malformed("chunk without its CRLF")
                pos += 2
                self._left = -1
                continue
            after = _whole_chunks(data, pos, out)  # the usual case, in a loop of its own
            if after > pos:
                pos = after
                continue
            line_end = data.find(b"\r\n", pos, pos + MAX_SIZE_LINE + 2)
            if line_end < 0:
                if end - pos > MAX_SIZE_LINE:
                    raise malformed("chunk-size line too long")
                self._rest = data[pos:]
                return
            line = data[pos:line_end]
            if b";" in line:
                line = line.split(b";", 1)[0].rstrip(b" \t")
            if not line or len(line) > _MAX_SIZE_DIGITS or line.translate(None, _HEX):
                raise malformed("chunk size")
            size = int(line, 16)
            pos = line_end + 2
            if size == 0:
                self._trailers = 0
                continue
            if pos + size + 2 <= end:  # the usual case: the whole chunk is here
                if data[pos + size : pos + size + 2] != b"\r\n":
                    raise malformed("chunk without its CRLF")
                out.append(data[pos : pos + size])
                pos += size + 2
                continue
            self._left = size
            self._in_data = True

    def _trailer(self, data: bytes, pos: int) -> int:
        """Take one trailer line (ignored) or the body's last CRLF; -1 when data runs out."""
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            if self._trailers + len(data) - pos > MAX_TRAILER_BYTES:
                raise malformed("trailers too long")
            self._rest = data[pos:]
            return -1
        if line_end == pos:
            self.complete = True
            return len(data)  # anything after the body's end is not read
        self._trailers += line_end + 2 - pos
        if self._trailers > MAX_TRAILER_BYTES:
            raise malformed("trailers too long")
        if not _FIELD.fullmatch(data, pos, line_end):
            raise malformed("trailer field")
        return line_end + 2


def _whole_chunks(data: bytes, pos: int, out: list[bytes]) -> int:
    """Take the whole chunks with bare sizes from ``pos`` on; where they stop.

    The usual body: each chunk a size of hexadecimal digits, its data and CRLF, all here. The
    rest (extensions, a chunk cut by the read, the last chunk, anything malformed) is left to
    ``_dechunk``'s general loop.
    """
    match = _CHUNK_HEAD.match
    while (head := match(data, pos)) is not None:
        start = head.end()
        stop = start + int(head[1], 16)
        if start == stop or not data.startswith(b"\r\n", stop):
            break
        out.append(data[start:stop])
        pos = stop + 2
    return pos


class Target:
    """Where requests go: the model server's address, and the head's fixed part.

    A host name is looked up at most every ``DNS_TTL`` seconds (and again after a connection
    to every address it gave failed), not once a request; an IP address is used as it is.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ssl: ssl.SSLContext | None,
        path_prefix: str,
        authority: str,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl
        self.path_prefix = path_prefix
        self.authority = authority  # the Host field's value
        self._numeric = _is_address(host)
        self._addresses = [host] if self._numeric else []
        self._looked_up = -math.inf

    def head(self, path: str, length: int, extra: dict[str, str]) -> bytes:
        """A POST's head for a JSON body of ``length`` bytes."""
        fields = "".join(f"{name}: {value}\r\n" for name, value in extra.items())
        return (
            f"POST {self.path_prefix}{path} HTTP/1.1\r\nHost: {self.authority}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
            f"Accept: text/event-stream\r\nConnection: close\r\n{fields}\r\n"
        ).encode("latin-1")

    async def connect(self) -> _Connection:
        """A new connection to the model server (``OSError`` when none can be made)."""
        loop = asyncio.get_running_loop()
        if not self._numeric and loop.time() - self._looked_up > DNS_TTL:
            found = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self._addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
            self._looked_up = loop.time()
        failure: OSError = OSError(f"no address for {self.host}")
        for address in self._addresses:
            try:
                _, connection = await loop.create_connection(
                    _Connection,
                    address,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
            except OSError as exc:
                failure = exc
            else:
                return connection
        self._looked_up = -math.inf  # look the name up again next time
        raise failure


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Reply:
    """One reply being read: status, header fields, and its body as it comes (``take``)."""

    def __init__(
        self, connection: _Connection, status: int, fields: dict[str, str], rest: bytes
    ) -> None:
        self.status = status
        self.fields = fields
        self._connection = connection
        self._decoder = _decoder_for(fields)
        self._rest = rest  # body bytes received with the head

    @property
    def socket(self) -> socket.socket | None:
        """The connection's socket, for ``SO_RCVLOWAT`` and ``read_now``: plain TCP only."""
        transport = self._connection.transport
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return None
        sock: socket.socket | None = transport.get_extra_info("socket")
        return sock

    def read_now(self) -> None:
        """Take in what the kernel holds for the connection now, without waiting.

        For a plain TCP connection whose bytes wait in the kernel (``SO_RCVLOWAT``): they are
        read here, at the reader's time, rather than on a turn of the event loop. At most
        ``HIGH_WATER`` bytes a call; the close is seen here too.
        """
        sock = self.socket
        if sock is not None:
            self._connection.read_now(sock.fileno())

    @property
    def held(self) -> int:
        """Received bytes not taken yet."""
        return self._connection.size + len(self._rest)

    @property
    def at_eof(self) -> bool:
        """True when the body is over: whole, or cut by the connection's close."""
        return self._decoder.complete or (self._connection.closed and not self.held)

    def take(self) -> bytes:
        """The body bytes received since the last call; ``BackendFailure`` for bad framing.

        A failure comes after the bytes before it: with them, the next call raises it. Once
        the connection has closed and everything is taken, a body cut short raises
        ``truncated``.
        """
        data = self._connection.take()
        if self._rest:
            data = self._rest + data
            self._rest = b""
        body = self._decoder.feed(data)
        if not body and self._connection.closed and not self._decoder.complete:
            self._decoder.end()
        return body

    async def wait(self) -> None:
        """Return once bytes wait to be taken, or the body or the connection is over."""
        if self._rest or self._decoder.complete:
            return
        await self._connection.wait()

    def on_close(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` when the connection closes, soon if it has (None: stop)."""
        self._connection.on_close = callback
        if callback is not None and self._connection.closed:
            asyncio.get_running_loop().call_soon(callback)

    def close(self) -> None:
        """Close the connection, so the model server stops generating.

        No wait: the event loop lets it go on its next turn, so nothing can delay a stop.
        """
        transport = self._connection.transport
        if transport is not None and not transport.is_closing():
            transport.close()


def _decoder_for(fields: dict[str, str]) -> BodyDecoder:
    """The body's framing from its header fields (``malformed`` for what is not supported)."""
    coding = fields.get("content-encoding", "identity").strip().lower()
    if coding not in {"", "identity"}:
        raise malformed("content coding")
    transfer = fields.get("transfer-encoding")
    if transfer is not None:
        if "content-length" in fields:
            raise malformed("both Transfer-Encoding and Content-Length")
        if transfer_codings(transfer) != ["chunked"]:  # (empty list elements ignored)
            raise malformed("transfer coding")
        return BodyDecoder(chunked=True)
    length = fields.get("content-length")
    if length is None:
        return BodyDecoder()
    values = {v.strip() for v in length.split(",")}
    value = values.pop()
    # ASCII digits only: ``isdigit`` takes "²" (latin-1's 0xB2), which ``int`` refuses.
    if values or not (value.isascii() and value.isdigit()) or len(value) > _MAX_SIZE_DIGITS:
        raise malformed("Content-Length")
    return BodyDecoder(length=int(value))


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and header fields (names lowercased; repeated fields joined by commas)."""
    lines = head.split(b"\r\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise malformed("status line")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:
            raise malformed("header field")
        name = field[1].decode("ascii").lower()
        value = field[2].decode("latin-1")
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return int(status_line[1]), fields


async def _read_head(connection: _Connection) -> tuple[int, dict[str, str], bytes]:
    """The first final (non-1xx) head; its status, fields and the body bytes after it."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_HEAD_BYTES:
                raise malformed("head too long")
            if connection.closed and not connection.held:
                raise unreachable() if not data else truncated()
            await connection.wait()
            data += connection.take()
            continue
        if end > MAX_HEAD_BYTES:
            raise malformed("head too long")
        status, fields = _parse_head(data[:end])
        data = data[end + 4 :]
        if status == _SWITCHING:
            raise malformed("protocol switch")
        if status >= _OK_MIN:
            return status, fields, data
        # 1xx: an interim reply; the final one follows


async def post(  # noqa: PLR0913 -- a request, its limit, and what runs while it waits
    target: Target,
    path: str,
    body: bytes,
    fields: dict[str, str],
    *,
    idle_timeout: float,
    sent: Callable[[], Awaitable[None]] | None = None,
) -> Reply:
    """POST ``body`` and read the reply's head (within ``idle_timeout``; ``stalled`` after).

    ``sent``, if given, runs once the request is on its way, before the head is waited for
    (the gateway answers its own client meanwhile); what it raises ends the request. The caller
    closes the ``Reply`` (``close``) however it ends.
    """
    connection: _Connection | None = None
    try:
        async with asyncio.timeout(idle_timeout):
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    connection = await target.connect()
            except TimeoutError as exc:
                raise unreachable() from exc
            except OSError as exc:
                raise unreachable() from exc
            transport = connection.transport
            if transport is None:  # pragma: no cover -- create_connection sets it
                raise unreachable()
            transport.write(target.head(path, len(body), fields) + body)
        if sent is not None:
            await sent()
        async with asyncio.timeout(idle_timeout):
            status, head_fields, rest = await _read_head(connection)
    except TimeoutError as exc:
        if connection is not None:
            connection.abort()
        raise stalled() from exc
    except BaseException:
        if connection is not None:
            connection.abort()
        raise
    return Reply(connection, status, head_fields, rest)
