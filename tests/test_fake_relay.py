"""The relays and rude clients in tests/fakes/relay.py do to the bytes what they promise.

Copyright 2026 the Veil authors. Licensed under the Apache License 2.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.relay import HalfOpenClients, RecordingProxy, SegmentingRelay, SlowReader

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

HALF_HEAD = b"POST /v1/sealed/chat/completions HTTP/1.1\r\nHost: x\r\n"


class EchoServer:
    """An aiohttp app that answers every POST with its body, counting the reads it took."""

    def __init__(self) -> None:
        self.reads: list[int] = []  # per request: how many pieces the body arrived in
        self.port = 0
        app = web.Application()
        app.router.add_post("/echo", self._echo)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)

    async def _echo(self, request: web.Request) -> web.Response:
        body = bytearray()
        pieces = 0
        async for chunk in request.content.iter_any():
            pieces += 1
            body += chunk
        self.reads.append(pieces)
        return web.Response(body=bytes(body))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EchoServer]:
        """Serve on a free port for the block."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        try:
            yield self
        finally:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A plain asyncio TCP server on a free port; yields the port."""
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_segmenting_relay_delivers_a_large_body_intact_in_many_reads() -> None:
    body = bytes(range(256)) * 1200  # 300 KB
    async with (
        EchoServer().running() as echo,
        SegmentingRelay("127.0.0.1", echo.port, segment=4096, delay=0.002) as relay,
        aiohttp.ClientSession() as session,
        session.post(f"{relay.url}/echo", data=body) as response,
    ):
        echoed = await response.read()

    assert response.status == 200
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(body).digest()
    assert len(echo.reads) == 1
    assert echo.reads[0] > 10  # piece by piece: straight through it takes about two reads
    assert relay.segments >= len(body) // 4096
    assert relay.connections == 1


async def test_segmenting_relay_rejects_an_empty_segment() -> None:
    with pytest.raises(ValueError, match="segment"):
        SegmentingRelay("127.0.0.1", 1, segment=0)


async def test_relay_to_a_dead_target_closes_the_client_connection() -> None:
    with socket.socket() as unused:  # a port nothing listens on once this closes
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    async with (
        SegmentingRelay("127.0.0.1", dead_port) as relay,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(aiohttp.ClientConnectionError):  # closed or reset, never answered
            await session.post(f"{relay.url}/echo", data=b"lost")

    assert relay.connections == 1
    assert relay.segments == 0


async def test_recording_proxy_still_records_both_directions() -> None:
    async with (
        EchoServer().running() as echo,
        RecordingProxy("127.0.0.1", echo.port) as proxy,
        aiohttp.ClientSession() as session,
    ):
        for word in (b"first-ping", b"second-ping"):
            async with session.post(f"{proxy.url}/echo", data=word) as response:
                assert await response.read() == word

    assert proxy.upstream.count(b"POST /echo HTTP/1.1") == 2
    assert proxy.downstream.count(b"HTTP/1.1 200 OK") == 2
    assert b"second-ping" in proxy.upstream
    assert b"second-ping" in proxy.downstream
    assert proxy.captured == bytes(proxy.upstream) + bytes(proxy.downstream)
    assert proxy.connections == 1  # one kept-alive connection carried both


def arm_reset(writer: asyncio.StreamWriter) -> None:
    """Make closing this connection send a reset instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
async def test_half_open_clients_see_the_server_hang_up(*, reset: bool) -> None:
    heads: list[bytes] = []
    held: list[asyncio.StreamWriter] = []
    all_in = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readexactly(len(HALF_HEAD)))
        held.append(writer)
        if len(held) == 3:
            all_in.set()

    async with raw_server(hold) as port, HalfOpenClients("127.0.0.1", port, 3) as clients:
        await asyncio.wait_for(all_in.wait(), timeout=5)
        assert clients.closed_by_server() == 0  # the server holds them, waiting for the rest
        for writer in held[:2]:
            if reset:
                arm_reset(writer)
            writer.close()
        await asyncio.wait_for(clients.wait_closed_by_server(2), timeout=5)
        assert clients.closed_by_server() == 2
        held[2].close()
        await asyncio.wait_for(clients.wait_closed_by_server(), timeout=5)
        assert clients.closed_by_server() == 3

    assert heads == [HALF_HEAD] * 3  # each sent the partial head and nothing more


async def test_half_open_clients_count_connections_turned_away_at_once() -> None:
    async def turn_away(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    partial = b"GET / HTTP/1.1\r\n"
    async with (
        raw_server(turn_away) as port,
        HalfOpenClients("127.0.0.1", port, 4, partial=partial) as clients,
    ):
        await asyncio.wait_for(clients.wait_closed_by_server(), timeout=5)

        assert clients.closed_by_server() == 4


async def test_slow_reader_stops_reading_after_the_status_line() -> None:
    body = b"x" * 8_000_000  # more than the kernel's largest send buffer (4 MiB)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    requests: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []
    drained = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writers.append(writer)
        writer.write(head + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        drained.set()

    request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
    async with raw_server(answer) as port, SlowReader("127.0.0.1", port, request) as slow:
        assert (slow.status, slow.status_line) == (200, b"HTTP/1.1 200 OK")
        assert len(slow.received) <= 64  # it read the status line and little more
        with pytest.raises(TimeoutError):  # the server's write is stuck on the idle reader
            await asyncio.wait_for(drained.wait(), timeout=0.3)
        assert slow.closed_by_server() == 0

        writers[0].transport.abort()  # the server gives up on the reader
        rest = await asyncio.wait_for(slow.read_rest(), timeout=10)

        assert slow.closed_by_server() == 1
        assert rest.startswith(head)
        assert len(rest) < len(head) + len(body)  # the unsent tail was dropped

    assert requests == [request]


async def test_slow_reader_sees_a_reset_without_reading() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writers.append(writer)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 8_000_000)

    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    async with raw_server(answer) as port, SlowReader("127.0.0.1", port, request) as slow:
        assert slow.status == 200
        assert slow.closed_by_server() == 0
        arm_reset(writers[0])
        writers[0].transport.abort()

        await asyncio.wait_for(slow.wait_closed_by_server(), timeout=5)

        assert slow.closed_by_server() == 1


async def test_slow_reader_without_a_reply_has_no_status() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with (
        raw_server(hang_up) as port,
        SlowReader("127.0.0.1", port, b"GET / HTTP/1.1\r\n\r\n") as slow,
    ):
        assert (slow.status, slow.status_line) == (0, b"")
        assert slow.closed_by_server() == 1
