"""The client under load and refusals: a bounded pool wait, busy gateways, failover by status.

Real gateways in front of fake vLLMs on 127.0.0.1; the client's stream session has a small
pool so a burst overflows it.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from structlog.testing import capture_logs

from services.errors import InferenceBusy, InferenceError, InferenceUnavailable
from services.inference import InferenceClient
from tests.failover import answer_text, first_first, two_gateways
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, CLIENT_VERIFY_KEY, client_policy, free_port, run_gateway

if TYPE_CHECKING:
    from tests.harness import Clock

SLOW_ANSWER = " ".join(f"w{i}" for i in range(40))


async def answer_or_busy(client: InferenceClient) -> str:
    try:
        return await answer_text(client)
    except InferenceBusy:
        return "busy"


async def test_a_burst_past_the_pool_completes_or_is_busy_and_never_hangs(clock: Clock) -> None:
    operator = ed25519.Ed25519PrivateKey.generate()
    per_gateway = 5
    async with (
        FakeVLLM(answer=SLOW_ANSWER, token_delay=0.05) as one,
        FakeVLLM(answer=SLOW_ANSWER, token_delay=0.05) as two,
        run_gateway(one.url, operator=operator, clock=clock) as first,
        run_gateway(two.url, operator=operator, clock=clock) as second,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2 * per_gateway, limit_per_host=per_gateway)
        ) as streams,
        aiohttp.ClientSession() as control,
    ):
        client = InferenceClient(
            [first.url, second.url],
            [first.verify_key],
            streams,
            control_session=control,
            client_key=CLIENT_KEY,
            clock=clock,
            pool_wait=0.5,
        )
        await client.refresh()
        with capture_logs() as logs:
            async with asyncio.timeout(60):  # none hangs
                results = await asyncio.gather(
                    *(answer_or_busy(client) for _ in range(2 * per_gateway + 2))
                )
        asked = len(one.requests) + len(two.requests)
    assert results.count(SLOW_ANSWER) == 2 * per_gateway
    assert results.count("busy") == 2
    assert asked == 2 * per_gateway  # a busy request never reached a model
    reasons = {entry["reason"] for entry in logs if entry["event"] == "inference.failover"}
    assert reasons == {"busy"}


async def test_a_gateway_that_has_not_pinned_the_bot_fails_over_and_tells_the_operator(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with two_gateways(clock, first_clients={}) as pair:
        client = first_first([pair.first.url, pair.second.url], pair.first, http, clock)
        with capture_logs() as logs:
            assert await answer_text(client) == "from the second"
        assert pair.one.requests == []
    (event,) = [entry for entry in logs if entry["event"] == "inference.unauthenticated"]
    assert event["log_level"] == "error"
    assert event["gateway"] == 1
    assert event["code"] == "unauthenticated"


async def test_a_gateway_url_s_password_stays_out_of_the_log(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # A gateway behind a proxy that asks for a password takes it in the URL (aiohttp sends it
    # as Basic auth). ``inference.unauthenticated`` and ``inference.bundle_unavailable`` logged
    # the URL, password and all; they name the gateway by its position, as the docs say.
    password = "hunter2-d4e5f6"
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeVLLM(answer="from the first") as one,
        FakeVLLM(answer="from the third") as three,
        run_gateway(one.url, operator=operator, clock=clock, clients={}) as first,
        run_gateway(three.url, operator=operator, clock=clock) as third,
    ):
        urls = [
            url.replace("http://", f"http://veil:{password}@")
            for url in (first.url, f"http://127.0.0.1:{free_port()}", third.url)
        ]
        client = InferenceClient(urls, [first.verify_key], http, clock=clock, client_key=CLIENT_KEY)
        client._pool.turn = itertools.count(0, 3)  # always start with the first gateway
        with capture_logs() as logs:
            assert await answer_text(client) == "from the third"
    events = {entry["event"]: entry for entry in logs}
    assert events["inference.unauthenticated"]["gateway"] == 1
    assert events["inference.bundle_unavailable"]["gateway"] == 2
    assert password not in str(logs)


async def test_a_client_limit_429_fails_over_and_backs_off(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    full = {CLIENT_VERIFY_KEY: client_policy(streams=0)}
    async with two_gateways(clock, first_clients=full) as pair:
        client = first_first([pair.first.url, pair.second.url], pair.first, http, clock)
        with capture_logs() as logs:
            assert await answer_text(client) == "from the second"
            # In back-off, the first gateway is tried last: the next answer goes straight on.
            assert await answer_text(client) == "from the second"
        assert pair.one.requests == []
    failovers = [entry["reason"] for entry in logs if entry["event"] == "inference.failover"]
    assert failovers == ["HTTP 429 client_busy"]


async def test_every_gateway_at_capacity_is_busy(
    http: aiohttp.ClientSession, clock: Clock, vllm: FakeVLLM
) -> None:
    async with run_gateway(vllm.url, clock=clock, max_streams=0) as running:
        client = InferenceClient(
            [running.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        with pytest.raises(InferenceBusy):
            await answer_text(client)
    assert vllm.requests == []


async def test_a_refusal_that_is_our_own_fault_is_not_failed_over(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeVLLM() as one,
        FakeVLLM() as two,
        run_gateway(one.url, operator=operator, clock=clock) as first,
        run_gateway(two.url, operator=operator, clock=clock) as second,
    ):
        client = InferenceClient(
            [first.url, second.url], [first.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        with pytest.raises(InferenceError, match="400 bad_content") as caught:
            await answer_text(client, [{"role": "user", "content": [image]}])
        assert not isinstance(caught.value, InferenceUnavailable)
        assert one.requests == two.requests == []


async def test_a_gateway_address_that_answers_as_no_gateway_logs_the_status(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # VEIL_GATEWAYS naming the model server itself (its port for the gateway's): every look
    # logged only ``error=_BundleUnavailable``, as for a gateway that is down. The status the
    # address answered tells the operator that something else listens there.
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeVLLM(answer="from the gateway") as model,
        run_gateway(model.url, operator=operator, clock=clock) as gateway,
    ):
        urls = [model.url, gateway.url]
        client = InferenceClient(
            urls, [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        with capture_logs() as logs:
            assert await answer_text(client) == "from the gateway"
    (event,) = [entry for entry in logs if entry["event"] == "inference.bundle_unavailable"]
    assert event["gateway"] == 1
    assert event["status"] == 404
