"""The gateway's quick way with plain text chunks (``TextChunks``) says what JSON would say.

A stream's text chunks differ only in their text, so the gateway keeps the bytes around the
text of one (a form) and takes later chunks' text straight from their bytes. These tests hold it
to ``decode_events`` (JSON for every payload) on vLLM's real chunk shapes, on payloads built to
fool a form (a quote that closes the string early, escapes, control characters, broken UTF-8),
on servers whose chunks change, and on thousands of random streams split into random batches;
and they check that the plain chunks do skip JSON.
"""

from __future__ import annotations

import json
import random
import re
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

from gateway import events as events_module
from gateway.events import (
    BackendFailure,
    ContentDelta,
    Event,
    ReasoningDelta,
    TextChunks,
    decode_events,
)

if TYPE_CHECKING:
    from collections.abc import Callable

HEAD = {
    "id": "chatcmpl-0b7c2d8e9f",
    "object": "chat.completion.chunk",
    "created": 1764400000,
    "model": "veil-test",
}


def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    """A vLLM 0.32 chunk's ``data:`` payload (with the blank vLLM leaves after ``data:``)."""
    choice = {
        "index": 0,
        "delta": delta,
        "logprobs": None,
        "finish_reason": finish,
        "token_ids": None,
    }
    body = {**HEAD, "choices": [choice], **extra}
    return b" " + json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def usage() -> bytes:
    """The usage chunk that ends a stream with ``include_usage``."""
    body = {**HEAD, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}
    return b" " + json.dumps(body, separators=(",", ":")).encode()


Outcome = tuple[list[Event], tuple[str, int, str] | None]


def both_ways(batches: list[list[bytes]]) -> tuple[list[Outcome], list[Outcome]]:
    """Decode ``batches`` with one ``TextChunks`` and with JSON alone: (quick, JSON) outcomes."""
    chunks = TextChunks()
    quick: list[Outcome] = []
    plain: list[Outcome] = []
    for batch in batches:
        events, failure = chunks.decode(batch)
        quick.append((events, _failure(failure)))
        expected, expected_failure = decode_events(batch)
        plain.append((expected, _failure(expected_failure)))
        if failure is not None:
            break
    return quick, plain[: len(quick)]


def _failure(failure: BackendFailure | None) -> tuple[str, int, str] | None:
    return None if failure is None else (failure.kind, failure.status, failure.message)


def test_a_vllm_stream_decodes_the_same_and_its_text_chunks_skip_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = ["Hello", ", ", 'say "hi"', " back\\slash", " caf\u00e9", " \U0001f30a", "\n\n- a"]
    stream = [chunk({"role": "assistant", "content": ""})]
    stream += [chunk({"content": text}) for text in texts]
    stream += [chunk({"content": ""})]
    stream += [chunk({"content": "."}, "stop"), usage()]
    quick, plain = both_ways([stream[:3], stream[3:6], stream[6:]])
    assert quick == plain
    events = [event for batch, _ in quick for event in batch]
    assert [e.text for e in events if isinstance(e, ContentDelta)] == [*texts, "."]

    chunks = TextChunks()
    chunks.decode(stream[:2])  # the role chunk and the first text: learnt from
    calls: list[bytes | str] = []
    real_loads = json.loads

    def counting_loads(data: bytes | str, **kwargs: object) -> object:
        calls.append(data)
        return real_loads(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(json, "loads", counting_loads)
    events, failure = chunks.decode([chunk({"content": f" w{i}"}) for i in range(50)])
    assert failure is None
    assert [e.text for e in events] == [f" w{i}" for i in range(50)]  # type: ignore[union-attr]
    assert calls == []  # fifty plain text chunks, no JSON decoded


def test_escapes_in_a_form_are_read_as_json_strings() -> None:
    chunks = TextChunks()
    chunks.decode([chunk({"content": "first"})])
    escaped = [
        b' {"id":"chatcmpl-0b7c2d8e9f","object":"chat.completion.chunk","created":1764400000,'
        b'"model":"veil-test","choices":[{"index":0,"delta":{"content":"' + body + b'"},'
        b'"logprobs":null,"finish_reason":null,"token_ids":null}]}'
        for body in (rb"caf\u00e9", rb"\ud83c\udf0a", rb"a\"b", rb"tab\tnew\nline", rb"\u0000", b"")
    ]
    events, failure = chunks.decode(escaped)
    assert failure is None
    assert events == [
        ContentDelta(text) for text in ("caf\u00e9", "\U0001f30a", 'a"b', "tab\tnew\nline", "\x00")
    ]
    assert (events, failure) == decode_events(escaped)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'x","reasoning":"sneaked', "a quote closing the string early adds a field"),
        (b'x"},"finish_reason":"stop","x":{"y":"', "a quote closing the string adds a finish"),
        (b"raw\nnewline", "a control character JSON forbids"),
        (b"broken \xff utf-8", "bytes that are not UTF-8"),
        (b"ends with a backslash\\", "an escape with nothing after it"),
        (rb"bad \x escape", "an escape JSON does not have"),
        (rb"\ud800 lone", "a lone surrogate (JSON allows it)"),
    ],
)
def test_a_payload_that_only_looks_like_a_form_is_decoded_as_json(body: bytes, why: str) -> None:
    learnt = chunk({"content": "first"})
    prefix = learnt[: learnt.index(b"first")]
    suffix = learnt[learnt.index(b"first") + len(b"first") :]
    payload = prefix + body + suffix
    quick, plain = both_ways([[learnt], [payload, chunk({"content": "after"})]])
    assert quick == plain, why


