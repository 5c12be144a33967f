r"""The sealed response stream: length-prefixed AEAD chunks under the request's response key.

One chunk on the wire::

    length (uint32, bytes that follow) | stream id (8) | seq (uint32) | flags (1) | ciphertext

- ``stream id`` = SHA-256(b"veil/stream-id/v2" || response key)[:8]; the client knows it in
  advance, so a chunk from another response is recognised (splicing).
- ChaCha20-Poly1305 under the response key; nonce = 4 zero bytes || seq as uint64 big-endian;
  AAD = b"veil/response/v2\\x00" || stream id || seq || flags. Flags bit 0 marks the final chunk.
- The plaintext is a record, ``pad(type byte || payload, RECORD_BUCKETS)``: type 1 is a text
  delta (UTF-8), type 2 the final "done" record, type 3 a final "error" record (JSON, with
  the signed usage receipt) and type 4 a reasoning delta (UTF-8: a reasoning model's thinking,
  streamed beside the answer, never part of it). A final record must come in a chunk flagged
  final, and nothing may follow it. A delta too long for one record is split on UTF-8
  character boundaries, so no record ever exceeds the last bucket.
- A shaped stream (docs/protocol.md, "Shaped streams") pads every record to one size chosen
  by the gateway (``pad_to``) instead of the smallest bucket; the client accepts any size.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from sealed.encoding import (
    MAX_RECORD_PAYLOAD,
    RECORD_BUCKETS,
    bucket_for,
    canonical_json,
    json_int,
    json_str,
    pad,
    parse_json_object,
    unpad,
)
from sealed.errors import (
    ChunkOutOfOrder,
    ChunkTampered,
    MalformedMessage,
    StreamSpliced,
    StreamTruncated,
    TrailingData,
)
from sealed.receipt import SignedReceipt

RESPONSE_AAD = b"veil/response/v2\x00"
STREAM_ID_CONTEXT = b"veil/stream-id/v2"
FLAG_FINAL = 0x01
_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">8sIB")
_TAG = 16
MIN_CHUNK = _HEAD.size + RECORD_BUCKETS[0] + _TAG
MAX_CHUNK = _HEAD.size + RECORD_BUCKETS[-1] + _TAG
# What a chunk on the wire adds to its padded record: its length prefix, head and tag.
CHUNK_OVERHEAD = _LEN.size + _HEAD.size + _TAG
# Bounds of the fields of a final record (the gateway truncates error messages to fit).
MAX_ERROR_MESSAGE = 1024
MAX_FINISH_REASON = 64
ERROR_KINDS = frozenset({"unavailable", "context_length", "stalled", "backend"})
_ERROR_FIELDS = frozenset({"kind", "status", "message"})
# An ``unavailable`` error's ``retry_after``: the model server's Retry-After in whole seconds,
# at most this (a longer one is cut to it by the gateway, refused as malformed by a client).
MAX_RETRY_AFTER = 300
# The request header by which a client says it reads ``retry_after`` in an error record
# (``ACCEPT_RETRY_AFTER`` among its comma-separated values); a gateway sends the field only
# then, so a client that reads the error's three fields strictly is never sent a fourth.
ACCEPT_HEADER = "Veil-Accept"
ACCEPT_RETRY_AFTER = "retry_after"
_RECEIPT_FIELDS = frozenset({"receipt", "signature"})
# How far from the expected position a failing chunk is tried, to tell reordering from tampering.
_REORDER_WINDOW = 16
_CONTINUATION = 0x80  # the top two bits of a UTF-8 continuation byte
# The bytes of a record that are not its payload: the 4-byte length prefix and the type byte.
RECORD_OVERHEAD = 5


class RecordType(enum.IntEnum):
    """What a chunk's record holds."""

    DELTA = 1
    DONE = 2
    ERROR = 3
    REASONING = 4


