r"""The sealed response stream: length-prefixed AEAD chunks under the request's response key.

One chunk on the wire::

    length (uint32, bytes that follow) | stream id (8) | seq (uint32) | flags (1) | ciphertext

- ``stream id`` = SHA-256(b"veil/stream-id/v1" || response key)[:8]; the client knows it in
  advance, so a chunk from another response is recognised (splicing).
- ChaCha20-Poly1305 under the response key; nonce = 4 zero bytes || seq as uint64 big-endian;
  AAD = b"veil/response/v1\\x00" || stream id || seq || flags. Flags bit 0 marks the final chunk.
- The plaintext is a record, ``pad(type byte || payload, RECORD_BUCKETS)``: type 1 is a text
  delta (UTF-8), type 2 the final "done" record and type 3 a final "error" record (JSON, with
  the signed usage receipt). A final record must come in a chunk flagged final, and nothing may
  follow it.
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
    RECORD_BUCKETS,
    b64d,
    b64e,
    canonical_json,
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
from sealed.receipt import UsageReceipt

RESPONSE_AAD = b"veil/response/v1\x00"
STREAM_ID_CONTEXT = b"veil/stream-id/v1"
FLAG_FINAL = 0x01
_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">8sIB")
_TAG = 16
MAX_CHUNK = _HEAD.size + RECORD_BUCKETS[-1] + _TAG
# How far from the expected position a failing chunk is tried, to tell reordering from tampering.
_REORDER_WINDOW = 16


class RecordType(enum.IntEnum):
    """What a chunk's record holds."""

    DELTA = 1
    DONE = 2
    ERROR = 3


@dataclass(frozen=True)
class Delta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class Final:
    """The last record: how the stream ended and the signed usage receipt."""

    receipt: UsageReceipt | None
    signature: bytes | None
    finish_reason: str | None = None
    error_kind: str | None = None
    error_status: int | None = None
    error_message: str | None = None

    @property
    def is_error(self) -> bool:
        """True when the stream ended in an error record."""
        return self.error_kind is not None

    def payload(self) -> dict[str, Any]:
        """The JSON payload of the final record."""
        body: dict[str, Any] = {}
        if self.receipt is not None and self.signature is not None:
            body["receipt"] = self.receipt.to_json()
            body["signature"] = b64e(self.signature)
        if self.is_error:
            body["error"] = {
                "kind": self.error_kind,
                "status": self.error_status,
                "message": self.error_message,
            }
        else:
            body["finish_reason"] = self.finish_reason
        return body

    @classmethod
    def from_payload(cls, body: dict[str, Any]) -> Final:
        """Parse a final record's JSON payload."""
        receipt = None
        signature = None
        if "receipt" in body:
            receipt = UsageReceipt.from_json(body["receipt"])
            signature = b64d(str(body.get("signature", "")))
        error = body.get("error")
        if error is None:
            return cls(receipt, signature, finish_reason=_opt_str(body.get("finish_reason")))
        if not isinstance(error, dict):
            raise MalformedMessage("bad error record")
        status = error.get("status")
        return cls(
            receipt,
            signature,
            error_kind=str(error.get("kind") or "backend"),
            error_status=status if isinstance(status, int) else None,
            error_message=_opt_str(error.get("message")),
        )


Record = Delta | Final


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


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

    def delta(self, text: str) -> bytes:
        """A chunk holding a text delta."""
        return self._chunk(RecordType.DELTA, text.encode("utf-8"), final=False)

    def final(self, record: Final) -> bytes:
        """The final chunk (done or error); nothing may be sealed after it."""
        kind = RecordType.ERROR if record.is_error else RecordType.DONE
        return self._chunk(kind, canonical_json(record.payload()), final=True)

    def _chunk(self, kind: RecordType, payload: bytes, *, final: bool) -> bytes:
        if self.finished:
            raise MalformedMessage("stream already finished")
        flags = FLAG_FINAL if final else 0
        head = _HEAD.pack(self._stream_id, self._seq, flags)
        plaintext = pad(bytes([kind]) + payload, RECORD_BUCKETS)
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
            if length < _HEAD.size + _TAG or length > MAX_CHUNK:
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
        if kind == RecordType.DELTA and not final:
            try:
                return Delta(record[1:].decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise MalformedMessage("delta is not UTF-8") from exc
        if kind in (RecordType.DONE, RecordType.ERROR) and final:
            self.finished = True
            result = Final.from_payload(parse_json_object(record[1:]))
            if (kind == RecordType.ERROR) != result.is_error:
                raise MalformedMessage("record type does not match its payload")
            return result
        raise MalformedMessage("record type and final flag disagree")

    def _opens_elsewhere(self, stream_id: bytes, ciphertext: bytes) -> bool:
        low = max(0, self._seq - _REORDER_WINDOW)
        for seq in range(low, self._seq + _REORDER_WINDOW):
            for flags in (0, FLAG_FINAL):
                head = _HEAD.pack(stream_id, seq, flags)
                try:
                    self._aead.decrypt(_nonce(seq), ciphertext, RESPONSE_AAD + head)
                except InvalidTag:
                    continue
                return True
        return False
