"""Client → gateway → fake vLLM over real HTTP: answers, errors, refusals, attacks."""

from __future__ import annotations

import asyncio
import io
import time
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from sealed.auth import client_auth_headers
from sealed.encoding import b64e
from sealed.receipt import ReceiptStatus
from sealed.relay import RELAY_KEY_HEADER
from sealed.request import new_request_secrets, seal_request
from sealed.stream import ChunkOpener
from sealed.suites import Suite
from services.errors import (
    BackendError,
    ContextTooLong,
    InferenceUnavailable,
    StreamCorrupted,
)
from services.inference import ChatRequest, Completion, InferenceClient, TextDelta
from tests.fakes.relay import TamperingRelay
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    CLIENT_KEY,
    CountingProxy,
    post_sealed,
    read_sealed,
    run_gateway,
    seal_call,
    wait_until,
)

if TYPE_CHECKING:
    import aiohttp

    from tests.harness import Clock, RunningGateway

MESSAGES = [{"role": "user", "content": "Say hello"}]


async def collect(
    client: InferenceClient,
    *,
    model: str = "veil-test",
    salt: str = "salt-1",
    max_tokens: int | None = None,
) -> tuple[str, Completion]:
    text = []
    completion = None
    async for item in client.stream(
        ChatRequest(MESSAGES, model=model, cache_salt=salt, max_tokens=max_tokens)
    ):
        if isinstance(item, TextDelta):
            text.append(item.text)
        elif isinstance(item, Completion):
            completion = item
    assert completion is not None
    return "".join(text), completion


async def test_round_trip_streams_answer_and_verified_receipt(
    client: InferenceClient, vllm: FakeVLLM
) -> None:
    text, completion = await collect(client)
    assert text == "Sealed hello, world."
    assert completion.receipt_valid
    assert completion.receipt is not None
    assert completion.receipt.completion_tokens == 3
    assert completion.receipt.model == "veil-test"
    assert completion.finish_reason == "stop"
    (sent,) = vllm.requests
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["cache_salt"] == "salt-1"
    assert sent["messages"] == MESSAGES
    # No max given: the client's ceiling, under both names (llama-server reads max_tokens).
    assert sent["max_completion_tokens"] == sent["max_tokens"] == 2048


async def test_multi_kilobyte_unicode_answer(client: InferenceClient, vllm: FakeVLLM) -> None:
    answer = " ".join(["Жили-были 🐉 драконы, 龍 и ドラゴン."] * 340)  # 2040 tokens
    vllm.answer = answer
    text, completion = await collect(client, max_tokens=2048)
    assert text == answer
    assert len(text.encode()) > 20_000
    assert completion.receipt is not None
    assert completion.receipt.complete


async def test_answer_streams_before_it_is_finished(
    client: InferenceClient, vllm: FakeVLLM
) -> None:
    vllm.answer = "one two three four"
    vllm.token_delay = 0.2
    arrivals = []
    async for item in client.stream(ChatRequest(MESSAGES, model="veil-test", cache_salt="s")):
        arrivals.append((time.monotonic(), item))
    first_delta = next(t for t, item in arrivals if isinstance(item, TextDelta))
    assert arrivals[-1][0] - first_delta >= 0.5  # deltas were relayed as they came, not buffered


