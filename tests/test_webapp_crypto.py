"""The Mini App's crypto against the Python implementation: the shipped bundle, run in Node.

``tests/js/protocol_check.mjs`` loads ``webapp/static/veil.js`` (the very file the bot serves)
and exposes its protocol functions; these tests feed it docs/protocol.md's vectors, a request
sealed by it that the Python side must open, and a stream sealed by a real gateway.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from scripts.protocol_vectors import vector_stream
from sealed.auth import client_auth_headers
from sealed.encoding import b64d, b64e
from sealed.errors import MalformedMessage
from sealed.request import open_request
from sealed.stream import ChunkOpener, ChunkSealer, Delta, Final, Reasoning
from services.fitting import context_refusal
from tests.harness import CLIENT_KEY, REPO, SEALED_REQUEST_TYPE
from tests.miniapp import node_ready

if TYPE_CHECKING:
    import aiohttp

    from tests.fakes.vllm import FakeVLLM
    from tests.harness import RunningGateway

NODE = node_ready()
BUNDLE = REPO / "webapp" / "static" / "veil.js"
CHECK = REPO / "tests" / "js" / "protocol_check.mjs"
DOC = REPO / "docs" / "protocol.md"

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js 20 or later")


async def node(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in Node against the shipped bundle; its JSON result."""
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(CHECK),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(json.dumps({"bundle": str(BUNDLE), **job}).encode())
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def moved_chunk(response_key: bytes) -> bytes:
    """A stream's delta chunk at seq 16, its header rewritten to claim seq 0."""
    sealer = ChunkSealer(response_key)
    chunks = [sealer.delta(str(seq)) for seq in range(17)]
    moved = bytearray(chunks[16])
    moved[4 + 8 : 4 + 12] = (0).to_bytes(4, "big")
    return bytes(moved)


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    match = re.search(r"```json vectors\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None
    value: dict[str, Any] = json.loads(match.group(1))
    return value


async def test_the_bundle_reproduces_the_protocol_vectors(vectors: dict[str, Any]) -> None:
    from scripts.protocol_vectors import hybrid_keypair  # noqa: PLC0415 -- the suite-2 key

    result = await node(
        {
            "job": "vectors",
            "vectors": vectors,
            "stream": vector_stream().hex(),
            "hybrid_public_key": hybrid_keypair().public_bytes.hex(),
            "moved_16": moved_chunk(bytes.fromhex(vectors["inputs"]["response_key"])).hex(),
        }
    )
    for name in (
        "key_id",
        "hybrid_key_id",
        "request_inner_json",
        "request_plaintext_length",
        "request_plaintext_sha256",
        "stream_id",
        "cancel_proof",
        "receipt_proof",
        "client_id",
        "receipt_body",
        "receipt_signature",
    ):
        assert result[name] == vectors[name], name
    assert result["bundle_models"] == vectors["inputs"]["models"]
    # A bundle stating its models' context windows verifies; one without states none.
    assert result["bundle_windows"] == [{}, vectors["inputs"]["windows"]]
    # The recorded Python-sealed request opens in the page's HPKE to the same plaintext.
    assert result["opened_request_json"] == vectors["request_inner_json"]
    assert result["deltas"] == result["split_deltas"] == vectors["inputs"]["deltas"]
    # A reasoning model's thinking opens as its own records, never as the answer.
    assert result["reasoning_records"] == [
        ["reasoning", vectors["inputs"]["reasoning"]],
        ["delta", vectors["inputs"]["deltas"][0]],
    ]
    assert result["finish_reason"] == "stop"
    usage = vectors["inputs"]["usage"]
    assert result["receipt_tokens"] == [usage["prompt_tokens"], usage["completion_tokens"]]
    assert result["checks"] == {
        "unpinned": "BundleUnpinned",
        "unsigned": "BundleUnsigned",
        "bad_signature": "BundleBadSignature",
        "expired": "BundleExpired",
        "not_yet": "BundleExpired",
        "in_skew": "ok",
        "tampered": "ChunkTampered",
        "reordered": "ChunkOutOfOrder",
        # protocol.md §4, step 4: another seq within 16 (either side) is reordering; the
        # chunk's own seq under the other flag is tampering.
        "flag_flipped": "ChunkTampered",
        "moved_16": "ChunkOutOfOrder",
        "spliced": "StreamSpliced",
        "truncated": "StreamTruncated",
        "final_missing": "StreamTruncated",
        "trailing": "TrailingData",
        # The bot's mark that it cut the answer at its time limit (handlers.webapp), and bytes
        # after it, or a mark after the final chunk.
        "time_limit": "TimeLimit",
        "after_time_limit": "TrailingData",
        "time_limit_after_final": "TrailingData",
        "receipt_other_request": "ReceiptInvalid",
        "receipt_other_model": "ReceiptInvalid",
        "receipt_other_key": "ReceiptInvalid",
        "windows_ok": "ok",
        "windows_unlisted_model": "MalformedMessage",
        "windows_zero": "MalformedMessage",
        "windows_too_large": "MalformedMessage",
        "windows_not_integer": "MalformedMessage",
        "windows_not_object": "MalformedMessage",
        "b64_padding_inside": "MalformedMessage",
        # Python's json.dumps(ensure_ascii=True, sort_keys=True) of the same value.
        "canonical_non_ascii": json.dumps(
            {"b": "é\x7f😀", "a": [1, "\n"]}, sort_keys=True, separators=(",", ":")
        ),
    }


async def page_asks(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> tuple[dict[str, Any], bytes, bytes]:
    """The page seals a question, the Python gateway answers it, the page opens the stream.

    Returns the page's ``open`` result, the stream and the response key.
    """
    signed = gateway.gateway.ring.bundle()
    chat = {
        "model": "veil-test",
        "messages": [{"role": "user", "content": "Привет из браузера 🔒"}],
        "cache_salt": "device-salt",
        "max_completion_tokens": 64,
    }
    sealed = await node(
        {
            "job": "seal",
            "wire": signed.to_wire(),
            "pinned": [b64e(gateway.verify_key)],
            "now": gateway.gateway.now(),
            "chat": chat,
        }
    )
    body = bytes.fromhex(sealed["body"])
    opened = open_request(body, gateway.gateway.ring.current.keypair)
    assert opened.chat == chat
    assert opened.request_id.hex() == sealed["request_id"]
    assert opened.response_key.hex() == sealed["response_key"]
    assert "браузера".encode() not in body
    # The Python gateway answers it (the bot's countersignature is the test client's here) and
    # the page opens the real stream, with the receipt checked under the bundle's key.
    headers = {"Content-Type": SEALED_REQUEST_TYPE, **client_auth_headers(CLIENT_KEY, body)}
    async with http.post(
        f"{gateway.url}/v1/sealed/chat/completions", data=io.BytesIO(body), headers=headers
    ) as response:
        assert response.status == 200
        stream = await response.read()
    result = await node(
        {
            "job": "open",
            "response_key": sealed["response_key"],
            "request_id": sealed["request_id"],
            "stream": stream.hex(),
            "receipt_key": sealed["receipt_key"],
            "model": "veil-test",
        }
    )
    return result, stream, opened.response_key


async def test_a_request_sealed_by_the_page_opens_in_python_and_is_answered(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    result, stream, response_key = await page_asks(gateway, http)
    expected = "".join(
        r.text for r in ChunkOpener(response_key).feed(stream) if isinstance(r, Delta)
    )
    assert result["text"] == expected == "Sealed hello, world."
    assert result["reasoning"] == ""
    assert result["finish_reason"] == "stop"
    assert result["status"] == "complete"
    assert result["completion_tokens"] > 0


async def test_a_reasoning_models_thinking_opens_in_the_page_apart_from_the_answer(
    vllm: FakeVLLM, gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    vllm.reasoning = "Привет — a greeting; answer in kind 🤔."
    result, stream, response_key = await page_asks(gateway, http)
    records = ChunkOpener(response_key).feed(stream)
    thought = "".join(r.text for r in records if isinstance(r, Reasoning))
    assert result["reasoning"] == thought == vllm.reasoning
    assert result["text"] == "Sealed hello, world."
    assert result["status"] == "complete"


async def test_device_history_is_sealed_and_opens_only_with_its_key() -> None:
    result = await node({"job": "history"})
    assert result["back"] == [
        {"role": "user", "content": "Ключ? 🔑"},
        {"role": "assistant", "content": "Yes."},
    ]
    assert result["wrong"] != "ok"
    assert not result["plaintext_visible"]


async def test_the_pages_texts_exist_in_every_language_with_the_same_placeholders() -> None:
    catalogs = await node({"job": "texts"})
    assert set(catalogs) == {"en", "ru", "kk"}
    english = catalogs["en"]
    for language, catalog in catalogs.items():
        assert set(catalog) == set(english), language
        for key, text in catalog.items():
            assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", english[key]))
            assert text.strip(), (language, key)


async def test_the_page_and_python_refuse_the_same_final_records_and_b64url(
    vectors: dict[str, Any],
) -> None:
    """Both readers of a final record (and of base64url) take and refuse exactly the same texts.

    A page that took what the bot refuses (an error record with unknown fields or no status, an
    over-padded key) would read a stream the spec calls malformed.
    """
    receipt = {
        "receipt": b64e(vectors["receipt_body"].encode()),
        "signature": b64e(bytes.fromhex(vectors["receipt_signature"])),
    }
    error = {"kind": "backend", "status": 502, "message": "upstream"}
    finals: list[dict[str, Any]] = [
        {"finish_reason": "stop"},
        {"finish_reason": "length", **receipt},
        {"finish_reason": "stop", "receipt": receipt["receipt"]},
        {"finish_reason": "stop", "signature": receipt["signature"]},
        {"finish_reason": "stop", "extra": 1},
        {},
        {"error": error},
        {"error": error, **receipt},
        {"error": {**error, "status": None}},
        {"error": {**error, "kind": "new_kind"}},
        {"error": {"kind": "backend", "message": "no status"}},
        {"error": {**error, "detail": "unknown"}},
        {"error": error, "extra": 1},
        {"error": error, "finish_reason": "stop"},
        {"error": None},
        {"error": {**error, "status": 99}},
        {"error": {**error, "message": None}},
    ]
    texts = ["", "AAAA", "AAA", "AAA=", "AAA==", "AA", "AA==", "AA=", "AA===", "A", "ab=c"]
    texts += ["+/AA", "-_AA", " AAAA", "AAAA\n", "QUJD"]
    result = await node({"job": "parse", "finals": finals, "b64": texts})

    def python(parse: Any, value: Any) -> str:  # noqa: ANN401 -- any JSON value
        try:
            parse(value)
        except MalformedMessage:
            return "refused"
        return "ok"

    def page(kind: str) -> str:
        return "ok" if kind == "ok" else "refused"

    assert [page(kind) for kind in result["finals"]] == [
        python(Final.from_payload, final) for final in finals
    ]
    assert [page(kind) for kind in result["b64"]] == [python(b64d, text) for text in texts]
    # The table is not trivially one-sided.
    assert {page(kind) for kind in result["finals"]} == {"ok", "refused"}


async def test_the_page_reads_a_too_long_refusals_counts_as_the_bot_does() -> None:
    refusals = [
        (
            "This model's maximum context length is 1024 tokens. However, your request has 1500"
            " input tokens. Please reduce the length of the input messages."
        ),
        (
            "'max_tokens' or 'max_completion_tokens' is too large: 512. This model's maximum"
            " context length is 1024 tokens and your request has 703 input tokens (512 > 1024"
            " - 703)."
        ),
        (
            "This model's maximum context length is 4096 tokens. However, you requested 5000"
            " tokens (4000 in the messages, 1000 in the completion)."
        ),
        "the request exceeds the available context size",
        "request (4476 tokens) exceeds the available context size (4096 tokens), try increasing it",
        "",
    ]
    result = await node({"job": "parse", "finals": [], "b64": [], "refusals": refusals})
    expected = [context_refusal(message) for message in refusals]
    assert [None if r is None else (r["window"], r["prompt"]) for r in result["refusals"]] == (
        expected
    )
    assert expected[:3] == [(1024, 1500), (1024, 703), (4096, 4000)]
    assert expected[4] == (4096, 4476)
