"""The public listener under rude clients: half-open heads, slow bodies, readers that stop, floods.

Timeouts are made short with ``Limits`` so each test is quick; no test measures wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import socket
from typing import TYPE_CHECKING

import pytest
import structlog
from aiohttp import web

from common.connections import connection_cap
from gateway.descriptors import ACCEPT_ERROR, AcceptErrorFilter
from gateway.limits import Limits
from gateway.relay import _may_wait
from gateway.shaping import LoopTicker, Shaping, StreamShape
from sealed.encoding import REQUEST_BUCKETS
from sealed.receipt import ReceiptStatus
from sealed.request import HEADER_SIZE, max_request_size
from sealed.stream import Final
from sealed.suites import Suite
from tests.fakes.relay import HalfOpenClients, SegmentingRelay, SlowReader
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.harness import (
    CountingProxy,
    RunningGateway,
    SealedCall,
    post_sealed,
    run_gateway,
    seal_call,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    import aiohttp

    from tests.harness import Clock


def address(running: RunningGateway) -> tuple[str, int]:
    host, port = running.url.removeprefix("http://").split(":")
    return host, int(port)


def raw_request(call: SealedCall) -> bytes:
    """The whole HTTP/1.1 request of a sealed call, as bytes on the wire."""
    head = [
        "POST /v1/sealed/chat/completions HTTP/1.1",
        "Host: gateway",
        f"Content-Length: {len(call.body)}",
        *(f"{name}: {value}" for name, value in call.headers().items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + call.body


# -- heads, bodies, the connection cap -----------------------------------------------------------


async def test_connections_that_never_finish_a_head_are_closed_after_the_header_timeout(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    limits = Limits(header_timeout=0.2)
    async with run_gateway(vllm.url, clock=clock, limits=limits) as running:
        async with HalfOpenClients(*address(running), 3) as half_open:
            async with asyncio.timeout(10):
                await half_open.wait_closed_by_server()
        async with HalfOpenClients(*address(running), 1, partial=b"") as silent:
            async with asyncio.timeout(10):
                await silent.wait_closed_by_server()
        metrics = await running.metrics(http)
        assert "veil_gateway_header_timeouts_total 4.0" in metrics
        assert vllm.requests == []


async def test_a_head_that_arrives_in_pieces_in_time_is_served_and_the_timer_rearms(
    vllm: FakeVLLM, clock: Clock
) -> None:
    limits = Limits(header_timeout=0.5)
    async with run_gateway(vllm.url, clock=clock, limits=limits) as running:
        reader, writer = await asyncio.open_connection(*address(running))
        try:
            writer.write(b"GET /health HTTP/1.1\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"Host: gateway\r\n\r\n")
            await writer.drain()
            status = await reader.readline()
            assert status.startswith(b"HTTP/1.1 200")
            await reader.readuntil(b'{"status": "ok"}')
            writer.write(b"GET /health HTTP/1.1\r\n")  # the next head never ends
            await writer.drain()
            async with asyncio.timeout(10):
                assert await reader.read() == b""  # closed by the re-armed header timer
        finally:
            writer.close()
            await writer.wait_closed()


async def test_connections_past_the_cap_are_closed_at_once(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    limits = Limits(max_connections=4)  # the header timeout (10 s) keeps the rest open
    async with run_gateway(vllm.url, clock=clock, limits=limits) as running:
        async with HalfOpenClients(*address(running), 6) as flood:
            async with asyncio.timeout(10):
                await flood.wait_closed_by_server(2)
            assert flood.closed_by_server() == 2  # at the cap: four held; past it: closed
            metrics = await running.metrics(http)
            assert "veil_gateway_connections 4.0" in metrics
            assert "veil_gateway_connections_refused_total 2.0" in metrics
        registry = running.gateway.metrics.registry
        await wait_until(lambda: registry.get_sample_value("veil_gateway_connections") == 0)
        reply = await post_sealed(http, running.url, seal_call(running))
        assert reply.text == "Sealed hello, world."


@pytest.mark.parametrize(
    ("configured", "upstream", "soft", "cap"),
    [
        (1024, 264, 1024, 728),  # room for every stream's upstream connection beside
        (1024, 264, 128, 48),  # few descriptors: half each way
        (100, 264, 1 << 20, 100),  # the setting, when the limit is high
        (1024, 264, resource.RLIM_INFINITY, 1024),
        (1024, 264, 20, 1),
    ],
)
def test_the_connection_cap_leaves_descriptors_for_upstream_and_a_margin(
    configured: int, upstream: int, soft: int, cap: int
) -> None:
    assert connection_cap(configured, upstream=upstream, soft_limit=soft) == cap


def test_accept_errors_become_one_log_line_a_while() -> None:
    loop = asyncio.new_event_loop()
    try:
        handler = AcceptErrorFilter(interval=3600)
        error = OSError(24, "Too many open files")
        with structlog.testing.capture_logs() as logs:
            for _ in range(1000):
                handler(loop, {"message": ACCEPT_ERROR, "exception": error})
    finally:
        loop.close()
    assert [(e["event"], e["errno"], e["suppressed"]) for e in logs] == [
        ("gateway.accept_failed", 24, 0)
    ]


def test_a_bug_in_asyncios_accept_callback_is_not_told_as_an_accept_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Only an OSError there is accept() failing; anything else (a RuntimeError, a MemoryError)
    # was told as gateway.accept_failed with its type name alone, its traceback dropped, and
    # then left out for ten seconds at a time like the flood it is not.
    loop = asyncio.new_event_loop()
    message = "Exception in callback BaseSelectorEventLoop._accept_connection(<function …>)"
    try:
        handler = AcceptErrorFilter(interval=3600)
        with structlog.testing.capture_logs() as logs, caplog.at_level("ERROR", "asyncio"):
            handler(loop, {"message": message, "exception": RuntimeError("a bug")})
            handler(loop, {"message": message, "exception": OSError(22, "Invalid argument")})
    finally:
        loop.close()
    assert [(e["event"], e["errno"]) for e in logs] == [("gateway.accept_failed", 22)]
    (reported,) = [r for r in caplog.records if r.name == "asyncio"]
    assert reported.getMessage() == message
    assert reported.exc_info is not None
    assert isinstance(reported.exc_info[1], RuntimeError)


async def test_a_body_that_stops_arriving_gets_408_and_a_closed_connection(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    limits = Limits(body_timeout=0.2)
    async with run_gateway(vllm.url, clock=clock, limits=limits) as running:
        call = seal_call(running)
        reader, writer = await asyncio.open_connection(*address(running))
        try:
            request = raw_request(call)
            writer.write(request[: len(request) - 100])  # the last 100 bytes never come
            await writer.drain()
            async with asyncio.timeout(10):
                reply = await reader.read()  # to the end: the gateway closes the connection
        finally:
            writer.close()
            await writer.wait_closed()
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        assert json.loads(body)["error"]["code"] == "body_timeout"
        assert vllm.requests == []
        assert 'veil_gateway_refusals_total{code="body_timeout"} 1.0' in await running.metrics(http)


# -- clients that stop reading, streams that run too long ---------------------------------------


@pytest.mark.parametrize("shaped", [False, True], ids=["per-token", "shaped"])
async def test_a_client_that_stops_reading_is_cut_and_the_model_request_stopped(
    http: aiohttp.ClientSession, clock: Clock, *, shaped: bool
) -> None:
    answer = " ".join(["x" * 60_000] * 100)  # 100 deltas of 60 KB: far more than the buffers
    limits = Limits(client_idle_timeout=0.3)
    shaping = Shaping(StreamShape.TICK, LoopTicker(0.01)) if shaped else None
    async with (
        FakeVLLM(answer=answer, token_delay=0.02) as fake,  # the whole answer: 2 s
        CountingProxy.to(fake.url) as proxy,
        run_gateway(
            proxy.url, clock=clock, limits=limits, models=("veil-test",), shaping=shaping
        ) as gw,
    ):
        call = seal_call(gw)
        async with SlowReader(*address(gw), raw_request(call)) as reader:
            assert reader.status == 200
            async with asyncio.timeout(10):
                await reader.wait_closed_by_server()  # reset: the unread bytes are dropped
        await wait_until(lambda: gw.gateway.active == 0)
        await wait_until(lambda: proxy.closed >= 1)  # the model server's stream is cut
        assert fake.token_times == []  # it never got to the end of the answer
        kept = gw.gateway.receipts.get(call.request_id)
        assert kept is not None
        assert kept.final is not None
        final = Final.from_payload(json.loads(kept.final))
        assert final.finish_reason == "stopped"
        assert final.receipt is not None
        assert final.receipt.receipt.status is ReceiptStatus.STOPPED
        metrics = await gw.metrics(http)
        assert "veil_gateway_client_stalls_total 1.0" in metrics
        assert 'veil_gateway_requests_total{outcome="client_stalled"} 1.0' in metrics


async def test_a_stream_past_the_longest_duration_ends_with_a_time_limit_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = " ".join(f"w{i}" for i in range(200))
    limits = Limits(max_stream_seconds=0.3)
    async with (
        FakeVLLM(answer=answer, token_delay=0.02) as fake,
        CountingProxy.to(fake.url) as proxy,
        run_gateway(proxy.url, clock=clock, limits=limits, models=("veil-test",)) as gw,
    ):
        reply = await post_sealed(http, gw.url, seal_call(gw))
        assert reply.final is not None
        assert reply.final.finish_reason == "time_limit"
        assert not reply.final.is_error
        assert reply.final.receipt is not None
        receipt = reply.final.receipt.receipt
        assert receipt.status is ReceiptStatus.STOPPED
        assert 0 < receipt.completion_tokens == len(reply.texts) < 200
        assert receipt.estimated
        assert receipt.prompt_tokens == 6  # counted by the model server's /tokenize
        await wait_until(lambda: proxy.closed >= 1)
        assert fake.token_times == []


async def test_a_shaped_stream_past_the_longest_duration_ends_with_a_time_limit_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = " ".join(f"w{i}" for i in range(200))
    limits = Limits(max_stream_seconds=0.3)
    shaping = Shaping(StreamShape.TICK, LoopTicker(0.02))
    async with (
        FakeVLLM(answer=answer, token_delay=0.02) as fake,
        CountingProxy.to(fake.url) as proxy,
        run_gateway(
            proxy.url, clock=clock, limits=limits, models=("veil-test",), shaping=shaping
        ) as gw,
    ):
        reply = await post_sealed(http, gw.url, seal_call(gw))
        assert reply.final is not None
        assert reply.final.finish_reason == "time_limit"
        assert reply.final.receipt is not None
        receipt = reply.final.receipt.receipt
        assert receipt.status is ReceiptStatus.STOPPED
        assert answer.startswith(reply.text)
        assert 0 < receipt.completion_tokens == len(split_tokens(reply.text)) < 200
        deltas = reply.chunk_lengths[:-1]
        assert deltas == sorted(deltas)  # one record size, grown at most, never shrunk
        await wait_until(lambda: proxy.closed >= 1)
        assert fake.token_times == []


# -- every request read whole ---------------------------------------------------------------------


def chat_filling(bucket: int) -> dict[str, object]:
    """A chat whose sealed plaintext lands in ``bucket`` (just above the bucket before it)."""
    previous = REQUEST_BUCKETS[REQUEST_BUCKETS.index(bucket) - 1] if bucket > 1024 else 0
    overhead = 300  # the inner request's other fields, the message's JSON and the length prefix
    size = max(16, previous + (bucket - previous) // 2 - overhead)
    return {"model": "veil-test", "messages": [{"role": "user", "content": "a" * size}]}


@pytest.mark.parametrize("suite", [Suite.X25519, Suite.MLKEM768_X25519], ids=lambda s: s.label)
async def test_every_bucket_arrives_whole_through_a_segmenting_relay(
    http: aiohttp.ClientSession, clock: Clock, suite: Suite
) -> None:
    async with (
        FakeVLLM(answer="read whole", max_model_len=1 << 22) as fake,
        run_gateway(fake.url, clock=clock, suite=suite) as running,
        SegmentingRelay(*address(running), segment=1448, delay=0.001) as relay,
    ):
        for bucket in REQUEST_BUCKETS:
            chat = chat_filling(bucket)
            call = seal_call(running, chat)
            # in this very bucket: header, KEM encapsulation, padded plaintext, AEAD tag
            assert len(call.body) == HEADER_SIZE + suite.hpke_enc_length + bucket + 16
            reply = await post_sealed(http, relay.url, call)
            assert (reply.status, reply.text) == (200, "read whole"), bucket
            assert fake.requests[-1]["messages"] == chat["messages"]
        assert len(call.body) == max_request_size(suite)  # the last one was the largest
        assert relay.segments > len(call.body) // 1448


async def test_a_write_said_not_to_wait_never_waits_for_a_client_that_stops_reading() -> None:
    # Writes that ``_may_wait`` says cannot wait run without the client idle timer: that is
    # only safe if such a write never waits. A real aiohttp response to a client that reads
    # nothing until a write waits, then reads until the write could go on, ten times over.
    # Each write is started by hand: one that waits must have been said to wait; one that did
    # not wait, said not to, must not have been able to (aiohttp waits only once the bytes
    # since its last wait pass a limit: the wait is asked again). And while the client drains
    # a waiting write, no write may be said not to wait.
    said_quick = suspended = paused_probes = 0
    wrongly_quick: list[tuple[int, int]] = []  # (size, buffered) of writes said not to wait
    reading = asyncio.Event()
    finished = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal said_quick, suspended, paused_probes
        response = web.StreamResponse()
        await response.prepare(request)
        rng = random.Random(1129)  # noqa: S311 -- a repeatable test, not a secret
        transport = request.transport
        assert transport is not None
        # Marks far apart: a waiting write drains from above the high one to the low one
        # through every state between them (the claim holds for any marks).
        transport.set_write_buffer_limits(high=1 << 18, low=1 << 12)
        sock = transport.get_extra_info("socket")  # and a kernel that takes little at a time
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        sizes = [40, 300, 1200, 5000, 20000]
        while suspended < 10:
            size = rng.choice(sizes)
            quick = not _may_wait(request, size)
            buffered = transport.get_write_buffer_size()
            if _runs_at_once(response.write(b"x" * size)):
                said_quick += quick
                if quick and not _runs_at_once(request.writer.drain()):
                    wrongly_quick.append((size, buffered))
                continue
            if quick:
                wrongly_quick.append((size, buffered))
            suspended += 1
            reading.set()  # the client reads until the write could go on
            while not _runs_at_once(request.writer.drain()):
                for probe in sizes:
                    paused_probes += 1
                    if not _may_wait(request, probe):
                        wrongly_quick.append((probe, transport.get_write_buffer_size()))
                await asyncio.sleep(0)  # the client reads
            reading.clear()
        finished.set()
        transport.abort()
        return response

    await _post_and_read_when_asked(handler, reading, finished)
    assert wrongly_quick == []
    assert suspended == 10
    assert said_quick > 0
    assert paused_probes > 1000


def _runs_at_once(operation: Coroutine[object, None, None]) -> bool:
    """Start ``operation``; True if it ran to its end without waiting (else it is dropped)."""
    try:
        waits_for = operation.send(None)
    except StopIteration:
        return True
    if isinstance(waits_for, asyncio.Future):  # a task taking the future clears this flag
        waits_for._asyncio_future_blocking = False
    operation.close()
    return False


async def _post_and_read_when_asked(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    reading: asyncio.Event,
    finished: asyncio.Event,
) -> None:
    """Serve ``handler``; POST to it from a client that reads only while ``reading`` is set."""
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the smallest window
    client.setblocking(False)  # noqa: FBT003 -- the socket module's own signature
    try:
        await loop.sock_connect(client, ("127.0.0.1", runner.addresses[0][1]))
        await loop.sock_sendall(client, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        reader = asyncio.ensure_future(_read_when_asked(client, reading))
        async with asyncio.timeout(20):
            await finished.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reader
    finally:
        client.close()
        await runner.cleanup()


async def _read_when_asked(client: socket.socket, reading: asyncio.Event) -> None:
    """Read from ``client`` while ``reading`` is set, to the connection's end."""
    loop = asyncio.get_running_loop()
    while True:
        await reading.wait()
        if not await loop.sock_recv(client, 65536):
            return


async def test_no_reply_of_the_public_listener_names_its_software_or_version(
    http: aiohttp.ClientSession,
) -> None:
    # aiohttp's default "Server: Python/3.11 aiohttp/3.x" tells a stranger which published
    # flaws to try; the public port's malformed-request reply already said "Veil", every other
    # reply named them.
    async with FakeVLLM() as vllm, run_gateway(vllm.url) as running:
        servers = {}
        for name, method, path in [
            ("health", "GET", "/health"),
            ("keys", "GET", "/v1/keys"),
            ("no such path", "GET", "/nothing"),
            ("wrong method", "GET", "/v1/sealed/cancel"),
            ("unsigned", "POST", "/v1/sealed/chat/completions"),
        ]:
            async with http.request(method, running.url + path) as reply:
                servers[name] = reply.headers.get("Server")
    assert servers == dict.fromkeys(servers, "Veil")
