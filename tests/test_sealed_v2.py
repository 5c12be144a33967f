"""Protocol v2 over bytes: client signatures, control proofs, strict parsing, record limits."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from sealed.auth import (
    CLIENT_KEY_HEADER,
    CLIENT_SIGNATURE_HEADER,
    cancel_proof,
    check_client_signature,
    check_proof,
    client_auth_headers,
    parse_verify_key,
    receipt_proof,
)
from sealed.bundle import KeyBundle, sign_bundle, verify_bundle
from sealed.encoding import (
    MAX_RECORD_PAYLOAD,
    RECORD_BUCKETS,
    b64d,
    b64e,
    canonical_json,
    may_hold_lone_surrogate,
    pad,
    parse_json_object,
    well_formed,
)
from sealed.errors import MalformedMessage, Unauthenticated
from sealed.keyfile import (
    CLIENT_KEY_HEADER as CLIENT_FILE,
)
from sealed.keyfile import (
    OPERATOR_KEY_HEADER,
    KeyFileError,
    read_key_file,
    write_key_file,
)
from sealed.receipt import ReceiptStatus, UsageReceipt, sign_receipt
from sealed.relay import RELAY_RECEIPT_AAD, open_relay_receipt
from sealed.request import REQUEST_INFO, RequestHeader, encode_inner, open_request, parse_inner
from sealed.stream import (
    MAX_CHUNK,
    ChunkOpener,
    ChunkSealer,
    Delta,
    Final,
    Reasoning,
    RecordType,
    split_utf8,
)
from sealed.suites import KeyPair, Suite

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

BODY = b"VEIL\x02\x01" + b"\x00" * 200


def test_client_signature_binds_the_exact_body() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    headers = client_auth_headers(key, BODY)
    verify_key = parse_verify_key(headers[CLIENT_KEY_HEADER])
    check_client_signature(verify_key, headers[CLIENT_SIGNATURE_HEADER], BODY)
    with pytest.raises(Unauthenticated):
        check_client_signature(verify_key, headers[CLIENT_SIGNATURE_HEADER], BODY + b"\x00")
    with pytest.raises(Unauthenticated):
        other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        check_client_signature(other, headers[CLIENT_SIGNATURE_HEADER], BODY)
    for bad in (None, "", "!!", b64e(b"\x00" * 63)):
        with pytest.raises(Unauthenticated):
            check_client_signature(verify_key, bad, BODY)


@pytest.mark.parametrize("text", ["", "AAAA", b64e(b"\x01" * 31), "not base64!"])
def test_malformed_verify_keys_are_refused(text: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_verify_key(text)


def test_proofs_differ_by_purpose_and_request_and_check_in_constant_form() -> None:
    response_key, request_id = b"\x05" * 32, b"\x06" * 16
    cancel = cancel_proof(response_key, request_id)
    fetch = receipt_proof(response_key, request_id)
    assert len({cancel, fetch, cancel_proof(response_key, b"\x07" * 16)}) == 3
    assert cancel != cancel_proof(b"\x08" * 32, request_id)
    check_proof(cancel, b64e(cancel))
    for given in (b64e(fetch), None, "", "%%", b64e(cancel[:-1])):
        with pytest.raises(Unauthenticated):
            check_proof(cancel, given)


def test_key_files_are_private_typed_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "client.key"
    key = write_key_file(path, CLIENT_FILE)
    assert read_key_file(path, CLIENT_FILE).private_bytes_raw() == key.private_bytes_raw()
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_file(path, CLIENT_FILE)
    with pytest.raises(KeyFileError, match="not a"):
        read_key_file(path, OPERATOR_KEY_HEADER)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="0600"):
        read_key_file(path, CLIENT_FILE)


# -- strict parsing ---------------------------------------------------------------------------


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(MalformedMessage):
        parse_json_object(b'{"a":' + deep + b"}")


@pytest.mark.parametrize(
    "body",
    [
        rb'{"q":"\ud83d!","\udc00":["\uD800"]}',  # escaped halves (JSON allows them)
        b'{"q":"\xed\xa0\xbd!","\xed\xb0\x80":["\xed\xa0\x80"]}',  # encoded (json.loads takes them)
    ],
    ids=["escaped", "encoded"],
)
def test_a_lone_surrogate_is_read_as_a_replacement_character(body: bytes) -> None:
    # Sent on as it was, it reached the model server, whose tokenizer cannot take it.
    value = parse_json_object(body)
    assert value == {"q": "\ufffd!", "\ufffd": ["\ufffd"]}
    assert json.dumps(value, ensure_ascii=False).encode()  # UTF-8 takes it now
    utf16 = body.decode("utf-8", "surrogatepass").encode("utf-16-le", "surrogatepass")
    assert parse_json_object(utf16) == value  # json.loads reads UTF-16 too


def test_a_lone_surrogate_nested_deep_is_malformed_not_a_crash() -> None:
    body = b'{"a":' + b"[" * 600 + b'"\\ud800"' + b"]" * 600 + b"}"
    assert json.loads(body)  # within json.loads' depth, past the walk's
    with pytest.raises(MalformedMessage):
        parse_json_object(body)


def test_escaped_pairs_alone_are_not_a_reason_to_walk_the_request() -> None:
    # Canonical JSON escapes every emoji as a pair, and any pair made the whole parsed request
    # be walked again (~5x json.loads on a large body of chat history).
    emoji = canonical_json({"messages": [{"content": "hi 😀🌍 there"}] * 3})
    assert rb"\ud83d\ude00" in emoji
    assert not may_hold_lone_surrogate(emoji)
    assert not may_hold_lone_surrogate(canonical_json({"q": "a\\b \\\\ \n 😀"}))


# Pieces of JSON string bodies around surrogate escapes: escaped backslashes beside them, pairs,
# halves in every order, upper and lower case, a low half's look-alike after a backslash.
_PIECES = (
    "a",
    "\\\\",
    "\\n",
    "\\ud83d",
    "\\uD83D",
    "\\ude00",
    "\\uDE00",
    "\\udbff",
    "\\udc00",
    "\\u0041",
    "ud83d",
    "udc00",
    "\\u00e9",
)


def test_the_walk_is_skipped_only_where_json_loads_left_no_lone_surrogate() -> None:
    chooser = random.Random(15)  # noqa: S311 -- a repeatable test, not a secret
    for _ in range(20_000):
        body = "".join(chooser.choice(_PIECES) for _ in range(chooser.randint(1, 7)))
        data = b'{"q":"' + body.encode() + b'"}'
        value = json.loads(data)
        if not may_hold_lone_surrogate(data):
            assert well_formed(value) == value, data
        assert parse_json_object(data) == well_formed(value), data
        assert json.dumps(parse_json_object(data), ensure_ascii=False).encode()


def inner(**change: object) -> bytes:
    value = json.loads(
        encode_inner(
            {"model": "m", "messages": []},
            request_id=b"\x01" * 16,
            response_key=b"\x02" * 32,
            timestamp=1_800_000_000,
        )[4:].rstrip(b"\x00")
    )
    value.update(change)
    return json.dumps(value).encode()


def test_inner_request_fields_are_checked_strictly() -> None:
    assert parse_inner(inner()).timestamp == 1_800_000_000
    changes: tuple[dict[str, object], ...] = (
        {"v": 1},
        {"v": 3},
        {"ts": 2**64},
        {"ts": -5},
        {"ts": 1.5},
        {"ts": True},
        {"request_id": "01" * 15},
        {"request_id": 7},
        {"response_key": b64e(b"\x02" * 31)},
        {"chat": []},
        {"extra": 1},
    )
    for change in changes:
        with pytest.raises(MalformedMessage):
            parse_inner(inner(**change))


def test_version_1_requests_are_refused_before_any_hpke() -> None:
    with pytest.raises(MalformedMessage, match="version"):
        RequestHeader.parse(b"VEIL\x01\x01" + b"\x00" * 8)


def test_inner_v_is_checked_after_opening() -> None:
    keypair = KeyPair.generate(Suite.X25519)
    header = RequestHeader(2, Suite.X25519, keypair.key_id).to_bytes()
    plaintext = pad(inner(v=1), (1024,))
    public = KeyBundle(
        Suite.X25519, keypair.public_bytes, keypair.key_id, 0, 1, (), b""
    ).encryption_key()
    sealed = header + Suite.X25519.hpke().encrypt(plaintext, public, info=REQUEST_INFO + header)
    with pytest.raises(MalformedMessage, match="version"):
        open_request(sealed, keypair)


def test_bundle_with_unknown_field_is_refused_even_when_signed() -> None:
    operator = ed25519.Ed25519PrivateKey.generate()
    keypair = KeyPair.generate(Suite.X25519)
    bundle = KeyBundle(
        Suite.X25519, keypair.public_bytes, keypair.key_id, 0, 2**40, ("m",), b"\x00" * 32
    )
    signed = sign_bundle(bundle, operator)
    body = canonical_json({**bundle.to_json(), "surprise": True})
    wire = {
        "bundle": b64e(body),
        "signature": b64e(operator.sign(b"veil/bundle/v2\x00" + body)),
        "operator_key": signed.to_wire()["operator_key"],
    }
    pinned = {operator.public_key().public_bytes_raw()}
    assert verify_bundle(signed.to_wire(), pinned, now=100).bundle == bundle
    with pytest.raises(MalformedMessage):
        verify_bundle(wire, pinned, now=100)


# -- records ----------------------------------------------------------------------------------


def test_a_70_kb_delta_is_split_into_records_within_the_spec() -> None:
    key = b"\x11" * 32
    text = ("ж" * 20_000) + ("🌍" * 7_000) + "end"  # 2- and 4-byte characters across cuts
    wire = ChunkSealer(key).delta(text)
    opener = ChunkOpener(key)
    records = opener.feed(wire)
    assert len(records) > 1
    assert "".join(r.text for r in records if isinstance(r, Delta)) == text
    offset = 0
    while offset < len(wire):
        length = int.from_bytes(wire[offset : offset + 4], "big")
        assert length <= MAX_CHUNK
        offset += 4 + length


def test_reasoning_records_open_apart_from_deltas_and_split_like_them() -> None:
    key = b"\x11" * 32
    thought = "ж" * 40_000  # 80 kB: more than one record
    sealer = ChunkSealer(key)
    wire = sealer.reasoning(thought) + sealer.delta("answer")
    records = ChunkOpener(key).feed(wire)
    assert len(records) == 3
    assert "".join(r.text for r in records if isinstance(r, Reasoning)) == thought
    assert [r for r in records if isinstance(r, Delta)] == [Delta("answer")]


def test_a_reasoning_record_flagged_final_is_malformed() -> None:
    sealer = ChunkSealer(b"\x11" * 32)
    chunk = sealer._chunk(RecordType.REASONING, b"thinking", final=True)
    with pytest.raises(MalformedMessage):
        ChunkOpener(b"\x11" * 32).feed(chunk)


def test_text_is_sealed_only_as_delta_or_reasoning() -> None:
    with pytest.raises(ValueError, match="DELTA or REASONING"):
        ChunkSealer(b"\x11" * 32).delta_utf8(b"x", kind=RecordType.DONE)


def test_split_utf8_never_cuts_a_character() -> None:
    data = ("a" * (MAX_RECORD_PAYLOAD - 1) + "€" * 10).encode()
    pieces = split_utf8(data)
    assert b"".join(pieces) == data
    assert all(len(p) <= MAX_RECORD_PAYLOAD for p in pieces)
    for piece in pieces:
        piece.decode("utf-8")


def final_chunk(payload: bytes) -> bytes:
    """A final DONE chunk whose payload is ``payload`` (sealed correctly, content hostile)."""
    sealer = ChunkSealer(b"\x11" * 32)
    return sealer._chunk(RecordType.DONE, payload, final=True)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"finish_reason":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"finish_reason":"stop","receipt":"' + b"A" * 5000 + b'","signature":"x"}',
        b'{"error":{"kind":"backend","status":' + b"9" * 5000 + b',"message":"x"}}',
        b'{"error":{"kind":"backend","status":700,"message":"x"}}',
        b'{"error":{"kind":"backend","status":500,"message":7}}',
        b'{"finish_reason":12}',
        b'{"error":"boom"}',
    ],
    ids=[
        "deep",
        "long-receipt",
        "huge-int",
        "status-range",
        "message-type",
        "reason-type",
        "error-type",
    ],
)
def test_hostile_final_payloads_are_malformed(payload: bytes) -> None:
    opener = ChunkOpener(b"\x11" * 32)
    with pytest.raises(MalformedMessage):
        opener.feed(final_chunk(payload))


@pytest.mark.parametrize("extra", [{"extra": 1}, {"finish_reason": "stop"}])
def test_a_relay_receipt_with_fields_beyond_receipt_and_signature_is_malformed(
    extra: dict[str, object],
) -> None:
    """A relay receipt holds exactly ``{"receipt", "signature"}`` (protocol.md §4)."""
    signer = ed25519.Ed25519PrivateKey.generate()
    receipt = UsageReceipt(b"\x07" * 16, "m", 5, 1, ReceiptStatus.COMPLETE, estimated=False)
    wire = sign_receipt(receipt, signer).to_wire()
    relay_key, digest = b"\x22" * 32, b"\x33" * 32

    def sealed(value: Mapping[str, object]) -> bytes:
        plaintext = pad(canonical_json(value), RECORD_BUCKETS, target=1024)
        return ChaCha20Poly1305(relay_key).encrypt(bytes(12), plaintext, RELAY_RECEIPT_AAD + digest)

    assert open_relay_receipt(relay_key, digest, sealed(wire)).receipt == receipt
    with pytest.raises(MalformedMessage):
        open_relay_receipt(relay_key, digest, sealed({**wire, **extra}))


def test_final_record_round_trips_a_stopped_receipt() -> None:
    key = b"\x11" * 32
    signer = ed25519.Ed25519PrivateKey.generate()
    receipt = UsageReceipt(b"\x07" * 16, "m", 5, 1, ReceiptStatus.STOPPED, estimated=True)
    final = Final(sign_receipt(receipt, signer), finish_reason="stopped")
    (record,) = ChunkOpener(key).feed(ChunkSealer(key).final(final))
    assert record == final
    assert isinstance(record, Final)
    assert record.receipt is not None
    assert not record.receipt.receipt.complete
    assert b64d(final.payload()["receipt"]) == record.receipt.body


def test_error_messages_are_cut_to_the_spec() -> None:
    key = b"\x11" * 32
    final = Final(None, error_kind="backend", error_status=500, error_message="x" * 100_000)
    chunk = ChunkSealer(key).final(final)
    assert len(chunk) == 4 + 13 + RECORD_BUCKETS[3] + 16  # far below the last bucket
    (record,) = ChunkOpener(key).feed(chunk)
    assert isinstance(record, Final)
    assert record.error_message == "x" * 1024