TRICKY: list[Callable[[str], bytes]] = [
    lambda text: chunk({"content": text}, "stop"),
    lambda text: chunk({"content": text}, usage={"prompt_tokens": 1, "completion_tokens": 1}),
    lambda text: chunk({"reasoning_content": "", "reasoning": text}),
    lambda text: chunk({"reasoning_content": text, "reasoning": "other"}),
    lambda text: chunk({"content": text, "reasoning": "r"}),
    lambda text: b" " + json.dumps({"choices": [{"delta": {"content": text}}] * 2}).encode(),
    # a second reasoning field the byte pattern does not see (its name escaped): it takes over
    # when the first is empty
    lambda text: (
        b' {"choices":[{"delta":{"reasoning_content":'
        + json.dumps(text).encode()
        + b',"reasonin\\u0067":"y"}}]}'
    ),
]


@pytest.mark.parametrize("make", TRICKY)
def test_forms_are_learnt_only_from_chunks_whose_text_is_all_they_say(
    make: Callable[[str], bytes],
) -> None:
    # None of these may become a form: the same bytes with another text would lose the finish,
    # the usage, the other text field or choice, or the reasoning that takes over when empty.
    chunks = TextChunks()
    chunks.decode([make("first")])
    for text in ("", "zq", "other", 'q"uote'):
        assert chunks.decode([make(text)]) == decode_events([make(text)])


def test_thinking_and_answer_forms_side_by_side() -> None:
    stream = [chunk({"role": "assistant", "content": ""})]
    stream += [chunk({"reasoning_content": f" t{i}"}) for i in range(5)]
    stream += [chunk({"content": f" a{i}"}) for i in range(5)]
    stream += [chunk({"reasoning_content": " late thought"}), chunk({"content": " end"}, "stop")]
    quick, plain = both_ways([stream[:2], stream[2:8], stream[8:]])
    assert quick == plain
    events = [event for batch, _ in quick for event in batch]
    assert sum(isinstance(e, ReasoningDelta) for e in events) == 6


def test_a_server_whose_chunks_change_every_time_is_still_read_right() -> None:
    stream = [
        b" "
        + json.dumps({**HEAD, "id": f"c{i}", "choices": [{"delta": {"content": f"w{i}"}}]}).encode()
        for i in range(20)
    ]
    quick, plain = both_ways([stream[i : i + 3] for i in range(0, 20, 3)])
    assert quick == plain


def test_an_error_chunk_after_text_keeps_the_text_before_it() -> None:
    error = b' {"error":{"message":"boom","code":500}}'
    stream = [chunk({"content": f"w{i}"}) for i in range(4)]
    quick, plain = both_ways([stream[:2], [*stream[2:], error, chunk({"content": "lost"})]])
    assert quick == plain
    assert quick[-1][1] == ("backend", 500, "boom")


ALPHABET = ['"', "\\", "\n", "\t", "\x00", "\x1f", "a", " ", "é", "\U0001f30a", "/", "u", "}"]


