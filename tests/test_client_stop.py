"""The sealed client when an answer is stopped, cut or stalled: every end is billable.

A real gateway in front of a slow fake vLLM, the real client; a recording proxy between them
where the network has to fail.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from gateway.limits import Limits
from sealed.receipt import ReceiptStatus
from services.errors import ModelStalled, StreamCorrupted
from services.inference import (
    ChatRequest,
    Completion,
    InferenceClient,
    Signal,
    StopSignal,
    TextDelta,
)
from tests.fakes.relay import RecordingProxy
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.harness import CLIENT_KEY, run_gateway

if TYPE_CHECKING:
    import aiohttp

    from tests.harness import Clock, RunningGateway

ANSWER = " ".join(f"secretword{i}" for i in range(40))
TOKENS = len(split_tokens(ANSWER))
MESSAGES = [{"role": "user", "content": "Count for me"}]
FAST_RETRIES = (0.05, 0.1, 0.2, 0.4)


def client_for(
    url: str,
    gateway: RunningGateway,
    http: aiohttp.ClientSession,
    clock: Clock,
    *,
    read_timeout: float = 120.0,
) -> InferenceClient:
    return InferenceClient(
        [url],
        [gateway.verify_key],
        http,
        clock=clock,
        client_key=CLIENT_KEY,
        read_timeout=read_timeout,
        receipt_retry_delays=FAST_RETRIES,
    )


async def read(
    client: InferenceClient, *, stop: StopSignal | None = None, stop_after: int | None = None
) -> tuple[list[str], Completion | None]:
    """The deltas and the completion; ``stop`` is set once ``stop_after`` deltas arrived."""
    deltas: list[str] = []
    completion = None
    async with asyncio.timeout(30):
        async for item in client.stream(
            ChatRequest(MESSAGES, model="veil-test", cache_salt="s"), stop=stop
        ):
            if isinstance(item, TextDelta):
                deltas.append(item.text)
                if stop is not None and len(deltas) == stop_after:
                    stop.set()
            elif isinstance(item, Completion):
                completion = item
    return deltas, completion


def cut_connections(proxy: RecordingProxy) -> None:
    """Cut the connections the proxy carries now; it keeps accepting new ones."""
    for pipe in list(proxy._pipes):
        pipe.cancel()


async def test_stop_cancels_and_the_stream_ends_with_a_stopped_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(answer=ANSWER, token_delay=0.05) as fake,
        run_gateway(fake.url, clock=clock) as running,
    ):
        client = client_for(running.url, running, http, clock)
        stop = StopSignal()
        with capture_logs() as logs:
            deltas, completion = await read(client, stop=stop, stop_after=3)
    assert completion is not None
    assert completion.finish_reason == "stopped"
    assert completion.receipt_valid
    assert not completion.fetched  # it came in the stream's own final record
    assert completion.status is ReceiptStatus.STOPPED
    assert completion.receipt is not None
    # The user pays for what was delivered: every delta the receipt counts reached the client.
    assert len(deltas) >= 3
    assert completion.receipt.completion_tokens == len(deltas) < TOKENS
    assert ANSWER.startswith("".join(deltas))
    assert completion.signed_receipt is not None
    assert completion.signed_receipt.receipt == completion.receipt
    assert completion.request_id == completion.receipt.request_id
    events = {entry["event"]: entry for entry in logs}
    assert events["inference.cancel_sent"]["state"] == "stopping"
    assert "inference.receipt_fetched" not in events
    assert len(fake.requests) == 1
    assert "secretword" not in json.dumps(logs, default=str)


async def test_stop_before_any_gateway_answered_sends_nothing(
    client: InferenceClient, vllm: FakeVLLM
) -> None:
    stop = StopSignal()
    stop.set()
    deltas, completion = await read(client, stop=stop)
    assert (deltas, completion) == ([], None)
    assert vllm.requests == []


async def test_stop_when_no_receipt_can_be_had_completes_without_one(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(answer=ANSWER, token_delay=0.05) as fake,
        run_gateway(fake.url, clock=clock) as running,
    ):
        host, port = running.url.removeprefix("http://").split(":")
        proxy = RecordingProxy(host, int(port))
        await proxy.start()
        client = client_for(proxy.url, running, http, clock)
        stop = StopSignal()
        stream = client.stream(ChatRequest(MESSAGES, model="veil-test", cache_salt="s"), stop=stop)
        first = await anext(stream)
        assert isinstance(first, TextDelta)
        await proxy.close()  # the network is gone: no cancel, no stream, no receipt fetch
        stop.set()
        with capture_logs() as logs:
            rest = [item async for item in stream]
    (completion,) = rest
    assert isinstance(completion, Completion)
    assert completion.receipt is None
    assert not completion.receipt_valid
    assert completion.finish_reason == "stopped"
    assert completion.fetched
    assert "inference.receipt_unavailable" in {entry["event"] for entry in logs}


async def test_a_stream_cut_after_text_fetches_its_receipt_for_the_error(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(answer=ANSWER, token_delay=0.05) as fake,
        run_gateway(fake.url, clock=clock) as running,
    ):
        host, port = running.url.removeprefix("http://").split(":")
        async with RecordingProxy(host, int(port)) as proxy:
            client = client_for(proxy.url, running, http, clock)
            stream = client.stream(ChatRequest(MESSAGES, model="veil-test", cache_salt="s"))
            seen = [await anext(stream), await anext(stream)]
            cut_connections(proxy)  # the stream is cut; the proxy still takes new connections
            with pytest.raises(StreamCorrupted) as caught:
                async with asyncio.timeout(30):
                    seen.extend([item async for item in stream])
    assert caught.value.reason == "truncated"
    receipt = caught.value.receipt
    assert receipt is not None  # fetched from the gateway, verified
    assert receipt.status is ReceiptStatus.STOPPED
    assert len(seen) <= receipt.completion_tokens < TOKENS
    assert caught.value.signed_receipt is not None


async def test_no_byte_within_the_read_timeout_is_a_stall_not_tampering(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(answer=ANSWER) as fake,
        run_gateway(fake.url, clock=clock) as running,
    ):
        fake.stall_after = 2
        client = client_for(running.url, running, http, clock, read_timeout=0.5)
        deltas: list[str] = []
        with pytest.raises(ModelStalled) as caught:
            async with asyncio.timeout(30):
                async for item in client.stream(
                    ChatRequest(MESSAGES, model="veil-test", cache_salt="s")
                ):
                    if isinstance(item, TextDelta):
                        deltas.append(item.text)
        async with asyncio.timeout(10):
            await fake.stall_released.wait()  # hanging up stopped the model server too
    assert caught.value.detected_by == "client"
    assert deltas == split_tokens(ANSWER)[:2]
    receipt = caught.value.receipt
    assert receipt is not None
    assert receipt.status is ReceiptStatus.STOPPED
    assert receipt.completion_tokens == 2


async def test_a_stall_the_gateway_reports_is_model_stalled_with_its_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(answer=ANSWER) as fake,
        run_gateway(fake.url, clock=clock, limits=Limits(backend_idle_timeout=0.3)) as running,
    ):
        fake.stall_after = 3
        client = client_for(running.url, running, http, clock)
        with pytest.raises(ModelStalled) as caught:
            await read(client)
    assert caught.value.detected_by == "gateway"
    receipt = caught.value.receipt
    assert receipt is not None
    assert receipt.status is ReceiptStatus.ERROR
    assert receipt.completion_tokens == 3


async def test_a_signal_is_awaited_with_no_callback_left_behind() -> None:
    """``Signal.wait`` returns once set, at once when set; a waiter gone leaves no callback."""
    signal = Signal()
    waiters = [asyncio.create_task(signal.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    await asyncio.gather(waiters[0], return_exceptions=True)
    assert len(signal._callbacks) == 2  # the cancelled waiter's wake is gone
    assert not any(w.done() for w in waiters[1:])
    signal.set()
    await asyncio.gather(*waiters[1:])
    await asyncio.wait_for(signal.wait(), timeout=1)  # set already: returns at once
    assert signal._callbacks == []