@dataclass(frozen=True)
class Delta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class Final:
    """The last record: how the stream ended and the signed usage receipt.

    ``finish_reason`` is the model server's (``stop``, ``length``, …), ``stopped`` after a cancel
    or ``time_limit`` when the gateway's longest stream duration was reached. An error record
    has ``error_kind`` (one of ``ERROR_KINDS``), the model server's HTTP status if any, a
    message of at most ``MAX_ERROR_MESSAGE`` characters and, for a client that asked for it
    (``ACCEPT_HEADER``), the seconds the model server asked to wait (``error_retry_after``).
    """

    receipt: SignedReceipt | None
    finish_reason: str | None = None
    error_kind: str | None = None
    error_status: int | None = None
    error_message: str | None = None
    error_retry_after: int | None = None

    @property
    def is_error(self) -> bool:
        """True when the stream ended in an error record."""
        return self.error_kind is not None

    def payload(self) -> dict[str, Any]:
        """The JSON payload of the final record."""
        body: dict[str, Any] = self.receipt.to_wire() if self.receipt is not None else {}
        if self.is_error:
            body["error"] = {
                "kind": self.error_kind,
                "status": self.error_status,
                "message": (self.error_message or "")[:MAX_ERROR_MESSAGE],
            }
            if self.error_retry_after is not None:
                body["error"]["retry_after"] = self.error_retry_after
        else:
            body["finish_reason"] = self.finish_reason or "stop"
        return body

    @classmethod
    def from_payload(cls, body: dict[str, Any]) -> Final:
        """Parse a final record's (or a receipt reply's) JSON payload strictly.

        Its fields are exactly ``finish_reason`` or ``error`` (``kind``, ``status``,
        ``message``, and ``retry_after`` if the client asked for it), and ``receipt`` with
        ``signature``; a final without a receipt is read, and its caller treats it as one whose
        receipt does not verify.
        """
        done = "error" not in body
        fields = {"finish_reason"} if done else {"error"}
        if set(body) not in (fields, fields | _RECEIPT_FIELDS):
            raise MalformedMessage("final record fields missing or unknown")
        receipt = SignedReceipt.from_wire(body) if "receipt" in body else None
        if done:
            reason = json_str(body["finish_reason"], max_length=MAX_FINISH_REASON)
            return cls(receipt, finish_reason=reason)
        error = body["error"]
        if not isinstance(error, dict) or set(error) - {"retry_after"} != _ERROR_FIELDS:
            raise MalformedMessage("bad error record")
        kind = json_str(error["kind"], max_length=32)
        status = error["status"]
        retry_after = error.get("retry_after")  # when sent, an int (null is malformed)
        if "retry_after" in error:
            retry_after = json_int(retry_after, high=MAX_RETRY_AFTER)
        return cls(
            receipt,
            error_kind=kind if kind in ERROR_KINDS else "backend",
            error_status=None if status is None else json_int(status, low=100, high=599),
            error_message=json_str(error["message"], max_length=MAX_ERROR_MESSAGE),
            error_retry_after=retry_after,
        )


def accepts_retry_after(header: str | None) -> bool:
    """Whether a request's ``ACCEPT_HEADER`` value names ``ACCEPT_RETRY_AFTER``."""
    values = (value.strip(" \t").lower() for value in (header or "").split(","))
    return ACCEPT_RETRY_AFTER in values


@dataclass(frozen=True)
class Reasoning:
    """A piece of a reasoning model's thinking, streamed apart from the answer's text."""

    text: str


Record = Delta | Reasoning | Final
_TEXT_KINDS = frozenset({RecordType.DELTA, RecordType.REASONING})


def split_utf8(data: bytes, limit: int = MAX_RECORD_PAYLOAD) -> list[bytes]:
    """Cut UTF-8 ``data`` into pieces of at most ``limit`` bytes, never inside a character."""
    pieces = []
    while len(data) > limit:
        cut = limit
        while data[cut] & 0xC0 == _CONTINUATION:  # back up to a character's first byte
            cut -= 1
        pieces.append(data[:cut])
        data = data[cut:]
    pieces.append(data)
    return pieces


def record_size_for(payload_bytes: int) -> int:
    """The smallest record bucket for a payload (a delta's text, a final's JSON) of that size.

    The last bucket when none holds it (a delta that long is split over several records).
    """
    return bucket_for(RECORD_OVERHEAD + payload_bytes, RECORD_BUCKETS) or RECORD_BUCKETS[-1]


def _check_record_size(size: int) -> None:
    if not RECORD_BUCKETS[0] <= size <= RECORD_BUCKETS[-1]:
        raise ValueError("a record size must lie between the first and the last bucket")


def stream_id_for(response_key: bytes) -> bytes:
    """The 8-byte stream id a response under ``response_key`` carries."""
    return hashlib.sha256(STREAM_ID_CONTEXT + response_key).digest()[:8]


def _nonce(seq: int) -> bytes:
    return b"\x00\x00\x00\x00" + seq.to_bytes(8, "big")


