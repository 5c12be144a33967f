"""docs/protocol.md's test vectors against the code: the spec and the code must agree."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from scripts.protocol_vectors import deterministic_vectors
from sealed.bundle import verify_bundle
from sealed.encoding import b64e
from sealed.request import open_request
from sealed.stream import ChunkOpener, Delta, Final
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


def test_recorded_sealed_request_opens_to_the_vector(vectors: dict[str, Any]) -> None:
    private = x25519.X25519PrivateKey.from_private_bytes(
        bytes.fromhex(vectors["inputs"]["gateway_x25519_private"])
    )
    opened = open_request(bytes.fromhex(vectors["sealed_request"]), KeyPair.from_x25519(private))
    assert opened.chat == vectors["inputs"]["chat"]
    assert opened.request_id.hex() == vectors["inputs"]["request_id"]
    assert opened.response_key.hex() == vectors["inputs"]["response_key"]
    assert opened.timestamp == vectors["inputs"]["timestamp"]


def test_delta_chunk_vector_opens(vectors: dict[str, Any]) -> None:
    opener = ChunkOpener(bytes.fromhex(vectors["inputs"]["response_key"]))
    assert opener.feed(bytes.fromhex(vectors["chunk0_delta_hi"])) == [Delta("Hi")]
    chunk = bytes.fromhex(vectors["chunk0_delta_hi"])
    assert chunk[4:12].hex() == vectors["stream_id"]
    final = Final.from_payload(vectors["final_payload"])
    assert final.receipt is not None
    receipt_key = ed25519.Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(vectors["inputs"]["receipt_seed"])
    )
    assert receipt_key.sign(final.receipt.signed_bytes()).hex() == vectors["receipt_signature"]
