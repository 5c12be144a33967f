"""Print the test vectors of docs/protocol.md (fixed keys and randomness → exact bytes).

Run ``python -m scripts.protocol_vectors`` and paste its output into the doc's ``vectors``
block when the protocol changes; ``tests/test_protocol_vectors.py`` checks the doc against the
code. HPKE encryption draws its own ephemeral key, so the two request vectors (one per suite)
are ciphertexts to open rather than ones to reproduce, and so is the relay key header; the
script makes fresh ones only with ``--new-request``. Every length is in bytes and counts the
whole thing named (a chunk's length includes its 4-byte length prefix).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from sealed.auth import (
    cancel_proof,
    client_auth_headers,
    client_auth_message,
    client_id,
    receipt_proof,
)
from sealed.bundle import KeyBundle, sign_bundle
from sealed.encoding import canonical_json
from sealed.receipt import ReceiptStatus, UsageReceipt, sign_receipt
from sealed.relay import RelayTerms, body_hash, seal_relay_key, seal_relay_receipt
from sealed.request import encode_inner, seal_request
from sealed.stream import ChunkSealer, Final, stream_id_for
from sealed.suites import KeyPair

OPERATOR_SEED = bytes(range(32))
GATEWAY_X25519 = bytes(range(32, 64))
RECEIPT_SEED = bytes(range(64, 96))
REQUEST_ID = bytes(range(96, 112))
RESPONSE_KEY = bytes(range(112, 144))
CLIENT_SEED = bytes(range(144, 176))
GATEWAY_MLKEM_SEED = bytes(range(176, 240))
GATEWAY_HYBRID_X25519 = bytes(range(240, 256)) + bytes(range(16))
RELAY_KEY = bytes(range(16, 48))
# A relay's terms (``Veil-Relay-Terms``): its tokens, and a model name that must be encoded.
TERMS_TOKENS = 64
TERMS_MODEL = "Qwen/Qwen3 8B\u00b7\u03b1"  # a middle dot and a Greek alpha: two bytes of UTF-8 each
TIMESTAMP = 1_800_000_000
WINDOW = 4200
MODELS = ("veil-test",)
WINDOWS = {"veil-test": 2048}  # the bundle vector with windows: the model's context, in tokens
DELTAS = ("Hi", " there")
REASONING = "The user greets me; greet back."
USAGE = (9, 2)  # prompt, completion tokens of the complete receipt
STOPPED_USAGE = (9, 1)
CHAT: dict[str, Any] = {
    "model": "veil-test",
    "messages": [{"role": "user", "content": "Hello, Veil"}],
    "cache_salt": "salt-1",
    "max_completion_tokens": 64,
    "temperature": 0.7,
}


def fixed_bundle(keypair: KeyPair | None = None) -> KeyBundle:
    """The bundle of the vectors: fixed keys, fixed window (suite 1 unless told)."""
    keypair = keypair or KeyPair.from_x25519(
        x25519.X25519PrivateKey.from_private_bytes(GATEWAY_X25519)
    )
    receipt_key = ed25519.Ed25519PrivateKey.from_private_bytes(RECEIPT_SEED)
    return KeyBundle(
        suite=keypair.suite,
        public_key=keypair.public_bytes,
        key_id=keypair.key_id,
        not_before=TIMESTAMP,
        not_after=TIMESTAMP + WINDOW,
        models=MODELS,
        receipt_key=receipt_key.public_key().public_bytes_raw(),
    )


def windows_bundle() -> KeyBundle:
    """The bundle of the vectors stating its model's window (the optional ``windows``)."""
    return replace(fixed_bundle(), windows=WINDOWS)


def hybrid_keypair() -> KeyPair:
    """The suite-2 key pair of the vectors."""
    return KeyPair.from_hybrid_seed(GATEWAY_MLKEM_SEED, GATEWAY_HYBRID_X25519)


def _receipt(status: ReceiptStatus, usage: tuple[int, int]) -> UsageReceipt:
    client = ed25519.Ed25519PrivateKey.from_private_bytes(CLIENT_SEED)
    return UsageReceipt(
        REQUEST_ID,
        "veil-test",
        usage[0],
        usage[1],
        status,
        client=client_id(client.public_key().public_bytes_raw()),
    )


