"""The gateway's own HTTP/1.1 client for the model server's stream, against hostile replies.

A scripted model server on 127.0.0.1 writes exactly the bytes a test gives, in the pieces it
gives, and closes or falls silent where the test says: bodies split at every byte boundary,
chunk extensions and trailers, bad chunk sizes, oversized lines and bodies, silence, a close in
the middle of a chunk, error statuses, ``Content-Length`` and close-delimited bodies, TLS.
Whatever it sends, the gateway sees the events that came and then one ``BackendFailure``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import random
import socket
import ssl
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from gateway.http1 import MAX_HEAD_BYTES, MAX_SIZE_LINE, MAX_TRAILER_BYTES, BodyDecoder
from gateway.limits import Limits
from gateway.shaping import LoopTicker, Shaping, StreamShape
from gateway.upstream import MAX_EVENT_BYTES
from gateway.vllm import MAX_REPLY_BODY, BackendFailure, ContentDelta, Finish, Usage, VLLMClient
from playground.served import Served
from tests.harness import SealedCall, free_port, post_sealed, run_gateway, seal_call
from tests.test_sealed_third_party import open_stream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence
    from pathlib import Path

    import aiohttp

    from gateway.events import Event


@dataclass
class Exchange:
    """One chat request the scripted server took: what came, and the way to answer."""

    head: bytes
    body: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    written: int = 0

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until the kernel took it."""
        self.writer.write(data)
        self.written += len(data)
        await self.writer.drain()

    def close(self) -> None:
        """Close the connection (a FIN after what was written)."""
        self.writer.close()


@dataclass
class ScriptedServer(Served):
    """A model server whose chat replies the test writes; anything else is a 404."""

    tls: ssl.SSLContext | None = None
    url: str = ""
    exchanges: asyncio.Queue[Exchange] = field(default_factory=asyncio.Queue)
    _server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free port (TLS with ``tls``); the base URL."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening and close the connections no test took."""
        if self._server is not None:
            self._server.close()
            while not self.exchanges.empty():
                self.exchanges.get_nowait().writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        if not head.startswith(b"POST ") or b"/v1/chat/completions " not in head:
            writer.write(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            writer.close()
            return
        await self.exchanges.put(Exchange(head, body, reader, writer))

    async def next(self) -> Exchange:
        """The next chat request to answer."""
        async with asyncio.timeout(10):
            return await self.exchanges.get()


def chunk(data: bytes, extension: bytes = b"") -> bytes:
    return f"{len(data):x}".encode() + extension + b"\r\n" + data + b"\r\n"


def event(payload: str, end: bytes = b"\n\n") -> bytes:
    return b"data: " + payload.encode() + end


HEL = '{"choices":[{"delta":{"content":"Hel"},"finish_reason":null}]}'
LO = '{"choices":[{"delta":{"content":"lo"},"finish_reason":null}]}'
STOP = '{"choices":[{"delta":{},"finish_reason":"stop"}]}'
USAGE = '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}'
EXPECTED = [ContentDelta("Hel"), ContentDelta("lo"), Finish("stop"), Usage(3, 2)]
SSE = event(HEL) + b": ping\r\n\r\n" + event(LO, b"\r\n\r\n") + event(STOP) + event(USAGE)
SSE_DONE = SSE + b"event: end\ndata: [DONE]\n\n"
OK_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
# Every framing feature at once: an extension, an event split across chunks, trailers.
CHUNKED_REPLY = (
    OK_CHUNKED
    + chunk(SSE_DONE[:40], b";name=value")
    + chunk(SSE_DONE[40:130], b" ; a ; b=c")
    + chunk(SSE_DONE[130:])
    + b"0\r\nX-Trailer: done\r\n\r\n"
)
LENGTH_REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    + f"Content-Length: {len(SSE_DONE)}\r\n\r\n".encode()
    + SSE_DONE
)
CLOSE_REPLY = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + SSE_DONE
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def collect(client: VLLMClient) -> tuple[list[Event], BackendFailure | None]:
    """The events of one chat, and the failure that ended it (None: it finished)."""
    events: list[Event] = []
    try:
        async for item in client.stream_chat(CHAT):
            events.append(item)
    except BackendFailure as exc:
        return events, exc
    return events, None


