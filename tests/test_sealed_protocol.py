"""The sealed protocol over bytes: bundles, requests, chunk streams, receipts."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from sealed.bundle import BUNDLE_CONTEXT, MAX_WINDOW, KeyBundle, sign_bundle, verify_bundle
from sealed.encoding import REQUEST_BUCKETS, b64d, b64e, canonical_json, pad, unpad
from sealed.errors import (
    BundleBadSignature,
    BundleExpired,
    BundleKeyMismatch,
    BundleUnpinned,
    BundleUnsigned,
    ChunkOutOfOrder,
    ChunkTampered,
    MalformedMessage,
    OpenFailed,
    ReceiptInvalid,
    StreamSpliced,
    StreamTruncated,
    TrailingData,
)
from sealed.receipt import ReceiptStatus, SignedReceipt, UsageReceipt, sign_receipt
from sealed.request import HEADER_SIZE, open_request, seal_request
from sealed.stream import (
    MAX_RETRY_AFTER,
    ChunkOpener,
    ChunkSealer,
    Delta,
    Final,
    Record,
    accepts_retry_after,
)
from sealed.suites import KeyPair, Suite, key_id_for

NOW = 1_800_000_000
CHAT = {"model": "veil-test", "messages": [{"role": "user", "content": "Привет, мир 🌍"}]}


def make_bundle(
    keypair: KeyPair, *, not_before: int = NOW - 10, not_after: int = NOW + 3600
) -> KeyBundle:
    return KeyBundle(
        suite=keypair.suite,
        public_key=keypair.public_bytes,
        key_id=keypair.key_id,
        not_before=not_before,
        not_after=not_after,
        models=("veil-test",),
        receipt_key=ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
    )


@pytest.fixture
def operator() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(params=list(Suite), ids=lambda s: s.name)
def keypair(request: pytest.FixtureRequest) -> KeyPair:
    suite: Suite = request.param
    return KeyPair.generate(suite)


def pinned(operator: ed25519.Ed25519PrivateKey) -> set[bytes]:
    return {operator.public_key().public_bytes_raw()}


# -- bundles -----------------------------------------------------------------------------------


def test_bundle_verifies_byte_for_byte(
    operator: ed25519.Ed25519PrivateKey, keypair: KeyPair
) -> None:
    signed = sign_bundle(make_bundle(keypair), operator)
    verified = verify_bundle(signed.to_wire(), pinned(operator), now=NOW)
    assert verified.bundle == signed.bundle
    assert verified.body == signed.body
    assert sign_bundle(make_bundle(keypair), operator).signature != b""


def test_bundle_without_signature_is_refused(operator: ed25519.Ed25519PrivateKey) -> None:
    wire = sign_bundle(make_bundle(KeyPair.generate(Suite.X25519)), operator).to_wire()
    del wire["signature"]
    with pytest.raises(BundleUnsigned):
        verify_bundle(wire, pinned(operator), now=NOW)


def test_bundle_signed_by_unknown_operator_is_refused(operator: ed25519.Ed25519PrivateKey) -> None:
    stranger = ed25519.Ed25519PrivateKey.generate()
    wire = sign_bundle(make_bundle(KeyPair.generate(Suite.X25519)), stranger).to_wire()
    with pytest.raises(BundleUnpinned):
        verify_bundle(wire, pinned(operator), now=NOW)


def test_bundle_with_altered_body_is_refused(operator: ed25519.Ed25519PrivateKey) -> None:
    wire = sign_bundle(make_bundle(KeyPair.generate(Suite.X25519)), operator).to_wire()
    body = b64d(wire["bundle"]).replace(b'"veil-test"', b'"veil-evil"')
    wire["bundle"] = b64e(body)
    with pytest.raises(BundleBadSignature):
        verify_bundle(wire, pinned(operator), now=NOW)


def test_bundle_signature_from_pinned_key_over_other_key_is_refused(
    operator: ed25519.Ed25519PrivateKey,
) -> None:
    wire = sign_bundle(make_bundle(KeyPair.generate(Suite.X25519)), operator).to_wire()
    wire["operator_key"] = b64e(
        ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    )
    with pytest.raises(BundleUnpinned):
        verify_bundle(wire, pinned(operator), now=NOW)


def test_expired_and_future_bundles_are_refused(operator: ed25519.Ed25519PrivateKey) -> None:
    keypair = KeyPair.generate(Suite.X25519)
    expired = sign_bundle(make_bundle(keypair, not_after=NOW - 300), operator).to_wire()
    future = sign_bundle(make_bundle(keypair, not_before=NOW + 300), operator).to_wire()
    for wire in (expired, future):
        with pytest.raises(BundleExpired):
            verify_bundle(wire, pinned(operator), now=NOW)


def test_bundle_for_another_key_is_refused(operator: ed25519.Ed25519PrivateKey) -> None:
    keypair = KeyPair.generate(Suite.X25519)
    other = KeyPair.generate(Suite.X25519)
    bundle = make_bundle(keypair)
    lying = KeyBundle(**{**bundle.__dict__, "key_id": other.key_id})
    with pytest.raises(BundleKeyMismatch):
        verify_bundle(sign_bundle(lying, operator).to_wire(), pinned(operator), now=NOW)


# -- requests ----------------------------------------------------------------------------------


def _signed_body(body: dict[str, object], operator: ed25519.Ed25519PrivateKey) -> dict[str, str]:
    """The wire form of ``body`` exactly as given, signed by ``operator``."""
    raw = canonical_json(body)
    return {
        "bundle": b64e(raw),
        "signature": b64e(operator.sign(BUNDLE_CONTEXT + raw)),
        "operator_key": b64e(operator.public_key().public_bytes_raw()),
    }


def test_bundle_windows_are_signed_and_read_back(operator: ed25519.Ed25519PrivateKey) -> None:
    keypair = KeyPair.generate(Suite.X25519)
    bundle = replace(
        make_bundle(keypair), models=("veil-test", "other"), windows={"veil-test": 2048}
    )
    signed = sign_bundle(bundle, operator)
    assert b'"windows":{"veil-test":2048}' in signed.body
    verified = verify_bundle(signed.to_wire(), pinned(operator), now=NOW).bundle
    assert verified.window("veil-test") == 2048
    assert verified.window("other") is None
    # A bundle stating no windows has no such field at all: its bytes are the old ones.
    plain = sign_bundle(make_bundle(keypair), operator)
    assert b"windows" not in plain.body


def test_an_old_bundle_without_windows_still_verifies(operator: ed25519.Ed25519PrivateKey) -> None:
    keypair = KeyPair.generate(Suite.X25519)
    body = make_bundle(keypair).to_json()
    assert "windows" not in body
    old = verify_bundle(_signed_body(body, operator), pinned(operator), now=NOW).bundle
    assert old.windows == {}
    assert old.window("veil-test") is None


@pytest.mark.parametrize(
    "windows",
    [
        {"veil-test": 0},
        {"veil-test": -1},
        {"veil-test": MAX_WINDOW + 1},
        {"veil-test": True},
        {"veil-test": 2048.0},
        {"veil-test": "2048"},
        {"unlisted": 2048},
        [["veil-test", 2048]],
        2048,
    ],
)
def test_bundle_windows_out_of_spec_are_malformed(
    operator: ed25519.Ed25519PrivateKey, windows: object
) -> None:
    body = {**make_bundle(KeyPair.generate(Suite.X25519)).to_json(), "windows": windows}
    with pytest.raises(MalformedMessage):
        verify_bundle(_signed_body(body, operator), pinned(operator), now=NOW)


@pytest.mark.parametrize("attestation", [None, 7, ["quote"]])
def test_a_bundle_attestation_that_is_not_a_string_is_malformed(
    operator: ed25519.Ed25519PrivateKey, attestation: object
) -> None:
    """``attestation`` is an optional string: present as null is a wrong type, not absent."""
    body = {**make_bundle(KeyPair.generate(Suite.X25519)).to_json(), "attestation": attestation}
    with pytest.raises(MalformedMessage):
        verify_bundle(_signed_body(body, operator), pinned(operator), now=NOW)


def test_the_largest_window_is_accepted(operator: ed25519.Ed25519PrivateKey) -> None:
    body = {**make_bundle(KeyPair.generate(Suite.X25519)).to_json(), "windows": {"veil-test": 1}}
    assert verify_bundle(_signed_body(body, operator), pinned(operator), now=NOW).bundle.windows
    body["windows"] = {"veil-test": MAX_WINDOW}
    bundle = verify_bundle(_signed_body(body, operator), pinned(operator), now=NOW).bundle
    assert bundle.window("veil-test") == MAX_WINDOW


def test_request_round_trip(keypair: KeyPair) -> None:
    request_id, response_key = b"\x01" * 16, b"\x02" * 32
    sealed = seal_request(
        make_bundle(keypair), CHAT, request_id=request_id, response_key=response_key, timestamp=NOW
    )
    assert sealed[:4] == b"VEIL"
    assert sealed[5] == keypair.suite.value
    assert sealed[6:HEADER_SIZE] == keypair.key_id
    opened = open_request(sealed, keypair)
    assert (opened.request_id, opened.response_key, opened.timestamp) == (
        request_id,
        response_key,
        NOW,
    )
    assert opened.chat == CHAT
    assert "Привет".encode() not in sealed


def test_request_lengths_fall_in_buckets() -> None:
    keypair = KeyPair.generate(Suite.X25519)
    overhead = HEADER_SIZE + 32 + 16
    sizes = set()
    for length in (1, 10, 100, 500, 800):
        chat = {"model": "m", "messages": [{"role": "user", "content": "x" * length}]}
        sealed = seal_request(
            make_bundle(keypair),
            chat,
            request_id=b"\0" * 16,
            response_key=b"\0" * 32,
            timestamp=NOW,
        )
        sizes.add(len(sealed) - overhead)
    assert sizes == {REQUEST_BUCKETS[0]}


@pytest.mark.parametrize("position", [0, 6, HEADER_SIZE + 3, -20, -1])
def test_any_flipped_request_byte_is_refused(position: int) -> None:
    keypair = KeyPair.generate(Suite.X25519)
    sealed = bytearray(
        seal_request(
            make_bundle(keypair),
            CHAT,
            request_id=b"\0" * 16,
            response_key=b"\0" * 32,
            timestamp=NOW,
        )
    )
    sealed[position] ^= 0x01
    with pytest.raises((OpenFailed, MalformedMessage)):
        open_request(bytes(sealed), keypair)


def test_request_for_another_key_is_refused() -> None:
    keypair, other = KeyPair.generate(Suite.X25519), KeyPair.generate(Suite.X25519)
    sealed = seal_request(
        make_bundle(keypair), CHAT, request_id=b"\0" * 16, response_key=b"\0" * 32, timestamp=NOW
    )
    with pytest.raises(OpenFailed):
        open_request(sealed, other)


@pytest.mark.parametrize("text", ["+_8", "-/8", "+/8=", "-_8 ", "-_8\n", "-_=8", "=", "A"])
def test_base64url_outside_its_alphabet_is_malformed(text: str) -> None:
    """b64url is RFC 4648 §5's alphabet (protocol.md, notation), as the Mini App reads it.

    ``-_8`` and ``+/8`` are the same bytes in two alphabets; a reader that took both would
    read keys and proofs a strict reader (the Mini App's, a third party's) refuses.
    """
    assert b64d("-_8") == b64d("-_8=") == bytes([0xFB, 0xFF])
    with pytest.raises(MalformedMessage):
        b64d(text)


def test_padding_round_trip_and_rejects_bad_padding() -> None:
    padded = pad(b"hello", REQUEST_BUCKETS)
    assert len(padded) == 1024
    assert unpad(padded) == b"hello"
    with pytest.raises(MalformedMessage):
        unpad(padded[:-1] + b"\x01")
    with pytest.raises(MalformedMessage):
        unpad(struct.pack(">I", 5000) + b"x")


# -- response stream ---------------------------------------------------------------------------


def receipt_for(request_id: bytes) -> UsageReceipt:
    return UsageReceipt(request_id, "veil-test", 12, 3, ReceiptStatus.COMPLETE)


def sealed_stream(key: bytes, texts: list[str]) -> list[bytes]:
    sealer = ChunkSealer(key)
    signer = ed25519.Ed25519PrivateKey.generate()
    receipt = receipt_for(b"\x07" * 16)
    chunks = [sealer.delta(t) for t in texts]
    chunks.append(sealer.final(Final(sign_receipt(receipt, signer), finish_reason="stop")))
    return chunks


def open_all(key: bytes, data: bytes, *, step: int = 7) -> list[Record]:
    opener = ChunkOpener(key)
    records: list[Record] = []
    for i in range(0, len(data), step):
        records.extend(opener.feed(data[i : i + step]))
    opener.close()
    return records


def test_stream_round_trip_fed_in_small_pieces() -> None:
    key = b"\x11" * 32
    texts = ["Hello", ", ", "мир", " 🌍", "!" * 5000]
    records = open_all(key, b"".join(sealed_stream(key, texts)))
    assert [r.text for r in records if isinstance(r, Delta)] == texts
    final = records[-1]
    assert isinstance(final, Final)
    assert final.finish_reason == "stop"
    assert final.receipt is not None
    assert final.receipt.receipt.completion_tokens == 3


def test_small_deltas_have_equal_length_on_the_wire() -> None:
    sealer = ChunkSealer(b"\x11" * 32)
    assert len({len(sealer.delta(t)) for t in ("a", "hello", "длинное слово")}) == 1


def test_flipped_response_byte_is_tampering() -> None:
    key = b"\x11" * 32
    chunks = sealed_stream(key, ["one", "two"])
    damaged = bytearray(chunks[1])
    damaged[-3] ^= 0x40
    with pytest.raises(ChunkTampered):
        open_all(key, chunks[0] + bytes(damaged) + chunks[2])


def test_reordered_chunks_are_detected() -> None:
    key = b"\x11" * 32
    chunks = sealed_stream(key, ["one", "two", "three"])
    with pytest.raises(ChunkOutOfOrder):
        open_all(key, chunks[1] + chunks[0] + b"".join(chunks[2:]))


def test_chunk_with_rewritten_position_is_reordering_not_tampering() -> None:
    key = b"\x11" * 32
    chunks = sealed_stream(key, ["one", "two"])
    moved = bytearray(chunks[1])
    moved[4 + 8 : 4 + 12] = (0).to_bytes(4, "big")  # claim position 0
    with pytest.raises(ChunkOutOfOrder):
        open_all(key, bytes(moved))


def test_flipped_final_flag_is_tampering_not_reordering() -> None:
    # protocol.md §4, step 4: a chunk that opens under *another* seq is out of order. A delta
    # whose final flag a middleman set (to cut the answer short) opens under its own seq with
    # the other flag: that is tampering, and was reported as reordering.
    key = b"\x11" * 32
    chunks = sealed_stream(key, ["one", "two"])
    flagged = bytearray(chunks[0])
    flagged[4 + 12] ^= 0x01
    with pytest.raises(ChunkTampered):
        open_all(key, bytes(flagged))
    cleared = bytearray(chunks[2])  # the final chunk presented as not final
    cleared[4 + 12] ^= 0x01
    with pytest.raises(ChunkTampered):
        open_all(key, chunks[0] + chunks[1] + bytes(cleared))


def test_chunk_moved_by_sixteen_is_reordering() -> None:
    # "within 16 of the expected one" (protocol.md §4, step 4) holds on both sides: a chunk
    # sealed sixteen positions later, its header rewritten, was reported as tampering, while
    # one sixteen positions earlier was reordering.
    key = b"\x11" * 32
    chunks = sealed_stream(key, [str(i) for i in range(17)])
    moved = bytearray(chunks[16])
    moved[4 + 8 : 4 + 12] = (0).to_bytes(4, "big")  # claim position 0
    with pytest.raises(ChunkOutOfOrder):
        open_all(key, bytes(moved))
    back = bytearray(chunks[0])
    back[4 + 8 : 4 + 12] = (16).to_bytes(4, "big")  # claim position 16
    with pytest.raises(ChunkOutOfOrder):
        open_all(key, b"".join(chunks[:16]) + bytes(back))
    far = bytearray(chunks[17])  # the final chunk, seventeen positions on: tampering
    far[4 + 8 : 4 + 12] = (0).to_bytes(4, "big")
    with pytest.raises(ChunkTampered):
        open_all(key, bytes(far))


def test_duplicated_chunk_is_detected() -> None:
    key = b"\x11" * 32
    chunks = sealed_stream(key, ["one", "two"])
    with pytest.raises(ChunkOutOfOrder):
        open_all(key, chunks[0] + chunks[0])


def test_dropped_final_chunk_is_truncation() -> None:
    key = b"\x11" * 32
    chunks = sealed_stream(key, ["one", "two"])
    with pytest.raises(StreamTruncated):
        open_all(key, b"".join(chunks[:-1]))


def test_chunk_from_another_stream_is_splicing() -> None:
    key, other = b"\x11" * 32, b"\x22" * 32
    mine, theirs = sealed_stream(key, ["one", "two"]), sealed_stream(other, ["uno", "dos"])
    with pytest.raises(StreamSpliced):
        open_all(key, mine[0] + theirs[1] + mine[2])


def test_bytes_after_final_chunk_are_refused() -> None:
    key = b"\x11" * 32
    chunks = sealed_stream(key, ["one"])
    with pytest.raises(TrailingData):
        open_all(key, b"".join(chunks) + chunks[0], step=10_000)


def test_sealer_refuses_to_continue_after_final() -> None:
    sealer = ChunkSealer(b"\x11" * 32)
    sealer.final(Final(None, finish_reason="stop"))
    with pytest.raises(MalformedMessage):
        sealer.delta("late")


def test_error_record_round_trip() -> None:
    key = b"\x11" * 32
    sealer = ChunkSealer(key)
    final = Final(None, error_kind="context_length", error_status=400, error_message="too long")
    (record,) = open_all(key, sealer.final(final))
    assert record == final
    assert isinstance(record, Final)
    assert record.is_error


_ERROR = {"kind": "backend", "status": 500, "message": "model crashed"}


@pytest.mark.parametrize(
    "payload",
    [
        {"finish_reason": "stop", "extra": 1},
        {"finish_reason": "stop", "error": None},
        {"error": None},
        {"error": _ERROR, "extra": 1},
        {"error": {**_ERROR, "extra": 1}},
        {"error": {"kind": "backend", "message": "model crashed"}},
        {"error": {"kind": "backend", "status": 500}},
        {"finish_reason": "stop", "signature": "c2ln"},
        {"error": {**_ERROR, "retry_after": None}},
        {"error": {**_ERROR, "retry_after": -1}},
        {"error": {**_ERROR, "retry_after": MAX_RETRY_AFTER + 1}},
        {"error": {**_ERROR, "retry_after": "7"}},
        {"error": {**_ERROR, "retry_after": True}},
        {"error": {"kind": "backend", "status": 500, "retry_after": 7}},
    ],
    ids=[
        "done-unknown-field",
        "done-null-error",
        "null-error",
        "error-unknown-field",
        "error-object-unknown-field",
        "error-without-status",
        "error-without-message",
        "signature-without-receipt",
        "retry-after-null",
        "retry-after-negative",
        "retry-after-past-the-most",
        "retry-after-a-string",
        "retry-after-a-boolean",
        "retry-after-instead-of-message",
    ],
)
def test_final_payloads_out_of_spec_are_malformed(payload: dict[str, object]) -> None:
    """A final record's payload has exactly its fields (protocol.md §4), like bundles."""
    with pytest.raises(MalformedMessage):
        Final.from_payload(payload)