def _random_payload(rng: random.Random) -> bytes:
    roll = rng.random()
    text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 6)))
    ascii_only = rng.random() < 0.3
    if roll < 0.6:
        delta: dict[str, object] = {"content": text}
    elif roll < 0.75:
        delta = {rng.choice(["reasoning_content", "reasoning"]): text}
    elif roll < 0.8:
        delta = {"content": text, "reasoning": rng.choice(["", "r"])}
    elif roll < 0.85:
        return usage()
    else:
        delta = {"content": text}
    body = {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    if roll >= 0.95:
        body["choices"][0]["finish_reason"] = "length"  # type: ignore[index]
    payload = b" " + json.dumps(body, separators=(",", ":"), ensure_ascii=ascii_only).encode()
    if 0.85 <= roll < 0.9 and len(payload) > 40:  # a corrupted byte inside the text's part
        at = rng.randrange(len(payload) - 40, len(payload) - 30)
        payload = payload[:at] + bytes([rng.choice(b'"\\\n\xff\x00a')]) + payload[at + 1 :]
    return payload


def test_random_streams_in_random_batches_decode_as_json_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(20261129)  # noqa: S311 -- a repeatable test, not a secret
    payloads = 0
    real_loads = json.loads
    decoded: list[object] = []

    def counting_loads(data: bytes | str, **kwargs: object) -> object:
        decoded.append(data)
        return real_loads(data, **kwargs)  # type: ignore[arg-type]

    for _ in range(400):
        stream = [_random_payload(rng) for _ in range(rng.randrange(1, 30))]
        payloads += len(stream)
        batches: list[list[bytes]] = []
        while stream:
            cut = rng.randrange(1, 6)
            batches.append(stream[:cut])
            stream = stream[cut:]
        chunks = TextChunks()
        for batch in batches:
            expected = decode_events(batch)
            with monkeypatch.context() as patch:
                patch.setattr(json, "loads", counting_loads)
                found = chunks.decode(batch)
            assert (found[0], _failure(found[1])) == (expected[0], _failure(expected[1]))
            if found[1] is not None:
                break
    # Forms were used (a text with escapes is read from its string body alone).
    assert sum(isinstance(data, bytes) and data.startswith(b'"') for data in decoded) > 100
    assert payloads > 4000


# -- a tick's run of plain chunks, joined -------------------------------------------------------


def sse(payloads: list[bytes]) -> bytes:
    """The SSE lines vLLM writes for ``payloads``: ``data:`` + payload + a blank line each."""
    return b"".join(b"data:" + payload + b"\n\n" for payload in payloads)


def joined(events: list[Event]) -> tuple[str, str, int]:
    """The answer's text, the thinking's text and the pieces, as a run would give them."""
    answer = "".join(e.text for e in events if isinstance(e, ContentDelta))
    thought = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    pieces = sum(e.pieces for e in events if isinstance(e, ContentDelta | ReasoningDelta))
    return answer, thought, pieces


def test_a_run_of_plain_chunks_is_one_event_counting_its_pieces() -> None:
    chunks = TextChunks()
    chunks.decode([chunk({"content": "first"})])
    texts = [" w0", "", " é", " \U0001f30a", " w4", ""]
    events = chunks.run(sse([chunk({"content": text}) for text in texts]))
    assert events == [ContentDelta(" w0 é \U0001f30a w4", 4)]  # empty texts count for nothing
    assert chunks.run(sse([chunk({"content": ""})] * 3)) == []


@pytest.mark.parametrize(
    "lines",
    [
        sse([chunk({"content": "a"}), chunk({"content": 'q"uote'})]),  # an escape
        sse([chunk({"content": "a"}), chunk({"content": "b"}, "stop")]),  # the finish
        sse([chunk({"content": "a"}), usage()]),
        sse([chunk({"content": "a"})]) + b": a comment\n\n",
        sse([chunk({"content": "a"})]) + b"data: [DONE]\n\n",
        sse([chunk({"content": "a"})]).replace(b"\n\n", b"\n\n\n"),  # an extra blank line
        sse([chunk({"content": "a"}), chunk({"reasoning_content": "t"})]),  # two forms
        # a line feed in a text's bytes cuts its line: two lines, neither a chunk
        sse([chunk({"content": "a"}), chunk({"content": "b_c"}).replace(b"b_c", b"b\nc")]),
        # the form's two parts sharing the quote between them: an unterminated string
        sse([chunk({"content": "Q"}).replace(b'"Q"', b'"')]),
        b"",
    ],
    ids=[
        "escape",
        "finish",
        "usage",
        "comment",
        "done",
        "blank",
        "two-forms",
        "line-feed",
        "shared-quote",
        "nothing",
    ],
)
def test_lines_that_are_not_all_plain_chunks_of_one_form_are_no_run(lines: bytes) -> None:
    chunks = TextChunks()
    chunks.decode([chunk({"content": "first"}), chunk({"reasoning_content": "thought"})])
    assert chunks.run(lines) is None


def test_a_character_split_between_two_chunks_is_no_run() -> None:
    # Each chunk's text must be UTF-8 on its own (JSON decoding refuses it otherwise), even
    # though the two bodies together would decode.
    chunks = TextChunks()
    learnt = chunk({"content": "first"})
    chunks.decode([learnt])
    prefix, suffix = learnt[: learnt.index(b"first")], learnt[learnt.index(b"first") + 5 :]
    halves = [prefix + "é".encode()[:1] + suffix, prefix + "é".encode()[1:] + suffix]
    assert chunks.run(sse(halves)) is None
    events, failure = chunks.decode(halves)
    expected, expected_failure = decode_events(halves)
    assert (events, _failure(failure)) == (expected, _failure(expected_failure))
    assert failure is not None


def _run_payload(rng: random.Random) -> bytes:
    """A chunk in the forms learnt below, mostly plain, sometimes not (escapes, a finish…)."""
    letters = ALPHABET if rng.random() < 0.1 else ["a", " ", "é", "\U0001f30a", "/", "}"]
    text = "".join(rng.choice(letters) for _ in range(rng.randrange(0, 5)))
    roll = rng.random()
    if roll < 0.85:
        payload = chunk({"content": text})
    elif roll < 0.9:
        payload = chunk({"reasoning_content": text})
    elif roll < 0.95:
        payload = chunk({"content": text}, "stop")
    else:
        payload = usage()
    if rng.random() < 0.03:  # a corrupted byte
        at = rng.randrange(len(payload))
        payload = payload[:at] + bytes([rng.choice(b'"\\\n\xff\x80a')]) + payload[at + 1 :]
    return payload


def test_random_runs_say_what_json_says() -> None:
    rng = random.Random(1129)  # noqa: S311 -- a repeatable test, not a secret
    runs = 0
    for _ in range(600):
        chunks = TextChunks()
        chunks.decode([chunk({"content": "first"}), chunk({"reasoning_content": "thought"})])
        stream = [_run_payload(rng) for _ in range(rng.randrange(1, 8))]
        events = chunks.run(sse(stream))
        expected, failure = decode_events(stream)
        if events is None:
            continue
        runs += 1
        assert failure is None
        assert joined(events) == joined(expected)
        assert len(events) <= 1
    assert runs > 100  # plain runs came up, and each said what JSON says


# Payloads that are not one JSON value each, whose bytes joined with commas are: a text chunk
# in form between them must not change what the batch says (each of them is malformed alone).
SPLIT_VALUES = [
    (b"0,0,[0", b"0]"),  # an array opened in one payload, closed in another
    (b'0,0,{"a":[0', b"0]}"),
    (b'"open', b'close",0'),  # a string that runs on across the comma between them
    (b' {"choices":[{"delta":{"content":"a"}}]},{"x":[0', b"1]}"),
]


@pytest.mark.parametrize(("first", "second"), SPLIT_VALUES)
def test_a_value_split_across_payloads_is_malformed_with_or_without_a_form_between(
    first: bytes, second: bytes
) -> None:
    learnt = chunk({"content": "first"})
    between = chunk({"content": "between"})
    for batch in ([first, second], [first, between, second], [between, first, second]):
        _, failure = decode_events(batch)
        assert _failure(failure) == ("backend", 502, "model server sent a malformed event")
        quick, plain = both_ways([[learnt], batch])
        assert quick == plain


HOSTILE_TEXT = ['"', "\\", "\n", "\x00", "a", " ", "é", "\ud800", "\udc00", "\U0001f30a", "}", ","]
HOSTILE_KEYS = [
    "content",
    "reasoning_content",
    "reasoning",
    "cont\\u0065nt",
    "reas\\u006fning",
    "x",
]
FINISHES = ["null", "null", '"stop"', '""', "1"]
HOSTILE_ODD = [
    b"0,0,[0",
    b"0]",
    b'"',
    b"[",
    b"null",
    b"{}",
    b'"x"',
    b"",
    b'{"error":{"message":"e","code":400}}',
    b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":-1}}',
    b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}',
    b'{"choices":{}}',
]