async def exchange(
    server: ScriptedServer,
    client: VLLMClient,
    pieces: Sequence[bytes],
    *,
    close: bool = True,
    pause: float = 0.001,
) -> tuple[list[Event], BackendFailure | None]:
    """One chat whose reply is written in ``pieces`` (a pause between), then closed if asked."""
    reading = asyncio.create_task(collect(client))
    taking = asyncio.create_task(server.next())
    await asyncio.wait({reading, taking}, return_when=asyncio.FIRST_COMPLETED)
    if not taking.done():  # the client gave up before its request was whole at the server
        taking.cancel()
        pytest.fail(f"the client ended before the server took its request: {await reading}")
    answer = taking.result()
    try:
        for piece in pieces:
            await answer.send(piece)
            await asyncio.sleep(pause)
    except ConnectionError:
        pass
    if close:
        answer.close()
    async with asyncio.timeout(10):
        result = await reading
    answer.close()
    return result


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as scripted:
        yield scripted


# The idle timeout of a client whose model server does answer: long enough that a loaded
# machine's pause (a worker's loop held half a second by coverage, a collection, a neighbour)
# is not taken for a silent model server. The silence tests use ``STALL`` instead.
IDLE = 5.0
STALL = 0.5


@pytest.fixture
def client(server: ScriptedServer, http: aiohttp.ClientSession) -> VLLMClient:
    return VLLMClient(server.url, "k3y", http, idle_timeout=IDLE)


# -- framing: every split, every form ----------------------------------------------------------


@pytest.mark.parametrize(
    "reply", [CHUNKED_REPLY, LENGTH_REPLY, CLOSE_REPLY], ids=["chunked", "length", "close"]
)
async def test_a_reply_split_at_every_byte_boundary_gives_the_same_events(
    server: ScriptedServer, client: VLLMClient, reply: bytes
) -> None:
    assert await exchange(server, client, [reply]) == (EXPECTED, None)
    for cut in range(1, len(reply)):
        result = await exchange(server, client, [reply[:cut], reply[cut:]], pause=0.0005)
        assert result == (EXPECTED, None), cut


@pytest.mark.parametrize("coding", [b"chunked,", b", chunked", b" ,Chunked, ,"])
async def test_a_chunked_list_with_empty_elements_is_read_as_chunked(
    server: ScriptedServer, client: VLLMClient, coding: bytes
) -> None:
    # RFC 9110 §5.6.1: a recipient MUST accept and ignore empty list elements; they were
    # refused as a transfer coding not supported.
    reply = CHUNKED_REPLY.replace(b"Transfer-Encoding: chunked", b"Transfer-Encoding: " + coding)
    assert await exchange(server, client, [reply]) == (EXPECTED, None)


async def test_a_reply_sent_a_byte_at_a_time_gives_the_same_events(
    server: ScriptedServer, client: VLLMClient
) -> None:
    pieces = [CHUNKED_REPLY[i : i + 1] for i in range(len(CHUNKED_REPLY))]
    assert await exchange(server, client, pieces, pause=0) == (EXPECTED, None)


def test_the_body_decoder_undoes_chunks_fed_in_three_pieces_at_any_boundaries() -> None:
    body = CHUNKED_REPLY[len(OK_CHUNKED) :]
    for first in range(1, len(body), 3):
        for second in range(first, len(body), 5):
            decoder = BodyDecoder(chunked=True)
            parts = (body[:first], body[first:second], body[second:])
            assert b"".join(decoder.feed(part) for part in parts) == SSE_DONE
            assert decoder.complete


def _chunked_reference(body: bytes) -> bytes | None:
    """A chunked body's data by RFC 9112; None if it is malformed or cut.

    Sizes of 1 to 15 hex digits, extensions after a semicolon (blanks only before one),
    trailer fields. Written for these tests from the RFC, not from ``BodyDecoder``.
    """
    data = bytearray()
    pos = 0
    while True:
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size, semicolon, _ = body[pos:line_end].partition(b";")  # an extension after it
        size = size.rstrip(b" \t") if semicolon else size  # (blanks only before one)
        if not 1 <= len(size) <= 15 or size.strip(b"0123456789abcdefABCDEF"):
            return None
        pos = line_end + 2
        if int(size, 16) == 0:
            break
        end = pos + int(size, 16)
        if body[end : end + 2] != b"\r\n":
            return None
        data += body[pos:end]
        pos = end + 2
    while True:
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            return None
        if line_end == pos:
            return bytes(data)  # what follows the body's end is not read
        name, colon, _ = body[pos:line_end].partition(b":")
        if not colon or not name or not name.replace(b"-", b"").isalnum():
            return None
        pos = line_end + 2


