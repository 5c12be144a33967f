"""The gateway's keys: the operator's signing key, the HPKE key ring and the receipt key.

The operator key is long-lived and kept in a file (``python -m gateway keygen``); the HPKE
keys and the receipt-signing key live only in memory and are made anew at every start. The
HPKE key is rotated on a schedule; a rotated-out key is still accepted until its bundle's
``not_after`` (rotation interval + grace period).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ed25519

from sealed.bundle import KeyBundle, SignedBundle, sign_bundle
from sealed.errors import UnknownKey
from sealed.keyfile import (
    OPERATOR_KEY_HEADER,
    KeyFileError,
    read_key_file,
    verify_key_text,
)
from sealed.suites import KeyPair, Suite

__all__ = [
    "KeyRing",
    "OperatorKeyError",
    "RingKey",
    "read_operator_key",
    "verify_key_text",
]

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


class OperatorKeyError(KeyFileError):
    """The operator key file is missing, unreadable, malformed or too widely readable."""


def read_operator_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """Load the operator key file; refuse it if group or others may read it."""
    try:
        return read_key_file(path, OPERATOR_KEY_HEADER)
    except KeyFileError as exc:
        raise OperatorKeyError(str(exc)) from exc


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
        self._windows: dict[str, int] = {}
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

    def renew(self, now: int) -> RingKey:
        """Replace every key by one new key: nothing sealed before can be opened any more."""
        self._keys = []
        return self.rotate(now)

    def set_models(self, models: tuple[str, ...], windows: Mapping[str, int] | None = None) -> None:
        """Record the served models and the windows known of them; re-sign if they changed.

        A window for a model not in ``models`` is left out.
        """
        known = {m: size for m, size in (windows or {}).items() if m in models}
        if models != self._models or known != self._windows:
            self._models = models
            self._windows = known
            self._bundle = None

    @property
    def models(self) -> tuple[str, ...]:
        """The models the current bundle lists."""
        return self._models

    @property
    def windows(self) -> Mapping[str, int]:
        """The context windows the current bundle lists, by model."""
        return self._windows

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
                    windows=dict(self._windows),
                ),
                self._operator,
            )
        return self._bundle

    def serving(self, now: int) -> bool:
        """True while the current key is inside its validity window (clients can use it)."""
        key = self.current
        return key.not_before <= now < key.not_after

    def find(self, suite: Suite, key_id: bytes, now: int) -> KeyPair:
        """The key pair named by ``(suite, key_id)``, if this gateway still accepts it.

        A key is named by both: a held key id under another suite is an unknown key (410,
        docs/protocol.md §1), so the client re-fetches the bundle, not a request that fails
        to open (400, the client's fault). Only the window's end is checked: a key of this
        ring was made here at its ``not_before``, so nothing was sealed to it before then,
        and a clock stepped back under it since (by no more than ``STEP_KEPT``, or the keys
        are renewed) refused every request sealed to the new key, the bot's retry too.
        """
        for key in self._keys:
            pair = key.keypair
            if pair.suite is suite and pair.key_id == key_id and now < key.not_after:
                return pair
        raise UnknownKey("request is sealed to a key this gateway does not hold")
