r"""Who may spend the GPU, and who may stop an answer or fetch its receipt.

**Client authentication.** Each client (a bot) holds an Ed25519 *client key*; a gateway pins the
verify keys it serves. The client signs the sealed bytes, outside the envelope::

    signature = Ed25519(client key, "veil/client-auth/v2" || 0x00 || SHA-256(HTTP body))

and sends the verify key and signature in the ``Veil-Client-Key`` and ``Veil-Client-Signature``
headers (base64url). A relay or a TLS-terminating load balancer can neither forge it nor move
it to other bytes, and a client can countersign bytes sealed elsewhere (a Mini App) without
opening them. The gateway checks it before any HPKE work; replays of the same bytes are caught
by the request id inside.

**Control proofs.** Only the asker knows the response key, so proofs derived from it show that a
cancel or a receipt fetch comes from the asker::

    control key = SHA-256("veil/control-key/v2" || response key)
    cancel proof  = HMAC-SHA256(control key, "veil/cancel/v2" || 0x00 || request id)
    receipt proof = HMAC-SHA256(control key, "veil/receipt-fetch/v2" || 0x00 || request id)

The control key is a separate key from the response key (which is a ChaCha20-Poly1305 key), so
no key serves two primitives.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from sealed.encoding import b64d, b64e
from sealed.errors import MalformedMessage, Unauthenticated

CLIENT_AUTH_CONTEXT = b"veil/client-auth/v2\x00"
CONTROL_KEY_CONTEXT = b"veil/control-key/v2"
CANCEL_CONTEXT = b"veil/cancel/v2\x00"
RECEIPT_FETCH_CONTEXT = b"veil/receipt-fetch/v2\x00"
CLIENT_KEY_HEADER = "Veil-Client-Key"
CLIENT_SIGNATURE_HEADER = "Veil-Client-Signature"
PROOF_HEADER = "Veil-Proof"
ED25519_KEY_SIZE = 32
_SIGNATURE_SIZE = 64
_PROOF_SIZE = 32


def client_id(verify_key: bytes) -> str:
    """A client key's id as receipts and logs name it: hex of SHA-256(verify key)[0:8]."""
    return hashlib.sha256(verify_key).digest()[:8].hex()


def client_auth_message(body: bytes) -> bytes:
    """The bytes a client signs for one HTTP body."""
    return CLIENT_AUTH_CONTEXT + hashlib.sha256(body).digest()


def client_auth_headers(key: ed25519.Ed25519PrivateKey, body: bytes) -> dict[str, str]:
    """The two headers that authenticate ``body`` as sent by the holder of ``key``."""
    return {
        CLIENT_KEY_HEADER: b64e(key.public_key().public_bytes_raw()),
        CLIENT_SIGNATURE_HEADER: b64e(key.sign(client_auth_message(body))),
    }


def parse_verify_key(text: str) -> bytes:
    """A 32-byte Ed25519 verify key from its base64url text; ``MalformedMessage`` otherwise."""
    raw = b64d(text)
    if len(raw) != ED25519_KEY_SIZE:
        raise MalformedMessage("an Ed25519 verify key is 32 bytes")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise MalformedMessage("not an Ed25519 verify key") from exc
    return raw


def check_client_signature(verify_key: bytes, signature_text: str | None, body: bytes) -> None:
    """Raise ``Unauthenticated`` unless ``signature_text`` is the key's signature of ``body``."""
    if not signature_text:
        raise Unauthenticated("no client signature")
    try:
        signature = b64d(signature_text)
        if len(signature) != _SIGNATURE_SIZE:
            raise Unauthenticated("malformed client signature")
        key = ed25519.Ed25519PublicKey.from_public_bytes(verify_key)
        key.verify(signature, client_auth_message(body))
    except (MalformedMessage, InvalidSignature, ValueError) as exc:
        raise Unauthenticated("client signature does not verify") from exc


def _control_key(response_key: bytes) -> bytes:
    return hashlib.sha256(CONTROL_KEY_CONTEXT + response_key).digest()


def cancel_proof(response_key: bytes, request_id: bytes) -> bytes:
    """The proof that a cancel of ``request_id`` comes from its asker."""
    return hmac.digest(_control_key(response_key), CANCEL_CONTEXT + request_id, "sha256")


def receipt_proof(response_key: bytes, request_id: bytes) -> bytes:
    """The proof that a receipt fetch for ``request_id`` comes from its asker."""
    return hmac.digest(_control_key(response_key), RECEIPT_FETCH_CONTEXT + request_id, "sha256")


def check_proof(expected: bytes, given_text: str | None) -> None:
    """Raise ``Unauthenticated`` unless ``given_text`` (base64url) equals ``expected``."""
    try:
        given = b64d(given_text or "")
    except MalformedMessage as exc:
        raise Unauthenticated("malformed proof") from exc
    if len(given) != _PROOF_SIZE or not hmac.compare_digest(expected, given):
        raise Unauthenticated("proof does not match")