def _random_chunked_body(rng: random.Random) -> bytes:
    pieces = []
    for _ in range(rng.randrange(0, 5)):
        data = bytes(rng.choice(b"ab\r\n0;") for _ in range(rng.randrange(1, 9)))
        size = len(data) + (rng.choice((-1, 1)) if rng.random() < 0.05 else 0)
        form = rng.choice(["%x", "%X", "0%x", "00%x", "%015x", "%016x", "%x;e=1", "%x ;e", "%x "])
        head = (form % max(size, 0)).encode()
        if rng.random() < 0.05:
            head = rng.choice([b"", b"g", b" 1", b"0x1", b"-1", b"fffffffffffffff"])
        after = b"\r\n" if rng.random() < 0.95 else rng.choice([b"\n", b"\r", b"", b"x\r\n"])
        pieces.append(head + b"\r\n" + data + after)
    last = [b"0\r\n\r\n", b"000\r\n\r\n", b"0;x=y\r\nX-T: v\r\n\r\n", b"0\r\nbad\r\n\r\n"]
    last += [b"0\r\n", b"0\r\n\r\nafter the end", b""]
    return b"".join(pieces) + rng.choice(last)


def test_chunked_bodies_decode_as_the_rfc_says_however_the_reads_split_them() -> None:
    # Whole chunks with bare sizes take a quicker way than the rest (``_whole_chunks``); every
    # split of a body must still give its data, or fail, as the RFC's reading of it does.
    rng = random.Random(1129)  # noqa: S311 -- a repeatable test, not a secret
    outcomes = {True: 0, False: 0}
    for _ in range(300):
        body = _random_chunked_body(rng)
        expected = _chunked_reference(body)
        outcomes[expected is not None] += 1
        splits = [[body[:cut], body[cut:]] for cut in range(len(body) + 1)]
        for _ in range(5):
            cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, 3)))
            splits.append([body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)])
        for parts in splits:
            decoder = BodyDecoder(chunked=True)
            out = bytearray()
            try:
                for part in parts:
                    out += decoder.feed(part)
                decoder.end()
            except BackendFailure:
                assert expected is None, (body, parts)
                continue
            assert (bytes(out), decoder.complete) == (expected, True), (body, parts)
    assert min(outcomes.values()) > 50  # both well-formed and malformed bodies were tried


