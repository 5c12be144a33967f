"""Print the test vectors of docs/protocol.md (fixed keys and randomness → exact bytes).

Run ``python scripts/protocol_vectors.py`` and paste its output into the doc's ``vectors``
block when the protocol changes; ``tests/test_protocol_vectors.py`` checks the doc against the
code. HPKE encryption draws its own ephemeral key, so the request vector is a ciphertext to
open rather than one to reproduce; the script makes a fresh one only with ``--new-request``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from sealed.bundle import KeyBundle, sign_bundle
from sealed.encoding import canonical_json
from sealed.receipt import UsageReceipt, sign_receipt
from sealed.request import encode_inner, seal_request
from sealed.stream import ChunkSealer, Final, stream_id_for
from sealed.suites import KeyPair

OPERATOR_SEED = bytes(range(32))
GATEWAY_X25519 = bytes(range(32, 64))
RECEIPT_SEED = bytes(range(64, 96))
REQUEST_ID = bytes(range(96, 112))
RESPONSE_KEY = bytes(range(112, 144))
TIMESTAMP = 1_800_000_000
CHAT: dict[str, Any] = {
    "model": "veil-test",
    "messages": [{"role": "user", "content": "Hello, Veil"}],
    "cache_salt": "salt-1",
}


def fixed_bundle() -> KeyBundle:
    """The bundle of the vectors: fixed keys, fixed window."""
    keypair = KeyPair.from_x25519(x25519.X25519PrivateKey.from_private_bytes(GATEWAY_X25519))
    receipt_key = ed25519.Ed25519PrivateKey.from_private_bytes(RECEIPT_SEED)
    return KeyBundle(
        suite=keypair.suite,
        public_key=keypair.public_bytes,
        key_id=keypair.key_id,
        not_before=TIMESTAMP,
        not_after=TIMESTAMP + 4200,
        models=("veil-test",),
        receipt_key=receipt_key.public_key().public_bytes_raw(),
    )


def deterministic_vectors() -> dict[str, Any]:
    """Every vector that the code reproduces exactly."""
    operator = ed25519.Ed25519PrivateKey.from_private_bytes(OPERATOR_SEED)
    bundle = fixed_bundle()
    signed = sign_bundle(bundle, operator)
    inner = encode_inner(
        CHAT, request_id=REQUEST_ID, response_key=RESPONSE_KEY, timestamp=TIMESTAMP
    )
    receipt = UsageReceipt(REQUEST_ID, "veil-test", 9, 2, complete=True)
    receipt_key = ed25519.Ed25519PrivateKey.from_private_bytes(RECEIPT_SEED)
    receipt_signature = sign_receipt(receipt, receipt_key)
    sealer = ChunkSealer(RESPONSE_KEY)
    delta0 = sealer.delta("Hi")
    delta1 = sealer.delta(" there")
    final = sealer.final(Final(receipt, receipt_signature, finish_reason="stop"))
    return {
        "inputs": {
            "operator_seed": OPERATOR_SEED.hex(),
            "gateway_x25519_private": GATEWAY_X25519.hex(),
            "receipt_seed": RECEIPT_SEED.hex(),
            "request_id": REQUEST_ID.hex(),
            "response_key": RESPONSE_KEY.hex(),
            "timestamp": TIMESTAMP,
            "chat": CHAT,
        },
        "bundle_body": signed.body.decode("ascii"),
        "bundle_signature": signed.signature.hex(),
        "operator_verify_key": signed.operator_key.hex(),
        "key_id": bundle.key_id.hex(),
        "request_inner_json": inner[4 : 4 + int.from_bytes(inner[:4], "big")].decode("ascii"),
        "request_plaintext_length": len(inner),
        "request_plaintext_sha256": hashlib.sha256(inner).hexdigest(),
        "stream_id": stream_id_for(RESPONSE_KEY).hex(),
        "chunk0_delta_hi": delta0.hex(),
        "chunk1_delta_there_sha256": hashlib.sha256(delta1).hexdigest(),
        "chunk2_final_length": len(final),
        "chunk2_final_sha256": hashlib.sha256(final).hexdigest(),
        "receipt_signed_bytes": receipt.signed_bytes().decode("latin-1"),
        "receipt_signature": receipt_signature.hex(),
        "final_payload": json.loads(
            canonical_json(Final(receipt, receipt_signature, "stop").payload())
        ),
    }


def main() -> None:
    """Print the vectors as one JSON object."""
    vectors = deterministic_vectors()
    if "--new-request" in sys.argv:
        sealed = seal_request(
            fixed_bundle(),
            CHAT,
            request_id=REQUEST_ID,
            response_key=RESPONSE_KEY,
            timestamp=TIMESTAMP,
        )
        vectors["sealed_request"] = sealed.hex()
    print(json.dumps(vectors, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
