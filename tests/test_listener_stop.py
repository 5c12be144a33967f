"""A listener's stop cuts a request still in hand within the time it is given.

The bot's webhook (``WEBHOOK_STOP_WAIT_S``) cuts, at a stop, a POST still sending its body or
being journaled, so the stop keeps within what compose gives it; Telegram delivers an update it
got no answer for again. aiohttp waits its ``shutdown_timeout`` twice for a handler past its
body (once for it to end, once more after failing its body), so a runner given the wait itself
cut a journal write that did not end only after twice that.

The stop runs on an event loop whose clock moves on to the next timer whenever nothing is ready
(``tests.test_bot_stop_deadline``), against real sockets; the test reads that clock, never the
wall's.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bot.app import WEBHOOK_STOP_WAIT_S
from bot.webapp import WEBAPP_STOP_WAIT_S
from common.connections import stopping_runner
from tests.test_bot_stop_deadline import SkippingLoop

HEAD = b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20\r\n\r\n"


async def stop_with_a_request_in_hand(stage: str, within: float) -> tuple[float, bool]:
    """Stop a listener with a request at ``stage``; the loop's time that took, and if it was cut."""
    entered, cut = asyncio.Event(), asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        entered.set()
        try:
            await request.read()
            await asyncio.Event().wait()  # a journal write that does not end
        except asyncio.CancelledError:
            cut.set()
            raise
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = stopping_runner(app, cut_within=within)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"update_id": 1}'.ljust(20) if stage == "journal" else b'{"update_'
    writer.write(HEAD + body)
    await writer.drain()
    await entered.wait()
    await asyncio.sleep(0)  # the handler reads what came of its body
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runner.cleanup()
    spent = loop.time() - started
    await asyncio.sleep(0)  # the cancelled handler runs to its end
    writer.close()
    return spent, cut.is_set()


@pytest.mark.parametrize("within", [WEBHOOK_STOP_WAIT_S, WEBAPP_STOP_WAIT_S])
@pytest.mark.parametrize("stage", ["body", "journal"])
def test_a_request_in_hand_at_a_stop_is_cut_within_the_wait(stage: str, within: float) -> None:
    # A request past its body (being journaled, or the Mini App's waiting on the database) was
    # cut only after twice the wait: 10 s, not the 5 s the stop's budget counted on.
    with asyncio.Runner(loop_factory=SkippingLoop) as runner:
        spent, cut = runner.run(stop_with_a_request_in_hand(stage, within))
    assert cut
    assert spent <= within + 0.01
    assert spent >= within / 2 - 0.01  # it did wait for the handler first