async def test_the_request_is_a_plain_http11_post_on_a_connection_of_its_own(
    server: ScriptedServer, http: aiohttp.ClientSession
) -> None:
    client = VLLMClient(server.url + "/prefix/", "k3y", http, idle_timeout=IDLE)
    reading = asyncio.create_task(collect(client))
    answer = await server.next()
    await answer.send(CHUNKED_REPLY)
    assert await reading == (EXPECTED, None)
    assert await answer.reader.read() == b""  # the gateway closed its side: one request
    answer.close()
    lines = answer.head.split(b"\r\n")
    assert lines[0] == b"POST /prefix/v1/chat/completions HTTP/1.1"
    port = server.url.rsplit(":", 1)[1]
    for field_line in (
        f"Host: 127.0.0.1:{port}".encode(),
        b"Connection: close",
        b"Authorization: Bearer k3y",
        b"Content-Type: application/json",
    ):
        assert field_line in lines
    assert json.loads(answer.body) == {
        **CHAT,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_a_user_and_password_in_the_url_go_as_basic_auth(
    server: ScriptedServer, http: aiohttp.ClientSession
) -> None:
    with_user = server.url.replace("http://", "http://veil:s%3Acret@")
    client = VLLMClient(with_user, None, http, idle_timeout=IDLE)
    reading = asyncio.create_task(collect(client))
    answer = await server.next()
    await answer.send(CHUNKED_REPLY)
    assert await reading == (EXPECTED, None)
    answer.close()
    credentials = base64.b64encode(b"veil:s:cret").decode()
    assert f"Authorization: Basic {credentials}".encode() in answer.head.split(b"\r\n")
    with pytest.raises(ValueError, match="use one"):
        VLLMClient(with_user, "k3y", http)


async def test_an_interim_reply_before_the_final_one_is_skipped(
    server: ScriptedServer, client: VLLMClient
) -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + CHUNKED_REPLY
    assert await exchange(server, client, [reply]) == (EXPECTED, None)


# -- broken framing: the events before, then the failure ------------------------------------------

FIRST = OK_CHUNKED + chunk(event(HEL))


@pytest.mark.parametrize(
    ("rest", "message"),
    [
        (b"zz\r\n", "chunk size"),
        (b"0x5\r\nhello\r\n", "chunk size"),
        (b"+5\r\nhello\r\n", "chunk size"),
        (b" 5\r\nhello\r\n", "chunk size"),
        (b"5 \r\nhello\r\n", "chunk size"),
        (b"-5\r\nhello\r\n", "chunk size"),
        (b"\r\nhello\r\n", "chunk size"),
        (b"f" * 16 + b"\r\n", "chunk size"),
        (b"5\r\nhelloXX", "without its CRLF"),
        (b"5;" + b"e" * MAX_SIZE_LINE + b"\r\n", "chunk-size line too long"),
        (b"0\r\nbad trailer\r\n\r\n", "trailer field"),
        (b"0\r\n" + b"X-T: " + b"t" * MAX_TRAILER_BYTES + b"\r\n\r\n", "trailers too long"),
        (b"ff\r\n" + event(LO), "closed the stream"),  # closed in the middle of a chunk
        (b"1", "closed the stream"),  # in the middle of a size line
        (b"5\r\nhello", "closed the stream"),  # before a chunk's CRLF
        (chunk(event(STOP)), "closed the stream"),  # whole chunks, but no last chunk, no [DONE]
        (chunk(event(STOP)) + b"0\r\n\r\n", "closed the stream"),  # the body's end, no [DONE]
    ],
)
async def test_broken_framing_ends_the_stream_after_the_events_before_it(
    server: ScriptedServer, client: VLLMClient, rest: bytes, message: str
) -> None:
    events, failure = await exchange(server, client, [FIRST, rest])
    assert events[:1] == [ContentDelta("Hel")]
    assert failure is not None
    assert (failure.kind, failure.status) == ("backend", 502)
    assert message in failure.message


async def test_a_length_body_cut_short_is_a_failure_not_a_short_answer(
    server: ScriptedServer, client: VLLMClient
) -> None:
    reply = LENGTH_REPLY[: LENGTH_REPLY.index(b"data: " + LO.encode())]
    events, failure = await exchange(server, client, [reply])
    assert events == [ContentDelta("Hel")]
    assert failure is not None
    assert failure.message == "model server closed the stream"


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", "header field"),
        (b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", "header field"),
        (b"HTTP/1.1 101 Switching\r\n\r\n", "protocol switch"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "both Transfer-Encoding and Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, ,chunked\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n", "content coding"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", "Content-Length"),
        # a digit to str.isdigit, none to int() (review29f): was a ValueError past the checks
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"x" * MAX_HEAD_BYTES + b"\r\n\r\n", "head too long"),
        (b"HTTP/1.1 200 OK\n\n", "closed the stream"),  # bare LF: never a head
    ],
)
async def test_a_malformed_head_is_a_backend_failure(
    server: ScriptedServer, client: VLLMClient, head: bytes, message: str
) -> None:
    events, failure = await exchange(server, client, [head])
    assert events == []
    assert failure is not None
    assert (failure.kind, failure.status) == ("backend", 502)
    assert message in failure.message


async def test_an_oversized_event_ends_the_stream_with_memory_bounded(
    server: ScriptedServer, client: VLLMClient
) -> None:
    piece = b"x" * (1 << 20)
    reading = asyncio.create_task(collect(client))
    answer = await server.next()
    await answer.send(OK_CHUNKED + chunk(event(HEL)) + chunk(b"data: "))
    try:
        async with asyncio.timeout(20):
            while not reading.done() and answer.written < 256 << 20:
                await answer.send(chunk(piece))
    except ConnectionError:
        pass
    events, failure = await reading
    answer.close()
    assert events == [ContentDelta("Hel")]
    assert failure is not None
    assert "oversized event" in failure.message
    # It stopped reading a little past the limit: the rest was never taken in.
    assert answer.written < MAX_EVENT_BYTES + (32 << 20)


