"""The Mini App's web server as a stranger with an HTTP client sees it: its headers and errors.

Each test talks to the bot's own web server over real HTTP (the whole chain behind it: a real
gateway and the fake vLLM), as a page would and as anyone on the internet may.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from bot.settings import BotSettings
from sealed.encoding import REQUEST_BUCKETS, b64e
from tests.botstack import TOKEN
from tests.miniapp import page, webapp_stack

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

QUESTION = "Is the spare key still under the third flowerpot?"
CHAT = {"model": "veil-test", "messages": [{"role": "user", "content": QUESTION}]}


async def test_every_api_reply_is_kept_by_no_cache(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A balance, an offer, a sealed answer, a refusal: each is one user's, and a browser's or a
    # proxy's cache must not keep it for whoever comes next.
    async with webapp_stack(tmp_path) as stack:
        mini = page(stack, http)
        replies: dict[str, aiohttp.ClientResponse] = {}
        async with http.get(mini.base + "api/account", headers=mini.auth) as reply:
            replies["account"] = reply
        async with http.get(mini.base + "api/account") as reply:
            replies["no initData"] = reply
        async with http.post(
            mini.base + "api/prepare",
            json={"model": "veil-test", "size": REQUEST_BUCKETS[0]},
            headers=mini.auth,
        ) as reply:
            replies["prepare"] = reply
        async with http.post(mini.base + "api/prepare", data=b"[", headers=mini.auth) as reply:
            replies["bad prepare"] = reply
        stop = {"request_id": "00" * 16, "proof": "A" * 43}
        async with http.post(mini.base + "api/stop", json=stop, headers=mini.auth) as reply:
            replies["stop"] = reply
        async with mini.relay(CHAT) as (reply, _):
            await reply.read()
            replies["relay"] = reply
        statuses = {name: reply.status for name, reply in replies.items()}
        assert statuses == {
            "account": 200,
            "no initData": 401,
            "prepare": 200,
            "bad prepare": 400,
            "stop": 404,
            "relay": 200,
        }
        for name, reply in replies.items():
            assert reply.headers.get("Cache-Control") == "no-store", name
            assert reply.headers.get("X-Content-Type-Options") == "nosniff", name


async def test_a_body_that_does_not_arrive_in_time_is_refused_kept_by_no_cache(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The 408 goes out (and the connection closes) inside the handler, before the API's
    # headers were added to its reply: the one API reply a cache could keep.
    async with webapp_stack(tmp_path, webapp_client_timeout=0.5) as stack:
        assert stack.veil.webapp is not None
        mini = page(stack, http)
        head = (
            "POST /app/api/prepare HTTP/1.1\r\nHost: veil\r\nContent-Type: application/json\r\n"
            f"Authorization: {mini.auth['Authorization']}\r\nContent-Length: 100\r\n\r\n"
        )
        reply = await exchange(stack.veil.webapp, head.encode() + b'{"model"')
    lines = reply.partition(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert lines[0] == "HTTP/1.1 408 Request Timeout"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"


async def test_unknown_api_paths_and_wrong_methods_get_the_pages_json_errors(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        mini = page(stack, http)
        async with http.get(mini.base + "api/history", headers=mini.auth) as reply:
            missing = (reply.status, reply.content_type, await reply.json())
            missing_cache = reply.headers.get("Cache-Control")
        async with http.post(mini.base + "api/account", headers=mini.auth) as reply:
            wrong = (reply.status, reply.content_type, await reply.json())
            allowed = set(reply.headers["Allow"].split(","))
        async with http.request("OPTIONS", mini.base + "api/relay") as reply:
            preflight = (reply.status, reply.content_type, await reply.json())
            cors = {k for k in reply.headers if k.lower().startswith("access-control-")}
        # The page itself is not under api/: its own answers are left as they are.
        async with http.get(mini.base + "nothing.js") as reply:
            outside = (reply.status, reply.content_type)
    assert missing == (
        404,
        "application/json",
        {"error": {"code": "not_found", "message": "There is no such request."}},
    )
    assert missing_cache == "no-store"
    assert wrong == (
        405,
        "application/json",
        {
            "error": {
                "code": "method_not_allowed",
                "message": "This request cannot be made that way.",
            }
        },
    )
    assert allowed == {"GET", "HEAD"}
    assert preflight[:2] == (405, "application/json")
    assert cors == set()  # no other origin is let in: the page talks to its own only
    assert outside == (404, "text/plain")


async def test_a_refused_api_path_is_logged_without_the_bytes_it_was_sent_with(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Anyone may put anything in a path under api/: a page with a bug its launch data, a
    # stranger forged log lines (a decoded %0A is a line end). The operator's log gets the
    # refusal and the route it was for, never the path as sent.
    launch = "user=%7B%22id%22%3A1%7D&hash=" + "ab" * 32
    async with webapp_stack(tmp_path) as stack:
        mini = page(stack, http)
        with capture_logs() as logs:
            async with http.get(mini.base + "api/" + launch, headers=mini.auth) as reply:
                missing = reply.status
            forged = "api/x%0A2026-11-30 [error] payments.lost"
            async with http.get(mini.base + forged, headers=mini.auth) as reply:
                missing_forged = reply.status
            async with http.post(mini.base + "api/account", headers=mini.auth) as reply:
                wrong = reply.status
    assert (missing, missing_forged, wrong) == (404, 404, 405)
    refused = [e for e in logs if e["event"] == "webapp.refused"]
    assert [(e["reason"], e.get("path")) for e in refused] == [
        ("not_found", None),
        ("not_found", None),
        ("method_not_allowed", "/app/api/account"),
    ]
    assert not [e for e in logs if "ab" * 32 in repr(e) or "payments.lost" in repr(e)]


async def exchange(url: str, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection to ``url``'s server; all it answers until it closes."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()  # the server closes after a malformed request
    finally:
        writer.close()


async def test_a_request_that_is_not_http_gets_a_bare_400_and_one_quiet_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Anyone can send bytes that are not HTTP. Each is the sender's mistake, not the operator's
    # news: no traceback at error level per request, no echo of the bytes sent.
    launch = "tma user=%7B%22id%22%3A1%7D&hash=" + "ab" * 32
    malformed = {
        "Content-Length that is not a number": (
            b"POST /app/api/prepare HTTP/1.1\r\nHost: veil\r\nContent-Length: 12ab\r\n\r\n"
        ),
        "a chunk size that is not hex": (
            b"POST /app/api/prepare HTTP/1.1\r\nHost: veil\r\nTransfer-Encoding: chunked\r\n"
            b"\r\nzz\r\n{}\r\n0\r\n\r\n"
        ),
        "a header line past the limit": (
            b"GET /app/api/account HTTP/1.1\r\nHost: veil\r\nAuthorization: "
            + launch.encode()
            + b"a" * 9000
            + b"\r\n\r\n"
        ),
        "both framings at once": (
            b"POST /app/api/prepare HTTP/1.1\r\nHost: veil\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        ),
    }
    async with webapp_stack(tmp_path) as stack:
        assert stack.veil.webapp is not None
        replies = {}
        with capture_logs() as logs, caplog.at_level(logging.DEBUG, logger="aiohttp"):
            for name, data in malformed.items():
                replies[name] = await exchange(stack.veil.webapp, data)
        for name, reply in replies.items():
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request"), name
            assert body == b"Bad Request", name
    assert [e["event"] for e in logs] == ["http.malformed"] * len(malformed)
    assert {e["error"] for e in logs} <= {"BadHttpMessage", "LineTooLong"}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    "url",
    [
        "https://veil.example.com/app",  # the page would ask /api/…, the server serves /app/
        "https://veil.example.com/app/?v=2",
        "https://veil.example.com/app/#top",  # Telegram appends its launch data as the fragment
    ],
)
def test_a_mini_app_url_the_page_cannot_be_opened_at_is_refused_at_start(url: str) -> None:
    with pytest.raises(ValidationError, match="must end in / and have no"):
        BotSettings(bot_token=TOKEN, operator_keys=b64e(bytes(32)), webapp_url=url)
    for good in ("https://veil.example.com/app/", "https://veil.example.com"):
        BotSettings(bot_token=TOKEN, operator_keys=b64e(bytes(32)), webapp_url=good)


async def read_replies(reader: asyncio.StreamReader, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` HTTP replies (status line, body) read off one connection, in order."""
    replies = []
    async with asyncio.timeout(10):
        for _ in range(count):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            replies.append((head.split(b"\r\n")[0], await reader.readexactly(length)))
    return replies


