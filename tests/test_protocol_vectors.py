"""docs/protocol.md's test vectors against the code: the spec and the code must agree."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from scripts.protocol_vectors import (
    client_auth_vectors,
    deterministic_vectors,
    hybrid_keypair,
    relay_vectors,
)
from sealed.auth import check_client_signature, check_proof, receipt_proof
from sealed.bundle import verify_bundle
from sealed.encoding import b64e
from sealed.errors import OpenFailed, UnknownKey
from sealed.receipt import ReceiptStatus, UsageReceipt
from sealed.relay import RelayTerms, body_hash, open_relay_key, open_relay_receipt
from sealed.request import open_request
from sealed.stream import MIN_CHUNK, ChunkOpener, Delta, Final, Reasoning
from sealed.suites import KeyPair
from tests.harness import REPO

DOC = REPO / "docs" / "protocol.md"


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    match = re.search(r"```json vectors\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, "docs/protocol.md has no vectors block"
    value: dict[str, Any] = json.loads(match.group(1))
    return value


def test_deterministic_vectors_match_the_code(vectors: dict[str, Any]) -> None:
    computed = deterministic_vectors()
    for name, value in computed.items():
        assert vectors[name] == value, f"vector {name} differs from the code"


def test_bundle_vector_verifies_under_the_operator_key(vectors: dict[str, Any]) -> None:
    operator = ed25519.Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(vectors["inputs"]["operator_seed"])
    )
    verify_key = operator.public_key().public_bytes_raw()
    assert verify_key.hex() == vectors["operator_verify_key"]
    wire = {
        "bundle": b64e(vectors["bundle_body"].encode("ascii")),
        "signature": b64e(bytes.fromhex(vectors["bundle_signature"])),
        "operator_key": b64e(verify_key),
    }
    signed = verify_bundle(wire, {verify_key}, now=vectors["inputs"]["timestamp"])
    assert signed.bundle.key_id.hex() == vectors["key_id"]


@pytest.mark.parametrize(
    ("body", "signature"),
    [("bundle_body", "bundle_signature"), ("bundle_windows_body", "bundle_windows_signature")],
)
def test_bundle_vectors_state_windows_only_where_given(
    vectors: dict[str, Any], body: str, signature: str
) -> None:
    operator = ed25519.Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(vectors["inputs"]["operator_seed"])
    )
    verify_key = operator.public_key().public_bytes_raw()
    wire = {
        "bundle": b64e(vectors[body].encode("ascii")),
        "signature": b64e(bytes.fromhex(vectors[signature])),
        "operator_key": b64e(verify_key),
    }
    bundle = verify_bundle(wire, {verify_key}, now=vectors["inputs"]["timestamp"]).bundle
    assert bundle.windows == (vectors["inputs"]["windows"] if "windows" in body else {})
    assert bundle.models == tuple(vectors["inputs"]["models"])


@pytest.mark.parametrize("name", ["sealed_request", "sealed_request_hybrid"])
def test_recorded_sealed_requests_open_to_the_vector(vectors: dict[str, Any], name: str) -> None:
    inputs = vectors["inputs"]
    if name == "sealed_request":
        private = x25519.X25519PrivateKey.from_private_bytes(
            bytes.fromhex(inputs["gateway_x25519_private"])
        )
        keypair = KeyPair.from_x25519(private)
    else:
        keypair = hybrid_keypair()
        assert keypair.key_id.hex() == vectors["hybrid_key_id"]
    sealed = bytes.fromhex(vectors[name])
    assert sealed[6:14] == keypair.key_id
    opened = open_request(sealed, keypair)
    assert opened.chat == inputs["chat"]
    assert opened.request_id.hex() == inputs["request_id"]
    assert opened.response_key.hex() == inputs["response_key"]
    assert opened.timestamp == inputs["timestamp"]


def test_client_signature_vector_signs_the_recorded_request(vectors: dict[str, Any]) -> None:
    sealed = bytes.fromhex(vectors["sealed_request"])
    assert client_auth_vectors(sealed) == {
        "client_auth_message": vectors["client_auth_message"],
        "client_signature_header": vectors["client_signature_header"],
    }
    verify_key = bytes.fromhex(vectors["client_verify_key"])
    check_client_signature(verify_key, vectors["client_signature_header"], sealed)
    response_key = bytes.fromhex(vectors["inputs"]["response_key"])
    request_id = bytes.fromhex(vectors["inputs"]["request_id"])
    check_proof(
        receipt_proof(response_key, request_id), b64e(bytes.fromhex(vectors["receipt_proof"]))
    )


def test_stream_vectors_open_to_the_deltas_and_receipt(vectors: dict[str, Any]) -> None:
    opener = ChunkOpener(bytes.fromhex(vectors["inputs"]["response_key"]))
    records = opener.feed(bytes.fromhex(vectors["chunk0_delta"]))
    records += opener.feed(bytes.fromhex(vectors["chunk1_delta"]))
    assert records == [Delta(text) for text in vectors["inputs"]["deltas"]]
    assert bytes.fromhex(vectors["chunk0_delta"])[4:12].hex() == vectors["stream_id"]
    final = Final.from_payload(vectors["final_payload"])
    assert final.receipt is not None
    assert final.receipt.body.decode("ascii") == vectors["receipt_body"]
    assert final.receipt.signature.hex() == vectors["receipt_signature"]
    receipt_key = ed25519.Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(vectors["inputs"]["receipt_seed"])
    )
    final.receipt.verify(
        receipt_key.public_key(),
        request_id=bytes.fromhex(vectors["inputs"]["request_id"]),
        model=vectors["inputs"]["chat"]["model"],
    )
    assert final.receipt.receipt.prompt_tokens == vectors["inputs"]["usage"]["prompt_tokens"]
    stopped = UsageReceipt.from_bytes(vectors["stopped_receipt_body"].encode("ascii"))
    assert stopped.status is ReceiptStatus.STOPPED
    error = Final.from_payload(vectors["error_payload"])
    assert error.is_error
    assert error.receipt is not None
    assert error.receipt.receipt.status is ReceiptStatus.ERROR


def test_reasoning_vector_opens_to_a_reasoning_record_then_the_answer(
    vectors: dict[str, Any],
) -> None:
    opener = ChunkOpener(bytes.fromhex(vectors["inputs"]["response_key"]))
    chunk0 = bytes.fromhex(vectors["reasoning_chunk0"])
    records = opener.feed(chunk0)
    records += opener.feed(bytes.fromhex(vectors["reasoning_chunk1_delta"]))
    assert records == [
        Reasoning(vectors["inputs"]["reasoning"]),
        Delta(vectors["inputs"]["deltas"][0]),
    ]
    # Type 4 inside the sealed record: from the wire, a reasoning chunk looks like any delta.
    assert chunk0[4:12].hex() == vectors["stream_id"]
    assert len(chunk0) == len(bytes.fromhex(vectors["chunk0_delta"]))


def test_chunk_lengths_count_the_length_prefix(vectors: dict[str, Any]) -> None:
    chunk = bytes.fromhex(vectors["chunk0_delta"])
    # A short delta is the smallest chunk there is: prefix + header + 64-byte record + tag.
    assert int.from_bytes(chunk[:4], "big") == MIN_CHUNK
    assert len(chunk) == 4 + MIN_CHUNK == 97
    final = b"".join(bytes.fromhex(vectors[name]) for name in ("chunk0_delta", "chunk1_delta"))
    assert (
        hashlib.sha256(final[97:]).hexdigest()
        == hashlib.sha256(bytes.fromhex(vectors["chunk1_delta"])).hexdigest()
    )


def test_relay_vectors_open_to_the_relay_key_and_the_complete_receipt(
    vectors: dict[str, Any],
) -> None:
    inputs = vectors["inputs"]
    sealed = bytes.fromhex(vectors["sealed_request"])
    assert relay_vectors(sealed) == {"relay_receipt": vectors["relay_receipt"]}
    keypair = KeyPair.from_x25519(
        x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["gateway_x25519_private"]))
    )

    def find(_suite: object, key_id: bytes) -> KeyPair:
        if key_id != keypair.key_id:
            raise UnknownKey("not this key")
        return keypair

    relay_key = open_relay_key(vectors["relay_key_header"], sealed, find)
    assert relay_key.hex() == inputs["relay_key"]
    with pytest.raises(OpenFailed):  # bound to the exact body
        open_relay_key(vectors["relay_key_header"], sealed + b"\x00", find)
    frame = bytes.fromhex(vectors["relay_receipt"])
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4 == 1024 + 16
    receipt = open_relay_receipt(relay_key, body_hash(sealed), frame[4:])
    assert receipt.body.decode("ascii") == vectors["receipt_body"]
    assert receipt.signature.hex() == vectors["receipt_signature"]


def test_relay_terms_vectors_read_back_to_their_inputs(vectors: dict[str, Any]) -> None:
    inputs = vectors["inputs"]
    for name, model in (
        ("relay_terms_header", inputs["chat"]["model"]),
        ("relay_terms_header_encoded", inputs["relay_terms_model"]),
    ):
        terms = RelayTerms.parse(vectors[name])
        assert terms.request_id.hex() == inputs["request_id"]
        assert (terms.model, terms.max_completion_tokens) == (model, inputs["relay_terms_tokens"])