def _hostile_delta(rng: random.Random) -> str:
    if rng.random() < 0.6:
        key = rng.choice(HOSTILE_KEYS[:3])
        blank = rng.choice(["", " ", "\t"])
        return f'{{"{key}"{blank}:{blank}{_hostile_string(rng)}}}'
    fields = []
    for _ in range(rng.randrange(0, 4)):
        value = rng.choice([_hostile_string(rng), "null", "1", '{"content":"n"}', "[]", '""'])
        fields.append(f'"{rng.choice(HOSTILE_KEYS)}":{value}')  # duplicates and escaped names
    return "{" + ",".join(fields) + "}"


def _hostile_string(rng: random.Random) -> str:
    text = "".join(rng.choice(HOSTILE_TEXT) for _ in range(rng.randrange(0, 5)))
    return json.dumps(text, ensure_ascii=rng.random() < 0.3)


def _hostile_payload(rng: random.Random) -> bytes:
    if rng.random() < 0.05:
        return rng.choice(HOSTILE_ODD)
    choices = ",".join(
        f'{{"index":0,"delta":{_hostile_delta(rng)},"finish_reason":{rng.choice(FINISHES)}}}'
        for _ in range(1 if rng.random() < 0.85 else rng.randrange(0, 3))
    )
    extra = rng.choice(["", ',"usage":null', ',"x":"content"', ',"choices":[]'])
    body = f'{{"id":"c","object":"chat.completion.chunk","choices":[{choices}]{extra}}}'
    payload = rng.choice([b"", b" "]) + body.encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        at = rng.randrange(len(payload))
        cut = at + rng.randrange(2)
        payload = payload[:at] + bytes([rng.choice(b'"\\\x00\xff\xed\xa0a},[]: ')]) + payload[cut:]
    return payload


