"""A model server's ``Retry-After`` before its stream: sealed to the bot, kept by its back-off.

A model server (or a proxy before it) that refuses with 429 or 503 may say when to come back,
in seconds or as an HTTP-date (RFC 9110 §10.2.3). The gateway passes it on in the error record
(``retry_after``, at most ``MAX_RETRY_AFTER``) to a client that asks for it with
``Veil-Accept: retry_after``, and to no other (a client that reads the record's fields
strictly, as the Mini App's page does, never sees a field it does not know). The bot then does
not ask that gateway again sooner (``GatewayPool.failed``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sealed.stream import ACCEPT_HEADER, MAX_RETRY_AFTER
from tests.failover import answer_text, first_first, two_gateways
from tests.harness import post_sealed, seal_call

if TYPE_CHECKING:
    import aiohttp

    from tests.fakes.vllm import FakeVLLM
    from tests.harness import Clock, RunningGateway

# A Retry-After as sent, and the seconds the error record says (None: no field).
WAITS = {
    "7": 7,
    "0": 0,
    " 12 ": 12,
    "86400": MAX_RETRY_AFTER,
    "9" * 5000: MAX_RETRY_AFTER,  # past what int() reads from text
    "Fri, 01 Jan 2100 00:00:00 GMT": MAX_RETRY_AFTER,
    "Sun, 06 Nov 1994 08:49:37 GMT": 0,  # a date past: now
    "Sun, 06 Nov 1994 08:49:37 -0000": None,  # no known zone
    "soon": None,
    "-5": None,
    "1.5": None,
    "٣": None,  # a digit, but not an ASCII one
}


@pytest.mark.parametrize("status", [429, 503])
async def test_a_model_servers_retry_after_reaches_only_a_client_that_asks_for_it(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, status: int
) -> None:
    vllm.fail_before_stream = (status, "the engine cannot take this now")
    for value, wait in WAITS.items():
        vllm.retry_after = value
        for asks in (True, False):
            call = seal_call(gateway)
            headers = call.headers() | ({ACCEPT_HEADER: "retry_after"} if asks else {})
            reply = await post_sealed(http, gateway.url, call, headers=headers)
            assert reply.final is not None
            assert (reply.final.error_kind, reply.final.error_status) == ("unavailable", status)
            assert reply.final.error_retry_after == (wait if asks else None), value
            if wait is None or not asks:  # the three fields a strict reader knows
                assert set(reply.final.payload()["error"]) == {"kind", "status", "message"}
    vllm.retry_after = None
    call = seal_call(gateway)
    headers = call.headers() | {ACCEPT_HEADER: "retry_after"}
    reply = await post_sealed(http, gateway.url, call, headers=headers)
    assert reply.final is not None
    assert reply.final.error_retry_after is None


async def test_a_gateway_whose_model_server_asks_to_wait_is_not_asked_sooner(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # The model server's Retry-After was dropped: the bot put the gateway in its own back-off
    # (2 s after one failure) and asked it again, and was refused again, for the whole wait.
    async with two_gateways(clock) as pair:
        pair.one.fail_before_stream = (429, "Too many requests")
        pair.one.retry_after = "120"
        client = first_first([pair.first.url, pair.second.url], pair.first, http, clock)
        assert await answer_text(client) == "from the second"
        assert len(pair.one.requests) == 1
        clock.advance(60)
        for _ in range(3):
            assert await answer_text(client) == "from the second"
        assert len(pair.one.requests) == 1
        pair.one.fail_before_stream = None
        clock.advance(61)
        assert await answer_text(client) == "from the first"
