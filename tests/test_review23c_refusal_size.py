"""A gateway's refusal is read up to a bound: its body comes in clear from whatever answers.

Since clock23b a ``stale_request`` refusal's message is parsed for the skew it names; the
message itself was cut to 300 characters, but the whole body was read and parsed first, however
long: a hostile gateway, proxy or network (all untrusted, ARCHITECTURE.md) sending a 400 of
endless JSON filled the bot's memory, for the inference client and the Mini App's relay alike.
Now at most ``REFUSAL_MOST`` bytes are read, the connection dropped, and the refusal is one
that says nothing (``unknown``): the question fails over, or is refused, as for any such reply.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from services.errors import InferenceError
from services.gateways import REFUSAL_MOST
from services.inference import ChatRequest, InferenceClient
from tests.harness import CLIENT_KEY
from tests.miniapp import PythonPage, webapp_stack
from tests.test_bounded_replies import TAKEN_AT_MOST, Endless

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.harness import Clock, RunningGateway


class Flood(Endless):
    """A front serving a gateway's real key bundle, and a 400 of endless JSON for each request."""

    def __init__(self, gateway_url: str) -> None:
        head = b'{"error": {"code": "stale_request", "message": "300 s ahead of the gateway'
        super().__init__(400, head + b'\'s clock; at most 120 s is allowed"}, "pad": "')
        self.gateway_url = gateway_url

    async def keys(self, _request: web.Request) -> web.Response:
        """The gateway's own bundle, so the bot trusts this front."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.gateway_url}/v1/keys") as reply,
        ):
            return web.Response(body=await reply.read(), content_type="application/json")


@contextlib.asynccontextmanager
async def flooding_front(gateway_url: str) -> AsyncIterator[tuple[str, Flood]]:
    """Run a ``Flood`` before the gateway at ``gateway_url``: its URL and the flood."""
    flood = Flood(gateway_url)
    app = web.Application()
    app.router.add_get("/v1/keys", flood.keys)
    app.router.add_post("/v1/sealed/chat/completions", flood.reply)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", flood
    finally:
        await runner.cleanup()


def test_the_bound_holds_any_refusal_a_gateway_sends() -> None:
    assert 4 * 1024 <= REFUSAL_MOST <= 1024 * 1024


async def test_an_endless_refusal_is_read_only_up_to_the_bound(
    gateway: RunningGateway, http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with flooding_front(gateway.url) as (url, flood):
        client = InferenceClient(
            [url], [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        request = ChatRequest(
            [{"role": "user", "content": "hi"}], model="veil-test", cache_salt="s"
        )
        with pytest.raises(InferenceError) as caught:
            async for _item in client.stream(request):
                pass
        async with asyncio.timeout(30):
            await flood.done.wait()
    assert flood.sent < TAKEN_AT_MOST, f"the bot read {flood.sent} bytes of one refusal"
    assert "HTTP 400 unknown" in str(caught.value)


async def test_the_mini_app_s_relay_reads_an_endless_refusal_only_up_to_the_bound(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        mini = PythonPage(http, stack.base, stack.gateway.verify_key)
        assert (await mini.ask("warm up")).status == 200  # the bot has the bundle
        async with flooding_front(stack.gateway.url) as (url, flood):
            assert stack.veil.relay is not None
            for gateway in stack.veil.relay._pool.gateways:
                gateway.url = url
            asked = await mini.ask("hi")
            async with asyncio.timeout(30):
                await flood.done.wait()
    assert flood.sent < TAKEN_AT_MOST, f"the relay read {flood.sent} bytes of one refusal"
    assert asked.status == 502
    assert asked.error is not None
    assert (asked.error["gateway_status"], asked.error["gateway_code"]) == (400, "unknown")