def _with_other_text(payload: bytes, rng: random.Random) -> bytes:
    """``payload`` with its first text field's string body replaced (a form's next chunk)."""
    found = re.search(
        rb'"(?:content|reasoning_content|reasoning)"[ \t]*:[ \t]*"((?:[^"\\]|\\.)*)"', payload
    )
    if found is None:
        return payload
    if rng.random() < 0.9:
        body = _hostile_string(rng).encode("utf-8", "surrogatepass")[1:-1]
    else:  # bytes no JSON string body may hold
        body = bytes(rng.choice(b'"\\\x00\xff\xed\xa0a') for _ in range(rng.randrange(1, 3)))
    return payload[: found.start(1)] + body + payload[found.end(1) :]


def test_hostile_streams_in_random_batches_decode_as_json_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Streams made mostly of a few shapes whose text changes (so forms are learnt and used),
    # with escaped and duplicate field names, nested objects and two choices in the delta,
    # lone surrogates, NULs, broken UTF-8, error and usage chunks, payloads that are not
    # objects or not JSON, and single bytes changed anywhere.
    rng = random.Random(112911)  # noqa: S311 -- a repeatable test, not a secret
    in_form = 0  # payloads ``TextChunks`` read through a form
    real_in_form = events_module._in_form

    def counting(payload: bytes, forms: list[Any]) -> object:
        nonlocal in_form
        found = real_in_form(payload, forms)
        in_form += found is not None
        return found

    decoded = 0
    for _ in range(1500):
        shapes = [_hostile_payload(rng) for _ in range(rng.randrange(1, 4))]
        stream = [
            _with_other_text(rng.choice(shapes), rng)
            if rng.random() < 0.7
            else _hostile_payload(rng)
            for _ in range(rng.randrange(1, 25))
        ]
        batches = []
        while stream:
            cut = rng.randrange(1, 6)
            batches.append(stream[:cut])
            stream = stream[cut:]
        with monkeypatch.context() as patch:
            patch.setattr(events_module, "_in_form", counting)
            quick, _ = both_ways(batches)
        _, plain = both_ways(batches)
        assert quick == plain, batches
        decoded += sum(map(len, batches[: len(quick)]))
    assert decoded > 10000
    assert in_form > 500  # read through forms (most shapes here are not forms)


def test_huge_text_chunks_are_not_kept_as_forms() -> None:
    # A form is kept for the stream's life: one learnt from a chunk of megabytes (another
    # field padded out, each time differently so that none fits the last) would keep them all,
    # four forms a stream, in every stream of a hostile model server.
    pads = [chr(ord("a") + i) * (1 << 20) for i in range(6)]
    stream = [chunk({"content": f"w{i}"}, pad=pad) for i, pad in enumerate(pads)]
    expected = [decode_events([payload]) for payload in stream]
    chunks = TextChunks()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        found = [chunks.decode([payload]) for payload in stream]
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert found == expected
    assert kept < 64 << 10  # a form is a chunk's few hundred bytes, not megabytes


