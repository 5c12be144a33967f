"""A gateway whose wall clock jitters by a few seconds (a bad NTP source, stepped back and forth).

1. Since clock23 a step back of more than a second renewed every key, because replay ids were
   kept only a second past their window: a clock stepped back 2-3 s every few seconds renewed
   the keys each time, every request sealed a moment before met a 410, each bot fetched the
   bundle again and sent again, and the operator read a warning a second. Ids are now kept
   ``STEP_KEPT`` seconds past their window, so a step back that short reopens no request (a
   captured one is still refused as replayed) and changes no key; a longer one still renews.
2. A key made at second T was refused (410) for requests while the clock read T - 1 after a
   step back under a second (which, reopening nothing, renews nothing): every request sealed
   to it failed, and the bot's refetched bundle named the same key, so its retry failed too.
   A key the gateway made itself is now taken from the time it was made, whatever the clock
   says since: only its end is checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from structlog.testing import capture_logs

from tests.harness import post_sealed, seal_call

if TYPE_CHECKING:
    import aiohttp

    from tests.fakes.vllm import FakeVLLM
    from tests.harness import Clock, RunningGateway

SKEW = 120  # the gateway fixture's allowed skew


async def test_a_clock_stepped_back_a_few_seconds_renews_no_key_and_reopens_no_request(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    clock.now = int(clock.now) + 0.5
    key = gateway.gateway.ring.current.keypair.key_id
    captured = seal_call(gateway)
    with capture_logs() as logs:
        assert (await post_sealed(http, gateway.url, captured)).status == 200
        clock.advance(SKEW + 2)  # past the captured request's window (a request sweeps it)
        assert (await post_sealed(http, gateway.url, seal_call(gateway))).status == 200
        clock.advance(-3)  # the jitter's step back: the captured request is fresh again
        replayed = await post_sealed(http, gateway.url, captured)
        fresh = await post_sealed(http, gateway.url, seal_call(gateway))
    assert (replayed.status, replayed.code) == (409, "replayed")
    assert fresh.status == 200
    assert gateway.gateway.ring.current.keypair.key_id == key
    assert [e for e in logs if e["event"] == "gateway.clock_stepped_back"] == []
    assert len(vllm.requests) == 3  # the captured request ran once


async def test_a_new_key_is_taken_when_the_clock_steps_back_under_a_second(
    gateway: RunningGateway, http: aiohttp.ClientSession, clock: Clock
) -> None:
    clock.now = int(clock.now) + 0.2
    ring = gateway.gateway.ring
    ring.rotate(gateway.gateway.now())  # made at this second (the hourly rotation, a renewal)
    clock.advance(-0.5)  # into the second before: no id can come back, nothing is renewed
    reply = await post_sealed(http, gateway.url, seal_call(gateway))
    assert reply.status == 200, reply.code
