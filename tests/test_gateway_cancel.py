"""Every stream ends with a signed receipt: cancel, receipt fetch, hang-ups, stalls, honest usage.

The wire, exactly (the bot is written against it):

- ``POST /v1/sealed/cancel`` ``{"request_id": hex, "proof": b64url(cancel_proof)}``: 202
  ``{"state": "stopping"}`` in flight, 200 ``{"state": "finished"}`` after, 404
  ``unknown_request``, 403 ``bad_proof``, 400 ``malformed``;
- ``GET /v1/sealed/receipts/{request_id}`` with ``Veil-Proof``: 200 and the final record's
  payload, 409 ``in_progress``, 404 ``unknown_request``, 403 ``bad_proof``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from gateway.limits import Limits
from gateway.shaping import Shaping, StreamShape
from sealed.auth import PROOF_HEADER
from sealed.encoding import b64e, canonical_json
from sealed.receipt import ReceiptStatus
from sealed.stream import ChunkOpener, Delta, Final
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.harness import (
    MESSAGES,
    CountingProxy,
    ManualTicker,
    SealedCall,
    post_sealed,
    read_sealed,
    run_gateway,
    seal_call,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp

    from tests.harness import Clock, RunningGateway

ANSWER = " ".join(f"word{i}" for i in range(60))


class OpenStream:
    """A sealed stream read record by record, so a test can act in the middle of it."""

    def __init__(self, response: aiohttp.ClientResponse, call: SealedCall) -> None:
        self.response = response
        self.opener = ChunkOpener(call.response_key)
        self.texts: list[str] = []
        self.final: Final | None = None
        self.final_bytes = b""

    async def until_delta(self) -> None:
        """Read until at least one delta has arrived."""
        async for data in self.response.content.iter_any():
            self._take(data)
            if self.texts:
                return

    async def to_end(self) -> Final:
        """Read to the final record; the stream must end right after it."""
        async for data in self.response.content.iter_any():
            self._take(data)
        self.opener.close()
        assert self.final is not None
        return self.final

    def _take(self, data: bytes) -> None:
        for record in self.opener.feed(data):
            if isinstance(record, Delta):
                self.texts.append(record.text)
            elif isinstance(record, Final):
                self.final = record
                self.final_bytes = canonical_json(record.payload())


async def cancel(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(f"{url}/v1/sealed/cancel", data=io.BytesIO(data)) as response:
        return response.status, await response.json()


async def fetch_receipt(
    http: aiohttp.ClientSession, url: str, request_id: str, headers: dict[str, str]
) -> tuple[int, bytes]:
    async with http.get(f"{url}/v1/sealed/receipts/{request_id}", headers=headers) as response:
        return response.status, await response.read()


@contextlib.asynccontextmanager
async def slow_answer_gateway(
    clock: Clock, shaping: Shaping | None = None
) -> AsyncIterator[tuple[FakeVLLM, CountingProxy, RunningGateway]]:
    """A gateway before a slow fake model, through a proxy that shows when its stream is cut."""
    async with (
        FakeVLLM(answer=ANSWER, token_delay=0.03) as fake,
        CountingProxy.to(fake.url) as proxy,
        run_gateway(proxy.url, clock=clock, models=("veil-test",), shaping=shaping) as gw,
    ):
        yield fake, proxy, gw


async def test_cancel_stops_the_model_and_ends_with_a_stopped_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with slow_answer_gateway(clock) as (fake, proxy, gw):
        call = seal_call(gw)
        async with http.post(
            f"{gw.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
        ) as response:
            stream = OpenStream(response, call)
            await stream.until_delta()
            status, reply = await cancel(http, gw.url, call.cancel())
            assert (status, reply) == (202, {"state": "stopping"})
            final = await stream.to_end()
        assert final.finish_reason == "stopped"
        assert not final.is_error
        assert final.receipt is not None
        final.receipt.verify(
            gw.gateway.ring.receipt_key.public_key(), request_id=call.request_id, model="veil-test"
        )
        receipt = final.receipt.receipt
        assert receipt.status is ReceiptStatus.STOPPED
        assert receipt.completion_tokens == len(stream.texts) < 60  # what was delivered
        assert receipt.prompt_tokens == 6  # the model server's /tokenize count
        assert receipt.estimated
        assert fake.tokenize_requests == [{"model": "veil-test", "messages": MESSAGES}]
        # The model server was stopped: its stream's connection is closed, the answer unfinished.
        await wait_until(lambda: proxy.closed >= 1)
        assert fake.token_times == []
        assert proxy.downstream.count(b'"content":"word') < 60
        # Cancel is idempotent; the receipt stays retrievable with its own proof.
        assert await cancel(http, gw.url, call.cancel()) == (200, {"state": "finished"})
        status, body = await fetch_receipt(
            http, gw.url, call.request_id.hex(), call.receipt_headers()
        )
        assert status == 200
        assert body == stream.final_bytes  # the final record's payload, byte for byte
        assert Final.from_payload(json.loads(body)) == final
        metrics = await gw.metrics(http)
        assert 'veil_gateway_cancels_total{result="stopping"} 1.0' in metrics
        assert 'veil_gateway_cancels_total{result="finished"} 1.0' in metrics
        assert 'veil_gateway_requests_total{outcome="stopped"} 1.0' in metrics


async def test_cancel_ends_a_shaped_stream_with_the_text_that_came_and_a_stopped_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    ticker = ManualTicker()
    async with slow_answer_gateway(clock, Shaping(StreamShape.TICK, ticker)) as (fake, proxy, gw):
        call = seal_call(gw)
        async with http.post(
            f"{gw.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
        ) as response:
            stream = OpenStream(response, call)
            await stream.until_delta()
            assert stream.texts == ["word0"]  # the first piece of text, at once, alone
            await wait_until(lambda: ticker.following == 1)
            ticker.tick()
            ticker.tick()
            status, reply = await cancel(http, gw.url, call.cancel())
            assert (status, reply) == (202, {"state": "stopping"})
            final = await stream.to_end()
        assert final.finish_reason == "stopped"
        assert final.receipt is not None
        receipt = final.receipt.receipt
        assert receipt.status is ReceiptStatus.STOPPED
        delivered = "".join(stream.texts)
        assert ANSWER.startswith(delivered)
        # Every piece the gateway took in went out (the last ones with the final record):
        # the receipt counts exactly what was delivered.
        assert receipt.completion_tokens == len(split_tokens(delivered)) < 60
        assert len(stream.texts) <= 1 + 2 + 1  # the first record, a record a tick, the last
        await wait_until(lambda: proxy.closed >= 1)
        assert fake.token_times == []
        assert 'veil_gateway_requests_total{outcome="stopped"} 1.0' in await gw.metrics(http)


async def test_cancel_before_any_token_still_bills_the_prompt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(answer=ANSWER, token_delay=0.5) as fake,
        run_gateway(fake.url, clock=clock) as gw,
    ):
        call = seal_call(gw)
        async with http.post(
            f"{gw.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
        ) as response:
            stream = OpenStream(response, call)
            await wait_until(lambda: len(fake.requests) == 1)
            assert (await cancel(http, gw.url, call.cancel()))[0] == 202
            final = await stream.to_end()
        assert stream.texts == []
        assert final.receipt is not None
        receipt = final.receipt.receipt
        assert (receipt.status, receipt.prompt_tokens, receipt.completion_tokens) == (
            ReceiptStatus.STOPPED,
            6,
            0,
        )


async def test_a_stop_while_the_prompt_is_counted_bills_nothing(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # A request without max_completion_tokens to a small-window model is fitted first: the
    # gateway asks the model server's /tokenize, which may take its time. A stop meanwhile was
    # billed the prompt (counted once more for the receipt) though the model server was never
    # asked to answer.
    hold = asyncio.Event()
    async with (
        FakeVLLM(answer=ANSWER, max_model_len=2048) as fake,
        run_gateway(fake.url, clock=clock, models=("veil-test",)) as gw,
    ):
        await wait_until(lambda: bool(gw.gateway.ring.windows))
        fake.tokenize_hold = hold
        call = seal_call(gw)
        asked = asyncio.ensure_future(post_sealed(http, gw.url, call))
        try:
            await wait_until(lambda: len(fake.tokenize_requests) == 1)
            assert (await cancel(http, gw.url, call.cancel()))[0] == 202
            reply = await asked
        finally:
            hold.set()
            await asyncio.gather(asked, return_exceptions=True)
        assert fake.requests == []
        assert reply.final is not None
        assert reply.final.receipt is not None
        receipt = reply.final.receipt.receipt
        assert (receipt.status, receipt.prompt_tokens, receipt.completion_tokens) == (
            ReceiptStatus.STOPPED,
            0,
            0,
        )


async def test_a_stop_before_the_model_server_refuses_is_billed_no_more_than_its_window(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # A prompt longer than the window, stopped while the model server (busy, or tokenizing it)
    # had not yet refused it: the stopped receipt's prompt, counted by /tokenize, was the whole
    # prompt, more tokens than the model can ever read at once. A stopped prompt counts at most
    # the window.
    hold = asyncio.Event()
    long_prompt = [{"role": "user", "content": " ".join(["tide"] * 3000)}]
    async with (
        FakeVLLM(answer=ANSWER, max_model_len=2048) as fake,
        run_gateway(fake.url, clock=clock, models=("veil-test",)) as gw,
    ):
        await wait_until(lambda: bool(gw.gateway.ring.windows))
        fake.chat_hold = hold
        # Without /tokenize: a prompt it counts past the window the gateway refuses itself.
        fake.tokenize_available = False
        call = seal_call(
            gw, {"model": "veil-test", "messages": long_prompt, "max_completion_tokens": 64}
        )
        asked = asyncio.ensure_future(post_sealed(http, gw.url, call))
        try:
            await wait_until(lambda: len(fake.requests) == 1)
            assert (await cancel(http, gw.url, call.cancel()))[0] == 202
            reply = await asked
        finally:
            hold.set()
            await asyncio.gather(asked, return_exceptions=True)
        assert reply.final is not None
        assert reply.final.receipt is not None
        receipt = reply.final.receipt.receipt
        assert fake.prompt_tokens(long_prompt) > 2048
        assert (receipt.status, receipt.prompt_tokens, receipt.completion_tokens) == (
            ReceiptStatus.STOPPED,
            2048,
            0,
        )


async def test_receipt_fetch_answers_in_progress_then_the_final_record(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(answer="one two three", token_delay=0.05) as fake,
        run_gateway(fake.url, clock=clock) as gw,
    ):
        call = seal_call(gw)
        async with http.post(
            f"{gw.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
        ) as response:
            stream = OpenStream(response, call)
            await stream.until_delta()
            rid = call.request_id.hex()
            assert await fetch_receipt(http, gw.url, rid, call.receipt_headers()) == (
                409,
                b'{"error": {"code": "in_progress", "message": "the stream is still running"}}',
            )
            wrong = {PROOF_HEADER: b64e(bytes(32))}
            assert (await fetch_receipt(http, gw.url, rid, wrong))[0] == 403
            final = await stream.to_end()
        status, body = await fetch_receipt(http, gw.url, rid, call.receipt_headers())
        assert status == 200
        assert body == stream.final_bytes
        assert final.receipt is not None
        assert final.receipt.receipt.status is ReceiptStatus.COMPLETE
        assert final.receipt.receipt.completion_tokens == 3
        assert not final.receipt.receipt.estimated


async def test_a_late_receipt_of_an_error_carries_no_word_of_the_model_server(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # The late receipt travels in clear (past relays, proxies, and to the bot relaying a Mini
    # App's request, which may not read it); it was the final record's payload as sealed, with
    # the model server's message, which may quote the prompt (vLLM's validation errors do).
    prompt = "secret prompt: periwinkle-otter"
    async with (
        FakeVLLM(answer="never sent") as fake,
        run_gateway(fake.url, clock=clock) as gw,
    ):
        fake.fail_before_stream = (400, f"prompt {prompt!r} has an invalid token")
        call = seal_call(
            gw, {"model": "veil-test", "messages": [{"role": "user", "content": prompt}]}
        )
        reply = await post_sealed(http, gw.url, call)
        status, body = await fetch_receipt(
            http, gw.url, call.request_id.hex(), call.receipt_headers()
        )
    assert reply.final is not None
    assert prompt in (reply.final.error_message or "")  # the asker reads it, sealed
    assert status == 200
    assert b"periwinkle" not in body
    late = Final.from_payload(json.loads(body))
    assert (late.error_kind, late.error_status, late.error_message) == ("backend", 400, "")
    assert late.receipt == reply.final.receipt  # the same signed bytes: billing is unchanged


@pytest.mark.parametrize(
    ("proof", "status", "code"),
    [
        (b64e(bytes(32)), 403, "bad_proof"),
        ("", 403, "bad_proof"),
        ("not base64!", 403, "bad_proof"),
        (b64e(bytes(31)), 403, "bad_proof"),
    ],
    ids=["wrong", "empty", "garbage", "short"],
)
async def test_wrong_proofs_are_403_and_change_nothing(
    gateway: RunningGateway, http: aiohttp.ClientSession, proof: str, status: int, code: str
) -> None:
    call = seal_call(gateway)
    reply = await post_sealed(http, gateway.url, call)
    rid = call.request_id.hex()
    got = await cancel(http, gateway.url, {"request_id": rid, "proof": proof})
    assert (got[0], got[1]["error"]["code"]) == (status, code)
    fetched = await fetch_receipt(http, gateway.url, rid, {PROOF_HEADER: proof})
    assert fetched[0] == status
    # The receipt proof does not cancel, and the cancel proof does not fetch receipts.
    swapped = {"request_id": rid, "proof": call.receipt_headers()[PROOF_HEADER]}
    assert (await cancel(http, gateway.url, swapped))[0] == 403
    other = {PROOF_HEADER: call.cancel()["proof"]}
    assert (await fetch_receipt(http, gateway.url, rid, other))[0] == 403
    status_ok, body = await fetch_receipt(http, gateway.url, rid, call.receipt_headers())
    assert reply.final is not None
    assert (status_ok, body) == (200, canonical_json(reply.final.payload()))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        {"request_id": "00" * 16},
        {"request_id": "00" * 16, "proof": "x", "extra": 1},
        {"request_id": "AB" * 16, "proof": "x"},
        {"request_id": "00" * 15, "proof": "x"},
        {"request_id": 7, "proof": "x"},
        {"request_id": "00" * 16, "proof": 7},
        b'{"request_id": ' + b"[" * 50_000 + b"]" * 50_000 + b', "proof": "x"}',
    ],
    ids=[
        "not-json",
        "array",
        "no-proof",
        "extra",
        "upper-hex",
        "short-id",
        "id-int",
        "proof-int",
        "deep",
    ],
)
async def test_malformed_cancels_are_400(
    gateway: RunningGateway, http: aiohttp.ClientSession, body: object
) -> None:
    if isinstance(body, bytes) and len(body) > 1024:
        async with http.post(f"{gateway.url}/v1/sealed/cancel", data=io.BytesIO(body)) as response:
            assert (response.status, (await response.json())["error"]["code"]) == (
                413,
                "too_large",
            )
        return
    status, reply = await cancel(http, gateway.url, body)
    assert (status, reply["error"]["code"]) == (400, "malformed")


async def test_unknown_and_expired_requests_are_404(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    limits = Limits(receipt_ttl=900, max_receipts=2)
    async with run_gateway(vllm.url, clock=clock, limits=limits, monotonic=clock) as gw:
        stranger = seal_call(gw)  # never sent
        status, reply = await cancel(http, gw.url, stranger.cancel())
        assert (status, reply["error"]["code"]) == (404, "unknown_request")
        rid = stranger.request_id.hex()
        assert (await fetch_receipt(http, gw.url, rid, stranger.receipt_headers()))[0] == 404
        assert (await fetch_receipt(http, gw.url, "zz", stranger.receipt_headers()))[0] == 400
        calls = [seal_call(gw)]
        await post_sealed(http, gw.url, calls[0])
        clock.advance(899)
        for _ in range(2):
            calls.append(seal_call(gw))
            assert (await post_sealed(http, gw.url, calls[-1])).status == 200
        # Bounded in count: the third evicted the oldest.
        first = calls[0]
        fetched = await fetch_receipt(http, gw.url, first.request_id.hex(), first.receipt_headers())
        assert fetched[0] == 404
        second = calls[1]
        fetched = await fetch_receipt(
            http, gw.url, second.request_id.hex(), second.receipt_headers()
        )
        assert fetched[0] == 200
        clock.advance(900)  # past the time to live
        fetched = await fetch_receipt(
            http, gw.url, second.request_id.hex(), second.receipt_headers()
        )
        assert fetched[0] == 404
        assert (await cancel(http, gw.url, second.cancel()))[0] == 404


async def test_a_receipt_is_kept_for_exactly_its_time_to_live(
    gateway: RunningGateway, http: aiohttp.ClientSession, clock: Clock
) -> None:
    call = seal_call(gateway)
    await post_sealed(http, gateway.url, call)
    rid = call.request_id.hex()
    clock.advance(899.9)
    assert (await fetch_receipt(http, gateway.url, rid, call.receipt_headers()))[0] == 200
    clock.advance(0.1)
    assert (await fetch_receipt(http, gateway.url, rid, call.receipt_headers()))[0] == 404


async def test_a_vanished_client_leaves_a_stopped_receipt_to_fetch(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with slow_answer_gateway(clock) as (fake, proxy, gw):
        call = seal_call(gw)
        async with http.post(
            f"{gw.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
        ) as response:
            stream = OpenStream(response, call)
            await stream.until_delta()
            response.close()  # the client hangs up mid-answer
        await wait_until(lambda: gw.gateway.active == 0)
        await wait_until(lambda: proxy.closed >= 1)
        assert fake.token_times == []
        status, body = await fetch_receipt(
            http, gw.url, call.request_id.hex(), call.receipt_headers()
        )
        assert status == 200
        final = Final.from_payload(json.loads(body))
        assert final.finish_reason == "stopped"
        assert final.receipt is not None
        receipt = final.receipt.receipt
        assert receipt.status is ReceiptStatus.STOPPED
        assert len(stream.texts) <= receipt.completion_tokens < 60
        assert receipt.prompt_tokens == 6
        assert 'outcome="client_gone"' in await gw.metrics(http)


# -- honest usage, stalls -------------------------------------------------------------------


async def test_without_usage_the_prompt_is_counted_by_tokenize_and_marked_estimated(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    vllm.send_usage = False
    reply = await post_sealed(http, gateway.url, seal_call(gateway))
    assert reply.final is not None
    assert reply.final.receipt is not None
    receipt = reply.final.receipt.receipt
    assert (receipt.status, receipt.prompt_tokens, receipt.completion_tokens) == (
        ReceiptStatus.COMPLETE,
        6,
        3,
    )
    assert receipt.estimated
    assert vllm.tokenize_requests == [{"model": "veil-test", "messages": MESSAGES}]


async def test_without_usage_or_tokenize_the_prompt_is_a_conservative_estimate(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    vllm.send_usage = False
    vllm.tokenize_available = False
    reply = await post_sealed(http, gateway.url, seal_call(gateway))
    assert reply.final is not None
    assert reply.final.receipt is not None
    receipt = reply.final.receipt.receipt
    assert receipt.prompt_tokens == len(b"Say hello") + 8  # bytes + 8 a message: never too low
    assert receipt.completion_tokens == 3
    assert receipt.estimated


async def test_without_usage_the_completion_counted_by_deltas_is_never_past_what_was_asked(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    # A server sending a token's text over two deltas, and no usage: each delta was counted a
    # token, and the receipt signed twice the completion the model could have written.
    vllm.send_usage = False
    vllm.split_deltas = True
    chat = {"model": "veil-test", "messages": MESSAGES, "max_completion_tokens": 2}
    reply = await post_sealed(http, gateway.url, seal_call(gateway, chat))
    assert reply.final is not None
    assert reply.final.receipt is not None
    receipt = reply.final.receipt.receipt
    assert len(reply.texts) > 2  # the deltas outnumber the tokens asked for
    assert (receipt.completion_tokens, receipt.estimated) == (2, True)


async def test_a_stalled_model_server_ends_in_a_stalled_error_record(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    limits = Limits(backend_idle_timeout=0.2)
    async with (
        FakeVLLM(answer="a b c d e f") as fake,
        run_gateway(fake.url, clock=clock, limits=limits) as gw,
    ):
        fake.stall_after = 2
        reply = await post_sealed(http, gw.url, seal_call(gw))
        assert reply.text == "a b"
        assert reply.final is not None
        assert (reply.final.error_kind, reply.final.error_status) == ("stalled", 504)
        assert reply.final.receipt is not None
        receipt = reply.final.receipt.receipt
        assert (receipt.status, receipt.completion_tokens, receipt.prompt_tokens) == (
            ReceiptStatus.ERROR,
            2,
            6,
        )
        async with asyncio.timeout(10):
            await fake.stall_released.wait()  # the gateway hung up on the stalled stream
        assert fake.stalled_closed == 1
        assert "veil_gateway_stalls_total 1.0" in await gw.metrics(http)


async def test_a_stalled_model_server_ends_a_shaped_stream_with_the_text_that_came(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    limits = Limits(backend_idle_timeout=0.2)
    ticker = ManualTicker()
    shaping = Shaping(StreamShape.TICK, ticker)
    async with (
        FakeVLLM(answer="a b c d e f") as fake,
        run_gateway(fake.url, clock=clock, limits=limits, shaping=shaping) as gw,
    ):
        fake.stall_after = 2
        reply = await post_sealed(http, gw.url, seal_call(gw))
        # No tick came: the silence alone ended the stream, and the text that arrived before
        # it still went out, before the error record.
        assert ticker.issued == 0
        assert reply.text == "a b"
        assert reply.final is not None
        assert (reply.final.error_kind, reply.final.error_status) == ("stalled", 504)
        assert reply.final.receipt is not None
        receipt = reply.final.receipt.receipt
        assert (receipt.status, receipt.completion_tokens, receipt.prompt_tokens) == (
            ReceiptStatus.ERROR,
            2,
            6,
        )
        async with asyncio.timeout(10):
            await fake.stall_released.wait()
        assert "veil_gateway_stalls_total 1.0" in await gw.metrics(http)


async def test_a_vanished_client_of_a_shaped_stream_leaves_a_stopped_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    ticker = ManualTicker()
    async with slow_answer_gateway(clock, Shaping(StreamShape.TICK, ticker)) as (fake, proxy, gw):
        call = seal_call(gw)
        async with http.post(
            f"{gw.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
        ) as response:
            stream = OpenStream(response, call)
            await stream.until_delta()
            response.close()  # the client hangs up mid-answer
        await wait_until(lambda: gw.gateway.active == 0)
        await wait_until(lambda: proxy.closed >= 1)
        assert fake.token_times == []
        assert ticker.following == 0  # the stream stopped following the ticks
        status, body = await fetch_receipt(
            http, gw.url, call.request_id.hex(), call.receipt_headers()
        )
        assert status == 200
        final = Final.from_payload(json.loads(body))
        assert final.finish_reason == "stopped"
        assert final.receipt is not None
        assert final.receipt.receipt.status is ReceiptStatus.STOPPED
        assert 'outcome="client_gone"' in await gw.metrics(http)


# -- nothing secret in logs or metrics --------------------------------------------------------


async def test_logs_and_metrics_hold_no_text_keys_or_proofs(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    prompt = "secret prompt: periwinkle-otter"
    answer = "secret answer: saffron lantern " * 20
    async with (
        FakeVLLM(answer=answer, token_delay=0.02) as fake,
        run_gateway(fake.url, clock=clock) as gw,
    ):
        fake.send_usage = False
        call = seal_call(
            gw, {"model": "veil-test", "messages": [{"role": "user", "content": prompt}]}
        )
        with structlog.testing.capture_logs() as logs:
            async with http.post(
                f"{gw.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
            ) as response:
                stream = OpenStream(response, call)
                await stream.until_delta()
                await cancel(http, gw.url, {"request_id": call.request_id.hex(), "proof": "x"})
                await cancel(http, gw.url, call.cancel())
                await stream.to_end()
            await fetch_receipt(http, gw.url, call.request_id.hex(), call.receipt_headers())
            await post_sealed(http, gw.url, call)  # a replay, refused
        metrics = await gw.metrics(http)
    events = {entry["event"] for entry in logs}
    assert {"gateway.cancelled", "gateway.relayed", "gateway.refused"} <= events
    everything = json.dumps(logs, default=str) + metrics
    secrets = (
        "periwinkle",
        "saffron",
        "lantern",
        b64e(call.response_key),
        call.cancel()["proof"],
        call.receipt_headers()[PROOF_HEADER],
        call.headers()["Veil-Client-Signature"],
    )
    for secret in secrets:
        assert secret not in everything


async def test_a_cancel_body_at_1024_bytes_is_read_and_one_byte_more_is_too_large(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    stranger = seal_call(gateway)
    body = json.dumps(stranger.cancel()).encode()
    at_limit = body + b" " * (1024 - len(body))  # JSON allows trailing whitespace
    status, reply = await cancel(http, gateway.url, at_limit)
    assert (status, reply["error"]["code"]) == (404, "unknown_request")
    status, reply = await cancel(http, gateway.url, at_limit + b" ")
    assert (status, reply["error"]["code"]) == (413, "too_large")


async def test_the_client_has_its_head_once_the_model_server_has_the_request(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # The gateway sends its client the response's head while the model server works on the
    # request (not before asking it, not after its first reply): a model server that takes
    # the request and then says nothing still leaves the client with a 200 head, and later the
    # stalled record. The model server here is a bare socket that only reads.
    received = bytearray()
    got_request = asyncio.Event()
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = bytearray()
        while chunk := await reader.read(65536):
            data += chunk
            head, found, body = bytes(data).partition(b"\r\n\r\n")
            if not found:
                continue
            if not head.startswith(b"POST /v1/chat/completions"):
                break  # the gateway asking for its models: no answer either
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(body) >= length:
                received.extend(data)
                got_request.set()
                await release.wait()
                break
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = Limits(backend_idle_timeout=60)
    try:
        async with run_gateway(
            f"http://127.0.0.1:{port}", clock=clock, limits=limits, models=("veil-test",)
        ) as gw:
            call = seal_call(gw)
            async with (
                asyncio.timeout(10),
                http.post(
                    f"{gw.url}/v1/sealed/chat/completions",
                    data=io.BytesIO(call.body),
                    headers=call.headers(),
                ) as response,
            ):
                assert response.status == 200  # while the model server has said nothing
                await got_request.wait()
                assert b'"messages"' in received  # the request itself, not just a connection
                release.set()  # the model server hangs up: the stream ends in an error record
                reply = await read_sealed(response, call.response_key)
            assert reply.final is not None
            assert reply.final.error_kind == "unavailable"
    finally:
        release.set()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("shaped", [False, True], ids=["per-token", "shaped"])
async def test_a_model_server_that_cannot_be_reached_leaves_a_head_and_its_error_record(
    http: aiohttp.ClientSession, clock: Clock, *, shaped: bool
) -> None:
    # The head goes out once the request is on its way to the model server; when it cannot
    # be sent at all (nothing listens on the port), the head goes out with the error record,
    # the stream's slot is given back and the receipt kept.
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    shaping = Shaping(StreamShape.TICK, ManualTicker()) if shaped else None
    async with run_gateway(
        f"http://127.0.0.1:{port}", clock=clock, models=("veil-test",), shaping=shaping
    ) as gw:
        call = seal_call(gw)
        async with asyncio.timeout(10):
            reply = await post_sealed(http, gw.url, call)
        assert reply.status == 200
        assert reply.text == ""  # (shaped, the closing records may hold an empty one)
        assert reply.final is not None
        assert reply.final.error_kind == "unavailable"
        await wait_until(lambda: gw.gateway.active == 0)
        kept = gw.gateway.receipts.get(call.request_id)
        assert kept is not None
        assert kept.final is not None
        metrics = await gw.metrics(http)
        assert 'veil_gateway_requests_total{outcome="unavailable"} 1.0' in metrics