@pytest.mark.parametrize("end", ["done", "close", "reset"])
async def test_gathered_bytes_are_taken_at_collect_and_the_end_is_seen_there(
    server: ScriptedServer, http: aiohttp.ClientSession, end: str
) -> None:
    client = VLLMClient(server.url, None, http, idle_timeout=30)  # only the close wakes it

    async def head_and_first_event() -> Exchange:
        answer = await server.next()
        await answer.send(OK_CHUNKED + chunk(event(HEL)))
        return answer

    answering = asyncio.create_task(head_and_first_event())
    async with client.open_chat(CHAT) as chat:
        answer = await answering
        assert await chat.read() == [ContentDelta("Hel")]
        woken = asyncio.Event()
        unwatch = chat.watch(woken.set)
        chat.gather()  # from now on the bytes wait in the kernel for collect()
        await answer.send(chunk(event(LO)) + chunk(event(STOP)))
        await asyncio.sleep(0.01)  # turns of the event loop: nothing is lost or doubled
        assert chat.collect() == [ContentDelta("lo"), Finish("stop")]
        assert chat.collect() == []
        assert not chat.ended
        if end == "done":
            await answer.send(chunk(event(USAGE) + b"data: [DONE]\n\n") + b"0\r\n\r\n")
        elif end == "reset":
            sock = answer.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        answer.close()
        async with asyncio.timeout(5):
            await woken.wait()  # the connection's close wakes the reader
        unwatch()
        if end == "done":
            assert chat.collect() == [Usage(3, 2)]
            assert chat.finished
            return
        with pytest.raises(BackendFailure) as failed:
            chat.collect()
        assert failed.value.message == "model server closed the stream"


# -- silence, closes, refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"HTTP/1.1 200 OK\r\n", OK_CHUNKED, FIRST + b"ff\r\ndata: {"],
    ids=["before-head", "in-head", "after-head", "mid-chunk"],
)
async def test_a_silent_model_server_is_stalled(
    server: ScriptedServer, http: aiohttp.ClientSession, sent: bytes
) -> None:
    client = VLLMClient(server.url, "k3y", http, idle_timeout=STALL)
    events, failure = await exchange(server, client, [sent], close=False)
    assert events == ([ContentDelta("Hel")] if sent.startswith(FIRST) else [])
    assert failure is not None
    assert (failure.kind, failure.status) == ("stalled", 504)


async def test_a_close_before_any_reply_and_a_refused_connection_are_unavailable(
    server: ScriptedServer, client: VLLMClient, http: aiohttp.ClientSession
) -> None:
    _, failure = await exchange(server, client, [])
    assert failure is not None
    assert (failure.kind, failure.status) == ("unavailable", 503)
    refused = VLLMClient(f"http://127.0.0.1:{free_port()}", None, http, idle_timeout=STALL)
    _, failure = await collect(refused)
    assert failure is not None
    assert (failure.kind, failure.status) == ("unavailable", 503)


def error_reply(status: int, body: bytes, framing: str) -> bytes:
    head = f"HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\n".encode()
    if framing == "chunked":
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk(body) + b"0\r\n\r\n"
    if framing == "length":
        return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    return head + b"\r\n" + body


@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (429, "Too many requests", "unavailable"),
        (503, "The engine is restarting", "unavailable"),
        (503, "This model's maximum context length is 8 tokens", "context_length"),
        (500, "Internal server error", "backend"),
        (502, "Bad gateway", "backend"),
        (400, "This model's maximum context length is 8 tokens", "context_length"),
    ],
)
async def test_error_statuses_map_to_their_kinds(  # noqa: PLR0913 -- two parameter grids
    *,
    server: ScriptedServer,
    client: VLLMClient,
    status: int,
    message: str,
    kind: str,
    framing: str,
) -> None:
    body = json.dumps({"error": {"message": message, "type": "Error", "code": status}}).encode()
    reply = error_reply(status, body, framing)
    for pieces in ([reply], [reply[: len(reply) - 7], reply[len(reply) - 7 :]]):
        events, failure = await exchange(server, client, pieces)
        assert events == []
        assert failure is not None
        assert (failure.kind, failure.status, failure.message) == (kind, status, message)


