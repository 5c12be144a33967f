"""Per-client limits, chat validation and the replay window: every refusal before vLLM is asked.

Each limit is tried at the limit and just past it; every refusal shows the fake vLLM was not
called.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import TYPE_CHECKING, Any

import pytest
from multidict import CIMultiDict

from gateway.chat import MAX_MESSAGES, MAX_PARTS, estimate_prompt_tokens, upstream_chat
from gateway.clients import parse_client_keys
from gateway.limits import ReplayCache, TokenWindow
from gateway.refusals import Refusal
from sealed.bundle import PROTOCOL_VERSION
from sealed.encoding import REQUEST_BUCKETS, b64e, pad
from sealed.errors import ReplayedRequest
from sealed.receipt import ReceiptStatus
from sealed.request import REQUEST_INFO, RequestHeader, max_request_size, new_request_secrets
from sealed.stream import MAX_CHUNK, MAX_ERROR_MESSAGE
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    CLIENT_VERIFY_KEY,
    MESSAGES,
    SealedCall,
    client_keys_setting,
    client_policy,
    post_sealed,
    run_gateway,
    seal_call,
    wait_until,
)

if TYPE_CHECKING:
    import aiohttp

    from tests.harness import Clock, RunningGateway


def chat(**fields: Any) -> dict[str, Any]:  # noqa: ANN401 -- any JSON field
    return {"model": "veil-test", "messages": MESSAGES, **fields}


def seal_inner_json(running: RunningGateway, chat_json: str) -> SealedCall:
    """Seal a chat given as raw JSON text (which ``seal_request`` could not encode)."""
    bundle = running.gateway.ring.bundle().bundle
    request_id, response_key = new_request_secrets()
    inner = (
        f'{{"chat":{chat_json},"request_id":"{request_id.hex()}",'
        f'"response_key":"{b64e(response_key)}","ts":{running.gateway.now()},'
        f'"v":{PROTOCOL_VERSION}}}'
    ).encode()
    header = RequestHeader(PROTOCOL_VERSION, bundle.suite, bundle.key_id).to_bytes()
    sealed = bundle.suite.hpke().encrypt(
        pad(inner, REQUEST_BUCKETS), bundle.encryption_key(), info=REQUEST_INFO + header
    )
    return SealedCall(header + sealed, request_id, response_key)


# -- per-client streams and the gateway's ----------------------------------------------------


async def test_client_streams_at_the_limit_pass_and_one_more_is_client_busy(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeVLLM(answer="slow answer here", token_delay=0.1) as fake:
        clients = {CLIENT_VERIFY_KEY: client_policy(streams=2)}
        async with run_gateway(fake.url, clock=clock, clients=clients) as running:
            first = asyncio.create_task(post_sealed(http, running.url, seal_call(running)))
            second = asyncio.create_task(post_sealed(http, running.url, seal_call(running)))
            await wait_until(lambda: len(fake.requests) == 2)  # both streams are open
            refused = await post_sealed(http, running.url, seal_call(running))
            assert (refused.status, refused.code, refused.retry_after) == (429, "client_busy", "1")
            assert len(fake.requests) == 2
            assert (await first).text == (await second).text == "slow answer here"
            again = await post_sealed(http, running.url, seal_call(running))
            assert again.text == "slow answer here"
            metrics = await running.metrics(http)
            assert 'veil_gateway_refusals_total{code="client_busy"} 1.0' in metrics


async def test_gateway_streams_at_the_limit_pass_and_one_more_is_busy(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(answer="slow answer here", token_delay=0.1) as fake,
        run_gateway(fake.url, clock=clock, max_streams=2) as running,
    ):
        streams = [
            asyncio.create_task(post_sealed(http, running.url, seal_call(running)))
            for _ in range(2)
        ]
        await wait_until(lambda: len(fake.requests) == 2)
        refused = await post_sealed(http, running.url, seal_call(running))
        assert (refused.status, refused.code, refused.retry_after) == (503, "busy", "1")
        assert len(fake.requests) == 2
        assert [(await s).text for s in streams] == ["slow answer here"] * 2


async def test_tokens_per_minute_at_the_limit_is_rate_limited_until_the_window_moves(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    # One request costs 6 prompt tokens ("Say hello": 2 words + 4) + 3 completion tokens.
    clients = {CLIENT_VERIFY_KEY: client_policy(tokens_per_minute=18)}
    async with run_gateway(vllm.url, clock=clock, monotonic=clock, clients=clients) as running:
        first = await post_sealed(http, running.url, seal_call(running))
        assert first.final is not None
        assert first.final.receipt is not None
        receipt = first.final.receipt.receipt
        assert receipt.prompt_tokens + receipt.completion_tokens == 9
        second = await post_sealed(http, running.url, seal_call(running))  # 9 used < 18
        assert second.text == "Sealed hello, world."
        refused = await post_sealed(http, running.url, seal_call(running))  # 18 used: at it
        assert (refused.status, refused.code, refused.retry_after) == (429, "rate_limited", "60")
        clock.advance(59)
        refused = await post_sealed(http, running.url, seal_call(running))
        assert (refused.status, refused.code, refused.retry_after) == (429, "rate_limited", "1")
        assert len(vllm.requests) == 2
        clock.advance(1)  # both charges are a minute old now
        assert (await post_sealed(http, running.url, seal_call(running))).status == 200
        assert len(vllm.requests) == 3


def test_token_window_drops_old_charges_from_its_old_end() -> None:
    window = TokenWindow()
    window.charge(100.0, 5)
    window.charge(130.0, 7)
    assert window.used(159.9) == 12
    assert window.seconds_until_below(159.9, 12) == 1  # the first charge leaves at 160
    assert window.seconds_until_below(159.9, 6) == 31  # the second at 190
    assert window.used(160.0) == 7
    window.charge(120.0, 1)  # a clock that went back counts at the newest time
    assert window.used(189.9) == 8
    assert window.used(190.0) == 0


# -- max tokens, models, content ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "sent"),
    [(100, 100), (101, 100), (None, 100), (1, 1), (10**30, 100)],
    ids=["at-ceiling", "past-ceiling", "absent", "one", "huge"],
)
async def test_max_completion_tokens_is_clamped_and_sent_under_both_names(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock, asked: int | None, sent: int
) -> None:
    clients = {CLIENT_VERIFY_KEY: client_policy(max_tokens=100)}
    async with run_gateway(vllm.url, clock=clock, clients=clients) as running:
        fields = {} if asked is None else {"max_completion_tokens": asked}
        reply = await post_sealed(http, running.url, seal_call(running, chat(**fields)))
        assert reply.status == 200
        (request,) = vllm.requests
        assert request["max_completion_tokens"] == request["max_tokens"] == sent


@pytest.mark.parametrize("tokenize", [True, False], ids=["tokenize", "no-tokenize"])
async def test_an_absent_max_completion_tokens_fits_the_models_window(
    http: aiohttp.ClientSession, clock: Clock, *, tokenize: bool
) -> None:
    # A client that leaves the field out gets what fits the model's window: the ceiling (4,096
    # here) alone is more than a 2,048-token window holds, which the model server refuses (400)
    # for every question. The room is the window less the prompt's tokens, counted by the
    # model server where it can, else by the gateway's estimate (never smaller than the count).
    async with (
        FakeVLLM(max_model_len=2048) as small,
        run_gateway(small.url, clock=clock) as running,
    ):
        small.tokenize_available = tokenize
        await wait_until(lambda: bool(running.gateway.ring.windows))
        reply = await post_sealed(http, running.url, seal_call(running, chat()))
        assert reply.status == 200
        assert reply.final is not None
        assert reply.final.error_kind is None
        assert reply.text
        (request,) = small.requests
        prompt = small.prompt_counts[0]
        room = 2048 - (prompt if tokenize else estimate_prompt_tokens(MESSAGES))
        assert request["max_completion_tokens"] == request["max_tokens"] == room
        # A client that names its own number keeps it (the model server's answer is its own).
        asked = await post_sealed(
            http, running.url, seal_call(running, chat(max_completion_tokens=2000))
        )
        assert asked.final is not None
        assert small.requests[-1]["max_completion_tokens"] == 2000


async def test_a_short_question_that_fits_the_window_is_asked_without_a_tokenize_call(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    # The gateway's estimate (never below the count) with the answer's ceiling fits the window:
    # nothing to fit and nothing to refuse, so no /tokenize round trip delays the question
    # (the bench's every question), whether or not the client names its answer's number.
    clients = {CLIENT_VERIFY_KEY: client_policy(max_tokens=100)}
    async with run_gateway(vllm.url, clock=clock, clients=clients) as running:
        await wait_until(lambda: bool(running.gateway.ring.windows))
        for fields in ({}, {"max_completion_tokens": 50}):
            reply = await post_sealed(http, running.url, seal_call(running, chat(**fields)))
            assert reply.final is not None
            assert reply.final.error_kind is None
    assert len(vllm.requests) == 2
    assert vllm.tokenize_requests == []


@pytest.mark.parametrize("asked", [0, -1, True, 1.5, "10"])
async def test_bad_max_completion_tokens_is_malformed(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, asked: object
) -> None:
    reply = await post_sealed(
        http, gateway.url, seal_call(gateway, chat(max_completion_tokens=asked))
    )
    assert (reply.status, reply.code) == (400, "malformed")
    assert vllm.requests == []


async def test_only_models_the_bundle_lists_are_served(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(models=("veil-test", "hidden")) as fake,
        run_gateway(fake.url, clock=clock, models=("veil-test",)) as running,
    ):
        assert running.gateway.ring.bundle().bundle.models == ("veil-test",)
        reply = await post_sealed(http, running.url, seal_call(running, chat(model="hidden")))
        assert (reply.status, reply.code) == (400, "unknown_model")
        assert fake.requests == []
        assert (await post_sealed(http, running.url, seal_call(running))).status == 200


async def test_a_gateway_that_knows_no_models_refuses_with_503(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeVLLM() as fake:
        fake.models_status = 500
        async with run_gateway(fake.url, clock=clock) as running:
            assert running.gateway.ring.models == ()
            reply = await post_sealed(http, running.url, seal_call(running))
            assert (reply.status, reply.code, reply.retry_after) == (503, "no_models", "5")
            assert fake.requests == []


IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def image_part(url: str = IMAGE) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def text_part(text: str = "What is this?") -> dict[str, Any]:
    return {"type": "text", "text": text}


@pytest.mark.parametrize(
    ("model", "messages"),
    [
        ("veil-test", [{"role": "user", "content": [text_part(), image_part()]}]),
        ("vision", [{"role": "user", "content": [image_part("https://example.com/a.png")]}]),
        ("vision", [{"role": "user", "content": [image_part("http://127.0.0.1/a.png")]}]),
        ("vision", [{"role": "user", "content": [image_part("data:text/html;base64,PGI+")]}]),
        ("vision", [{"role": "system", "content": [image_part()]}]),
        ("vision", [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
        ("vision", [{"role": "user", "content": [{"type": "file", "file": {"file_id": "x"}}]}]),
    ],
    ids=["text-model", "https", "http", "not-image", "system-image", "audio", "file"],
)
async def test_content_parts_beyond_what_the_model_takes_are_bad_content(
    http: aiohttp.ClientSession, clock: Clock, model: str, messages: list[dict[str, Any]]
) -> None:
    async with (
        FakeVLLM(models=("veil-test", "vision")) as fake,
        run_gateway(fake.url, clock=clock, multimodal_models=("vision",)) as running,
    ):
        call = seal_call(running, {"model": model, "messages": messages})
        reply = await post_sealed(http, running.url, call)
        assert (reply.status, reply.code) == (400, "bad_content")
        assert fake.requests == []


async def test_a_multimodal_model_takes_data_url_images_and_text_parts(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with (
        FakeVLLM(models=("veil-test", "vision")) as fake,
        run_gateway(fake.url, clock=clock, multimodal_models=("vision",)) as running,
    ):
        image = {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}}
        messages = [{"role": "user", "content": [text_part(), image]}]
        call = seal_call(running, {"model": "vision", "messages": messages})
        assert (await post_sealed(http, running.url, call)).status == 200
        assert fake.requests[0]["messages"] == messages
        text_only = [{"role": "user", "content": [text_part("a"), text_part("b")]}]
        call = seal_call(running, {"model": "veil-test", "messages": text_only})
        assert (await post_sealed(http, running.url, call)).status == 200
        assert fake.requests[1]["messages"] == text_only


# -- the chat validator, bound by bound ------------------------------------------------------


def message(content: object = "hi", role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": content}


def check(body: dict[str, Any]) -> dict[str, Any]:
    return upstream_chat(body, models=("veil-test",), multimodal=(), ceiling=50)


@pytest.mark.parametrize(
    "body",
    [
        chat(stream=True),
        chat(tools=[]),
        {"messages": MESSAGES},
        chat(model=7),
        chat(model=""),
        chat(messages=[]),
        chat(messages="hi"),
        chat(messages=[message()] * (MAX_MESSAGES + 1)),
        chat(messages=[message(role="tool")]),
        chat(messages=[{"role": "user", "content": "hi", "name": "x"}]),
        chat(messages=[{"role": "user"}]),
        chat(messages=[message(None)]),
        chat(messages=[message(7)]),
        chat(messages=[message([])]),
        chat(messages=[message([text_part()] * (MAX_PARTS + 1))]),
        chat(messages=[message(["hi"])]),
        chat(messages=[message([{"type": "text", "text": ["nested"]}])]),
        chat(messages=[message([{"type": "text", "text": "a", "extra": 1}])]),
        chat(temperature=float("nan")),
        chat(temperature=float("inf")),
        chat(temperature=-0.1),
        chat(temperature=2.000001),
        chat(temperature=10**400),
        chat(temperature=True),
        chat(temperature="1"),
        chat(top_p=0),
        chat(top_p=1.0000001),
        chat(top_p=float("-inf")),
        chat(stop=["a"] * 5),
        chat(stop="x" * 257),
        chat(stop=[""]),
        chat(stop=[["nested"]]),
        chat(stop=7),
        chat(cache_salt=""),
        chat(cache_salt="s" * 257),
        chat(cache_salt=7),
    ],
)
def test_chat_fields_past_their_bounds_are_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(Refusal) as refused:
        check(body)
    assert (refused.value.status, refused.value.code) == (400, "malformed")


@pytest.mark.parametrize(
    "body",
    [
        chat(messages=[message()] * MAX_MESSAGES),
        chat(messages=[message([text_part()] * MAX_PARTS)]),
        chat(temperature=0),
        chat(temperature=2),
        chat(temperature=2.0),
        chat(top_p=1),
        chat(top_p=1e-9),
        chat(stop=["a"] * 4),
        chat(stop="x" * 256),
        chat(cache_salt="s" * 256),
        chat(messages=[message(role="system"), message(role="assistant"), message()]),
    ],
)
def test_chat_fields_at_their_bounds_pass(body: dict[str, Any]) -> None:
    sent = check(body)
    for key in ("temperature", "top_p", "stop", "cache_salt"):
        if key in body:
            assert sent[key] == body[key]
    assert sent["messages"] == body["messages"]
    assert sent["max_completion_tokens"] == sent["max_tokens"] == 50


def test_the_conservative_estimate_counts_every_byte_eight_a_message_and_images_whole() -> None:
    messages = [
        message("Привет"),
        message([text_part("ab"), image_part("data:image/png;base64,QQ")]),
    ]
    image = 4096  # a small image still costs a vision encoder its fixed share
    assert estimate_prompt_tokens(messages) == len("Привет".encode()) + 8 + 2 + image + 8
    big = "data:image/png;base64," + "A" * 10_000
    assert estimate_prompt_tokens([message([image_part(big)])]) == len(big) + 8


# -- JSON the parser cannot take, sizes --------------------------------------------------------


@pytest.mark.parametrize(
    "chat_json",
    [
        '{"model":"veil-test","messages":[{"role":"user","content":'
        + "[" * 100_000
        + "]" * 100_000
        + "}]}",
        '{"model":"veil-test","messages":[{"role":"user","content":'
        + "[" * 500
        + "]" * 500
        + "}]}",
        '{"model":"veil-test","messages":[{"role":"user","content":"hi"}],"temperature":NaN}',
        '{"model":"veil-test","messages":[{"role":"user","content":"hi"}],"top_p":Infinity}',
        '{"model":"veil-test","messages":[{"role":"user","content":"hi"}],"temperature":1e999}',
        '{"model":"veil-test","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":'
        + "9" * 5000
        + "}",
        '"just a string"',
    ],
    ids=["deep-100k", "deep-500", "nan", "infinity", "overflow", "huge-int", "not-object"],
)
async def test_json_the_parser_or_the_bounds_refuse_is_400_malformed_never_500(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, chat_json: str
) -> None:
    reply = await post_sealed(http, gateway.url, seal_inner_json(gateway, chat_json))
    assert (reply.status, reply.code) == (400, "malformed")
    assert vllm.requests == []
    again = await post_sealed(http, gateway.url, seal_call(gateway))  # the gateway lives on
    assert again.text == "Sealed hello, world."


async def test_a_body_one_byte_past_the_largest_bucket_is_too_large(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    limit = max_request_size(gateway.gateway.ring.current.keypair.suite)
    call = seal_call(gateway)
    for size, expected in ((limit + 1, (413, "too_large")), (limit, (400, "cannot_open"))):
        body = call.body + bytes(size - len(call.body))  # the right header, junk after it
        reply = await post_sealed(
            http, gateway.url, call, body=body, headers=SealedCall(body, b"", b"").headers()
        )
        assert (reply.status, reply.code) == expected
    assert vllm.requests == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_is_refused_unread(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, encoding: str
) -> None:
    """The body is the sealed bytes themselves, which the signature covers (protocol.md §3).

    A body sent with a ``Content-Encoding`` is not inflated first: inflating it let an
    unauthenticated sender make the gateway expand a kilobyte into the largest body and hash
    it before the signature check. Signed over the inflated bytes, it is still refused.
    """
    call = seal_call(gateway)
    packed = gzip.compress(call.body) if encoding == "gzip" else zlib.compress(call.body)
    headers = {**call.headers(), "Content-Encoding": encoding}
    reply = await post_sealed(http, gateway.url, call, body=packed, headers=headers)
    assert (reply.status, reply.code) == (400, "malformed")
    assert vllm.requests == []
    # The same request sent as is is served: nothing of it was taken.
    assert (await post_sealed(http, gateway.url, call)).status == 200


async def test_a_coding_named_in_a_second_header_is_refused(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    """Every ``Content-Encoding`` header counts: ``identity`` then ``gzip`` is a gzip body.

    Only the first was read, so such a request (the one list "identity, gzip", refused) was
    served; the shared reader now refuses it, and the gateway says so in its own words.
    """
    call = seal_call(gateway)
    headers = CIMultiDict(call.headers())
    headers.add("Content-Encoding", "identity")
    headers.add("Content-Encoding", "gzip")
    reply = await post_sealed(http, gateway.url, call, headers=headers)
    assert (reply.status, reply.code) == (400, "malformed")
    assert vllm.requests == []


# -- the replay window -------------------------------------------------------------------------


async def test_a_replay_is_refused_up_to_ts_plus_skew_and_stale_after(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    call = seal_call(gateway)
    assert (await post_sealed(http, gateway.url, call)).status == 200
    clock.advance(120)  # now == ts + skew: still fresh, so the id must still be known
    reply = await post_sealed(http, gateway.url, call)
    assert (reply.status, reply.code) == (409, "replayed")
    clock.advance(1)
    reply = await post_sealed(http, gateway.url, call)
    assert (reply.status, reply.code) == (400, "stale_request")
    assert len(vllm.requests) == 1


async def test_a_refused_request_id_is_not_remembered(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    vllm.answer = "slow answer here"
    vllm.token_delay = 0.1
    clients = {CLIENT_VERIFY_KEY: client_policy(streams=1)}
    async with run_gateway(vllm.url, clock=clock, clients=clients) as running:
        busy = asyncio.create_task(post_sealed(http, running.url, seal_call(running)))
        await wait_until(lambda: len(vllm.requests) == 1)
        call = seal_call(running)
        refused = await post_sealed(http, running.url, call)
        assert (refused.status, refused.code) == (429, "client_busy")
        await busy
        assert len(running.gateway.replays) == 1
        again = await post_sealed(http, running.url, call)  # the very same bytes
        assert again.text == "slow answer here"
        unknown = seal_call(running, chat(model="nope"))
        assert (await post_sealed(http, running.url, unknown)).code == "unknown_model"
        assert len(running.gateway.replays) == 2


def test_replay_cache_forgets_each_id_once_its_last_second_has_passed() -> None:
    cache = ReplayCache()
    cache.add(b"a", 1000, now=900)
    cache.add(b"b", 1001, now=900)
    cache.check(b"c", now=1000)
    with pytest.raises(ReplayedRequest):
        cache.check(b"a", now=1000)
    cache.check(b"a", now=1001)
    assert len(cache) == 1
    with pytest.raises(ReplayedRequest):
        cache.check(b"b", now=1001)
    for i in range(5000):
        cache.add(i.to_bytes(4, "big"), 2000 + i % 240, now=1900)
    cache.check(b"z", now=10**9)  # a jump far ahead sweeps by bucket, not by second
    assert len(cache) == 0


# -- what vLLM sends back, bounded ---------------------------------------------------------------


async def test_a_70_kb_delta_is_split_into_records_within_the_spec(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    vllm.answer = "ж" * 35_000  # one token of 70 000 bytes
    reply = await post_sealed(http, gateway.url, seal_call(gateway))
    assert reply.text == vllm.answer
    assert len(reply.texts) == 2
    assert max(reply.chunk_lengths) <= MAX_CHUNK


async def test_a_100_kb_model_server_error_arrives_cut_in_an_error_record(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    vllm.fail_before_stream = (500, "\u2603" * 100_000)
    reply = await post_sealed(http, gateway.url, seal_call(gateway))
    assert reply.status == 200
    assert reply.final is not None
    assert reply.final.error_kind == "backend"
    assert reply.final.error_status == 500
    assert reply.final.error_message == "\u2603" * MAX_ERROR_MESSAGE
    assert max(reply.chunk_lengths) <= MAX_CHUNK
    assert reply.final.receipt is not None
    assert reply.final.receipt.receipt.status is ReceiptStatus.ERROR


@pytest.mark.parametrize(
    ("options", "says"),
    [
        # streams=-1 then read "must be a whole number", which -1 is: it says what is wrong.
        ("streams=-1", "client test: streams must be 1 or more, not -1"),
        ("streams=0", "client test: streams must be 1 or more, not 0"),
        ("max_tokens=0", "client test: max_tokens must be 1 or more, not 0"),
        ("tpm=-5", "client test: tpm must be 0 or more (0: no limit), not -5"),
        ("streams=1.5", "client test: streams must be a whole number, not '1.5'"),
        ("tpm=1e3", "client test: tpm must be a whole number, not '1e3'"),
        ("tpm=\u00b2", "client test: tpm must be a whole number, not '\u00b2'"),
        ("max_tokens=", "client test: max_tokens must be a whole number, not ''"),
        # 5000 digits: int() refused it with Python's own "Exceeds the limit (4300 digits)".
        ("tpm=" + "9" * 5000, "client test: tpm must be under 10^18, not a 5000-digit number"),
        ("speed=3", "client test: unknown limit 'speed' (use streams, tpm or max_tokens)"),
    ],
)
def test_a_client_limit_mistyped_is_named_as_what_it_is(options: str, says: str) -> None:
    # streams=-1 read "unknown limit 'streams'", which is the one limit it surely knows.
    with pytest.raises(ValueError, match=r"^client") as refused:
        parse_client_keys(
            f"{client_keys_setting()}:{options}", default_streams=4, default_max_tokens=512
        )
    assert str(refused.value) == says


def test_a_client_key_pasted_without_its_name_is_told_so() -> None:
    # The key alone (as `python -m bot keygen` prints it) read "client 1: a name of letters,
    # digits, '_', '.', '-'", which its 43 such characters all are: the name's 32 were passed.
    for setting, says in [
        (b64e(CLIENT_VERIFY_KEY), "no name before its key: write it as name:key"),
        ("n" * 33 + ":" + b64e(CLIENT_VERIFY_KEY), "a name of 1 to 32 letters, digits"),
    ]:
        with pytest.raises(ValueError, match=r"^client 1: ") as refused:
            parse_client_keys(setting, default_streams=4, default_max_tokens=512)
        assert str(refused.value).startswith(f"client 1: {says}")


def test_a_client_name_without_its_key_is_told_its_key_is_missing() -> None:
    # The name alone ("bot", the key forgotten) was told "no name before its key", the
    # opposite of what was wrong: only an entry that cannot be a name is a key without one.
    with pytest.raises(ValueError, match=r"^client ") as refused:
        parse_client_keys("bot", default_streams=4, default_max_tokens=512)
    assert str(refused.value) == "client bot: not a base64url Ed25519 verify key"


def test_a_client_limit_written_with_leading_zeros_is_its_number() -> None:
    # The ceiling counted the zeros in front: tpm=0000000000000000001 (1, as before the
    # ceiling came) was refused as "must be under 10^18, not a 19-digit number"; 5000 zeros
    # before a 2 met int()'s own limit of 4300 digits.
    clients = parse_client_keys(
        f"{client_keys_setting()}:tpm={'0' * 18}1:streams={'0' * 5000}2",
        default_streams=4,
        default_max_tokens=512,
    )
    ((client),) = clients.values()
    assert (client.tokens_per_minute, client.max_streams) == (1, 2)
