"""The gateway's keys: the operator's signing key, the HPKE key ring and the receipt key.

The operator key is long-lived and kept in a file (``python -m gateway keygen``); the HPKE
keys and the receipt-signing key live only in memory and are made anew at every start. The
HPKE key is rotated on a schedule; a rotated-out key is still accepted until its bundle's
``not_after`` (rotation interval + grace period).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ed25519

from sealed.bundle import KeyBundle, SignedBundle, sign_bundle
from sealed.encoding import b64d, b64e
from sealed.errors import MalformedMessage, UnknownKey
from sealed.suites import KeyPair, Suite

if TYPE_CHECKING:
    from pathlib import Path

OPERATOR_KEY_HEADER = "veil-operator-key-v1"


class OperatorKeyError(Exception):
    """The operator key file is missing, unreadable, malformed or too widely readable."""


def write_operator_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """Create a new operator key file (mode 0600, refusing to overwrite one)."""
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise OperatorKeyError(f"{path} already exists; not overwriting an operator key") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(f"{OPERATOR_KEY_HEADER} {b64e(seed)}\n")
    return key


def read_operator_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """Load the operator key file; refuse it if group or others may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise OperatorKeyError(f"cannot read operator key file {path}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise OperatorKeyError(f"operator key file {path} must be mode 0600")
    header, _, encoded = text.strip().partition(" ")
    try:
        if header != OPERATOR_KEY_HEADER:
            raise OperatorKeyError(f"operator key file {path} is malformed")
        return ed25519.Ed25519PrivateKey.from_private_bytes(b64d(encoded))
    except (MalformedMessage, ValueError) as exc:
        raise OperatorKeyError(f"operator key file {path} is malformed") from exc


def verify_key_text(key: ed25519.Ed25519PrivateKey) -> str:
    """The verify key the bot pins (``VEIL_OPERATOR_KEYS``), as base64url."""
    return b64e(key.public_key().public_bytes_raw())


@dataclass(frozen=True)
class RingKey:
    """One HPKE key pair with its validity window."""

    keypair: KeyPair
    not_before: int
    not_after: int


class KeyRing:
    """The HPKE keys a gateway accepts, newest first, and their signed bundles."""

    def __init__(
        self,
        operator: ed25519.Ed25519PrivateKey,
        *,
        suite: Suite,
        rotation_seconds: int,
        grace_seconds: int,
        now: int,
    ) -> None:
        self._operator = operator
        self._suite = suite
        self._rotation = rotation_seconds
        self._grace = grace_seconds
        self.receipt_key = ed25519.Ed25519PrivateKey.generate()
        self._keys: list[RingKey] = []
        self._models: tuple[str, ...] = ()
        self._bundle: SignedBundle | None = None
        self.rotate(now)

    @property
    def current(self) -> RingKey:
        """The key new requests should be sealed to."""
        return self._keys[0]

    def rotate(self, now: int) -> RingKey:
        """Make a new current key and drop keys whose window has closed."""
        key = RingKey(KeyPair.generate(self._suite), now, now + self._rotation + self._grace)
        self._keys = [key, *(k for k in self._keys if k.not_after > now)]
        self._bundle = None
        return key

    def set_models(self, models: tuple[str, ...]) -> None:
        """Record the served models; the bundle is re-signed if they changed."""
        if models != self._models:
            self._models = models
            self._bundle = None

    @property
    def models(self) -> tuple[str, ...]:
        """The models the current bundle lists."""
        return self._models

    def bundle(self) -> SignedBundle:
        """The signed bundle of the current key (cached until rotation or a model change)."""
        if self._bundle is None:
            key = self.current
            self._bundle = sign_bundle(
                KeyBundle(
                    suite=self._suite,
                    public_key=key.keypair.public_bytes,
                    key_id=key.keypair.key_id,
                    not_before=key.not_before,
                    not_after=key.not_after,
                    models=self._models,
                    receipt_key=self.receipt_key.public_key().public_bytes_raw(),
                ),
                self._operator,
            )
        return self._bundle

    def find(self, key_id: bytes, now: int) -> KeyPair:
        """The key pair named by ``key_id``, if this gateway still accepts it."""
        for key in self._keys:
            if key.keypair.key_id == key_id and key.not_before <= now < key.not_after:
                return key.keypair
        raise UnknownKey("request is sealed to a key this gateway does not hold")