async def test_an_error_body_cut_short_or_too_large_still_gives_its_status(
    server: ScriptedServer, client: VLLMClient
) -> None:
    body = b'{"error": {"message": "busy"}}'
    cut = error_reply(503, body, "length")[:-5]
    _, failure = await exchange(server, client, [cut])
    assert failure is not None
    assert (failure.kind, failure.status, failure.message) == ("unavailable", 503, "unknown error")
    huge = error_reply(500, b'{"error": {"message": "' + b"e" * (3 << 20) + b'"}}', "chunked")
    _, failure = await exchange(server, client, [huge])
    assert failure is not None
    assert (failure.status, failure.message) == (500, "unknown error")


# -- through the gateway, and over TLS -------------------------------------------------------------


def leaks(logs: Sequence[Mapping[str, object]], *texts: str) -> list[Mapping[str, object]]:
    """The log events that hold any of ``texts``."""
    return [e for e in logs if any(text in str(value) for value in e.values() for text in texts)]


@pytest.mark.parametrize("shaped", [True, False], ids=["shaped", "unshaped"])
async def test_a_model_server_sending_only_comments_is_stalled_as_a_silent_one(
    server: ScriptedServer, http: aiohttp.ClientSession, *, shaped: bool
) -> None:
    # Each SSE comment (": ping") counted as a sign of life: a model server that sent nothing
    # else held the stream open until its time limit, which ended it as a stopped answer with
    # the prompt billed. Only ``data:`` lines count now; comments alone are a silence.
    limits = Limits(backend_idle_timeout=0.5, max_stream_seconds=60)
    shaping = Shaping(StreamShape.TICK, LoopTicker(0.05)) if shaped else None
    async with run_gateway(server.url, models=("veil-test",), limits=limits, shaping=shaping) as gw:
        with capture_logs() as logs:
            call = seal_call(gw)
            posting = asyncio.create_task(post_sealed(http, gw.url, call))
            answer = await server.next()
            await answer.send(FIRST)
            # Until the gateway gives up on it and hangs up: a write after that is refused with
            # ConnectionError, or on uvloop with RuntimeError (the transport is closed).
            with contextlib.suppress(ConnectionError, RuntimeError):
                while not posting.done():
                    await answer.send(chunk(b": ping\n\n: keep-alive\r\n\r\n"))
                    await asyncio.sleep(0.005)
            reply = await posting
            answer.close()
    assert reply.text == "Hel"
    assert reply.final is not None
    assert reply.final.receipt is not None
    assert (reply.final.error_kind, reply.final.error_status) == ("stalled", 504)
    assert reply.final.receipt.receipt.completion_tokens == 1
    relayed = [e for e in logs if e["event"] == "gateway.relayed"]
    assert [e["outcome"] for e in relayed] == ["stalled"]
    assert leaks(logs, "Hel", "Say hello") == []


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: Application/JSON; charset=utf-8\r\n"
            b"Content-Length: 48\r\n\r\n"
        ),
    ],
    ids=["html-to-its-close", "json-with-a-length"],
)
async def test_a_200_that_is_no_event_stream_ends_as_a_clear_error_record(
    server: ScriptedServer, http: aiohttp.ClientSession, head: bytes
) -> None:
    # A login page or a reply not streamed was read to its end and told as "model server
    # closed the stream": it is refused by its Content-Type, before any of it is read.
    body = b'<html><body>data: {"choices":[]}</body></html>\n'
    async with run_gateway(server.url, models=("veil-test",), limits=Limits()) as gw:
        with capture_logs() as logs:
            call = seal_call(gw)
            posting = asyncio.create_task(post_sealed(http, gw.url, call))
            answer = await server.next()
            with contextlib.suppress(ConnectionError, RuntimeError):  # hung up (uvloop: Runtime…)
                await answer.send(head + body)
            reply = await posting
            answer.close()
    assert reply.text == ""
    assert reply.final is not None
    assert reply.final.receipt is not None
    assert (reply.final.error_kind, reply.final.error_status) == ("backend", 502)
    media = head.split(b"Content-Type: ")[1].split(b";")[0].split(b"\r")[0].decode()
    assert reply.final.error_message == f"model server sent no event stream ({media})"
    assert reply.final.receipt.receipt.completion_tokens == 0
    assert [e["outcome"] for e in logs if e["event"] == "gateway.relayed"] == ["backend"]
    assert leaks(logs, "Say hello") == []


