"""The bot's gateway pool over a long outage: its back-offs stay at their ceilings."""

from __future__ import annotations

import aiohttp

from services.gateways import UNREACHABLE, GatewayPool
from tests.harness import Clock, free_port

# More failures than a float's exponent holds (2.0 ** 1024 overflows).
_LONG_OUTAGE = 1100


async def test_a_gateway_out_of_reach_for_long_is_still_asked_for_its_keys() -> None:
    # Each failed fetch doubled the next back-off from the number of failures so far, as an
    # integer power: after 1,024 failures (a gateway left in the list though taken down, some
    # 17 hours at the 60 s ceiling) the back-off no longer fit a float, and every refresh (so
    # every question, /privacy, the Mini App's account) raised OverflowError.
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        pool = GatewayPool(
            [f"http://127.0.0.1:{free_port()}"], [bytes(32)], session, clock=clock, skew=60
        )
        for _ in range(_LONG_OUTAGE):
            clock.advance(61)
            await pool.refresh()
    (gateway,) = pool.gateways
    assert gateway.problem == UNREACHABLE
    assert gateway.fetch_failures == _LONG_OUTAGE  # asked each time
    assert gateway.fetch_at - clock() == 60  # at the ceiling: asked again within a minute


async def test_a_gateway_that_fails_for_long_stays_at_the_longest_back_off() -> None:
    # The same for a gateway whose answers fail (its bundle kept while valid): ``2.0 **
    # failures`` overflowed after 1,024 failures in a row, and the question raised it.
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        pool = GatewayPool(
            [f"http://127.0.0.1:{free_port()}"], [bytes(32)], session, clock=clock, skew=60
        )
        (gateway,) = pool.gateways
        for _ in range(_LONG_OUTAGE):
            pool.failed(gateway)
    assert gateway.retry_at - clock() == 30
