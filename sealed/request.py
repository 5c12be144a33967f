r"""Sealed requests: one HPKE message from the bot to the gateway.

Wire layout (all of it is the HTTP body of ``POST /v1/sealed/chat/completions``)::

    "VEIL" | version (1 byte) | suite id (1 byte) | key id (8 bytes) | HPKE enc | HPKE ciphertext

HPKE ``info`` is ``b"veil/request/v2\\x00"`` followed by the 14 header bytes, so the version, suite
and key id are bound to the ciphertext. The plaintext is ``pad(canonical_json(inner))`` with
``REQUEST_BUCKETS``; ``inner`` holds the request id, timestamp, a fresh response key and the
OpenAI-style chat request.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from typing import Any

from sealed.bundle import PROTOCOL_VERSION, KeyBundle
from sealed.encoding import (
    REQUEST_BUCKETS,
    b64d,
    b64e,
    canonical_json,
    hex_bytes,
    json_int,
    json_str,
    pad,
    parse_json_object,
    unpad,
)
from sealed.errors import MalformedMessage, OpenFailed, RequestTooLarge
from sealed.suites import KeyPair, Suite

MAGIC = b"VEIL"
REQUEST_INFO = b"veil/request/v2\x00"
_HEADER = struct.Struct(">4sBB8s")
HEADER_SIZE = _HEADER.size
_AEAD_TAG = 16
RESPONSE_KEY_SIZE = 32
REQUEST_ID_SIZE = 16
_INNER_FIELDS = frozenset({"v", "request_id", "ts", "response_key", "chat"})


@dataclass(frozen=True)
class RequestHeader:
    """The clear header of a sealed request."""

    version: int
    suite: Suite
    key_id: bytes

    def to_bytes(self) -> bytes:
        """The 14 header bytes."""
        return _HEADER.pack(MAGIC, self.version, self.suite.value, self.key_id)

    @classmethod
    def parse(cls, data: bytes) -> RequestHeader:
        """Read the header at the start of ``data``."""
        if len(data) < HEADER_SIZE:
            raise MalformedMessage("request shorter than its header")
        magic, version, suite_id, key_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise MalformedMessage("not a Veil request")
        if version != PROTOCOL_VERSION:
            raise MalformedMessage("unsupported protocol version")
        return cls(version, Suite.from_id(suite_id), key_id)


@dataclass(frozen=True)
class OpenedRequest:
    """What the gateway learns from a sealed request."""

    request_id: bytes
    timestamp: int
    response_key: bytes
    chat: dict[str, Any]


def max_request_size(suite: Suite) -> int:
    """The largest sealed body the protocol allows for ``suite``."""
    return HEADER_SIZE + suite.hpke_enc_length + REQUEST_BUCKETS[-1] + _AEAD_TAG


def new_request_secrets() -> tuple[bytes, bytes]:
    """A fresh random (request id, response key)."""
    return secrets.token_bytes(REQUEST_ID_SIZE), secrets.token_bytes(RESPONSE_KEY_SIZE)


def encode_inner(
    chat: dict[str, Any], *, request_id: bytes, response_key: bytes, timestamp: int
) -> bytes:
    """The padded plaintext of a request (deterministic: the test vectors check it)."""
    inner = {
        "v": PROTOCOL_VERSION,
        "request_id": request_id.hex(),
        "ts": timestamp,
        "response_key": b64e(response_key),
        "chat": chat,
    }
    payload = canonical_json(inner)
    if len(payload) + 4 > REQUEST_BUCKETS[-1]:
        raise RequestTooLarge("request exceeds the largest bucket")
    return pad(payload, REQUEST_BUCKETS)


def seal_request(
    bundle: KeyBundle,
    chat: dict[str, Any],
    *,
    request_id: bytes,
    response_key: bytes,
    timestamp: int,
) -> bytes:
    """Seal ``chat`` to the bundle's key; only the holder of its private key can open it."""
    header = RequestHeader(PROTOCOL_VERSION, bundle.suite, bundle.key_id).to_bytes()
    plaintext = encode_inner(
        chat, request_id=request_id, response_key=response_key, timestamp=timestamp
    )
    sealed = bundle.suite.hpke().encrypt(
        plaintext, bundle.encryption_key(), info=REQUEST_INFO + header
    )
    return header + sealed


def open_request(data: bytes, keypair: KeyPair) -> OpenedRequest:
    """Open a sealed request with the key its header names (the caller picked ``keypair``)."""
    header = RequestHeader.parse(data)
    if header.suite is not keypair.suite or header.key_id != keypair.key_id:
        raise OpenFailed("request is sealed to another key")
    if len(data) > max_request_size(header.suite):
        raise RequestTooLarge("request exceeds the largest bucket")
    try:
        plaintext = keypair.suite.hpke().decrypt(
            data[HEADER_SIZE:], keypair.private_key, info=REQUEST_INFO + data[:HEADER_SIZE]
        )
    except Exception as exc:  # cryptography raises InvalidTag or ValueError; both mean "not ours"
        raise OpenFailed("request does not authenticate") from exc
    return parse_inner(unpad(plaintext))


def parse_inner(payload: bytes) -> OpenedRequest:
    """Parse an opened request's JSON strictly; raise ``MalformedMessage`` on any deviation."""
    inner = parse_json_object(payload)
    if set(inner) != _INNER_FIELDS:
        raise MalformedMessage("request fields missing or unknown")
    if json_int(inner["v"]) != PROTOCOL_VERSION:
        raise MalformedMessage("unsupported request version")
    response_key = b64d(json_str(inner["response_key"], max_length=64))
    chat = inner["chat"]
    if len(response_key) != RESPONSE_KEY_SIZE or not isinstance(chat, dict):
        raise MalformedMessage("request fields malformed")
    return OpenedRequest(
        request_id=hex_bytes(inner["request_id"], REQUEST_ID_SIZE),
        timestamp=json_int(inner["ts"]),
        response_key=response_key,
        chat=chat,
    )
