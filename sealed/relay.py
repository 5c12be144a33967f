r"""Relay receipts: what a relay that cannot read the answer needs to bill it.

A Mini App seals its request in the browser, so the bot that relays it holds no response key:
it cannot open the final record and its signed receipt. For such a relay the gateway also sends
the receipt *after* the final chunk, sealed to a key the relay chose, so the relay (and nobody
on the network) can read the counts::

    request header   Veil-Relay-Key: b64url(key header (14) || enc || ct)
                     HPKE seal of the 32-byte relay key to a gateway key, with
                     info = "veil/relay-key/v2" || 0x00 || key header || SHA-256(body)
    after the final  length (4) || ChaCha20-Poly1305(relay key, nonce = 12 zero bytes,
                                    aad = "veil/relay-receipt/v2" || 0x00 || SHA-256(body),
                                    pad({"receipt": b64url, "signature": b64url}))

The key header is a request header (``"VEIL"``, version, suite, key id) naming the gateway key
the relay key is sealed to; it need not be the key the body is sealed to. The receipt inside is
the final record's own (the same bytes and signature), padded to at least 1024 bytes like a
final record, so its size says nothing about the counts. Both the relay key and the receipt are
bound to the exact body, so neither can be moved to another request.

A relay bills for what the asker *declared* (request id, model, answer tokens), since it cannot
read what was sealed; it tells the gateway the declaration, which holds the sealed request to
it (``RelayTerms``)::

    Veil-Relay-Terms: request id (32 hex) SP max_completion_tokens SP percent-encoded model

Each header is sent once (the gateway refuses either sent twice).

A sealed request naming another request id or model is refused, and its answer is clamped to
the declared tokens, so the relay's hold is the most the answer can cost.

``StreamFramer`` is the relay's side of the stream: it cuts the gateway's bytes into whole
chunks without any key (the chunk length and the final flag are in the clear), hands on every
chunk up to and including the final one, and keeps the relay receipt that follows.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from sealed.bundle import PROTOCOL_VERSION
from sealed.encoding import (
    RECORD_BUCKETS,
    b64d,
    b64e,
    bucket_for,
    canonical_json,
    pad,
    parse_json_object,
    unpad,
)
from sealed.errors import (
    MalformedMessage,
    OpenFailed,
    ReceiptInvalid,
    StreamTruncated,
    TrailingData,
)
from sealed.receipt import MAX_MODEL_NAME, SignedReceipt
from sealed.request import HEADER_SIZE, REQUEST_ID_SIZE, RequestHeader
from sealed.stream import FLAG_FINAL, MAX_CHUNK, MIN_CHUNK

if TYPE_CHECKING:
    from collections.abc import Callable

    from sealed.bundle import KeyBundle
    from sealed.suites import KeyPair, Suite

RELAY_KEY_HEADER = "Veil-Relay-Key"
RELAY_TERMS_HEADER = "Veil-Relay-Terms"
RELAY_KEY_INFO = b"veil/relay-key/v2\x00"
RELAY_RECEIPT_AAD = b"veil/relay-receipt/v2\x00"
RELAY_KEY_SIZE = 32
# A relay receipt's padded plaintext is at least this (a final record's smallest size).
RELAY_RECEIPT_MIN_RECORD = 1024
_TAG = 16
_NONCE = bytes(12)
_LEN = struct.Struct(">I")
_FLAGS_AT = 8 + 4  # a chunk body starts with the stream id (8) and seq (4), then the flags
# The most bytes the header's base64url may decode to: the largest suite's enc, a key, a tag.
_MAX_RELAY_KEY_TEXT = 4 * (HEADER_SIZE + 1120 + RELAY_KEY_SIZE + _TAG) // 3 + 4
# The terms header: the request id, the answer tokens (16 digits, more than any ceiling, which
# is what counts: not every one is a JSON-safe integer, and none needs to be), the model's name
# percent-encoded (at most three characters a byte of a 256-character name's UTF-8).
_TERMS = re.compile(
    rf"([0-9a-f]{{{2 * REQUEST_ID_SIZE}}}) ([1-9][0-9]{{0,15}}) ([!-~]{{1,{12 * MAX_MODEL_NAME}}})"
)


def new_relay_key() -> bytes:
    """A fresh random relay key (one request)."""
    return secrets.token_bytes(RELAY_KEY_SIZE)


def body_hash(body: bytes) -> bytes:
    """SHA-256 of a sealed request body: what binds a relay key and receipt to it."""
    return hashlib.sha256(body).digest()


def seal_relay_key(bundle: KeyBundle, body: bytes, relay_key: bytes) -> str:
    """The ``Veil-Relay-Key`` header: ``relay_key`` sealed to the bundle's key for ``body``."""
    if len(relay_key) != RELAY_KEY_SIZE:
        raise ValueError(f"a relay key is {RELAY_KEY_SIZE} bytes")
    header = RequestHeader(PROTOCOL_VERSION, bundle.suite, bundle.key_id).to_bytes()
    sealed = bundle.suite.hpke().encrypt(
        relay_key, bundle.encryption_key(), info=RELAY_KEY_INFO + header + body_hash(body)
    )
    return b64e(header + sealed)


