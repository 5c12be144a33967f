"""Shaped streams as a network observer sees them, and as the client reads them.

A recording TCP relay between the client and the gateway keeps every byte; the tests read the
gateway's writes and the sealed records' sizes from those bytes. Ticks come from a ticker the
test drives by hand (``ManualTicker``), so what is asserted is counted against the ticks the
test issued, never timed; where real ticks run (``LoopTicker``), only invariants that hold at
any speed are asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.settings import SettingsError, load_settings
from gateway.settings import GatewaySettings
from gateway.shaping import (
    DEFAULT_TICK,
    FINAL_RECORD_SIZE,
    LoopTicker,
    RecordSize,
    Shaping,
    StreamShape,
    held_until,
)
from sealed.encoding import RECORD_BUCKETS, pad, unpad
from sealed.receipt import ReceiptStatus
from sealed.stream import MAX_CHUNK, ChunkOpener, ChunkSealer, Delta, Final, record_size_for
from services.inference import (
    ChatRequest,
    Completion,
    InferenceClient,
    StopSignal,
    StreamItem,
    TextDelta,
)
from tests.fakes.relay import RecordingProxy
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.harness import (
    CLIENT_KEY,
    ManualTicker,
    SealedReply,
    client_keys_setting,
    post_sealed,
    run_gateway,
    seal_call,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    import aiohttp

    from tests.harness import Clock, RunningGateway

# Two answers of about the same length: many short words, quickly; few long ones, slowly.
SHORT_WORDS = "I am so glad to see you all here at last."
LONG_WORDS = "Notwithstanding unprecedented circumstances."
# What a chunk's length counts besides its record: stream id, seq, flags and the AEAD tag.
SEALING = 13 + 16
SMALL = RECORD_BUCKETS[0] + SEALING  # the length of a chunk with a record of the first bucket
FINAL = FINAL_RECORD_SIZE + SEALING
SEALED_STREAM = b"application/vnd.veil.sealed-stream"


def written(*lengths: int) -> int:
    """The size of one write of chunks of these lengths (each with its 4-byte prefix)."""
    return sum(4 + length for length in lengths)


@dataclass(frozen=True)
class Wire:
    """What an observer of one sealed stream's bytes can count."""

    writes: list[int]  # the gateway's writes: HTTP/1.1 chunk sizes
    records: list[int]  # the sealed chunks' lengths (as their length prefix states)


def on_the_wire(downstream: bytes) -> Wire:
    """The complete writes and records of the sealed stream in a relay's server → client bytes."""
    start = downstream.find(SEALED_STREAM)
    if start < 0:
        return Wire([], [])
    head_end = downstream.find(b"\r\n\r\n", start)
    if head_end < 0:
        return Wire([], [])
    assert b"transfer-encoding: chunked" in downstream[:head_end].lower()
    body = downstream[head_end + 4 :]
    writes: list[int] = []
    payload = bytearray()
    while (line_end := body.find(b"\r\n")) >= 0:
        size = int(body[:line_end], 16)
        start = line_end + 2
        if size == 0 or len(body) < start + size + 2:
            break
        writes.append(size)
        payload += body[start : start + size]
        body = body[start + size + 2 :]
    records: list[int] = []
    while len(payload) >= 4:
        length = int.from_bytes(payload[:4], "big")
        if len(payload) < 4 + length:
            break
        records.append(length)
        del payload[: 4 + length]
    return Wire(writes, records)


async def reaches(value: Callable[[], float], expected: float) -> None:
    """Return once ``value()`` equals ``expected`` (what a fake or a relay recorded)."""
    await wait_until(lambda: value() == expected)


def address(running: RunningGateway) -> tuple[str, int]:
    host, port = running.url.removeprefix("http://").split(":")
    return host, int(port)


async def cancel(http: aiohttp.ClientSession, running: RunningGateway, body: object) -> int:
    """Cancel straight at the gateway (not through the observed relay)."""
    async with http.post(f"{running.url}/v1/sealed/cancel", json=body) as response:
        return response.status