def by_lines(text: bytes) -> list[bytes]:
    """The ``data:`` payloads of SSE lines read one line at a time, to ``[DONE]``.

    The gateway's reading (``gateway.upstream``): CR, LF and CRLF end lines; a ``data:``
    line's value is the rest of the line, blanks kept; other lines (comments, other fields,
    blank lines) say nothing; nothing after ``[DONE]`` is read.
    """
    payloads = []
    for line in text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if line.startswith(b"data:"):
            if line[5:].strip(b" \t") == b"[DONE]":
                break
            payloads.append(line[5:])
    return payloads


# The forms a run is tried against: vLLM's chunks with and without the blank after ``data:``,
# with blanks after the value, with the text as the payload's last field (its suffix all
# closing brackets), and a thinking form beside them.
RUN_FORMS = [
    chunk({"content": "first"}),
    chunk({"reasoning_content": "thought"}),
    chunk({"content": "first"})[1:],
    chunk({"content": "first"}) + b" \t",
    b'{"choices":[{"delta":{"content":"first"}}]}',
]
# What is spliced into a run's bytes: the joint and its parts, line ends, what a string body
# cannot hold, broken and overlong UTF-8, a surrogate, halves of a character, other lines.
SPLICES = [
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b"data:",
    b"\n\ndata:",
    b"\ndata:",
    b"data: ",
    b'"',
    b"\\",
    b'\\"',
    b"\x00",
    b"\x1f",
    b"\x7f",
    b"\t",
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xe2\x82",
    b"\xac",
    b"\xe2\x82\xac",
    b"\xff",
    b": a comment\n\n",
    b"data: [DONE]\n\n",
    b"event: x\n",
    b'"}}]}',
    b'{"choices":[{"delta":{"content":"',
    b"a",
    b" ",
]

# What a text's string body is made of: plain text, and what no plain body may hold.
BODY_BYTES = [
    b"w",
    b"\xc3\xa9",
    b"",
    b'"',
    b"\\",
    b"\x00",
    b"\x7f",
    b"\t",
    b"\n",
    b"\r",
    b"\n\ndata:",
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xe2\x82",
    b"\xac",
    b"\xff",
]


def _hostile_run(rng: random.Random, forms: list[bytes]) -> bytes:
    """SSE lines of chunks in ``forms`` with random texts, then spliced and cut at random."""
    lines = []
    one = rng.choice(forms) if rng.random() < 0.7 else None  # a run of one form, or mixed
    for _ in range(rng.randrange(1, 6)):
        form = one or rng.choice(forms)
        start = form.index(b'"first"' if b'"first"' in form else b'"thought"') + 1
        end = form.index(b'"', start)
        body = b"".join(rng.choice(BODY_BYTES) for _ in range(3))
        if rng.random() < 0.7:
            body = b"".join(rng.choice([b"w", b" ", b"\xc3\xa9", b"/"]) for _ in range(3))
        lines.append(b"data:" + form[:start] + body + form[end:] + b"\n\n")
    text = b"".join(lines)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        at = rng.randrange(len(text) + 1)
        if rng.random() < 0.3:
            at = rng.choice([m.start() for m in re.finditer(rb'\n\ndata:|"|\n', text)] or [at])
        cut = at + rng.choice([0, 0, 1, 2])
        text = text[:at] + rng.choice(SPLICES) + text[cut:]
    return text


def test_runs_of_hostile_lines_say_what_reading_them_line_by_line_says() -> None:
    # ``run`` against the lines read one by one and each payload decoded as JSON: bodies that
    # hold the joint, line ends, quotes, escapes, control characters, DEL, surrogates,
    # overlong or cut UTF-8; comments, [DONE], extra blank lines; a form's two parts meeting
    # in one quote; lines cut anywhere. Whenever ``run`` gives events they are what the lines
    # say (the text joined, its pieces counted); anything else is None.
    rng = random.Random(291129)  # noqa: S311 -- a repeatable test, not a secret
    runs = refused = 0
    for _ in range(4000):
        chunks = TextChunks()
        learnt = rng.sample(RUN_FORMS, rng.randrange(1, 4))
        chunks.decode(learnt)
        text = _hostile_run(rng, learnt)
        events = chunks.run(text)
        if events is None:
            refused += 1
            continue
        runs += 1
        expected, failure = decode_events(by_lines(text))
        assert failure is None, text
        assert joined(events) == joined(expected), text
        assert len(events) <= 1, text
        assert events or joined(expected)[2] == 0, text
    assert runs > 400  # plain runs came up, and each said what the lines say
    assert refused > 2000  # and lines that are not such a run came up too