def open_relay_key(text: str, body: bytes, find: Callable[[Suite, bytes], KeyPair]) -> bytes:
    """The relay key a ``Veil-Relay-Key`` header carries for ``body``.

    ``find(suite, key id)`` returns the gateway's key pair or raises ``UnknownKey``. Raises
    ``MalformedMessage`` for a header that does not parse and ``OpenFailed`` when HPKE fails
    (altered, sealed to another key, or meant for another body).
    """
    if len(text) > _MAX_RELAY_KEY_TEXT:
        raise MalformedMessage("relay key header too long")
    raw = b64d(text)
    header = RequestHeader.parse(raw)
    keypair = find(header.suite, header.key_id)
    if keypair.suite is not header.suite:
        raise OpenFailed("relay key is sealed to another key")
    try:
        key = keypair.suite.hpke().decrypt(
            raw[HEADER_SIZE:],
            keypair.private_key,
            info=RELAY_KEY_INFO + raw[:HEADER_SIZE] + body_hash(body),
        )
    except Exception as exc:  # cryptography raises InvalidTag or ValueError; both mean "not ours"
        raise OpenFailed("relay key does not authenticate") from exc
    if len(key) != RELAY_KEY_SIZE:
        raise MalformedMessage(f"a relay key is {RELAY_KEY_SIZE} bytes")
    return key


@dataclass(frozen=True)
class RelayTerms:
    """What the asker declared to the relay, which bills by it: the gateway holds the request to it.

    The relay holds credit for ``max_completion_tokens`` of ``model`` and bills from a receipt
    that must name ``request_id`` and ``model``; a sealed request that named others, or asked
    for more tokens, would be answered past the hold (and its receipt be useless to the relay).
    """

    request_id: bytes
    model: str
    max_completion_tokens: int

    def to_header(self) -> str:
        """The ``Veil-Relay-Terms`` header's value (the model percent-encoded: any name fits)."""
        return f"{self.request_id.hex()} {self.max_completion_tokens} {quote(self.model, safe='')}"

    @classmethod
    def parse(cls, text: str) -> RelayTerms:
        """Read a ``Veil-Relay-Terms`` header; ``MalformedMessage`` if it is not one."""
        found = _TERMS.fullmatch(text)
        if found is None:
            raise MalformedMessage("relay terms do not parse")
        request_id, tokens, model = found.groups()
        try:
            name = unquote(model, errors="strict")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("relay terms name no model") from exc
        if not 0 < len(name) <= MAX_MODEL_NAME or not name.isprintable():
            raise MalformedMessage("relay terms name no model")
        return cls(bytes.fromhex(request_id), name, int(tokens))