async def observe(  # noqa: PLR0913 -- one observed answer's setting
    http: aiohttp.ClientSession,
    clock: Clock,
    answer: str,
    token_delay: float,
    shaping: Shaping,
    *,
    ticks: int | None,
) -> tuple[Wire, SealedReply]:
    """One answer through a recording relay, to its end or, with ``ticks``, cancelled.

    With ``ticks`` the model holds after its last token while the test gives that many ticks.
    """
    tokens = len(split_tokens(answer))
    async with (
        FakeVLLM(answer=answer, token_delay=token_delay) as fake,
        run_gateway(fake.url, clock=clock, shaping=shaping) as running,
        RecordingProxy(*address(running)) as relay,
    ):
        if ticks is not None:
            fake.stall_after = tokens  # every token, then silence until the gateway hangs up
        call = seal_call(running)
        reading = asyncio.create_task(post_sealed(http, relay.url, call))

        def records() -> int:
            return len(on_the_wire(bytes(relay.downstream)).records)

        if ticks is not None:
            ticker = shaping.ticker
            if isinstance(ticker, ManualTicker):
                await wait_until(lambda: records() == 1 and ticker.following == 1)
                for issued in range(1, ticks + 1):
                    ticker.tick()
                    await reaches(records, 1 + issued)
            else:
                await wait_until(lambda: records() == tokens)
            await fake.stall_started.wait()  # the whole answer was sent
            assert await cancel(http, running, call.cancel()) == 202
        reply = await reading
        if isinstance(shaping.ticker, ManualTicker):
            assert shaping.ticker.issued == (ticks or 0)
        return on_the_wire(bytes(relay.downstream)), reply


def manual(shape: StreamShape = StreamShape.TICK) -> Shaping:
    return Shaping(shape, ManualTicker())


# -- what an observer sees -------------------------------------------------------------------


@pytest.mark.parametrize("ticks", [None, 4], ids=["model-ends", "ticks-then-cancel"])
async def test_an_observer_sees_the_same_records_for_different_answers_only_when_shaped(
    http: aiohttp.ClientSession, clock: Clock, ticks: int | None
) -> None:
    assert len(split_tokens(SHORT_WORDS)) == 11
    assert len(split_tokens(LONG_WORDS)) == 3
    short, short_reply = await observe(http, clock, SHORT_WORDS, 0.002, manual(), ticks=ticks)
    long, long_reply = await observe(http, clock, LONG_WORDS, 0.03, manual(), ticks=ticks)
    assert (short_reply.text, long_reply.text) == (SHORT_WORDS, LONG_WORDS)
    # Shaped: the first piece of text at once, one record a tick given, then the text still
    # waiting and the final record in one write: the same sizes whatever the words and rhythm.
    records = [SMALL] * (1 + (ticks or 0) + 1) + [FINAL]
    assert short.records == long.records == records
    writes = [written(SMALL)] * (1 + (ticks or 0)) + [written(SMALL, FINAL)]
    assert short.writes == long.writes == writes
    # Unshaped, the same answers differ on the wire: a record for each token.
    off = Shaping.off()
    short_off, _ = await observe(http, clock, SHORT_WORDS, 0.002, off, ticks=ticks)
    long_off, _ = await observe(http, clock, LONG_WORDS, 0.03, off, ticks=ticks)
    assert short_off.records != long_off.records
    assert (len(short_off.records), len(long_off.records)) == (11 + 1, 3 + 1)


