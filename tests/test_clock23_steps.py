"""A gateway's wall clock stepped back (NTP correcting a fast clock, a VM restored).

Replay ids are forgotten once their window has passed on the wall clock (and the receipt
store's copy after its 900 s); stepped back further, that clock makes such a request fresh
again while its id is gone, so a request captured on the wire could be sent again and run on
the client's account. The gateway now notices the step (a second it swept replay ids at, more
than ``STEP_KEPT`` seconds ago, comes again: ids are kept that long past their window) and
replaces its keys: a request sealed before can no longer be opened (410, which makes a client
fetch the new bundle), so none comes back. Shorter steps change no key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from sealed.encoding import b64e
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    Clock,
    ManagedProcess,
    RunningGateway,
    gateway_env,
    new_operator_key,
    post_sealed,
    seal_call,
)
from tests.test_clock23_skew import libfaketime

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

USER = 2302


async def test_a_request_replayed_after_the_clock_stepped_back_is_refused(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    captured = seal_call(gateway)
    assert (await post_sealed(http, gateway.url, captured)).status == 200
    # Past the captured request's window and its receipt's 900 s (the receipt store refuses a
    # request id it keeps as well): its id is swept as this one comes.
    clock.advance(1000)
    assert (await post_sealed(http, gateway.url, seal_call(gateway))).status == 200
    old_key = gateway.gateway.ring.current.keypair.key_id
    clock.advance(-1000)  # the step back: the captured request's timestamp is fresh again
    with capture_logs() as logs:
        replayed = await post_sealed(http, gateway.url, captured)
        assert (replayed.status, replayed.code) == (410, "unknown_key")
        assert len(vllm.requests) == 2  # the model ran once for each request, not again
        # A client that fetches the new bundle is served as before.
        assert gateway.gateway.ring.current.keypair.key_id != old_key
        fresh = await post_sealed(http, gateway.url, seal_call(gateway))
    assert fresh.status == 200
    (stepped,) = [entry for entry in logs if entry["event"] == "gateway.clock_stepped_back"]
    assert (stepped["log_level"], stepped["seconds"]) == ("warning", 1000)


async def test_the_clock_going_forward_or_back_within_a_second_changes_no_key(
    gateway: RunningGateway, http: aiohttp.ClientSession, clock: Clock
) -> None:
    key = gateway.gateway.ring.current.keypair.key_id
    clock.now = int(clock.now) + 0.1
    # The step back of half a second crosses a whole second the replay ids were swept at.
    for step in (0.4, 0.6, -0.5, 3600.0):
        clock.advance(step)
        assert (await post_sealed(http, gateway.url, seal_call(gateway))).status == 200
    assert gateway.gateway.ring.current.keypair.key_id == key


async def test_a_bot_goes_on_answering_when_ntp_steps_its_gateway_back(tmp_path: Path) -> None:
    # The gateway runs a minute fast (within the skew), then its clock is stepped to the right
    # time; the bot's next question meets the new key's 410, fetches the bundle, is answered.
    lib = libfaketime()
    if lib is None:
        pytest.skip("libfaketime is missing (Debian: apt-get install faketime, as .ci/run does)")
    key_file, verify_key = await new_operator_key(tmp_path)
    offset = tmp_path / "faketime"
    offset.write_text("+60\n")
    env = gateway_env("", key_file) | {
        "LD_PRELOAD": lib,
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",  # read the file at every call: the step takes at once
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    async with FakeVLLM(answer="Still here.", models=("veil-test",)) as vllm:
        env["VEIL_VLLM_URL"] = vllm.url
        process = await ManagedProcess.start("-m", "gateway", env=env)
        try:
            await process.wait_for_line("gateway.started")
            url = str(process.json_event("gateway.started")["url"])
            async with running_stack(
                tmp_path / "bot", gateway_url=url, operator_keys=b64e(verify_key)
            ) as stack:
                stack.telegram.send_text(USER, "Before the step")
                await stack.final_messages(USER, within=20)
                offset.write_text("+0\n")
                stack.telegram.send_text(USER, "After the step")
                texts = [m["text"] for m in await stack.final_messages(USER, 2, within=20)]
            await process.wait_for_line("gateway.clock_stepped_back")
        finally:
            await process.stop()
    assert texts == ["Still here.", "Still here."]
    assert len(vllm.requests) == 2
    stepped = process.json_event("gateway.clock_stepped_back")
    assert 59 <= int(str(stepped["seconds"])) <= 61
