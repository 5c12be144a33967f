r"""Key bundles: the gateway's signed statement of which keys and models it serves.

A bundle is canonical JSON (see ``sealed.encoding``) signed with the operator's Ed25519 key over
``b"veil/bundle/v2\\x00" + body``. On the wire it is a JSON object holding the exact signed
bytes, so verification never depends on re-encoding::

    {"bundle": b64url(body), "signature": b64url(sig), "operator_key": b64url(verify key)}

The optional ``windows`` field gives served models' context windows in tokens, as the model
server reports them; a bundle without it (or without a model in it) says nothing of that
model's window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from sealed.encoding import (
    b64d,
    b64e,
    canonical_json,
    hex_bytes,
    json_int,
    json_str,
    parse_json_object,
)
from sealed.errors import (
    BundleBadSignature,
    BundleExpired,
    BundleKeyMismatch,
    BundleNotYetValid,
    BundleUnpinned,
    BundleUnsigned,
    MalformedMessage,
)
from sealed.receipt import MAX_MODEL_NAME
from sealed.suites import KEY_ID_SIZE, PublicKey, Suite, key_id_for, load_public_key

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

BUNDLE_CONTEXT = b"veil/bundle/v2\x00"
PROTOCOL_VERSION = 2
MAX_WINDOW = 1 << 30  # the largest context window a bundle may state, in tokens


@dataclass(frozen=True)
class KeyBundle:
    """What a gateway publishes about one HPKE key."""

    suite: Suite
    public_key: bytes
    key_id: bytes
    not_before: int
    not_after: int
    models: tuple[str, ...]
    receipt_key: bytes
    attestation: str | None = None
    windows: Mapping[str, int] = field(default_factory=dict, hash=False)

    def window(self, model: str) -> int | None:
        """``model``'s context window in tokens, None where the bundle does not say."""
        return self.windows.get(model)

    def to_json(self) -> dict[str, Any]:
        """The bundle body as a JSON object (canonical JSON of it is what the operator signs)."""
        body: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "suite": self.suite.label,
            "public_key": b64e(self.public_key),
            "key_id": self.key_id.hex(),
            "not_before": self.not_before,
            "not_after": self.not_after,
            "models": list(self.models),
            "receipt_key": b64e(self.receipt_key),
        }
        if self.attestation is not None:
            body["attestation"] = self.attestation
        if self.windows:
            body["windows"] = dict(sorted(self.windows.items()))
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> KeyBundle:
        """Parse a bundle body strictly: unknown fields and wrong types are ``MalformedMessage``."""
        if not _REQUIRED <= set(body) <= _REQUIRED | _OPTIONAL:
            raise MalformedMessage("bundle fields missing or unknown")
        if json_int(body["v"]) != PROTOCOL_VERSION:
            raise MalformedMessage("unsupported bundle version")
        models = body["models"]
        if not isinstance(models, list) or not all(
            isinstance(m, str) and 0 < len(m) <= MAX_MODEL_NAME for m in models
        ):
            raise MalformedMessage("bad models list")
        attestation = (
            json_str(body["attestation"], max_length=65536) if "attestation" in body else None
        )
        windows = _windows(body.get("windows", {}), models)
        return cls(
            suite=Suite.from_label(json_str(body["suite"], max_length=128)),
            public_key=b64d(json_str(body["public_key"])),
            key_id=hex_bytes(body["key_id"], KEY_ID_SIZE),
            not_before=json_int(body["not_before"]),
            not_after=json_int(body["not_after"]),
            models=tuple(models),
            receipt_key=b64d(json_str(body["receipt_key"], max_length=64)),
            attestation=attestation,
            windows=windows,
        )

    def encryption_key(self) -> PublicKey:
        """The HPKE public key to seal requests to."""
        return load_public_key(self.suite, self.public_key)

    def receipt_verify_key(self) -> ed25519.Ed25519PublicKey:
        """The Ed25519 key that signs this gateway's usage receipts."""
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(self.receipt_key)
        except ValueError as exc:
            raise MalformedMessage("bad receipt key") from exc


_REQUIRED = frozenset(
    {"v", "suite", "public_key", "key_id", "not_before", "not_after", "models", "receipt_key"}
)
_OPTIONAL = frozenset({"attestation", "windows"})


def _windows(value: object, models: list[str]) -> dict[str, int]:
    """The ``windows`` object: each key one of ``models``, each value in ``[1, MAX_WINDOW]``."""
    if not isinstance(value, dict) or not set(value) <= set(models):
        raise MalformedMessage("bad windows: not an object of listed models")
    return {model: json_int(size, low=1, high=MAX_WINDOW) for model, size in value.items()}


@dataclass(frozen=True)
class SignedBundle:
    """A bundle together with the exact bytes that were signed."""

    bundle: KeyBundle
    body: bytes
    signature: bytes
    operator_key: bytes

    def to_wire(self) -> dict[str, str]:
        """The JSON object served at ``GET /v1/keys``."""
        return {
            "bundle": b64e(self.body),
            "signature": b64e(self.signature),
            "operator_key": b64e(self.operator_key),
        }


def sign_bundle(bundle: KeyBundle, operator: ed25519.Ed25519PrivateKey) -> SignedBundle:
    """Sign ``bundle`` with the operator key (Ed25519 is deterministic: same input, same bytes)."""
    body = canonical_json(bundle.to_json())
    signature = operator.sign(BUNDLE_CONTEXT + body)
    return SignedBundle(bundle, body, signature, operator.public_key().public_bytes_raw())


def verify_bundle(
    wire: dict[str, Any], pinned: Collection[bytes], *, now: int, skew: int = 120
) -> SignedBundle:
    """Check a served bundle and return it; raise a ``BundleError`` subclass if it is not trusted.

    Order of checks: signature present, operator key pinned, signature valid, body well formed,
    key id matches the public key, validity window (with ``skew`` seconds of tolerance). A
    bundle from further in the future than that is ``BundleNotYetValid`` (a clock is off).
    """
    signature_text = wire.get("signature")
    if not isinstance(signature_text, str) or not signature_text:
        raise BundleUnsigned("bundle has no signature")
    body_text = wire.get("bundle")
    operator_text = wire.get("operator_key")
    if not isinstance(body_text, str) or not isinstance(operator_text, str):
        raise MalformedMessage("bundle fields missing")
    operator_key = b64d(operator_text)
    if operator_key not in pinned:
        raise BundleUnpinned("bundle is signed by an operator key that is not pinned")
    body = b64d(body_text)
    signature = b64d(signature_text)
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(operator_key).verify(
            signature, BUNDLE_CONTEXT + body
        )
    except (InvalidSignature, ValueError) as exc:
        raise BundleBadSignature("bundle signature does not verify") from exc
    bundle = KeyBundle.from_json(parse_json_object(body))
    if key_id_for(bundle.suite, bundle.public_key) != bundle.key_id:
        raise BundleKeyMismatch("bundle key id does not match its public key")
    if now + skew < bundle.not_before:
        raise BundleNotYetValid(bundle.not_before - now, skew)
    if now - skew >= bundle.not_after:
        raise BundleExpired("bundle is outside its validity window")
    bundle.encryption_key()  # parses, so a bad key fails here rather than at first use
    return SignedBundle(bundle, body, signature, operator_key)
