"""A kept receipt's time to live is counted on the gateway's monotonic clock, not the wall's.

An NTP step of the wall clock (an hour forward) dropped every kept receipt at once, and a bot
whose stream was cut could no longer fetch the one it is owed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.limits import Limits
from tests.harness import Clock, post_sealed, run_gateway, seal_call
from tests.test_gateway_cancel import fetch_receipt

if TYPE_CHECKING:
    import aiohttp

    from tests.fakes.vllm import FakeVLLM


async def test_a_forward_step_of_the_wall_clock_keeps_the_receipts(
    vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    wall, ticks = Clock(), Clock(0.0)
    limits = Limits(receipt_ttl=900)
    async with run_gateway(vllm.url, clock=wall, monotonic=ticks, limits=limits) as gw:
        call = seal_call(gw)
        assert (await post_sealed(http, gw.url, call)).status == 200
        wall.advance(3600)  # NTP steps the wall clock an hour; a second of real time passes
        ticks.advance(1)
        rid, headers = call.request_id.hex(), call.receipt_headers()
        assert (await fetch_receipt(http, gw.url, rid, headers))[0] == 200
        ticks.advance(899)  # its time to live is over on the gateway's own clock
        assert (await fetch_receipt(http, gw.url, rid, headers))[0] == 404
