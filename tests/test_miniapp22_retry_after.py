"""A busy model server's wait reaches the Mini App's page; a wait given as a date is read.

The gateway puts a model server's ``Retry-After`` in an ``unavailable`` error record only for
a client that sends ``Veil-Accept: retry_after`` (docs/protocol.md): the page reads the record,
so the bot's relay asks for it when the page does. And a ``Retry-After`` may be an HTTP-date
as well as seconds (RFC 9110 §10.2.3): the bot reads both, in the chat and in the relay.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Self

import aiohttp
from aiohttp import web

from common.waits import retry_after
from sealed.stream import ACCEPT_HEADER
from tests.failover import answer_text, first_first, two_gateways
from tests.miniapp import Asked, page, read_stream, webapp_stack

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from tests.harness import Clock
    from tests.miniapp import MiniStack, PythonPage

CHAT = {"model": "veil-test", "messages": [{"role": "user", "content": "hello?"}]}
NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
FAR = "Fri, 01 Jan 2100 00:00:00 GMT"  # a wait of decades: cut to each reader's most


def test_a_retry_after_is_read_as_seconds_or_as_any_http_date() -> None:
    # Only seconds were read: a gateway (or the proxy before it) that sent a date had the bot
    # fall back on its own short back-off, and the page was told no wait at all.
    assert retry_after("120", NOW) == 120
    assert retry_after(" 7 ", NOW) == 7
    assert retry_after("Tue, 14 Nov 2023 22:15:20 GMT", NOW) == 120  # IMF-fixdate
    assert retry_after("Tuesday, 14-Nov-23 22:15:20 GMT", NOW) == 120  # RFC 850
    assert retry_after("Tue Nov 14 22:15:20 2023", NOW) == 120  # asctime: GMT
    assert retry_after("Tue, 14 Nov 2023 22:15:19 GMT", NOW + 0.5) == 119  # rounded up
    assert retry_after("Tue, 14 Nov 2023 22:00:00 GMT", NOW) == 0  # a date past: now
    assert retry_after(FAR, NOW) == 4102444800 - NOW  # not cut here: each reader has its most
    # Neither a number of seconds nor a date of a known zone: none.
    for value in (None, "", "-5", "nan", "soon", "Tue, 14 Nov 2023 22:15:20 -0000", "1, 2"):
        assert retry_after(value, NOW) is None, value


class BusyFront:
    """An HTTP front of a gateway that answers each sealed question itself: 503, busy.

    Everything else is passed on; the refusal's ``Retry-After`` is ``wait`` (a load balancer's
    date, say). ``refused`` counts the questions it answered so.
    """

    def __init__(self, gateway: str, wait: str) -> None:
        self.gateway = gateway.rstrip("/")
        self.wait = wait
        self.refused = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        if request.path == "/v1/sealed/chat/completions":
            self.refused += 1
            refusal = {"error": {"code": "busy", "message": "too many streams"}}
            return web.json_response(refusal, status=503, headers={"Retry-After": self.wait})
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("veil-")}
        async with self._session.request(
            request.method, self.gateway + request.path_qs, data=body or None, headers=headers
        ) as upstream:
            return web.Response(
                body=await upstream.read(),
                status=upstream.status,
                content_type=upstream.content_type,
            )


async def through_front(stack: MiniStack, front: BusyFront) -> None:
    """Put ``front`` between the bot and its gateway, the bot's open connections too."""
    host, port = front.url.removeprefix("http://").split(":")
    stack.to_gateway.target = (host, int(port))
    await stack.to_gateway.drop()


async def test_a_gateways_wait_given_as_a_date_keeps_the_chat_away_from_it(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # The date was not read: after the bot's own back-off of two seconds it asked the busy
    # gateway again with every question, though it had said when it would take them.
    async with two_gateways(clock) as pair, BusyFront(pair.first.url, FAR) as front:
        client = first_first([front.url, pair.second.url], pair.first, http, clock)
        assert await answer_text(client) == "from the second"
        clock.advance(60)  # past any back-off of the bot's own after one failure
        assert await answer_text(client) == "from the second"
        assert front.refused == 1  # not asked again within its wait (at most 300 s)
        clock.advance(241)
        assert await answer_text(client) == "from the second"
        assert front.refused == 2  # asked again once the wait has passed


async def test_a_gateways_wait_given_as_a_date_reaches_the_page(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The relay passed on a wait in seconds only: a date reached the page as no wait at all,
    # and the page said "try again in a moment" rather than when.
    async with webapp_stack(tmp_path) as stack, BusyFront(stack.gateway.url, FAR) as front:
        await through_front(stack, front)
        async with page(stack, http).relay(CHAT) as (response, _):
            reply = await response.json()
            header = response.headers.get("Retry-After")
    assert front.refused == 1
    assert (response.status, reply["error"]["code"]) == (502, "gateway_refused")
    assert (reply["error"]["gateway_status"], reply["error"]["gateway_code"]) == (503, "busy")
    assert reply["error"]["retry_after"] == 3600  # cut to the most the page is told
    assert header == "3600"


async def asked_with(mini: PythonPage, accept: str | None) -> Asked:
    """Ask ``CHAT`` through the bot as a page that sends ``accept`` as its ``Veil-Accept``."""
    headers, body, asked = await mini.seal(CHAT)
    if accept is not None:
        headers[ACCEPT_HEADER] = accept
    async with mini.http.post(
        mini.base + "api/relay", data=io.BytesIO(body), headers=headers
    ) as response:
        asked.status = response.status
        asked.raw = await response.read()
    assert asked.status == 200, asked.raw
    read_stream(asked)
    return asked


async def test_a_busy_model_servers_wait_reaches_the_page_that_reads_it(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The relay never asked the gateway for the wait (``Veil-Accept``): the page could not
    # tell when to try again. A page that does not read it (opened before an upgrade: it
    # reads the error's three fields strictly) is still never sent it.
    async with webapp_stack(tmp_path) as stack:
        stack.vllm.fail_before_stream = (429, "over the quota")
        stack.vllm.retry_after = "42"
        mini = page(stack, http)
        reads = await asked_with(mini, "retry_after")
        older = await asked_with(mini, None)
        other = await asked_with(mini, "gzip-later")
    assert reads.final is not None
    assert (reads.final.error_kind, reads.final.error_retry_after) == ("unavailable", 42)
    for asked in (older, other):
        assert asked.final is not None
        assert (asked.final.error_kind, asked.final.error_retry_after) == ("unavailable", None)
        assert b'"retry_after"' not in json.dumps(asked.final.payload()).encode()