def test_final_payloads_in_spec_are_read() -> None:
    assert Final.from_payload({"finish_reason": "stop"}).finish_reason == "stop"
    final = Final.from_payload({"error": {**_ERROR, "status": None, "kind": "novel"}})
    assert (final.error_kind, final.error_status) == ("backend", None)
    assert final.error_retry_after is None
    for wait in (0, 7, MAX_RETRY_AFTER):
        payload = {"error": {**_ERROR, "kind": "unavailable", "retry_after": wait}}
        final = Final.from_payload(payload)
        assert final.error_retry_after == wait
        assert final.payload() == payload  # written back as read


def test_only_a_client_that_asks_reads_retry_after() -> None:
    assert accepts_retry_after("retry_after")
    assert accepts_retry_after("something-else, Retry_After ,")
    assert not accepts_retry_after(None)
    assert not accepts_retry_after("retry_after_v2, retry-after")


# -- receipts ----------------------------------------------------------------------------------


def test_receipt_signature_binds_every_byte_request_and_model() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    request_id = b"\x07" * 16
    signed = sign_receipt(receipt_for(request_id), key)
    signed.verify(key.public_key(), request_id=request_id, model="veil-test")
    assert SignedReceipt.from_wire(signed.to_wire()) == signed
    for position in range(len(signed.body)):
        body = bytearray(signed.body)
        body[position] ^= 0x01
        with pytest.raises(ReceiptInvalid):
            SignedReceipt(signed.receipt, bytes(body), signed.signature).verify(
                key.public_key(), request_id=request_id
            )
    with pytest.raises(ReceiptInvalid, match="another request"):
        signed.verify(key.public_key(), request_id=b"\x08" * 16)
    with pytest.raises(ReceiptInvalid, match="another model"):
        signed.verify(key.public_key(), request_id=request_id, model="other")


@pytest.mark.parametrize(
    "change",
    [
        {"v": 1},
        {"prompt_tokens": -1},
        {"prompt_tokens": 2**64},
        {"prompt_tokens": True},
        {"completion_tokens": "3"},
        {"status": "done"},
        {"estimated": 0},
        {"request_id": "07" * 15},
        {"request_id": "0G" * 16},
        {"client": None},
        {"extra": 1},
    ],
)
def test_receipt_bodies_out_of_spec_are_malformed(change: dict[str, object]) -> None:
    body = {**receipt_for(b"\x07" * 16).to_json(), **change}
    with pytest.raises(MalformedMessage):
        UsageReceipt.from_bytes(canonical_json(body))


def test_key_id_depends_on_suite_and_key() -> None:
    keypair = KeyPair.generate(Suite.X25519)
    assert key_id_for(Suite.X25519, keypair.public_bytes) == keypair.key_id
    assert key_id_for(Suite.MLKEM768_X25519, keypair.public_bytes) != keypair.key_id