async def test_a_stream_cut_mid_chunk_ends_with_an_error_record_after_the_text(
    server: ScriptedServer, http: aiohttp.ClientSession
) -> None:
    async with run_gateway(server.url, models=("veil-test",), limits=Limits()) as gw:
        call = seal_call(gw)
        posting = asyncio.create_task(post_sealed(http, gw.url, call))
        answer = await server.next()
        await answer.send(FIRST + b"ff\r\n" + event(LO))
        await asyncio.sleep(0.05)
        answer.close()
        reply = await posting
    assert reply.text == "Hello"  # the whole event inside the cut chunk came through
    assert reply.final is not None
    assert (reply.final.error_kind, reply.final.error_status) == ("backend", 502)
    assert reply.final.error_message == "model server closed the stream"


# A model server may send half of a surrogate pair on its own: escaped (JSON allows
# ``"\\ud83d"``, an emoji cut in two) or as its UTF-8 form (which json.loads decodes with
# "surrogatepass"). It became a lone surrogate in the delta, which no UTF-8 encoder takes: the
# relay failed sealing it, the connection was cut mid-chunk, and the stream had no final record
# and no receipt. It is now read as U+FFFD, as a lone surrogate in a sealed request is.
LONE_HALVES = {
    "escaped": rb"\ud83d",
    "utf-8": b"\xed\xa0\xbd",
    "low-escaped": rb"\ude00",
}


