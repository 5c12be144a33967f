"""Byte-level building blocks: canonical JSON, base64url and length padding.

Canonical JSON here is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)``
over objects of strings, integers, booleans, null and lists: a third party reproduces it
exactly. Signatures never depend on re-encoding, though: bundles and receipts travel as the
exact bytes that were signed.

Every parser here turns any failure of untrusted input (bad UTF-8, bad JSON, nesting deep
enough to exhaust the recursion limit, integers out of range, wrong types) into
``MalformedMessage``.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from typing import Any

from sealed.errors import MalformedMessage

# Padded sizes of a sealed request's plaintext, in bytes. Larger requests are refused.
REQUEST_BUCKETS: tuple[int, ...] = tuple(1024 << i for i in range(11))  # 1 KiB … 1 MiB
# Padded sizes of one response record (type byte + length + payload).
RECORD_BUCKETS: tuple[int, ...] = (64, 256, 1024, 4096, 16384, 65536)
# The most payload one record can carry: the last bucket less the length prefix and type byte.
MAX_RECORD_PAYLOAD = RECORD_BUCKETS[-1] - 4 - 1
# Integers in protocol JSON must fit in an IEEE double exactly (what JavaScript can read).
MAX_JSON_INT = 2**53 - 1

_LEN = struct.Struct(">I")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def canonical_json(value: Any) -> bytes:  # noqa: ANN401 -- any JSON-shaped value
    """Encode ``value`` as canonical JSON bytes (sorted keys, no spaces, ASCII only)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def parse_json_object(data: bytes) -> dict[str, Any]:
    r"""Parse bytes that must hold one JSON object; a lone surrogate in it becomes U+FFFD.

    JSON may escape one half of a surrogate pair on its own (``"\ud83d"``: an emoji a page
    cut in two), which ``json.loads`` keeps as a lone surrogate: no UTF-8 encoder takes it, and
    a model server's tokenizer refuses or mangles it. It is read as U+FFFD here, where every
    sealed request is opened (``well_formed``).
    """
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedMessage("not valid JSON") from exc
    if not isinstance(value, dict):
        raise MalformedMessage("JSON value is not an object")
    if not may_hold_lone_surrogate(data):
        return value
    try:
        repaired: dict[str, Any] = well_formed(value)
    except RecursionError as exc:
        raise MalformedMessage("JSON nested too deep") from exc
    return repaired


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Where a lone surrogate can come from in JSON bytes: an escaped high half not followed by an
# escaped low half, an escaped low half not after a high one (json.loads joins an escaped pair,
# and only one), its UTF-8 form (which json.loads decodes with "surrogatepass"), or UTF-16/32
# (whose ASCII holds NUL bytes). An escaped backslash just before a "u" (JSON's ``\\ud83d`` is a
# backslash and the text "ud83d") would make its neighbours misread: it counts too.
_SURROGATE_HINT = re.compile(
    rb"\\(?:u[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|[c-fC-F](?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F]))|\\u)"
    rb"|\xed[\xa0-\xbf]|\x00"
)


def may_hold_lone_surrogate(data: bytes) -> bool:
    """Whether JSON bytes that ``json.loads`` took may hold a lone surrogate when decoded.

    Never false for bytes that do; an emoji's escaped pair (every emoji in canonical JSON)
    is not a reason to walk the whole parsed value.
    """
    return _SURROGATE_HINT.search(data) is not None


def well_formed(value: Any) -> Any:  # noqa: ANN401 -- parsed JSON
    """``value`` (parsed JSON) with each lone surrogate in a string or a key replaced by U+FFFD.

    ``json.loads`` joins an escaped pair into its one character, so a surrogate left in a
    string is one without its other half.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [well_formed(item) for item in value]
    if isinstance(value, dict):
        return {well_formed(key): well_formed(item) for key, item in value.items()}
    return value


def json_int(value: object, *, low: int = 0, high: int = MAX_JSON_INT) -> int:
    """``value`` if it is a JSON integer (not a boolean) in ``[low, high]``."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MalformedMessage("expected an integer in range")
    return value


def json_str(value: object, *, max_length: int = 4096) -> str:
    """``value`` if it is a JSON string of at most ``max_length`` characters."""
    if not isinstance(value, str) or len(value) > max_length:
        raise MalformedMessage("expected a string")
    return value


def hex_bytes(value: object, size: int) -> bytes:
    """Decode a lower-case hex string of exactly ``size`` bytes."""
    text = json_str(value, max_length=2 * size)
    if len(text) != 2 * size or text != text.lower():
        raise MalformedMessage("expected lower-case hex")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise MalformedMessage("expected lower-case hex") from exc


def b64e(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """Decode base64url, unpadded or with exact padding; raise ``MalformedMessage`` otherwise.

    Only the base64url alphabet: ``+`` and ``/`` (plain base64's) are refused, as the Mini App
    and any strict reader refuse them, so both sides read the same texts.
    """
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise MalformedMessage("bad base64url")
    bare = text.rstrip("=")
    if bare != text and len(text) % 4:  # padding, when there is any, completes the last four
        raise MalformedMessage("bad base64url")
    try:
        return base64.b64decode(
            (bare + "=" * (-len(bare) % 4)).encode("ascii"), altchars=b"-_", validate=True
        )
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise MalformedMessage("bad base64url") from exc


def bucket_for(size: int, buckets: tuple[int, ...]) -> int | None:
    """The smallest bucket that holds ``size`` bytes, or None if none does."""
    for bucket in buckets:
        if size <= bucket:
            return bucket
    return None


def pad(payload: bytes, buckets: tuple[int, ...], *, target: int | None = None) -> bytes:
    """Prefix ``payload`` with its 4-byte length and pad with zeros to a bucket size.

    Payloads larger than the last bucket are padded to a multiple of it. ``target`` pads to
    exactly that many bytes instead (a shaped stream's record size); ``ValueError`` if the
    payload and its prefix do not fit in it.
    """
    size = _LEN.size + len(payload)
    if target is not None:
        if size > target:
            raise ValueError("payload does not fit in the padding target")
    else:
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
