"""A client's tokens per minute are counted on the gateway's monotonic clock, not the wall's.

On the wall clock a step forward (NTP correcting a slow clock) gave a client that had used its
minute a fresh one at once, and a step back held it out for as long as the step (an hour back:
refused for an hour, told to retry in one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.harness import (
    CLIENT_VERIFY_KEY,
    Clock,
    client_policy,
    post_sealed,
    run_gateway,
    seal_call,
)

if TYPE_CHECKING:
    import aiohttp

    from tests.fakes.vllm import FakeVLLM

# One request costs 9 tokens (test_gateway_limits): two use a minute of 18.
CLIENTS = {CLIENT_VERIFY_KEY: client_policy(tokens_per_minute=18)}


async def test_a_forward_step_of_the_wall_clock_refills_no_allowance(
    vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    wall, ticks = Clock(), Clock(0.0)
    async with run_gateway(vllm.url, clock=wall, monotonic=ticks, clients=CLIENTS) as gw:
        for _ in range(2):
            assert (await post_sealed(http, gw.url, seal_call(gw))).status == 200
        wall.advance(3600)  # NTP steps the wall clock an hour; a second of real time passes
        ticks.advance(1)
        refused = await post_sealed(http, gw.url, seal_call(gw))
        assert (refused.status, refused.code, refused.retry_after) == (429, "rate_limited", "59")
        ticks.advance(59)  # the minute is over on the gateway's own clock
        assert (await post_sealed(http, gw.url, seal_call(gw))).status == 200
        assert len(vllm.requests) == 3


async def test_a_backward_step_of_the_wall_clock_holds_no_client_out(
    vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    wall, ticks = Clock(), Clock(0.0)
    async with run_gateway(vllm.url, clock=wall, monotonic=ticks, clients=CLIENTS) as gw:
        for _ in range(2):
            assert (await post_sealed(http, gw.url, seal_call(gw))).status == 200
        wall.advance(-3600)  # the wall clock is stepped an hour back
        ticks.advance(30)
        # The step renews the keys (clock23): the request sealed before it is told 410.
        assert (await post_sealed(http, gw.url, seal_call(gw))).status == 410
        refused = await post_sealed(http, gw.url, seal_call(gw))
        assert (refused.status, refused.code, refused.retry_after) == (429, "rate_limited", "30")
        ticks.advance(30)  # a minute since the charges, whatever the wall clock says
        assert (await post_sealed(http, gw.url, seal_call(gw))).status == 200
        assert len(vllm.requests) == 3
