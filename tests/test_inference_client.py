"""The bot-side sealed client: trust in bundles, failover, and what the network sees."""

from __future__ import annotations

import io
import itertools
import json
from typing import TYPE_CHECKING

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.keys import KeyRing
from sealed.auth import client_auth_headers
from sealed.suites import Suite
from services.errors import (
    InferenceBusy,
    InferenceUnavailable,
    StreamCorrupted,
    UntrustedGateway,
)
from services.inference import ChatRequest, InferenceClient, TextDelta
from tests.failover import answer_text, first_first, two_gateways
from tests.fakes.relay import RecordingProxy, TamperingRelay
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, run_gateway

if TYPE_CHECKING:
    import aiohttp

    from tests.harness import Clock, RunningGateway

PROMPT = "My secret diagnosis is quixotic-walrus-42"
ANSWER = "Your secret answer is zephyr-marmalade-17 and nothing else."


async def test_bundle_from_unpinned_operator_is_refused(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    stranger = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    client = InferenceClient([gateway.url], [stranger], http, clock=clock, client_key=CLIENT_KEY)
    with pytest.raises(UntrustedGateway, match="BundleUnpinned"):
        await answer_text(client)
    assert vllm.requests == []
    (trust,) = client.trust()
    assert not trust.verified
    assert trust.problem == "BundleUnpinned"


async def test_a_gateway_back_under_an_operator_key_not_pinned_is_untrusted_at_once(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with run_gateway(vllm.url, clock=clock) as running:
        client = InferenceClient(
            [running.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        assert await answer_text(client) == "Sealed hello, world."
        # The gateway comes back with keys signed by an operator this bot does not pin: the
        # question sealed to the old key gets 410, the bundle fetched again does not verify.
        running.gateway.ring = KeyRing(
            ed25519.Ed25519PrivateKey.generate(),
            suite=Suite.X25519,
            rotation_seconds=3600,
            grace_seconds=600,
            now=int(clock()),
        )
        running.gateway.ring.set_models(("veil-test",), {})
        with pytest.raises(UntrustedGateway, match="BundleUnpinned"):
            await answer_text(client)
        assert len(vllm.requests) == 1


async def test_expired_bundle_is_refused(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    late = type(clock)(clock() + 10 * 3600)  # the client's clock is far past not_after
    client = InferenceClient(
        [gateway.url], [gateway.verify_key], http, clock=late, client_key=CLIENT_KEY
    )
    with pytest.raises(UntrustedGateway, match="BundleExpired"):
        await answer_text(client)
    assert vllm.requests == []


async def test_trust_reports_fingerprint_of_verified_bundle(client: InferenceClient) -> None:
    await client.refresh()
    (trust,) = client.trust()
    assert trust.verified
    assert trust.fingerprint is not None
    assert len(trust.fingerprint.replace(" ", "")) == 24
    assert client.models() == ("veil-test",)


async def test_failover_when_first_gateway_is_down(
    gateway: RunningGateway, http: aiohttp.ClientSession, clock: Clock
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    client = InferenceClient(
        [dead, gateway.url], [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
    )
    for _ in range(3):
        assert await answer_text(client) == "Sealed hello, world."


async def test_failover_when_vllm_behind_a_gateway_is_down(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with two_gateways(clock) as pair:
        client = InferenceClient(
            [pair.first.url, pair.second.url],
            [pair.first.verify_key],
            http,
            clock=clock,
            client_key=CLIENT_KEY,
        )
        await client.refresh()
        await pair.one.close()  # the first gateway's vLLM goes away after bundles were fetched
        answers = {await answer_text(client) for _ in range(4)}
        assert answers == {"from the second"}


@pytest.mark.parametrize(("status", "alone"), [(503, InferenceUnavailable), (429, InferenceBusy)])
async def test_a_model_server_refusing_for_its_load_is_failed_over(
    http: aiohttp.ClientSession, clock: Clock, status: int, alone: type[Exception]
) -> None:
    # A model server that was reached but said 503 (restarting, overloaded) or 429 before its
    # stream was told as the model failing ("could not answer"), though another gateway's
    # model could answer: it is failed over as a model server out of reach is.
    async with two_gateways(clock) as pair:
        pair.one.fail_before_stream = (status, "the engine cannot take this now")
        both = first_first([pair.first.url, pair.second.url], pair.first, http, clock)
        assert await answer_text(both) == "from the second"
        assert len(pair.one.requests) == 1
        only = InferenceClient(
            [pair.first.url], [pair.first.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        with pytest.raises(alone):
            await answer_text(only)


async def test_spreads_requests_over_gateways(http: aiohttp.ClientSession, clock: Clock) -> None:
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeVLLM(answer="one") as one,
        FakeVLLM(answer="two") as two,
        run_gateway(one.url, operator=operator, clock=clock) as first,
        run_gateway(two.url, operator=operator, clock=clock) as second,
    ):
        client = InferenceClient(
            [first.url, second.url], [first.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        answers = [await answer_text(client) for _ in range(4)]
        assert sorted(answers) == ["one", "one", "two", "two"]


async def test_all_gateways_down_is_unavailable(http: aiohttp.ClientSession, clock: Clock) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    client = InferenceClient(
        ["http://127.0.0.1:9"], [key], http, clock=clock, client_key=CLIENT_KEY
    )
    with pytest.raises(InferenceUnavailable):
        await answer_text(client)


async def test_no_retry_after_text_has_streamed(http: aiohttp.ClientSession, clock: Clock) -> None:
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeVLLM(answer="a b c d e f g") as one,
        FakeVLLM(answer="other") as two,
        run_gateway(one.url, operator=operator, clock=clock) as first,
        run_gateway(two.url, operator=operator, clock=clock) as second,
    ):
        one.drop_after = 2
        client = InferenceClient(
            [first.url, second.url], [first.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        client._pool.turn = itertools.count(0, 2)  # always start with the first gateway
        seen = []
        with pytest.raises(Exception, match="closed the stream"):
            async for item in client.stream(
                ChatRequest([{"role": "user", "content": "x"}], model="veil-test", cache_salt="s")
            ):
                seen.append(item)
        assert "".join(i.text for i in seen if isinstance(i, TextDelta)) == "a b"
        assert two.requests == []


async def test_connection_cut_mid_stream_is_truncation(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeVLLM(answer="a b c d e f g", token_delay=0.1) as fake:
        async with run_gateway(fake.url, clock=clock) as running:
            host, port = running.url.removeprefix("http://").split(":")
            proxy = RecordingProxy(host, int(port))
            await proxy.start()
            client = InferenceClient(
                [proxy.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
            )
            stream = client.stream(
                ChatRequest([{"role": "user", "content": "x"}], model="veil-test", cache_salt="s")
            )
            first = await anext(stream)
            assert isinstance(first, TextDelta)
            await proxy.close()  # the network drops the connection mid-answer
            with pytest.raises(StreamCorrupted) as caught:
                async for _ in stream:
                    pass
        assert caught.value.reason == "truncated"


async def test_network_sees_neither_prompt_nor_answer(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeVLLM(answer=ANSWER) as fake, run_gateway(fake.url, clock=clock) as running:
        host, port = running.url.removeprefix("http://").split(":")
        async with RecordingProxy(host, int(port)) as proxy:
            client = InferenceClient(
                [proxy.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
            )
            with structlog.testing.capture_logs() as logs:
                assert await answer_text(client, [{"role": "user", "content": PROMPT}]) == ANSWER
        assert fake.requests[0]["messages"][0]["content"] == PROMPT  # it did reach the model
        wire = proxy.captured
        assert b"/v1/sealed/chat/completions" in wire  # the proxy saw the exchange
        for secret in (PROMPT, ANSWER, "quixotic", "zephyr"):
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                assert secret.encode(encoding) not in wire
        log_text = json.dumps(logs, default=str)
        assert "gateway.relayed" in log_text
        assert "quixotic" not in log_text
        assert "zephyr" not in log_text


async def test_gateway_refuses_requests_it_cannot_parse(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    for body in (b"", b"GET / HTTP/1.1", b"VEIL\x09\x01" + b"\0" * 40):
        async with http.post(
            f"{gateway.url}/v1/sealed/chat/completions",
            data=io.BytesIO(body),
            headers=client_auth_headers(CLIENT_KEY, body),
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "malformed"
    assert vllm.requests == []


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param((502, "application/json", b"[" * 100_000 + b"]" * 100_000), id="nested"),
        pytest.param((502, "application/json; charset=hex", b'{"error": {}}'), id="charset"),
    ],
)
async def test_failover_past_a_proxys_refusal_no_json_reading_survives(
    gateway: RunningGateway,
    http: aiohttp.ClientSession,
    clock: Clock,
    refusal: tuple[int, str, bytes],
) -> None:
    # A proxy in front of the first gateway answers with an error body nested past the JSON
    # parser's depth (RecursionError), or in a charset that is no text encoding (LookupError):
    # a refusal like any, the next gateway answers.
    async with TamperingRelay(gateway.url) as proxy:
        proxy.refusal = ("/v1/sealed/chat/", *refusal)
        client = InferenceClient(
            [proxy.url, gateway.url], [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        for _ in range(3):  # taken in turn: the proxy is asked at least once
            assert await answer_text(client) == "Sealed hello, world."