class ChunkSealer:
    """Gateway side: turns records into chunks, counting positions."""

    def __init__(self, response_key: bytes) -> None:
        self._aead = ChaCha20Poly1305(response_key)
        self._stream_id = stream_id_for(response_key)
        self._seq = 0
        self.finished = False

    @property
    def sealed(self) -> int:
        """How many chunks were sealed so far."""
        return self._seq

    def delta(self, text: str, *, pad_to: int | None = None) -> bytes:
        """The chunks holding a text delta: one, or several if it is too long for one record.

        Each record is padded to the smallest bucket that holds it, or, with ``pad_to`` (a
        shaped stream's record size, between the first and the last bucket), to exactly
        ``pad_to`` bytes; text too long for one such record is split over several of that
        size. An empty ``text`` makes one empty record (a shaped stream's tick without text).
        """
        return self.delta_utf8(text.encode("utf-8"), pad_to=pad_to)

    def reasoning(self, text: str, *, pad_to: int | None = None) -> bytes:
        """The chunks holding a reasoning delta: as ``delta``, in ``REASONING`` records."""
        return self.delta_utf8(text.encode("utf-8"), pad_to=pad_to, kind=RecordType.REASONING)

    def delta_utf8(
        self, data: bytes, *, pad_to: int | None = None, kind: RecordType = RecordType.DELTA
    ) -> bytes:
        """``delta`` for text the caller already holds as UTF-8 (whole characters).

        ``kind`` is ``DELTA`` (the answer) or ``REASONING`` (the model's thinking).
        """
        if kind not in _TEXT_KINDS:
            raise ValueError("text goes in DELTA or REASONING records")
        if pad_to is None:
            pieces = split_utf8(data)
        else:
            _check_record_size(pad_to)
            pieces = split_utf8(data, pad_to - RECORD_OVERHEAD)
        return b"".join(self._chunk(kind, piece, final=False, pad_to=pad_to) for piece in pieces)

    def final(self, record: Final, *, pad_to: int | None = None) -> bytes:
        """The final chunk (done or error); nothing may be sealed after it.

        ``pad_to`` pads the record to at least that size (to the bucket its payload needs,
        if that is larger).
        """
        kind = RecordType.ERROR if record.is_error else RecordType.DONE
        payload = canonical_json(record.payload())
        if pad_to is not None:
            _check_record_size(pad_to)
            pad_to = max(pad_to, record_size_for(len(payload)))
        return self._chunk(kind, payload, final=True, pad_to=pad_to)

    def _chunk(
        self, kind: RecordType, payload: bytes, *, final: bool, pad_to: int | None = None
    ) -> bytes:
        if self.finished:
            raise MalformedMessage("stream already finished")
        flags = FLAG_FINAL if final else 0
        head = _HEAD.pack(self._stream_id, self._seq, flags)
        plaintext = pad(bytes([kind]) + payload, RECORD_BUCKETS, target=pad_to)
        sealed = self._aead.encrypt(_nonce(self._seq), plaintext, RESPONSE_AAD + head)
        self._seq += 1
        self.finished = final
        body = head + sealed
        return _LEN.pack(len(body)) + body


class ChunkOpener:
    """Client side: an incremental parser that checks every chunk and yields records."""

    def __init__(self, response_key: bytes) -> None:
        self._aead = ChaCha20Poly1305(response_key)
        self._stream_id = stream_id_for(response_key)
        self._seq = 0
        self._buffer = bytearray()
        self.finished = False

    def feed(self, data: bytes) -> list[Record]:
        """Consume bytes from the wire; return the records they complete."""
        if self.finished and data:
            raise TrailingData("bytes after the final chunk")
        self._buffer += data
        records: list[Record] = []
        while len(self._buffer) >= _LEN.size:
            (length,) = _LEN.unpack_from(self._buffer)
            if length < MIN_CHUNK or length > MAX_CHUNK:
                raise MalformedMessage("chunk length out of range")
            if len(self._buffer) < _LEN.size + length:
                break
            body = bytes(self._buffer[_LEN.size : _LEN.size + length])
            del self._buffer[: _LEN.size + length]
            records.append(self._open(body))
            if self.finished and self._buffer:
                raise TrailingData("bytes after the final chunk")
        return records

    def close(self) -> None:
        """Call at end of input: raise ``StreamTruncated`` unless the final chunk arrived."""
        if not self.finished:
            raise StreamTruncated("stream ended before its final chunk")

    def _open(self, body: bytes) -> Record:
        stream_id, seq, flags = _HEAD.unpack_from(body)
        if stream_id != self._stream_id:
            raise StreamSpliced("chunk belongs to another response stream")
        if seq != self._seq:
            raise ChunkOutOfOrder("chunk arrived at the wrong position")
        ciphertext = body[_HEAD.size :]
        try:
            plaintext = self._aead.decrypt(
                _nonce(seq), ciphertext, RESPONSE_AAD + body[: _HEAD.size]
            )
        except InvalidTag as exc:
            if self._opens_elsewhere(stream_id, ciphertext):
                raise ChunkOutOfOrder("chunk was sealed for another position") from exc
            raise ChunkTampered("chunk fails authentication") from exc
        self._seq += 1
        record = unpad(plaintext)
        if not record:
            raise MalformedMessage("empty record")
        kind = record[0]
        final = bool(flags & FLAG_FINAL)
        if kind in _TEXT_KINDS and not final:
            try:
                text = record[1:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedMessage("delta is not UTF-8") from exc
            return Delta(text) if kind == RecordType.DELTA else Reasoning(text)
        if kind in (RecordType.DONE, RecordType.ERROR) and final:
            self.finished = True
            result = Final.from_payload(parse_json_object(record[1:]))
            if (kind == RecordType.ERROR) != result.is_error:
                raise MalformedMessage("record type does not match its payload")
            return result
        raise MalformedMessage("record type and final flag disagree")

    def _opens_elsewhere(self, stream_id: bytes, ciphertext: bytes) -> bool:
        """Whether the chunk was sealed for another position within the window, either side.

        Not for its own position under the other flag: a flipped final flag is tampering.
        """
        low = max(0, self._seq - _REORDER_WINDOW)
        for seq in range(low, self._seq + _REORDER_WINDOW + 1):
            if seq == self._seq:
                continue
            for flags in (0, FLAG_FINAL):
                head = _HEAD.pack(stream_id, seq, flags)
                try:
                    self._aead.decrypt(_nonce(seq), ciphertext, RESPONSE_AAD + head)
                except InvalidTag:
                    continue
                return True
        return False