async def test_http_1_0_pipelining_and_oversized_bodies_get_proper_answers(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        assert stack.veil.webapp is not None
        parts = urlsplit(stack.veil.webapp)
        assert parts.hostname is not None
        assert parts.port is not None
        auth = f"Authorization: tma {page(stack, http).data}\r\n".encode()
        account = b"GET /app/api/account HTTP/1.1\r\nHost: veil\r\n" + auth + b"\r\n"
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            # Three requests in one write: three answers, in order, on the one connection.
            writer.write(account * 3)
            pipelined = await read_replies(reader, 3)
            # A relay body declared larger than any sealed request: refused before it is sent.
            writer.write(
                b"POST /app/api/relay HTTP/1.1\r\nHost: veil\r\nContent-Length: 99999999\r\n"
                + auth
                + b"\r\n"
            )
            [oversized] = await read_replies(reader, 1)
        finally:
            writer.close()
        old = await exchange(stack.veil.webapp, account.replace(b"HTTP/1.1", b"HTTP/1.0"))
        held = await stack.store.read(lambda db: db.execute("SELECT * FROM holds").fetchall())
    assert [status for status, _ in pipelined] == [b"HTTP/1.1 200 OK"] * 3
    assert all(json.loads(body)["busy"] is False for _, body in pipelined)
    assert oversized[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert json.loads(oversized[1])["error"]["code"] == "too_large"
    assert old.startswith(b"HTTP/1.0 200 OK\r\n")  # and closed after it (exchange read to EOF)
    assert json.loads(old.partition(b"\r\n\r\n")[2])["models"] == ["veil-test"]
    assert held == []
    assert stack.vllm.requests == []


async def test_no_reply_names_the_servers_software_or_its_version(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # aiohttp's default "Server: Python/3.11 aiohttp/3.x" tells a stranger which published
    # flaws to try. Every reply of the bot's listeners names the server "Veil" only.
    async with webapp_stack(tmp_path) as stack:
        assert stack.veil.webapp is not None
        mini = page(stack, http)
        servers = {}
        for name, path, headers in [
            ("page", "", {}),
            ("script", "veil.js", {}),
            ("account", "api/account", mini.auth),
            ("refused", "api/account", {}),
            ("no such API path", "api/nothing", mini.auth),
            ("no such file", "nothing.js", {}),
        ]:
            async with http.get(mini.base + path, headers=headers) as reply:
                servers[name] = reply.headers.get("Server")
        malformed = await exchange(
            stack.veil.webapp, b"GET /app/ HTTP/1.1\r\nHost: veil\r\nContent-Length: x\r\n\r\n"
        )
        servers["malformed"] = next(
            line.split(b":", 1)[1].strip().decode()
            for line in malformed.split(b"\r\n")
            if line.lower().startswith(b"server:")
        )
    assert servers == dict.fromkeys(servers, "Veil")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_is_refused_unread(
    tmp_path: Path, http: aiohttp.ClientSession, encoding: str
) -> None:
    # The page never compresses what it sends. aiohttp inflated such a body before the route
    # read it, so anyone with a page's initData had a kilobyte expanded into the largest body
    # (the relay's: a megabyte); it was then served as if sent as is. Now: 400, unread.
    body = json.dumps({"model": "veil-test", "size": REQUEST_BUCKETS[0]}).encode()
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    async with webapp_stack(tmp_path) as stack:
        mini = page(stack, http)
        headers = {**mini.auth, "Content-Type": "application/json"}
        coded = {**headers, "Content-Encoding": encoding}
        async with http.post(mini.base + "api/prepare", data=packed, headers=coded) as reply:
            refused = (reply.status, await reply.json(), reply.headers.get("Cache-Control"))
        async with http.post(mini.base + "api/prepare", data=body, headers=headers) as reply:
            served = reply.status
    assert refused == (
        400,
        {"error": {"code": "bad_request", "message": "The request could not be read."}},
        "no-store",
    )
    assert served == 200