def vector_stream() -> bytes:
    """The whole complete stream of the vectors: the two delta chunks and the DONE chunk."""
    receipt_key = ed25519.Ed25519PrivateKey.from_private_bytes(RECEIPT_SEED)
    signed = sign_receipt(_receipt(ReceiptStatus.COMPLETE, USAGE), receipt_key)
    sealer = ChunkSealer(RESPONSE_KEY)
    deltas = b"".join(sealer.delta(text) for text in DELTAS)
    return deltas + sealer.final(Final(signed, finish_reason="stop"))


def stream_vectors() -> dict[str, Any]:
    """The response stream: two deltas and a DONE record; an ERROR and a stopped final.

    Also a reasoning model's stream: a REASONING record, then the first delta.
    """
    receipt_key = ed25519.Ed25519PrivateKey.from_private_bytes(RECEIPT_SEED)
    signed = sign_receipt(_receipt(ReceiptStatus.COMPLETE, USAGE), receipt_key)
    sealer = ChunkSealer(RESPONSE_KEY)
    deltas = [sealer.delta(text) for text in DELTAS]
    done = Final(signed, finish_reason="stop")
    final = sealer.final(done)
    stopped = sign_receipt(_receipt(ReceiptStatus.STOPPED, STOPPED_USAGE), receipt_key)
    stopper = ChunkSealer(RESPONSE_KEY)
    stopper.delta(DELTAS[0])
    stopped_chunk = stopper.final(Final(stopped, finish_reason="stopped"))
    failed = sign_receipt(_receipt(ReceiptStatus.ERROR, (9, 0)), receipt_key)
    error = Final(failed, error_kind="backend", error_status=500, error_message="model crashed")
    error_chunk = ChunkSealer(RESPONSE_KEY).final(error)
    thinker = ChunkSealer(RESPONSE_KEY)
    thought = thinker.reasoning(REASONING)
    after_thought = thinker.delta(DELTAS[0])
    return {
        "stream_id": stream_id_for(RESPONSE_KEY).hex(),
        "chunk0_delta": deltas[0].hex(),
        "chunk1_delta": deltas[1].hex(),
        "chunk2_final_length": len(final),
        "chunk2_final_sha256": hashlib.sha256(final).hexdigest(),
        "receipt_body": signed.body.decode("ascii"),
        "receipt_signature": signed.signature.hex(),
        "final_payload": json.loads(canonical_json(done.payload())),
        "stopped_receipt_body": stopped.body.decode("ascii"),
        "stopped_chunk1_final_length": len(stopped_chunk),
        "stopped_chunk1_final_sha256": hashlib.sha256(stopped_chunk).hexdigest(),
        "error_chunk0_final_length": len(error_chunk),
        "error_chunk0_final_sha256": hashlib.sha256(error_chunk).hexdigest(),
        "error_payload": json.loads(canonical_json(error.payload())),
        "reasoning_chunk0": thought.hex(),
        "reasoning_chunk1_delta": after_thought.hex(),
    }


