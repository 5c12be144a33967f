"""The Mini App's API logs the route a request was for, never the path as its sender wrote it.

A path is the sender's text (launch data a page put there by mistake, a line end to forge log
lines with): ``handlers.webapp._route`` gives the route's path, or nothing. aiohttp's router
hands a route only requests for its own path today; the handler's refusals must not rest on
that, and the request here reaches the route's handler with a path the router never made.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from structlog.testing import capture_logs

from handlers.webapp import InitDataCheck, Page, build_webapp
from tests.botstack import TOKEN
from tests.miniapp import init_data, webapp_stack

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from aiohttp import web

SENT = "/app/api/relay/user=%7B%22id%22%3A777001%7D%0A2026-12-01 [error] payments.lost"


def route_handler(
    app: web.Application, path: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler ``app``'s router gives requests for ``path`` (POST)."""
    for resource in app.router.resources():
        if resource.canonical == path:
            return next(route.handler for route in resource if route.method == "POST")
    raise AssertionError(path)


async def test_a_refused_path_is_logged_as_its_route_never_as_sent(tmp_path: Path) -> None:
    # The refusals after the route was found (401, 408, 413) logged ``request.path`` itself:
    # the sender's text, line ends and launch data included.
    async with webapp_stack(tmp_path) as stack:
        assert stack.veil.relay is not None
        app = build_webapp(
            stack.veil.relay,
            InitDataCheck(TOKEN, 3600),
            Page(b"<html></html>", b""),
            "/app/",
            client_timeout=0.2,
        )
        relay = route_handler(app, "/app/api/relay")
        auth = {"Authorization": f"tma {init_data()}"}
        reading = BaseProtocol(asyncio.get_running_loop())
        stalled = StreamReader(reading, 2**16)
        stalled.feed_data(b"sealed bytes that never end")
        slow = make_mocked_request("POST", SENT, auth, app=app, payload=stalled)
        assert slow.transport is not None
        reading.connection_made(slow.transport)  # open: its body waited for, never ending
        with capture_logs() as logs:
            refused = await relay(make_mocked_request("POST", SENT, app=app))
            large = {**auth, "Content-Length": str(10**9)}
            too_large = await relay(make_mocked_request("POST", SENT, large, app=app))
            timed_out = await relay(slow)
    assert (refused.status, too_large.status, timed_out.status) == (401, 413, 408)
    told = {e["event"]: e.get("path", "absent") for e in logs if e["event"].startswith("webapp.")}
    assert told == {"webapp.refused": None, "webapp.too_large": None, "webapp.body_timeout": None}
    assert not [e for e in logs if "payments.lost" in repr(e) or "777001%7D" in repr(e)]
    assert not [e for e in logs if '"id":777001' in repr(e)]
