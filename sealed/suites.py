"""HPKE suites the protocol allows, and the gateway's HPKE key pairs.

Two suites, both RFC 9180 base mode through ``cryptography``'s HPKE:

- ``X25519``: DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305 (the default)
- ``MLKEM768_X25519``: the hybrid post-quantum KEM ML-KEM-768 + X25519, same KDF and AEAD

A public key travels as raw bytes: 32 bytes for X25519; for the hybrid, the 1184-byte ML-KEM-768
encapsulation key followed by the 32-byte X25519 key.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from sealed.errors import MalformedMessage

KEY_ID_SIZE = 8
_MLKEM768_PUBLIC = 1184
_X25519_PUBLIC = 32

PublicKey: TypeAlias = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
PrivateKey: TypeAlias = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


class Suite(enum.Enum):
    """An allowed HPKE suite; the value is its one-byte wire id."""

    X25519 = 1
    MLKEM768_X25519 = 2

    @property
    def label(self) -> str:
        """The suite's name in key bundles."""
        return _LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> Suite:
        """Parse a bundle's suite name."""
        for suite, name in _LABELS.items():
            if name == label:
                return suite
        raise MalformedMessage("unknown suite")

    @classmethod
    def from_id(cls, suite_id: int) -> Suite:
        """Parse a wire id."""
        try:
            return cls(suite_id)
        except ValueError as exc:
            raise MalformedMessage("unknown suite id") from exc

    @property
    def hpke_enc_length(self) -> int:
        """Bytes of the HPKE encapsulated key that precede the ciphertext."""
        return self._kem().enc_length()

    def _kem(self) -> hpke.KEM:
        return hpke.KEM.X25519 if self is Suite.X25519 else hpke.KEM.MLKEM768_X25519

    def hpke(self) -> hpke.Suite:
        """The ``cryptography`` HPKE suite object."""
        return hpke.Suite(self._kem(), hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


_LABELS = {
    Suite.X25519: "X25519-HKDF-SHA256-ChaCha20Poly1305",
    Suite.MLKEM768_X25519: "MLKEM768X25519-HKDF-SHA256-ChaCha20Poly1305",
}


@dataclass(frozen=True)
class KeyPair:
    """An HPKE key pair of one suite, with its raw public bytes and key id."""

    suite: Suite
    private_key: PrivateKey
    public_bytes: bytes

    @property
    def key_id(self) -> bytes:
        """Eight bytes naming this key: see ``key_id_for``."""
        return key_id_for(self.suite, self.public_bytes)

    @classmethod
    def generate(cls, suite: Suite) -> KeyPair:
        """A fresh random key pair."""
        if suite is Suite.X25519:
            return cls.from_x25519(x25519.X25519PrivateKey.generate())
        return cls.from_hybrid_seed(secrets.token_bytes(64), secrets.token_bytes(32))

    @classmethod
    def from_x25519(cls, key: x25519.X25519PrivateKey) -> KeyPair:
        """Wrap an X25519 private key."""
        return cls(Suite.X25519, key, key.public_key().public_bytes_raw())

    @classmethod
    def from_hybrid_seed(cls, mlkem_seed: bytes, x25519_private: bytes) -> KeyPair:
        """Build a hybrid key pair from a 64-byte ML-KEM seed and 32 X25519 private bytes."""
        kem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(mlkem_seed)
        dh_key = x25519.X25519PrivateKey.from_private_bytes(x25519_private)
        public = kem_key.public_key().public_bytes_raw() + dh_key.public_key().public_bytes_raw()
        return cls(Suite.MLKEM768_X25519, hpke.MLKEM768X25519PrivateKey(kem_key, dh_key), public)


def key_id_for(suite: Suite, public_bytes: bytes) -> bytes:
    """Key id: the first 8 bytes of SHA-256(suite id byte || public key bytes)."""
    return hashlib.sha256(bytes([suite.value]) + public_bytes).digest()[:KEY_ID_SIZE]


def load_public_key(suite: Suite, public_bytes: bytes) -> PublicKey:
    """Parse raw public bytes of ``suite``."""
    try:
        if suite is Suite.X25519:
            if len(public_bytes) != _X25519_PUBLIC:
                raise MalformedMessage("bad X25519 public key length")
            return x25519.X25519PublicKey.from_public_bytes(public_bytes)
        if len(public_bytes) != _MLKEM768_PUBLIC + _X25519_PUBLIC:
            raise MalformedMessage("bad hybrid public key length")
        kem = mlkem.MLKEM768PublicKey.from_public_bytes(public_bytes[:_MLKEM768_PUBLIC])
        dh = x25519.X25519PublicKey.from_public_bytes(public_bytes[_MLKEM768_PUBLIC:])
    except ValueError as exc:
        raise MalformedMessage("bad public key") from exc
    return hpke.MLKEM768X25519PublicKey(kem, dh)