def deterministic_vectors() -> dict[str, Any]:
    """Every vector that the code reproduces exactly."""
    operator = ed25519.Ed25519PrivateKey.from_private_bytes(OPERATOR_SEED)
    bundle = fixed_bundle()
    signed = sign_bundle(bundle, operator)
    with_windows = sign_bundle(windows_bundle(), operator)
    inner = encode_inner(
        CHAT, request_id=REQUEST_ID, response_key=RESPONSE_KEY, timestamp=TIMESTAMP
    )
    hybrid = hybrid_keypair()
    client = ed25519.Ed25519PrivateKey.from_private_bytes(CLIENT_SEED)
    return {
        "inputs": {
            "operator_seed": OPERATOR_SEED.hex(),
            "gateway_x25519_private": GATEWAY_X25519.hex(),
            "gateway_mlkem768_seed": GATEWAY_MLKEM_SEED.hex(),
            "gateway_hybrid_x25519_private": GATEWAY_HYBRID_X25519.hex(),
            "receipt_seed": RECEIPT_SEED.hex(),
            "client_seed": CLIENT_SEED.hex(),
            "relay_key": RELAY_KEY.hex(),
            "request_id": REQUEST_ID.hex(),
            "response_key": RESPONSE_KEY.hex(),
            "timestamp": TIMESTAMP,
            "not_before": TIMESTAMP,
            "not_after": TIMESTAMP + WINDOW,
            "models": list(MODELS),
            "windows": WINDOWS,
            "chat": CHAT,
            "deltas": list(DELTAS),
            "reasoning": REASONING,
            "usage": {"prompt_tokens": USAGE[0], "completion_tokens": USAGE[1]},
            "stopped_usage": {
                "prompt_tokens": STOPPED_USAGE[0],
                "completion_tokens": STOPPED_USAGE[1],
            },
            "relay_terms_tokens": TERMS_TOKENS,
            "relay_terms_model": TERMS_MODEL,
        },
        "bundle_body": signed.body.decode("ascii"),
        "bundle_signature": signed.signature.hex(),
        "bundle_windows_body": with_windows.body.decode("ascii"),
        "bundle_windows_signature": with_windows.signature.hex(),
        "operator_verify_key": signed.operator_key.hex(),
        "key_id": bundle.key_id.hex(),
        "hybrid_key_id": hybrid.key_id.hex(),
        "hybrid_public_key_sha256": hashlib.sha256(hybrid.public_bytes).hexdigest(),
        "request_inner_json": inner[4 : 4 + int.from_bytes(inner[:4], "big")].decode("ascii"),
        "request_plaintext_length": len(inner),
        "request_plaintext_sha256": hashlib.sha256(inner).hexdigest(),
        "client_verify_key": client.public_key().public_bytes_raw().hex(),
        "client_id": client_id(client.public_key().public_bytes_raw()),
        "cancel_proof": cancel_proof(RESPONSE_KEY, REQUEST_ID).hex(),
        "receipt_proof": receipt_proof(RESPONSE_KEY, REQUEST_ID).hex(),
        **stream_vectors(),
        "relay_terms_header": RelayTerms(REQUEST_ID, CHAT["model"], TERMS_TOKENS).to_header(),
        "relay_terms_header_encoded": RelayTerms(REQUEST_ID, TERMS_MODEL, TERMS_TOKENS).to_header(),
    }


def client_auth_vectors(sealed_request: bytes) -> dict[str, str]:
    """The client signature over a recorded request (Ed25519 is deterministic)."""
    client = ed25519.Ed25519PrivateKey.from_private_bytes(CLIENT_SEED)
    headers = client_auth_headers(client, sealed_request)
    return {
        "client_auth_message": client_auth_message(sealed_request).hex(),
        "client_signature_header": headers["Veil-Client-Signature"],
    }


def relay_vectors(sealed_request: bytes) -> dict[str, str]:
    """The relay receipt of the complete stream, bound to a recorded request (deterministic)."""
    receipt_key = ed25519.Ed25519PrivateKey.from_private_bytes(RECEIPT_SEED)
    signed = sign_receipt(_receipt(ReceiptStatus.COMPLETE, USAGE), receipt_key)
    sealed = seal_relay_receipt(RELAY_KEY, body_hash(sealed_request), signed)
    return {"relay_receipt": sealed.hex()}


def main() -> None:
    """Print the vectors as one JSON object."""
    vectors = deterministic_vectors()
    if "--new-request" in sys.argv:
        for name, bundle in (
            ("sealed_request", fixed_bundle()),
            ("sealed_request_hybrid", fixed_bundle(hybrid_keypair())),
        ):
            sealed = seal_request(
                bundle, CHAT, request_id=REQUEST_ID, response_key=RESPONSE_KEY, timestamp=TIMESTAMP
            )
            vectors[name] = sealed.hex()
        request = bytes.fromhex(vectors["sealed_request"])
        vectors.update(client_auth_vectors(request))
        vectors["relay_key_header"] = seal_relay_key(fixed_bundle(), request, RELAY_KEY)
        vectors.update(relay_vectors(request))
    print(json.dumps(vectors, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
