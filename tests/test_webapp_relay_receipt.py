"""Relay receipts: a relay without the response key still gets, and can check, the receipt.

The gateway sends the final record's receipt once more after the final chunk, sealed to the
relay's key and bound to the exact body; the relay cuts the stream into chunks without any key.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest

from gateway.shaping import LoopTicker, Shaping, StreamShape
from sealed.encoding import b64e
from sealed.errors import (
    MalformedMessage,
    OpenFailed,
    ReceiptInvalid,
    StreamTruncated,
    TrailingData,
)
from sealed.receipt import ReceiptStatus
from sealed.relay import (
    RELAY_KEY_HEADER,
    StreamFramer,
    body_hash,
    new_relay_key,
    open_relay_key,
    open_relay_receipt,
    seal_relay_key,
)
from sealed.stream import ChunkOpener, Delta, Final
from tests.fakes.vllm import FakeVLLM
from tests.harness import RunningGateway, post_sealed, run_gateway, seal_call

if TYPE_CHECKING:
    import aiohttp

    from tests.harness import SealedCall

ANSWER = "Relayed without being read."


async def relay_post(
    http: aiohttp.ClientSession, running: RunningGateway, call: SealedCall, relay_key: bytes
) -> tuple[int, bytes]:
    """POST ``call`` as a relay would (asking for the relay receipt); the raw reply."""
    bundle = running.gateway.ring.bundle().bundle
    headers = {**call.headers(), RELAY_KEY_HEADER: seal_relay_key(bundle, call.body, relay_key)}
    async with http.post(
        f"{running.url}/v1/sealed/chat/completions", data=io.BytesIO(call.body), headers=headers
    ) as response:
        return response.status, await response.read()


def frame(raw: bytes, *, step: int) -> tuple[bytes, StreamFramer]:
    """Feed ``raw`` to a framer ``step`` bytes at a time; what it handed on, and the framer."""
    framer = StreamFramer(expect_receipt=True)
    handed = b"".join(framer.feed(raw[i : i + step]) for i in range(0, len(raw), step))
    framer.close()
    return handed, framer


@pytest.mark.parametrize("shaped", [False, True])
async def test_relay_receipt_follows_the_final_chunk_and_opens_only_for_the_relay(
    http: aiohttp.ClientSession, *, shaped: bool
) -> None:
    shaping = Shaping(StreamShape.TICK, LoopTicker(0.01)) if shaped else None
    async with (
        FakeVLLM(answer=ANSWER) as vllm,
        run_gateway(vllm.url, shaping=shaping) as running,
    ):
        call = seal_call(running)
        relay_key = new_relay_key()
        status, raw = await relay_post(http, running, call, relay_key)
    assert status == 200
    handed, framer = frame(raw, step=7)  # arbitrary network segments
    assert framer.finished
    assert framer.relay_receipt is not None
    # The relay hands the asker exactly the chunks, which open as usual: nothing after them.
    opener = ChunkOpener(call.response_key)
    records = opener.feed(handed)
    opener.close()
    assert "".join(r.text for r in records if isinstance(r, Delta)) == ANSWER
    final = records[-1]
    assert isinstance(final, Final)
    assert final.receipt is not None
    assert len(raw) - len(handed) == 4 + 1040  # the relay receipt's size says nothing
    # The relay opens its copy: the same signed bytes, verified under the bundle's key.
    receipt = open_relay_receipt(relay_key, body_hash(call.body), framer.relay_receipt)
    assert (receipt.body, receipt.signature) == (final.receipt.body, final.receipt.signature)
    receipt.verify(
        running.gateway.ring.bundle().bundle.receipt_verify_key(),
        request_id=call.request_id,
        model="veil-test",
    )
    assert receipt.receipt.status is ReceiptStatus.COMPLETE
    # Another key, or another body, opens nothing.
    with pytest.raises(ReceiptInvalid):
        open_relay_receipt(new_relay_key(), body_hash(call.body), framer.relay_receipt)
    with pytest.raises(ReceiptInvalid):
        open_relay_receipt(relay_key, body_hash(call.body + b"x"), framer.relay_receipt)
    # What crossed the network holds the receipt only sealed.
    assert final.receipt.body not in raw
    assert b64e(final.receipt.body).encode() not in raw
    assert b'"completion_tokens"' not in raw


async def test_without_the_header_nothing_follows_the_final_chunk(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    call = seal_call(gateway)
    reply = await post_sealed(http, gateway.url, call)  # read_sealed: TrailingData would fail
    assert reply.status == 200
    assert reply.final is not None


async def test_a_relay_key_for_other_bytes_or_garbage_is_refused_before_the_model(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    bundle = gateway.gateway.ring.bundle().bundle
    other = seal_call(gateway)
    call = seal_call(gateway)
    cases = {
        seal_relay_key(bundle, other.body, new_relay_key()): (400, "cannot_open"),
        "not base64!": (400, "malformed"),
        "VkVJTA": (400, "malformed"),  # "VEIL" and nothing else
    }
    for header, (status, code) in cases.items():
        reply = await post_sealed(
            http, gateway.url, call, headers={**call.headers(), RELAY_KEY_HEADER: header}
        )
        assert (reply.status, reply.code) == (status, code)
    assert not vllm.requests
    # Refusals do not register the request id: the same bytes with a good key go through.
    good = seal_relay_key(bundle, call.body, new_relay_key())
    async with http.post(
        f"{gateway.url}/v1/sealed/chat/completions",
        data=io.BytesIO(call.body),
        headers={**call.headers(), RELAY_KEY_HEADER: good},
    ) as response:
        assert response.status == 200
        await response.read()


async def test_a_relay_key_sealed_to_the_next_key_after_rotation_still_opens(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    call = seal_call(gateway)  # sealed to the current key
    gateway.gateway.ring.rotate(gateway.gateway.now())
    newer = gateway.gateway.ring.bundle().bundle
    relay_key = new_relay_key()
    headers = {**call.headers(), RELAY_KEY_HEADER: seal_relay_key(newer, call.body, relay_key)}
    async with http.post(
        f"{gateway.url}/v1/sealed/chat/completions", data=io.BytesIO(call.body), headers=headers
    ) as response:
        raw = await response.read()
    _, framer = frame(raw, step=4096)
    assert framer.relay_receipt is not None
    assert open_relay_receipt(relay_key, body_hash(call.body), framer.relay_receipt)


def test_open_relay_key_refuses_a_key_of_another_suite(gateway: RunningGateway) -> None:
    bundle = gateway.gateway.ring.bundle().bundle
    body = b"sealed bytes"
    text = seal_relay_key(bundle, body, new_relay_key())
    keypair = gateway.gateway.ring.current.keypair
    assert len(open_relay_key(text, body, lambda _s, _k: keypair)) == 32
    with pytest.raises(OpenFailed):
        open_relay_key(text, body + b"!", lambda _s, _k: keypair)
    with pytest.raises(MalformedMessage):
        open_relay_key("A" * 5000, body, lambda _s, _k: keypair)


async def test_framer_reports_cut_forged_and_trailing_streams(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    call = seal_call(gateway)
    status, raw = await relay_post(http, gateway, call, new_relay_key())
    assert status == 200
    handed, _ = frame(raw, step=1)  # one byte at a time is the same stream
    receipt_frame = raw[len(handed) :]
    # Cut anywhere: in a chunk, after the final chunk, inside the relay receipt.
    for cut in (len(handed) - 10, len(handed), len(raw) - 1):
        framer = StreamFramer(expect_receipt=True)
        framer.feed(raw[:cut])
        with pytest.raises(StreamTruncated):
            framer.close()
    # A byte after the relay receipt, or a second copy of it.
    for extra in (b"\x00", receipt_frame):
        framer = StreamFramer(expect_receipt=True)
        with pytest.raises(TrailingData):
            framer.feed(raw + extra)
    # A stream without the receipt asked for must end at the final chunk.
    framer = StreamFramer(expect_receipt=False)
    assert framer.feed(handed) == handed
    framer.close()
    with pytest.raises(TrailingData):
        framer.feed(b"\x00")
    # A chunk length out of range, before the final chunk and where the receipt should be.
    with pytest.raises(MalformedMessage):
        StreamFramer(expect_receipt=True).feed(b"\x00\x00\x00\x05" + bytes(5))
    with pytest.raises(MalformedMessage):
        StreamFramer(expect_receipt=True).feed(handed + b"\x00\x00\x00\x10" + bytes(16))
    # A final flag forged onto the first chunk: the next chunk is taken for the relay receipt,
    # which then does not open (the relay falls back to the late receipt).
    forged = bytearray(raw)
    forged[4 + 12] |= 0x01
    framer = StreamFramer(expect_receipt=True)
    with pytest.raises(MalformedMessage):  # a 93-byte delta chunk is no relay receipt
        framer.feed(bytes(forged))