def seal_relay_receipt(relay_key: bytes, digest: bytes, receipt: SignedReceipt) -> bytes:
    """The relay receipt the gateway sends after the final chunk (length prefix included).

    ``digest`` is ``body_hash`` of the request it answers.
    """
    payload = canonical_json(receipt.to_wire())
    size = max(RELAY_RECEIPT_MIN_RECORD, bucket_for(4 + len(payload), RECORD_BUCKETS) or 0)
    sealed = ChaCha20Poly1305(relay_key).encrypt(
        _NONCE, pad(payload, RECORD_BUCKETS, target=size), RELAY_RECEIPT_AAD + digest
    )
    return _LEN.pack(len(sealed)) + sealed


def open_relay_receipt(relay_key: bytes, digest: bytes, sealed: bytes) -> SignedReceipt:
    """The signed receipt in a relay receipt (without its length prefix); not yet verified.

    ``digest`` is ``body_hash`` of the request. Raises ``ReceiptInvalid`` when it does not open
    under the relay key for that body and
    ``MalformedMessage`` when what it holds does not parse.
    """
    try:
        plaintext = ChaCha20Poly1305(relay_key).decrypt(_NONCE, sealed, RELAY_RECEIPT_AAD + digest)
    except InvalidTag as exc:
        raise ReceiptInvalid("relay receipt does not authenticate") from exc
    value = parse_json_object(unpad(plaintext))
    if set(value) != {"receipt", "signature"}:
        raise MalformedMessage("a relay receipt is {receipt, signature}")
    return SignedReceipt.from_wire(value)


class StreamFramer:
    """A relay's view of a sealed stream: whole chunks in order, then the relay receipt.

    ``feed`` returns the bytes that complete whole chunks, ready to hand on; nothing after the
    final chunk is handed on. With ``expect_receipt`` the relay receipt that follows the final
    chunk is kept in ``relay_receipt`` (its sealed bytes, without the length prefix). The
    framer needs no key: chunk lengths and the final flag are in the clear (a relay cannot
    check them; the asker does, and a flag forged on the way only loses the relay receipt).
    """

    def __init__(self, *, expect_receipt: bool) -> None:
        self.expect_receipt = expect_receipt
        self.finished = False  # the final chunk has been handed on
        self.chunks = 0
        self.relay_receipt: bytes | None = None
        self._buffer = bytearray()

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the gateway; return the whole chunks among them, to hand on."""
        if data and self._done:
            raise TrailingData("bytes after the end of the stream")
        self._buffer += data
        ready = bytearray()
        while len(self._buffer) >= _LEN.size and not self._done:
            (length,) = _LEN.unpack_from(self._buffer)
            if self.finished:
                low = _TAG + RELAY_RECEIPT_MIN_RECORD
                if not low <= length <= _TAG + RECORD_BUCKETS[-1]:
                    raise MalformedMessage("relay receipt length out of range")
            elif not MIN_CHUNK <= length <= MAX_CHUNK:
                raise MalformedMessage("chunk length out of range")
            end = _LEN.size + length
            if len(self._buffer) < end:
                break
            frame = bytes(self._buffer[_LEN.size : end])
            del self._buffer[:end]
            if self.finished:
                self.relay_receipt = frame
                continue
            ready += _LEN.pack(length) + frame
            self.chunks += 1
            self.finished = bool(frame[_FLAGS_AT] & FLAG_FINAL)
        if self._done and self._buffer:
            raise TrailingData("bytes after the end of the stream")
        return bytes(ready)

    @property
    def _done(self) -> bool:
        """Nothing more may come: the final chunk, and the relay receipt if one is expected."""
        return self.finished and (not self.expect_receipt or self.relay_receipt is not None)

    def close(self) -> None:
        """At the end of the bytes: ``StreamTruncated`` unless the stream (and receipt) came."""
        if not self.finished:
            raise StreamTruncated("the stream ended before its final chunk")
        if not self._done:
            raise StreamTruncated("the stream ended before its relay receipt")
