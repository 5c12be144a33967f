"""Byte-level building blocks: canonical JSON, base64url and length padding.

Canonical JSON here is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)``
over objects of strings, integers, booleans, null and lists: a third party reproduces it
exactly, which is what lets a signature verify byte for byte.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from sealed.errors import MalformedMessage

# Padded sizes of a sealed request's plaintext, in bytes. Larger requests are refused.
REQUEST_BUCKETS: tuple[int, ...] = tuple(1024 << i for i in range(11))  # 1 KiB … 1 MiB
# Padded sizes of one response record (type byte + length + payload).
RECORD_BUCKETS: tuple[int, ...] = (64, 256, 1024, 4096, 16384, 65536)

_LEN = struct.Struct(">I")


def canonical_json(value: Any) -> bytes:  # noqa: ANN401 -- any JSON-shaped value
    """Encode ``value`` as canonical JSON bytes (sorted keys, no spaces, ASCII only)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def parse_json_object(data: bytes) -> dict[str, Any]:
    """Parse bytes that must hold one JSON object."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedMessage("not valid JSON") from exc
    if not isinstance(value, dict):
        raise MalformedMessage("JSON value is not an object")
    return value


def b64e(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """Decode base64url with or without padding; raise ``MalformedMessage`` on bad input."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise MalformedMessage("bad base64url") from exc


def bucket_for(size: int, buckets: tuple[int, ...]) -> int | None:
    """The smallest bucket that holds ``size`` bytes, or None if none does."""
    for bucket in buckets:
        if size <= bucket:
            return bucket
    return None


def pad(payload: bytes, buckets: tuple[int, ...]) -> bytes:
    """Prefix ``payload`` with its 4-byte length and pad with zeros to a bucket size.

    Payloads larger than the last bucket are padded to a multiple of it.
    """
    size = _LEN.size + len(payload)
    target = bucket_for(size, buckets)
    if target is None:
        last = buckets[-1]
        target = -(-size // last) * last
    return _LEN.pack(len(payload)) + payload + bytes(target - size)


def unpad(padded: bytes) -> bytes:
    """Undo ``pad``: read the length prefix and check that the padding is all zeros."""
    if len(padded) < _LEN.size:
        raise MalformedMessage("padded value shorter than its length prefix")
    (length,) = _LEN.unpack_from(padded)
    end = _LEN.size + length
    if end > len(padded) or any(padded[end:]):
        raise MalformedMessage("bad padding")
    return padded[_LEN.size : end]
