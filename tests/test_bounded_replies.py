"""A gateway's key bundle, cancel state and kept receipt are read up to a bound, as its refusals.

review23c bounded the refusals (``tests/test_review23c_refusal_size.py``); the bundle fetch,
the cancel's reply and the receipt fetch still read a reply whole before parsing it, however
long (the bundle's only bound a 10 s timeout, in which loopback carries gigabytes). Each comes
in clear from whatever answers (a proxy, the network: untrusted, ARCHITECTURE.md): a reply of
endless JSON filled the bot's memory. Now ``services.gateways.json_reply`` reads at most
``BUNDLE_MOST`` (a bundle) or ``REFUSAL_MOST`` bytes and hangs up: no bundle from that
gateway, a cancel not delivered (the caller hangs up), no receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from services.control import UNDELIVERED, ControlClient
from services.errors import InferenceError
from services.gateways import BUNDLE_MOST, Gateway
from services.inference import ChatRequest, InferenceClient
from tests.harness import CLIENT_KEY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.harness import Clock, RunningGateway

CHUNK = 64 * 1024
OFFERED = 64 * 1024 * 1024  # what the hostile front would send in all
# What the bot may have taken in once it stops reading: its bound plus the kernel's and
# aiohttp's buffers on loopback (a few MiB), far short of all that is offered.
TAKEN_AT_MOST = 24 * 1024 * 1024


class Endless:
    """A reply of ``status`` whose JSON, begun with ``head``, goes on for ``OFFERED`` bytes.

    ``sent``: the bytes the bot took before it hung up (set once ``done``).
    """

    def __init__(self, status: int, head: bytes = b'{"state": "finished", "pad": "') -> None:
        self.status = status
        self.head = head
        self.sent = 0
        self.done = asyncio.Event()

    async def reply(self, request: web.Request) -> web.StreamResponse:
        """The endless reply, as long as the bot reads it."""
        await request.read()
        reply = web.StreamResponse(status=self.status, headers={"Content-Type": "application/json"})
        await reply.prepare(request)
        try:
            await reply.write(self.head)
            self.sent = len(self.head)
            while self.sent < OFFERED:
                await reply.write(b"x" * CHUNK)
                self.sent += CHUNK
            await reply.write(b'"}')
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass  # the bot hung up: what it took is counted
        finally:
            self.done.set()
        return reply


@contextlib.asynccontextmanager
async def endless_front(status: int) -> AsyncIterator[tuple[str, Endless]]:
    """Serve an ``Endless`` on every path; its URL and itself."""
    endless = Endless(status)
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", endless.reply)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", endless
    finally:
        await runner.cleanup()


async def taken(endless: Endless) -> int:
    """What the bot took of the endless reply, once the front saw it hang up."""
    async with asyncio.timeout(30):
        await endless.done.wait()
    return endless.sent


def test_a_bundle_may_be_far_larger_than_any_gateway_s() -> None:
    assert 64 * 1024 <= BUNDLE_MOST <= 4 * 1024 * 1024


async def test_an_endless_key_bundle_is_read_only_up_to_the_bound(
    gateway: RunningGateway, http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with endless_front(200) as (url, endless):
        client = InferenceClient(
            [url], [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        request = ChatRequest(
            [{"role": "user", "content": "hi"}], model="veil-test", cache_salt="s"
        )
        with pytest.raises(InferenceError):
            async for _item in client.stream(request):
                pass
        sent = await taken(endless)
    assert sent < TAKEN_AT_MOST, f"the bot read {sent} bytes of one key bundle"


@pytest.mark.parametrize("what", ["cancel", "receipt"])
async def test_an_endless_cancel_or_receipt_reply_is_read_only_up_to_the_bound(
    http: aiohttp.ClientSession, what: str
) -> None:
    control = ControlClient(http, retry_delays=())
    async with endless_front(200) as (url, endless):
        gateway = Gateway(index=1, url=url)
        if what == "cancel":
            outcome: object = await control.cancel(gateway, bytes(16), bytes(32))
        else:
            outcome = await control.fetch_receipt(gateway, bytes(16), bytes(32))
        sent = await taken(endless)
    assert sent < TAKEN_AT_MOST, f"the bot read {sent} bytes of one {what} reply"
    assert outcome == (UNDELIVERED if what == "cancel" else None)