async def test_a_stopped_shaped_stream_delivers_the_text_that_arrived(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    _, reply = await observe(http, clock, SHORT_WORDS, 0.0, manual(), ticks=1)
    assert reply.text == SHORT_WORDS
    assert reply.final is not None
    assert reply.final.finish_reason == "stopped"
    assert reply.final.receipt is not None
    receipt = reply.final.receipt.receipt
    assert (receipt.status, receipt.completion_tokens) == (ReceiptStatus.STOPPED, 11)


async def test_the_record_size_grows_when_text_does_not_fit(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = "Hi" + " abcdefghijklmnopqrstuvwxyz0123456789" * 4  # then 148 bytes: 256
    async with (
        FakeVLLM(answer=answer, token_delay=0.002) as fake,
        run_gateway(fake.url, clock=clock, shaping=manual()) as running,
    ):
        reply = await post_sealed(http, running.url, seal_call(running))
    assert reply.texts == ["Hi", answer[2:]]
    assert reply.chunk_lengths == [SMALL, 256 + SEALING, FINAL]


async def test_records_grow_only_when_a_ticks_text_does_not_fit_and_never_shrink(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = "Hi" + " abcdefghijklmnopqrstuvwxyz0123456789" * 60
    shaping = Shaping(StreamShape.TICK, LoopTicker(0.02))
    async with (
        FakeVLLM(answer=answer, token_delay=0.001) as fake,
        run_gateway(fake.url, clock=clock, shaping=shaping) as running,
    ):
        reply = await post_sealed(http, running.url, seal_call(running))
    assert reply.text == answer
    sizes = [length - SEALING for length in reply.chunk_lengths[:-1]]
    assert len(sizes) == len(reply.texts)
    assert sizes[0] == RECORD_BUCKETS[0]  # "Hi" alone, at once
    for index in range(1, len(sizes)):
        size, before = sizes[index], sizes[index - 1]
        needed = record_size_for(len(reply.texts[index].encode()))
        assert size in RECORD_BUCKETS
        assert needed <= size  # the text fits its record
        if size != before:  # a growth: only to the bucket this record's text needs
            assert size == needed > before
    assert reply.chunk_lengths[-1] == max(sizes[-1], FINAL_RECORD_SIZE) + SEALING


async def test_text_longer_than_the_largest_record_waits_for_the_next_record(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = "ж" * 35_000  # one token of 70 000 bytes
    async with (
        FakeVLLM(answer=answer) as fake,
        run_gateway(fake.url, clock=clock, shaping=manual()) as running,
    ):
        reply = await post_sealed(http, running.url, seal_call(running))
    assert reply.text == answer
    # The first record at once, the rest with the final: two largest records, no tick needed.
    assert reply.chunk_lengths == [MAX_CHUNK] * 3
    assert [len(text) for text in reply.texts] == [32_765, 2_235]


async def test_held_streams_end_at_a_power_of_two_ticks(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = " ".join(f"w{i}" for i in range(20))
    shaping = manual(StreamShape.TICK_DURATION)
    ticker = shaping.ticker
    assert isinstance(ticker, ManualTicker)
    async with (
        FakeVLLM(answer=answer, token_delay=0.005) as fake,
        run_gateway(fake.url, clock=clock, shaping=shaping) as running,
        RecordingProxy(*address(running)) as relay,
    ):
        reading = asyncio.create_task(post_sealed(http, relay.url, seal_call(running)))

        def writes() -> list[int]:
            return on_the_wire(bytes(relay.downstream)).writes

        await wait_until(lambda: len(writes()) == 1 and ticker.following == 1)
        while writes()[-1] < FINAL:  # a tick's record; the end comes with the final
            assert ticker.issued < 1024
            ticker.tick()
            await reaches(lambda: len(writes()), 1 + ticker.issued)
        reply = await reading
    # Every write after the first answered a tick; the final record's came at tick 2**k.
    issued = ticker.issued
    assert issued & (issued - 1) == 0
    assert len(writes()) == 1 + issued
    assert reply.text == answer
    assert reply.final is not None
    assert reply.final.finish_reason == "stop"
    assert reply.final.receipt is not None
    assert reply.final.receipt.receipt.status is ReceiptStatus.COMPLETE


# -- the real client reads shaped streams --------------------------------------------------


async def test_the_client_reads_a_shaped_answer_whole_and_sees_fewer_records(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    answer = " ".join(["Жили-были 🐉 драконы, 龍 и ドラゴン."] * 30)
    shaping = Shaping(StreamShape.TICK, LoopTicker(0.01))
    async with (
        FakeVLLM(answer=answer, token_delay=0.001) as fake,
        run_gateway(fake.url, clock=clock, shaping=shaping) as running,
        RecordingProxy(*address(running)) as relay,
    ):
        client = InferenceClient(
            [relay.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        parts: list[str] = []
        completion = None
        async for item in client.stream(
            ChatRequest([{"role": "user", "content": "hi"}], model="veil-test", cache_salt="s")
        ):
            if isinstance(item, TextDelta):
                parts.append(item.text)
            else:
                completion = item
    assert "".join(parts) == answer
    assert isinstance(completion, Completion)
    assert completion.receipt_valid
    assert completion.receipt is not None
    assert completion.receipt.complete
    assert completion.receipt.completion_tokens == len(split_tokens(answer))
    wire = on_the_wire(bytes(relay.downstream))
    assert len(wire.records) < len(split_tokens(answer))
    deltas = wire.records[:-1]
    assert deltas == sorted(deltas)  # the record size only ever grows
    assert all(length - SEALING in RECORD_BUCKETS for length in wire.records)


async def test_the_client_drops_empty_records_and_stops_with_a_receipt(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    shaping = manual()
    ticker = shaping.ticker
    assert isinstance(ticker, ManualTicker)
    async with (
        FakeVLLM(answer="Hello") as fake,
        run_gateway(fake.url, clock=clock, shaping=shaping) as running,
    ):
        fake.stall_after = 1  # the one token, then the model holds
        client = InferenceClient(
            [running.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        registry = running.gateway.metrics.registry

        def chunks() -> float:
            return registry.get_sample_value("veil_gateway_chunks_total") or 0.0

        stop = StopSignal()
        items: list[StreamItem | Completion] = []
        async for item in client.stream(
            ChatRequest([{"role": "user", "content": "hi"}], model="veil-test", cache_salt="s"),
            stop=stop,
        ):
            items.append(item)
            if isinstance(item, TextDelta):
                await wait_until(lambda: ticker.following == 1)
                for issued in range(1, 4):  # three ticks without text: three empty records
                    ticker.tick()
                    await reaches(chunks, 1 + issued)
                stop.set()
    assert items[0] == TextDelta("Hello")
    (completion,) = items[1:]
    assert isinstance(completion, Completion)
    assert completion.finish_reason == "stopped"
    assert completion.receipt_valid
    assert completion.receipt is not None
    assert completion.receipt.completion_tokens == 1
    assert chunks() == 1 + 3 + 2  # the first, three empty, the empty closing one, the final


# -- the parts -------------------------------------------------------------------------------


def test_a_sealer_pads_every_record_to_the_size_it_is_given() -> None:
    key = b"\x07" * 32
    sealer, opener = ChunkSealer(key), ChunkOpener(key)
    wire = sealer.delta("", pad_to=256) + sealer.delta("a" * 251, pad_to=256)
    wire += sealer.delta("ж" * 200, pad_to=256)  # 400 bytes: two records of 256
    wire += sealer.final(Final(None, finish_reason="stop"), pad_to=64)  # its own bucket: 64
    records = opener.feed(wire)
    assert [r.text for r in records if isinstance(r, Delta)] == [
        "",
        "a" * 251,
        "ж" * 125,
        "ж" * 75,
    ]
    assert sealer.sealed == 5
    lengths = []
    while wire:
        length = int.from_bytes(wire[:4], "big")
        lengths.append(length - SEALING)
        wire = wire[4 + length :]
    assert lengths == [256, 256, 256, 256, 64]
    with pytest.raises(ValueError, match="record size"):
        sealer.delta("x", pad_to=32)
    with pytest.raises(ValueError, match="record size"):
        sealer.delta("x", pad_to=1 << 17)


def test_pad_to_an_explicit_target_and_a_payload_that_does_not_fit() -> None:
    padded = pad(b"abc", RECORD_BUCKETS, target=300)
    assert len(padded) == 300
    assert unpad(padded) == b"abc"
    assert len(pad(b"abc", RECORD_BUCKETS)) == 64  # unchanged without a target
    with pytest.raises(ValueError, match="does not fit"):
        pad(b"x" * 61, RECORD_BUCKETS, target=64)


def test_the_record_size_starts_smallest_grows_to_fit_and_never_shrinks() -> None:
    size = RecordSize()
    assert (size.fit(0), size.fit(59), size.growths) == (64, 64, 0)
    assert (size.fit(60), size.growths) == (256, 1)
    assert (size.fit(5), size.fit(3000), size.fit(10), size.growths) == (256, 4096, 4096, 2)
    assert size.final_size == 4096
    assert RecordSize().final_size == FINAL_RECORD_SIZE
    assert size.fit(10**6) == RECORD_BUCKETS[-1]


def test_held_ends_are_the_next_power_of_two() -> None:
    assert [held_until(t) for t in range(10)] == [1, 2, 4, 4, 8, 8, 8, 8, 16, 16]


async def test_one_loop_ticker_ticks_every_stream_together_and_stops_when_none_follow() -> None:
    ticker = LoopTicker(0.005)
    counts = [0, 0]

    def count(index: int) -> None:
        counts[index] += 1

    first = ticker.subscribe(lambda: count(0))
    second = ticker.subscribe(lambda: count(1))
    await wait_until(lambda: counts[0] >= 3)
    assert counts[0] == counts[1]  # one timer: the same ticks for both
    first()
    await wait_until(lambda: counts[1] >= counts[0] + 2)
    second()
    assert not ticker.running  # no subscriber, no timer
    with pytest.raises(ValueError, match="longer than zero"):
        LoopTicker(0)


async def test_a_subscriber_that_raises_is_reported_and_the_others_still_tick() -> None:
    # Streams write their records in the ticker's call: one stream's error must not cost the
    # others their tick, nor stop the ticks.
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    ticker = LoopTicker(0.005)
    counts = [0]

    def fail() -> None:
        raise RuntimeError("a stream's bug")

    def count() -> None:
        counts[0] += 1

    try:
        stop_failing = ticker.subscribe(fail)  # first: before the other at every tick
        stop_counting = ticker.subscribe(count)
        await wait_until(lambda: counts[0] >= 3)
        stop_failing()
        stop_counting()
    finally:
        loop.set_exception_handler(previous)
    assert len(reported) >= 3
    assert all(isinstance(context["exception"], RuntimeError) for context in reported)


# -- settings --------------------------------------------------------------------------------


def test_stream_settings_default_to_shaped_and_refuse_bad_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VEIL_OPERATOR_KEY_FILE", str(tmp_path))
    monkeypatch.setenv("VEIL_CLIENT_KEYS", client_keys_setting())
    settings = load_settings(GatewaySettings)
    assert (settings.stream_shape, settings.stream_tick) == (StreamShape.TICK, DEFAULT_TICK)
    shaping = settings.shaping
    assert shaping.shape is StreamShape.TICK
    assert isinstance(shaping.ticker, LoopTicker)
    assert shaping.ticker.interval == DEFAULT_TICK
    monkeypatch.setenv("VEIL_STREAM_SHAPE", "tick+duration")
    monkeypatch.setenv("VEIL_STREAM_TICK", "0.25")
    settings = load_settings(GatewaySettings)
    assert settings.shaping.holds_duration
    assert (settings.stream_shape, settings.stream_tick) == (StreamShape.TICK_DURATION, 0.25)
    for name, value in (
        ("VEIL_STREAM_SHAPE", "sometimes"),
        ("VEIL_STREAM_TICK", "0"),
        ("VEIL_STREAM_TICK", "60"),
    ):
        monkeypatch.setenv("VEIL_STREAM_SHAPE", "off")
        monkeypatch.setenv("VEIL_STREAM_TICK", "0.1")
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError) as stopped:
            load_settings(GatewaySettings)
        assert str(stopped.value.code).startswith(f"veil: setting {name} is invalid")


@dataclass
class AtATick:
    """A stream held between ticks: ``w0`` went out, the next pieces wait in the gateway."""

    fake: FakeVLLM
    gw: RunningGateway
    ticker: ManualTicker
    posting: asyncio.Task[SealedReply]  # the client's call, to its end


@contextlib.asynccontextmanager
async def held_between_ticks(  # noqa: PLR0913 -- the stream's scenario, by keyword
    http: aiohttp.ClientSession,
    clock: Clock,
    answer: str,
    *,
    until: int = 5,
    error_after: int | None = None,
    usage: bool = True,
) -> AsyncIterator[AtATick]:
    """Post ``answer``'s call to a hand-ticked gateway; yield once the pieces wait for a tick.

    The first piece is out, and the model server, holding at token ``until``, has sent the
    pieces before it: they wait in the gateway's socket. ``error_after``: the model server
    fails after that many pieces (it holds after the error, before its end, at ``until``).
    """
    ticker = ManualTicker()
    async with (
        FakeVLLM(answer=answer) as fake,
        run_gateway(fake.url, clock=clock, shaping=Shaping(StreamShape.TICK, ticker)) as gw,
    ):
        fake.send_usage = usage
        fake.error_mid_stream_after = error_after
        fake.pauses = {1, until}
        posting = asyncio.create_task(post_sealed(http, gw.url, seal_call(gw)))
        try:
            await wait_until(lambda: fake.paused == 1 and ticker.following == 1)  # "w0" is out
            fake.resume()
            await wait_until(lambda: fake.paused == 1)
            yield AtATick(fake, gw, ticker, posting)
        finally:
            posting.cancel()


async def test_a_ticks_run_of_text_counts_every_piece_when_the_server_sends_no_usage(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # At a tick the gateway takes a run of plain text chunks as one event (TextChunks.run);
    # without usage from the model server, the receipt's completion count is the pieces it
    # relayed, so each piece of the run must still count.
    answer = " ".join(f"w{index}" for index in range(40))
    async with held_between_ticks(http, clock, answer, until=25, usage=False) as held:
        held.ticker.tick()  # the 24 chunks since, waiting in the kernel: one run
        held.fake.resume()
        reply = await held.posting
    assert reply.text == answer
    assert len(reply.texts) == 3  # the first piece, the tick's run, the rest with the end
    assert reply.texts[1] == answer[len("w0") : answer.index(" w25")]
    assert reply.final is not None
    assert reply.final.receipt is not None
    receipt = reply.final.receipt.receipt
    assert (receipt.status, receipt.completion_tokens) == (ReceiptStatus.COMPLETE, 40)
    assert receipt.estimated


async def test_a_ticks_record_is_made_and_handed_over_in_the_ticks_own_call(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # A stream waiting for ticks and nothing else writes its record from the ticker's call,
    # not from its task on a later turn of the event loop: a tick costs a read, a seal and a
    # write, without waking the task too.
    answer = " ".join(f"w{index}" for index in range(10))
    async with held_between_ticks(http, clock, answer) as held:  # w1 to w4 wait
        before = sent_chunks(held.gw)
        held.ticker.tick()
        assert sent_chunks(held.gw) == before + 1  # handed to the connection within the call
        held.ticker.tick()  # nothing new since: an empty record, at once too
        assert sent_chunks(held.gw) == before + 2
        held.fake.resume()
        reply = await held.posting
        chunks = sent_chunks(held.gw)
        sent = held.gw.gateway.metrics.registry.get_sample_value("veil_gateway_sealed_bytes_total")
    assert reply.text == answer
    assert reply.texts[:2] == ["w0", " w1 w2 w3 w4"]
    assert reply.final is not None
    assert not reply.final.is_error
    # every chunk counted once, by whichever way it went out, with its bytes
    assert chunks == len(reply.chunk_lengths)
    assert sent == sum(4 + length for length in reply.chunk_lengths)


def sent_chunks(running: RunningGateway) -> float:
    """``veil_gateway_chunks_total`` as the gateway's registry reads now."""
    registry = running.gateway.metrics.registry
    return registry.get_sample_value("veil_gateway_chunks_total") or 0.0


@pytest.mark.parametrize("word", ["w", "x" * 5000], ids=["small", "outgrowing"])
async def test_a_tick_that_finds_text_and_the_model_servers_error_sends_the_text_at_the_tick(
    http: aiohttp.ClientSession, clock: Clock, word: str
) -> None:
    # The tick's own call reads the text and, behind it, the model server's error chunk: the
    # tick's record still carries that text, as the stream's task sends it at a tick, then the
    # closing records (no text left) and the error; not one record fewer. So too when the
    # text grows the record past the buffer's low mark.
    words = [f"{word}{index}" for index in range(1, 10)]
    answer = " ".join(["w0", *words])
    # (held at 6: after the error, before its [DONE] and the close)
    async with held_between_ticks(http, clock, answer, until=6, error_after=5) as held:
        held.ticker.tick()  # w1 to w4 and the error, in the socket
        held.fake.resume()
        reply = await held.posting
        chunks = sent_chunks(held.gw)
    assert reply.texts == ["w0", " " + " ".join(words[:4]), ""]
    assert reply.final is not None
    assert reply.final.is_error
    assert chunks == len(reply.chunk_lengths) == 4


async def test_a_tick_after_a_stop_was_asked_sends_no_record_of_its_own(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # A cancel reaches the stream's task a turn of the event loop later: a tick in between
    # must leave the text to the closing records, as the task does when the stop wakes it.
    answer = " ".join(f"w{index}" for index in range(10))
    async with held_between_ticks(http, clock, answer) as held:  # w1 to w4 wait
        (control,) = held.gw.gateway.receipts.running()
        control.stop("stopped")
        held.ticker.tick()
        reply = await held.posting
        chunks = sent_chunks(held.gw)
    assert reply.texts == ["w0", " w1 w2 w3 w4"]
    assert reply.final is not None
    assert reply.final.finish_reason == "stopped"
    assert chunks == len(reply.chunk_lengths) == 3


async def test_the_chunks_counter_is_a_counter_of_every_chunk_the_clients_got(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # ``veil_gateway_chunks_total`` is read at scrape time from a plain count: served as a
    # counter (what Prometheus' text parser reads), it counts every chunk handed to a client,
    # whether written in a tick's own call, by the stream's task, in the closing records, or
    # as a lone error record.
    answer = " ".join(f"w{index}" for index in range(10))
    async with held_between_ticks(http, clock, answer) as held:
        held.ticker.tick()  # in the tick's call
        held.ticker.tick()  # an empty record, too
        held.fake.resume()
        ticked = await held.posting
        held.fake.pauses = set()
        held.fake.fail_before_stream = (500, "Internal server error")
        failed = await post_sealed(http, held.gw.url, seal_call(held.gw))
        exposition = await held.gw.metrics(http)
    assert ticked.text == answer
    assert failed.final is not None
    assert failed.final.is_error
    (family,) = (f for f in text_string_to_metric_families(exposition) if "chunks" in f.name)
    assert (family.name, family.type) == ("veil_gateway_chunks", "counter")
    (total,) = (s for s in family.samples if s.name == "veil_gateway_chunks_total")
    assert total.labels == {}
    assert len(ticked.chunk_lengths) == 5  # the first, two ticks', the rest and the final
    assert total.value == len(ticked.chunk_lengths) + len(failed.chunk_lengths)


async def test_a_ticks_record_that_outgrows_the_buffers_low_mark_is_written_with_the_idle_timer(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # The tick's call writes only what cannot wait. A tick whose text grows the record from
    # the smallest size to the largest makes a write that may wait for a client that stopped
    # reading: it is the stream's task's, under the client idle timer (a write the tick's
    # call began and then dropped would leave that client uncut until some later write).
    big = "x" * 20_000
    answer = f"w0 {big} w2 w3"
    async with held_between_ticks(http, clock, answer, until=2) as held:  # the big one waits
        gw, ticker = held.gw, held.ticker
        before = sent_chunks(gw)
        ticker.tick()
        assert sent_chunks(gw) == before  # left to the task
        await wait_until(lambda: sent_chunks(gw) == before + 1)
        ticker.tick()  # records this size never fit under the mark: the task's too
        assert sent_chunks(gw) == before + 1
        await wait_until(lambda: sent_chunks(gw) == before + 2)
        held.fake.resume()
        reply = await held.posting
    assert reply.texts[:3] == ["w0", f" {big}", ""]
    assert reply.chunk_lengths[1:3] == [RECORD_BUCKETS[-1] + SEALING] * 2
    assert reply.text == answer
