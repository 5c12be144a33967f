"""The HTTP edges every guarded listener shares (the gateway's, the webhook, the Mini App).

Each test runs the same rude client against each listener, on real sockets (no proxy in
between): a body in a transfer coding we do not read, a client that keeps sending after its
body was refused, bytes past a request's Content-Length, pipelined requests (read, or never
read). Amounts are counted in bytes; no test measures wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from structlog.testing import capture_logs

from common.connections import LINGER_BYTES
from gateway.limits import Limits
from sealed.auth import CLIENT_KEY_HEADER
from sealed.encoding import b64e
from tests.botstack import WEBHOOK_SECRET, running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_VERIFY_KEY, run_gateway
from tests.miniapp import init_data, webapp_stack
from tests.test_bot_listeners import (
    address,
    closed_by_server,
    connection,
    read_reply,
    start_update,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

LISTENERS = ["gateway", "webhook", "webapp"]
# A body each listener answers in its own words: the gateway's 401 (not signed), the webhook's
# 200 (an update), the Mini App's JSON 400 (not a relay request).
ANSWERED = {
    "gateway": (b"not a sealed request", 401),
    "webhook": (start_update(1), 200),
    "webapp": (b"not a sealed request", 400),
}
# The status each listener gives a body past its limit (the Mini App's in its JSON, ``too_large``).
TOO_LARGE = {"gateway": 413, "webhook": 413, "webapp": 413}
# A client that never stops sending is cut within this much: the drain's LINGER_BYTES, plus
# what the kernel's buffers on both ends hold (a few MiB on loopback). aiohttp alone read
# gigabytes in its 10 s.
CUT_WITHIN = LINGER_BYTES + (32 << 20)
PIECE = b"x" * (1 << 16)


@contextlib.asynccontextmanager
async def listener(
    name: str, tmp_path: Path, header_timeout: float = 10.0
) -> AsyncIterator[tuple[str, int, str]]:
    """The listener ``name`` running: its host, its port, and a POST head without framing.

    The head goes to the path that reads a body, with what the listener asks for before it
    reads one (the gateway's pinned client key, the webhook's secret, the Mini App's launch
    data).
    """
    limits = Limits(header_timeout=header_timeout)
    if name == "gateway":
        async with FakeVLLM() as vllm, run_gateway(vllm.url, limits=limits) as gateway:
            # A pinned client's key: an unpinned one is refused on its headers (401), unread.
            head = (
                "POST /v1/sealed/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
                f"{CLIENT_KEY_HEADER}: {b64e(CLIENT_VERIFY_KEY)}\r\n"
            )
            yield (*address(gateway.url), head)
    elif name == "webhook":
        async with running_stack(
            tmp_path, webhook=True, bot_header_timeout=header_timeout
        ) as stack:
            head = (
                "POST /telegram/hook HTTP/1.1\r\nHost: bot.example.com\r\n"
                f"X-Telegram-Bot-Api-Secret-Token: {WEBHOOK_SECRET}\r\n"
            )
            yield (*address(stack.webhook_url), head)
    else:
        async with webapp_stack(tmp_path, bot_header_timeout=header_timeout) as stack:
            assert stack.veil.webapp is not None
            head = (
                "POST /app/api/relay HTTP/1.1\r\nHost: veil.example\r\n"
                f"Authorization: tma {init_data()}\r\n"
            )
            yield (*address(stack.veil.webapp), head)


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_body_in_a_transfer_coding_we_do_not_read_gets_a_bare_501(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp read "gzip, chunked" as plain chunked (the gzip ignored): the gateway said 401,
    # the others read the still-compressed bytes. RFC 9112 §6.1: a coding not understood is 501.
    codings = ["gzip, chunked", "deflate, chunked"]
    async with listener(name, tmp_path) as (host, port, head):
        with capture_logs() as logs, caplog.at_level(logging.DEBUG, logger="aiohttp"):
            for coding in codings:
                async with connection(host, port) as (reader, writer):
                    writer.write(f"{head}Transfer-Encoding: {coding}\r\n\r\n".encode())
                    writer.write(b"5\r\nhello\r\n0\r\n\r\n")
                    await writer.drain()
                    async with asyncio.timeout(10):
                        status, headers, body = await read_reply(reader)
                    assert (status, body) == (501, b"Not Implemented"), coding
                    assert headers["connection"] == "close"
                    await closed_by_server(reader)
    malformed = [e for e in logs if e["event"] == "http.malformed"]
    assert [(e["status"], e["error"]) for e in malformed] == [
        (501, "UnsupportedTransferCoding")
    ] * len(codings)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_chunked_list_with_empty_elements_is_read_as_chunked(
    name: str, tmp_path: Path
) -> None:
    # RFC 9110 §5.6.1: a recipient MUST accept and ignore empty list elements, so ", chunked" is
    # the list "chunked"; it got the bare 501. A real coding beside chunked, chunked twice, or a
    # list with no coding at all is still refused. An empty element after chunked is refused
    # by aiohttp's parser (llhttp) with the bare 400 before any of our code sees the request:
    # it takes the empty element for the final coding (RFC 9112 §6.3: 400 and close), a
    # refusal that cannot frame a body differently from a proxy in front (see connections.py).
    body, answered = ANSWERED[name]
    framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    codings = {", chunked": answered, " ,, Chunked": answered, "chunked,": 400, ",": 400}
    codings |= {"gzip, , chunked": 501, ", deflate,, chunked": 501}
    async with listener(name, tmp_path) as (host, port, head):
        for coding, expected in codings.items():
            async with connection(host, port) as (reader, writer):
                writer.write(f"{head}Transfer-Encoding: {coding}\r\n\r\n".encode() + framed)
                await writer.drain()
                async with asyncio.timeout(10):
                    status, _, _ = await read_reply(reader)
                assert status == expected, coding


async def send_until_cut(writer: asyncio.StreamWriter, most: int) -> int:
    """Send ``most`` bytes or until the server cuts the connection; how many were sent."""
    sent = 0
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(30):  # a server that stops reading but never closes
            while sent < most:
                writer.write(PIECE)
                await writer.drain()
                sent += len(PIECE)
    return sent


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_client_that_keeps_sending_after_a_refusal_is_cut_within_bounded_bytes(
    name: str, tmp_path: Path
) -> None:
    # aiohttp drained a refused body for 10 s however fast it came: 7.8 GB on loopback.
    async with (
        listener(name, tmp_path) as (host, port, head),
        connection(host, port) as (reader, writer),
    ):
        writer.write(f"{head}Content-Length: {1 << 40}\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            status, _, _ = await read_reply(reader)  # the refusal arrives whole
        assert status == TOO_LARGE[name]
        sent = await send_until_cut(writer, 8 * CUT_WITHIN)
        assert sent < CUT_WITHIN


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_client_that_keeps_sending_after_a_501_is_cut_within_bounded_bytes(
    name: str, tmp_path: Path
) -> None:
    # The 501 is given before any handler, so its body was not bounded as a refused one is:
    # aiohttp drained it for 10 s however fast it came.
    chunk = b"%x\r\n%s\r\n" % (len(PIECE), PIECE)
    async with (
        listener(name, tmp_path) as (host, port, head),
        connection(host, port) as (reader, writer),
    ):
        writer.write(f"{head}Transfer-Encoding: gzip, chunked\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            status, _, _ = await read_reply(reader)
        assert status == 501
        sent = 0
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(30):  # a server that stops reading but never closes
                while sent < 8 * CUT_WITHIN:
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
        assert sent < CUT_WITHIN


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_refused_body_sent_to_its_end_before_reading_still_gets_its_refusal(
    name: str, tmp_path: Path
) -> None:
    # A client that finishes sending before it reads (most do) must not be reset: the unread
    # rest of its body, up to LINGER_BYTES, is drained after the reply.
    size = LINGER_BYTES // 2  # past every listener's limit (about 1 MiB), within the drain
    async with (
        listener(name, tmp_path) as (host, port, head),
        connection(host, port) as (reader, writer),
    ):
        writer.write(f"{head}Content-Length: {size}\r\n\r\n".encode())
        writer.write(b"x" * size)
        await writer.drain()
        async with asyncio.timeout(10):
            status, _, _ = await read_reply(reader)
        assert status == TOO_LARGE[name]


async def test_the_next_request_after_a_refused_body_sent_whole_is_answered(
    tmp_path: Path,
) -> None:
    # A client that reads the refusal, sends the rest of its body (under LINGER_BYTES), then its
    # next request on the same connection. The drain's bound counted every byte after the reply,
    # the next request's too: its head tipped the count past LINGER_BYTES and it was cut. (The
    # Mini App's refusal keeps the connection; the gateway's and the webhook's 413 close it.)
    name = "webapp"
    size = LINGER_BYTES - 16  # past the limit, refused before any of it is read
    async with (
        listener(name, tmp_path) as (host, port, head),
        connection(host, port) as (reader, writer),
    ):
        writer.write(f"{head}Content-Length: {size}\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            status, headers, _ = await read_reply(reader)
        assert status == TOO_LARGE[name]
        assert headers.get("connection") != "close"
        writer.write(b"x" * size + b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(10):
            status, _, _ = await read_reply(reader)
        assert status == 404


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_request_followed_by_garbage_in_one_read_gets_its_answer_then_a_bare_400(
    name: str, tmp_path: Path
) -> None:
    # A Content-Length shorter than what was sent: the bytes past it are a second request, not
    # valid HTTP. aiohttp parsed both in one go and, at the error, dropped the whole request
    # before it: the client got only the bare 400, whether the two arrived in one read or not.
    body, status = ANSWERED[name]
    async with (
        listener(name, tmp_path) as (host, port, head),
        connection(host, port) as (reader, writer),
    ):
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        writer.write(b"and then some bytes past the length\r\n\r\n")  # one write, one read
        await writer.drain()
        async with asyncio.timeout(10):
            first = await read_reply(reader)
        assert first[0] == status
        assert first[2] != b"Bad Request"  # the listener's own answer, not the bare one
        async with asyncio.timeout(10):
            second = await read_reply(reader)
        assert (second[0], second[2]) == (400, b"Bad Request")
        await closed_by_server(reader)


@pytest.mark.parametrize("name", LISTENERS)
async def test_many_small_pipelined_requests_in_one_read_are_each_answered_in_order(
    name: str, tmp_path: Path
) -> None:
    # The parser takes one request at a time (see above): pipelining must still work.
    count = 100
    async with (
        listener(name, tmp_path) as (host, port, _),
        connection(host, port) as (reader, writer),
    ):
        writer.write(
            b"".join(f"GET /none/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(count))
        )
        await writer.drain()
        async with asyncio.timeout(30):
            statuses = [(await read_reply(reader))[0] for _ in range(count)]
        assert statuses == [404] * count


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_client_that_pipelines_and_never_reads_is_cut(name: str, tmp_path: Path) -> None:
    # The header timer closed such a connection, but a close waits for the buffered replies to
    # be sent: to a client that never reads, for ever (the connection and its slot held).
    requests = b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
    async with (
        listener(name, tmp_path, header_timeout=0.3) as (host, port, _),
        connection(host, port) as (_reader, writer),
    ):
        sent = 0
        with pytest.raises(ConnectionError):
            # A bound, not a measure: 2 to 4 s here, but the replies fill the kernel's buffers
            # before the cut, and a loaded CI took past 30 s (CI, 2026-12-01).
            async with asyncio.timeout(120):
                while sent < CUT_WITHIN:
                    writer.write(requests)
                    await writer.drain()
                    sent += len(requests)
        assert sent < CUT_WITHIN


# aiohttp bounds its parser's queue of requests (``max_msg_queue_size``, which
# ``GuardedRequestHandler._parse_one_at_a_time`` sets to one) from 3.14.1 on: with an older one
# every connection to a guarded listener fails with a TypeError before its first request.
PARSER_QUEUE_SINCE = Version("3.14.1")


def test_the_declared_aiohttp_has_the_parser_queue_the_listeners_rely_on() -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    (declared,) = (
        Requirement(line)
        for line in project["project"]["dependencies"]
        if Requirement(line).name == "aiohttp"
    )
    lowest = [Version(spec.version) for spec in declared.specifier if spec.operator == ">="]
    assert lowest
    assert min(lowest) >= PARSER_QUEUE_SINCE