@pytest.mark.parametrize("half", LONE_HALVES.values(), ids=LONE_HALVES.keys())
@pytest.mark.parametrize("after_form", [False, True], ids=["json", "after-a-form"])
async def test_a_lone_surrogate_from_the_model_arrives_as_a_replacement_character(
    server: ScriptedServer, http: aiohttp.ClientSession, half: bytes, *, after_form: bool
) -> None:
    lone = b'data: {"choices":[{"delta":{"content":"a' + half + b'b"},"finish_reason":null}]}\n\n'
    before = event(HEL) + event(LO) if after_form else b""  # the second: in the learnt form
    async with run_gateway(server.url, models=("veil-test",), limits=Limits()) as gw:
        call = seal_call(gw)
        posting = asyncio.create_task(post_sealed(http, gw.url, call))
        answer = await server.next()
        await answer.send(OK_CHUNKED + chunk(before + lone + event(STOP) + event(USAGE)))
        await answer.send(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        answer.close()
        reply = await posting
    assert reply.text == ("Hello" if after_form else "") + "a\ufffdb"
    assert reply.final is not None
    assert reply.final.finish_reason == "stop"
    assert reply.final.receipt is not None
    key = gw.gateway.ring.receipt_key.public_key()
    reply.final.receipt.verify(key, request_id=call.request_id, model="veil-test")
    assert reply.final.receipt.receipt.status == "complete"


# The model server's side replies (``/tokenize``, ``/v1/models``, ``/props``) were read whole
# into memory, however long (``response.json()``), for up to their 5 or 10 seconds: a hostile
# or broken model server could send gigabytes into the gateway's memory on every request
# (``/tokenize`` is asked for each one). They are now read up to ``MAX_REPLY_BODY``, then the
# connection is dropped and the reply counts as none.
@dataclass
class EndlessReplies:
    """A model server whose reply on ``endless`` is a 200 with a JSON body that never ends.

    Any other path gets a listing of one model without a window (as llama.cpp's).
    """

    endless: str
    written: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free port; the base URL."""
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        piece = b" " * (1 << 20)  # JSON's blanks: well-formed so far, whatever the cut
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.split(b" ")[1] != self.endless.encode():
                listing = b'{"data": [{"id": "m"}]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\n" + listing)
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{")
            while self.written < 256 << 20:
                writer.write(piece)
                self.written += len(piece)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("endless", ["/tokenize", "/v1/models", "/props"])
async def test_an_endless_side_reply_is_read_only_to_its_limit(
    http: aiohttp.ClientSession, endless: str
) -> None:
    server = EndlessReplies(endless)
    client = VLLMClient(await server.start(), None, http, idle_timeout=30)
    try:
        if endless == "/tokenize":
            messages = [{"role": "user", "content": "hi"}]
            assert await client.count_prompt_tokens("m", messages) is None
        elif endless == "/v1/models":
            with pytest.raises(BackendFailure):
                await client.served()
        else:  # llama.cpp's window unknown, the model still served
            assert await client.served() == {"m": None}
    finally:
        server.close()
    assert server.written < MAX_REPLY_BODY + (32 << 20)


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_an_https_model_server_is_read_the_same_and_its_certificate_checked(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    cert_file, key_file = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    async with ScriptedServer(tls=tls) as server:
        client = VLLMClient(server.url, None, http, idle_timeout=2, ssl_context=trusting)
        assert await exchange(server, client, [CHUNKED_REPLY[:50], CHUNKED_REPLY[50:]]) == (
            EXPECTED,
            None,
        )
        untrusted = VLLMClient(server.url, None, http, idle_timeout=2)  # the system's roots
        _, failure = await collect(untrusted)
        assert failure is not None
        assert (failure.kind, failure.status) == ("unavailable", 503)


async def test_a_gathered_https_reply_is_read_through_tls_never_from_the_socket(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A shaped stream reads its bytes straight from the socket at its ticks (``gather``): over
    # TLS those are ciphertext, so the reply must be taken through the TLS transport. It is told
    # by the transport's ``sslcontext``; uvloop's TLS transport hands out the TCP socket under
    # it too, as asyncio's does.
    cert_file, key_file = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    async with ScriptedServer(tls=tls) as server:
        client = VLLMClient(server.url, None, http, idle_timeout=30, ssl_context=trusting)

        async def head() -> Exchange:
            answer = await server.next()
            await answer.send(OK_CHUNKED)
            return answer

        answering = asyncio.create_task(head())
        async with client.open_chat(CHAT) as chat:
            answer = await answering
            chat.gather()  # plain TCP: the bytes would wait in the kernel for collect()
            woken = asyncio.Event()
            unwatch = chat.watch(woken.set)
            await answer.send(CHUNKED_REPLY.removeprefix(OK_CHUNKED))
            answer.close()
            async with asyncio.timeout(5):
                await woken.wait()  # the connection's close wakes the reader
            unwatch()
            events = chat.collect()
            assert chat.finished
    assert events == [ContentDelta("Hel"), ContentDelta("lo"), Finish("stop"), Usage(3, 2)]


# An error reply (not 200) states its failure in JSON, whose message may hold half of a
# surrogate pair too (a prompt's emoji cut in two, quoted back). It went into the error
# record as a lone surrogate, escaped (``"\ud83d"``): JSON a strict reader (Rust's
# serde_json, say) refuses whole, and the receipt with it. It is U+FFFD there too.
@pytest.mark.parametrize("half", LONE_HALVES.values(), ids=LONE_HALVES.keys())
async def test_a_lone_surrogate_in_an_error_reply_arrives_as_a_replacement_character(
    server: ScriptedServer, http: aiohttp.ClientSession, half: bytes
) -> None:
    body = b'{"error":{"message":"bad a' + half + b'b","code":400}}'
    head = f"HTTP/1.1 400 Bad Request\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    async with run_gateway(server.url, models=("veil-test",), limits=Limits()) as gw:
        call = seal_call(gw)
        posting = asyncio.create_task(post_raw(http, gw.url, call))
        answer = await server.next()
        await answer.send(head + body)
        answer.close()
        data = await posting
    final = open_stream(data, call.response_key).final
    assert final["error"]["message"] == "bad a\ufffdb"
    assert set(final) == {"error", "receipt", "signature"}  # signed, and read


async def post_raw(http: aiohttp.ClientSession, url: str, call: SealedCall) -> bytes:
    """The sealed stream's bytes, as they came."""
    async with http.post(
        f"{url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
    ) as response:
        assert response.status == 200
        return await response.read()