async def test_api_key_is_forwarded_to_vllm(http: aiohttp.ClientSession, clock: Clock) -> None:
    async with (
        FakeVLLM(api_key="vllm-secret") as fake,
        run_gateway(fake.url, clock=clock, api_key="vllm-secret") as running,
    ):
        client = InferenceClient(
            [running.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        text, _ = await collect(client)
        assert text == "Hello from the fake model."
        assert fake.request_headers[-1]["authorization"] == "Bearer vllm-secret"


async def test_error_before_stream_is_sealed_backend_error(
    client: InferenceClient, vllm: FakeVLLM
) -> None:
    vllm.fail_before_stream = (500, "CUDA out of memory")
    with pytest.raises(BackendError) as caught:
        await collect(client)
    assert caught.value.message == "CUDA out of memory"
    assert caught.value.status == 500


async def test_model_no_gateway_serves_is_unavailable(
    client: InferenceClient, vllm: FakeVLLM
) -> None:
    with pytest.raises(InferenceUnavailable, match="no gateway serves this model"):
        await collect(client, model="no-such-model")
    assert vllm.requests == []


async def test_context_length_error_is_typed(client: InferenceClient, vllm: FakeVLLM) -> None:
    vllm.max_model_len = 260  # 256 completion tokens + the prompt do not fit
    with pytest.raises(ContextTooLong) as caught:
        await collect(client, max_tokens=256)
    assert "maximum context length" in caught.value.message


async def test_error_mid_stream_keeps_partial_usage(
    client: InferenceClient, vllm: FakeVLLM
) -> None:
    vllm.answer = "a b c d e f"
    vllm.error_mid_stream_after = 2
    seen = []
    with pytest.raises(BackendError) as caught:
        async for item in client.stream(ChatRequest(MESSAGES, model="veil-test", cache_salt="s")):
            seen.append(item)
    assert "".join(i.text for i in seen if isinstance(i, TextDelta)) == "a b"
    receipt = caught.value.receipt
    assert receipt is not None
    assert receipt.completion_tokens == 2
    assert not receipt.complete


async def test_dropped_vllm_connection_is_backend_error(
    client: InferenceClient, vllm: FakeVLLM
) -> None:
    vllm.answer = "a b c d e f"
    vllm.drop_after = 3
    with pytest.raises(BackendError, match="closed the stream"):
        await collect(client)
    assert len(vllm.requests) == 1  # never retried after text streamed


async def test_health_reflects_vllm(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway.url}/health") as response:
        assert response.status == 200
    vllm.healthy = False
    async with http.get(f"{gateway.url}/health") as response:
        assert response.status == 503


async def test_metrics_count_requests_without_text(
    client: InferenceClient, gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    await collect(client)
    metrics = await gateway.metrics(http)
    assert 'veil_gateway_requests_total{outcome="ok"} 1.0' in metrics
    assert "veil_gateway_completion_tokens_total 3.0" in metrics
    assert "hello" not in metrics.lower()
    async with http.get(f"{gateway.url}/metrics") as response:
        assert response.status == 404  # metrics are not served on the public port


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/v1/sealed/chat/completion", "not_found"),
        ("GET", "/", "not_found"),
        ("GET", "/v1/sealed/chat/completions", "method_not_allowed"),
        ("DELETE", "/v1/keys", "method_not_allowed"),
    ],
)
async def test_a_path_or_method_not_served_is_refused_in_json(
    gateway: RunningGateway, http: aiohttp.ClientSession, method: str, path: str, code: str
) -> None:
    # aiohttp's router answered with a plain-text page ("404: Not Found"), where every other
    # refusal is the spec's JSON: a client following docs/protocol.md could not read it.
    async with http.request(method, f"{gateway.url}{path}") as response:
        body = await response.json()
        allow = response.headers.get("Allow", "")
    assert (response.status, body["error"]["code"]) == (
        {"not_found": 404, "method_not_allowed": 405}[code],
        code,
    )
    assert (method in allow) is False
    assert bool(allow) is (code == "method_not_allowed")


# -- refusals before vLLM is called ------------------------------------------------------------


async def test_relay_flipping_a_byte_gets_401_and_vllm_is_never_called(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    call = seal_call(gateway)
    body = bytearray(call.body)
    body[len(body) // 2] ^= 0x01
    reply = await post_sealed(http, gateway.url, call, body=bytes(body))  # the original signature
    assert (reply.status, reply.code) == (401, "unauthenticated")
    assert vllm.requests == []


async def test_pinned_client_flipping_a_byte_gets_cannot_open(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    call = seal_call(gateway)
    body = bytearray(call.body)
    body[len(body) // 2] ^= 0x01
    headers = client_auth_headers(CLIENT_KEY, bytes(body))  # signed as sent: only HPKE fails
    reply = await post_sealed(http, gateway.url, call, body=bytes(body), headers=headers)
    assert (reply.status, reply.code) == (400, "cannot_open")
    assert vllm.requests == []


async def test_replayed_request_is_refused(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    call = seal_call(gateway)
    assert (await post_sealed(http, gateway.url, call)).text == "Sealed hello, world."
    reply = await post_sealed(http, gateway.url, call)
    assert (reply.status, reply.code) == (409, "replayed")
    assert len(vllm.requests) == 1


async def test_a_request_for_one_gateway_is_refused_by_another_under_the_same_operator(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    """A request sealed for one gateway is refused by another under the same operator key.

    Gateways sharing an operator key (several on one machine, docs/operations.md) each make
    their own HPKE key at start, so a request sealed for one cannot be replayed at another,
    whose replay window never saw it: it is an unknown key there, and vLLM is never called.
    """
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        run_gateway(vllm.url, operator=operator, clock=clock) as first,
        run_gateway(vllm.url, operator=operator, clock=clock) as second,
    ):
        call = seal_call(first)
        reply = await post_sealed(http, second.url, call)
        assert (reply.status, reply.code) == (410, "unknown_key")
        assert vllm.requests == []
        assert (await post_sealed(http, first.url, call)).text == "Sealed hello, world."
        reply = await post_sealed(http, second.url, call)  # and once the first has answered it
        assert (reply.status, reply.code) == (410, "unknown_key")
        assert len(vllm.requests) == 1


async def test_stale_request_is_refused(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    call = seal_call(gateway)
    clock.advance(3600)
    reply = await post_sealed(http, gateway.url, call)
    assert (reply.status, reply.code) == (400, "stale_request")
    assert vllm.requests == []


async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, str]:
    """POST raw bytes, signed by the pinned test client; the refusal's (status, code)."""
    async with http.post(
        f"{url}/v1/sealed/chat/completions",
        data=io.BytesIO(body),
        headers=client_auth_headers(CLIENT_KEY, body),
    ) as response:
        payload = await response.json(content_type=None)
        return response.status, payload["error"]["code"]


async def test_oversize_request_is_refused(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    body = b"VEIL\x02\x01" + b"\0" * 8 + b"\0" * (2 << 20)
    status, code = await post(http, gateway.url, body)
    assert (status, code) == (413, "too_large")
    assert vllm.requests == []


async def test_unknown_key_id_is_refused(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    body = b"VEIL\x02\x01" + b"\xee" * 8 + b"\0" * 2000
    assert await post(http, gateway.url, body) == (410, "unknown_key")
    assert vllm.requests == []


async def test_a_held_key_id_under_another_suite_is_an_unknown_key(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    """The key id names a key by (suite, id): a held id sent under the other suite is 410.

    The request is refused as an unknown key, so a client re-fetches the bundle and fails
    over (docs/protocol.md §1), rather than a 400 ``cannot_open`` that blames the client.
    """
    key_id = gateway.gateway.ring.bundle().bundle.key_id
    other = Suite.MLKEM768_X25519.value
    body = b"VEIL\x02" + bytes([other]) + key_id + b"\0" * 2000
    assert await post(http, gateway.url, body) == (410, "unknown_key")
    assert vllm.requests == []


async def test_a_relay_key_under_another_suite_is_an_unknown_key(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    """The same holds for the key a ``Veil-Relay-Key`` header names (§3, check 7)."""
    key_id = gateway.gateway.ring.bundle().bundle.key_id
    other = Suite.MLKEM768_X25519.value
    call = seal_call(gateway)
    relay_key = b64e(b"VEIL\x02" + bytes([other]) + key_id + b"\0" * (1120 + 48))
    headers = {**call.headers(), RELAY_KEY_HEADER: relay_key}
    reply = await post_sealed(http, gateway.url, call, headers=headers)
    assert (reply.status, reply.code) == (410, "unknown_key")
    assert vllm.requests == []


async def test_rotated_out_key_is_refused_after_grace(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with run_gateway(vllm.url, clock=clock, rotation_seconds=60, grace_seconds=30) as running:
        client = InferenceClient(
            [running.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        ring = running.gateway.ring
        old_key = ring.current.keypair.key_id
        await client.refresh()
        old_bundle = client._gateways[0].bundle
        clock.advance(60)
        ring.rotate(int(clock()))
        assert ring.current.keypair.key_id != old_key
        # Within the grace period a request sealed to the old key is still served.
        body = await sealed_body_direct(client)
        async with http.post(
            f"{running.url}/v1/sealed/chat/completions",
            data=body,
            headers=client_auth_headers(CLIENT_KEY, body),
        ) as response:
            assert response.status == 200
        # The client refreshes its bundle before expiry and moves to the new key.
        text, _ = await collect(client)
        assert text == "Sealed hello, world."
        assert client._gateways[0].bundle is not None
        assert client._gateways[0].bundle.bundle.key_id == ring.current.keypair.key_id
        clock.advance(60)
        ring.rotate(int(clock()))
        client._gateways[0].bundle = old_bundle
        old_body = await sealed_body_direct(client)
        status, code = await post(http, running.url, old_body)
        assert (status, code) == (410, "unknown_key")
        # The client notices the rotation (410), fetches the new bundle and carries on.
        text, _ = await collect(client)
        assert text == "Sealed hello, world."


async def test_concurrent_stream_cap_refuses_with_503(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    vllm.answer = "slow answer here"
    vllm.token_delay = 0.3
    async with run_gateway(vllm.url, clock=clock, max_streams=1) as running:
        client = InferenceClient(
            [running.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        first = asyncio.create_task(collect(client))
        await asyncio.sleep(0.2)
        await client.refresh()
        body = await sealed_body_direct(client)
        status, code = await post(http, running.url, body)
        assert (status, code) == (503, "busy")
        text, _ = await first
        assert text == "slow answer here"


async def sealed_body_direct(client: InferenceClient) -> bytes:
    bundle = client._gateways[0].bundle
    assert bundle is not None
    request_id, key = new_request_secrets()
    chat = {"model": "veil-test", "messages": MESSAGES}
    return seal_request(
        bundle.bundle, chat, request_id=request_id, response_key=key, timestamp=int(client._clock())
    )


# -- attacks on the response -------------------------------------------------------------------


def frames(body: bytes) -> list[bytes]:
    out = []
    while body:
        length = int.from_bytes(body[:4], "big")
        out.append(body[: 4 + length])
        body = body[4 + length :]
    return out


@pytest.mark.parametrize(
    ("rewrite", "reason"),
    [
        (lambda b: b[:40] + bytes([b[40] ^ 0x01]) + b[41:], "tampered"),
        (lambda b: b"".join(frames(b)[:-1]), "truncated"),
        (lambda b: b"".join([frames(b)[1], frames(b)[0], *frames(b)[2:]]), "out_of_order"),
        (lambda b: b + frames(b)[0], "trailing_data"),
    ],
    ids=["flipped-byte", "dropped-final", "reordered", "trailing"],
)
async def test_response_attacks_are_detected(
    gateway: RunningGateway,
    http: aiohttp.ClientSession,
    clock: Clock,
    rewrite: object,
    reason: str,
) -> None:
    async with TamperingRelay(gateway.url) as relay:
        relay.rewrite_response = rewrite  # type: ignore[assignment]
        client = InferenceClient(
            [relay.url], [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        with pytest.raises(StreamCorrupted) as caught:
            await collect(client)
    assert caught.value.reason == reason


async def test_spliced_response_is_detected(
    gateway: RunningGateway, http: aiohttp.ClientSession, clock: Clock
) -> None:
    captured: list[bytes] = []

    def keep_then_splice(body: bytes) -> bytes:
        captured.append(body)
        if len(captured) == 1:
            return body
        mine, theirs = frames(body), frames(captured[0])
        return b"".join([mine[0], theirs[1], *mine[2:]])

    async with TamperingRelay(gateway.url) as relay:
        relay.rewrite_response = keep_then_splice
        client = InferenceClient(
            [relay.url], [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        await collect(client)
        with pytest.raises(StreamCorrupted) as caught:
            await collect(client)
    assert caught.value.reason == "spliced"


def test_opener_rejects_frames_the_gateway_never_made() -> None:
    opener = ChunkOpener(b"\x01" * 32)
    with pytest.raises(Exception, match="length"):
        opener.feed(b"\xff\xff\xff\xff")


async def test_client_hanging_up_ends_the_relay_and_the_vllm_stream(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = " ".join(f"w{i}" for i in range(100))
    async with (
        FakeVLLM(answer=answer, token_delay=0.02) as fake,
        CountingProxy.to(fake.url) as proxy,
        run_gateway(proxy.url, clock=clock, models=("veil-test",)) as running,
    ):
        client = InferenceClient(
            [running.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        stream = client.stream(ChatRequest(MESSAGES, model="veil-test", cache_salt="s"))
        assert isinstance(await anext(stream), TextDelta)
        await stream.aclose()  # the user pressed stop
        await wait_until(lambda: running.gateway.active == 0)
        assert running.gateway.receipts.kept == 1  # a stopped receipt is kept for the asker
        await wait_until(lambda: proxy.closed >= 1)  # vLLM's stream was cut ...
        assert fake.token_times == []  # ... before the end of the answer
        assert "veil_gateway_active_streams 0.0" in await running.metrics(http)


async def test_stopping_the_gateway_ends_streams_in_flight_with_a_stopped_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = " ".join(f"w{i}" for i in range(100))
    async with FakeVLLM(answer=answer, token_delay=0.02) as fake:
        async with run_gateway(fake.url, clock=clock) as running:
            call = seal_call(running)
            response = await http.post(
                f"{running.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
            )
            first = await response.content.readany()
        try:
            reply = await read_sealed(response, call.response_key, already=first)
        finally:
            response.release()
    assert reply.final is not None
    assert reply.final.finish_reason == "stopped"
    assert reply.final.receipt is not None
    assert reply.final.receipt.receipt.status is ReceiptStatus.STOPPED
    assert len(reply.texts) < 100
