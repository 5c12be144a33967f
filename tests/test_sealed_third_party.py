"""A third party's client, written from docs/protocol.md alone, against ``python -m gateway``.

Nothing here imports ``sealed`` or ``gateway``: the client below is built from the spec's text
with ``cryptography``'s HPKE, ChaCha20-Poly1305, Ed25519, SHA-256 and HMAC, so a place where
the spec and the gateway part ways fails here even when our own client agrees with our own
gateway. The gateway runs as a process with its default (shaped) streams.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, gateway_process, new_operator_key, wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import aiohttp

ANSWER = "A third party reads this, word by word, from the sealed stream."
# §1, "Suites": wire id -> (bundle label, KEM, public key bytes)
SUITES = {
    1: ("X25519-HKDF-SHA256-ChaCha20Poly1305", hpke.KEM.X25519, 32),
    2: ("MLKEM768X25519-HKDF-SHA256-ChaCha20Poly1305", hpke.KEM.MLKEM768_X25519, 1216),
}
BUNDLE_FIELDS = {"v", "suite", "public_key", "key_id", "not_before", "not_after", "models"}
OPTIONAL_BUNDLE_FIELDS = {"receipt_key", "attestation", "windows"}
RECEIPT_FIELDS = {
    "v",
    "request_id",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "status",
    "estimated",
    "client",
}
RECORD_BUCKETS = (64, 256, 1024, 4096, 16384, 65536)
REQUEST_BUCKETS = tuple(1024 << n for n in range(11))  # 1, 2, 4, ... 1024 KiB


# -- the spec's primitives ---------------------------------------------------------------------


def b64e(data: bytes) -> str:
    """Notation: b64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """Strict b64url: no padding, no other alphabet."""
    assert "=" not in text
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pad(plaintext: bytes, buckets: tuple[int, ...]) -> bytes:
    """§3: 4-byte length, the bytes, zeros up to the smallest bucket that holds them."""
    whole = 4 + len(plaintext)
    bucket = next(size for size in buckets if size >= whole)
    return len(plaintext).to_bytes(4, "big") + plaintext + bytes(bucket - whole)


def unpad(padded: bytes) -> bytes:
    """The length prefix fits, the rest is zeros."""
    length = int.from_bytes(padded[:4], "big")
    assert 4 + length <= len(padded)
    assert not any(padded[4 + length :])
    return padded[4 : 4 + length]


@dataclass(frozen=True)
class Bundle:
    """A verified version-2 key bundle."""

    suite_id: int
    public_key: bytes
    key_id: bytes
    models: list[str]
    receipt_key: bytes


def verify_bundle(wire: dict[str, Any], pinned: bytes, now: int) -> Bundle:
    """§2, every check a client MUST make, in the spec's words."""
    assert wire.get("signature"), "BundleUnsigned"
    assert b64d(wire["operator_key"]) == pinned, "BundleUnpinned"
    body = b64d(wire["bundle"])
    ed25519.Ed25519PublicKey.from_public_bytes(pinned).verify(
        b64d(wire["signature"]), b"veil/bundle/v2\x00" + body
    )
    fields = json.loads(body)
    assert BUNDLE_FIELDS <= set(fields) <= BUNDLE_FIELDS | OPTIONAL_BUNDLE_FIELDS
    assert "receipt_key" in fields  # the table lists it without "optional"
    assert fields["v"] == 2
    (suite_id,) = [wire_id for wire_id, suite in SUITES.items() if suite[0] == fields["suite"]]
    public_key = b64d(fields["public_key"])
    assert len(public_key) == SUITES[suite_id][2]
    key_id = hashlib.sha256(bytes([suite_id]) + public_key).digest()[:8]
    assert fields["key_id"] == key_id.hex(), "BundleKeyMismatch"
    skew = 120
    assert fields["not_before"] - skew <= now < fields["not_after"] + skew, "BundleExpired"
    receipt_key = b64d(fields["receipt_key"])
    assert len(receipt_key) == 32
    return Bundle(suite_id, public_key, key_id, list(fields["models"]), receipt_key)


def hpke_seal(bundle: Bundle, plaintext: bytes, info: bytes) -> bytes:
    """One single-shot HPKE base-mode seal to the bundle's key: ``enc || ct``."""
    kem = SUITES[bundle.suite_id][1]
    suite = hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    public: x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
    if kem == hpke.KEM.X25519:
        public = x25519.X25519PublicKey.from_public_bytes(bundle.public_key)
    else:
        # §1: the 1184-byte ML-KEM-768 encapsulation key || the 32-byte X25519 key
        public = hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(bundle.public_key[:1184]),
            x25519.X25519PublicKey.from_public_bytes(bundle.public_key[1184:]),
        )
    return suite.encrypt(plaintext, public, info=info)


def key_header(bundle: Bundle) -> bytes:
    """§3: "VEIL", version 2, suite wire id, key id."""
    return b"VEIL" + bytes([2, bundle.suite_id]) + bundle.key_id


@dataclass
class Asked:
    """One sealed request and what only its asker holds."""

    body: bytes
    request_id: bytes
    response_key: bytes

    @property
    def control_key(self) -> bytes:
        """§1: SHA-256("veil/control-key/v2" || response key)."""
        return hashlib.sha256(b"veil/control-key/v2" + self.response_key).digest()

    def proof(self, label: bytes) -> str:
        """§5: HMAC-SHA256(control key, label || 0x00 || the id's 16 bytes), b64url."""
        return b64e(
            hmac.new(self.control_key, label + b"\x00" + self.request_id, "sha256").digest()
        )

    def headers(self) -> dict[str, str]:
        """§3, client authentication, and the content type clients send."""
        digest = hashlib.sha256(self.body).digest()
        signature = CLIENT_KEY.sign(b"veil/client-auth/v2\x00" + digest)
        return {
            "Content-Type": "application/vnd.veil.sealed-request",
            "Veil-Client-Key": b64e(CLIENT_KEY.public_key().public_bytes_raw()),
            "Veil-Client-Signature": b64e(signature),
        }


def seal(bundle: Bundle, chat: dict[str, Any], now: int) -> Asked:
    """§3: header, then one HPKE base-mode seal of pad(json(inner)) bound to the header."""
    request_id = secrets.token_bytes(16)
    response_key = secrets.token_bytes(32)
    inner = {
        "v": 2,
        "request_id": request_id.hex(),
        "ts": now,
        "response_key": b64e(response_key),
        "chat": chat,
    }
    header = key_header(bundle)
    plaintext = pad(json.dumps(inner).encode(), REQUEST_BUCKETS)
    return Asked(
        header + hpke_seal(bundle, plaintext, b"veil/request/v2\x00" + header),
        request_id,
        response_key,
    )


@dataclass
class Opened:
    """What a stream held: its records in order, the answer, the final payload."""

    kinds: list[int] = field(default_factory=list)
    record_sizes: list[int] = field(default_factory=list)
    text: str = ""
    final_type: int = 0
    final: dict[str, Any] = field(default_factory=dict)
    relay_receipt: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Relayed:
    """A relay's own: the relay key, and the sealed bytes it relayed."""

    relay_key: bytes
    body: bytes


def relay_key_header(bundle: Bundle, relayed: Relayed) -> str:
    """§4, "Relay receipts": ``Veil-Relay-Key``, the relay key sealed to these exact bytes."""
    header = key_header(bundle)
    info = b"veil/relay-key/v2\x00" + header + hashlib.sha256(relayed.body).digest()
    return b64e(header + hpke_seal(bundle, relayed.relay_key, info))


def split_relay_receipt(data: bytes, relayed: Relayed) -> tuple[bytes, dict[str, Any]]:
    """§4, "Relay receipts": hand on whole chunks to the final flag, open what follows.

    A relay reads no record: each chunk's length and flags are in the clear.
    """
    position = 0
    while True:
        length = int.from_bytes(data[position : position + 4], "big")
        flags = data[position + 4 + 12]
        position += 4 + length
        if flags & 1:
            break
    stream, rest = data[:position], data[position:]
    length = int.from_bytes(rest[:4], "big")
    assert 1040 <= length <= 65552
    assert len(rest) == 4 + length  # nothing follows the relay receipt
    aad = b"veil/relay-receipt/v2\x00" + hashlib.sha256(relayed.body).digest()
    record = ChaCha20Poly1305(relayed.relay_key).decrypt(bytes(12), rest[4:], aad)
    assert len(record) >= 1024
    receipt: dict[str, Any] = json.loads(unpad(record))
    assert set(receipt) == {"receipt", "signature"}
    return stream, receipt


def open_stream(data: bytes, response_key: bytes, *, relayed: Relayed | None = None) -> Opened:
    """§4, "What the client checks", in order, for every chunk; nothing may follow the final."""
    stream_id = hashlib.sha256(b"veil/stream-id/v2" + response_key).digest()[:8]
    aead = ChaCha20Poly1305(response_key)
    opened = Opened()
    if relayed is not None:
        data, opened.relay_receipt = split_relay_receipt(data, relayed)
    seq = 0
    rest = memoryview(data)
    while True:
        assert len(rest) >= 4, "StreamTruncated"
        length = int.from_bytes(rest[:4], "big")
        assert 93 <= length <= 65565, "MalformedMessage"
        assert len(rest) >= 4 + length, "StreamTruncated"
        chunk = bytes(rest[4 : 4 + length])
        rest = rest[4 + length :]
        assert chunk[:8] == stream_id, "StreamSpliced"
        assert int.from_bytes(chunk[8:12], "big") == seq, "ChunkOutOfOrder"
        flags = chunk[12]
        assert flags in (0, 1)  # a strict client may refuse other bits
        nonce = bytes(4) + seq.to_bytes(8, "big")
        record = aead.decrypt(nonce, chunk[13:], b"veil/response/v2\x00" + chunk[:13])
        assert len(record) in RECORD_BUCKETS  # the gateway pads to a bucket
        payload = unpad(record)
        kind, content = payload[0], payload[1:]
        opened.kinds.append(kind)
        opened.record_sizes.append(len(record))
        if kind in (1, 4):
            assert flags == 0
            if kind == 1:
                opened.text += content.decode("utf-8")
        else:
            assert kind in (2, 3)
            assert flags == 1
            opened.final_type = kind
            opened.final = json.loads(content)
            assert len(rest) == 0, "TrailingData"
            return opened
        seq += 1


def check_receipt(
    final: dict[str, Any], bundle: Bundle, asked: Asked, model: str
) -> dict[str, Any]:
    """§4, "Usage receipt": the signature over the exact bytes, then id and model."""
    body = b64d(final["receipt"])
    key = ed25519.Ed25519PublicKey.from_public_bytes(bundle.receipt_key)
    key.verify(b64d(final["signature"]), b"veil/receipt/v2\x00" + body)
    receipt: dict[str, Any] = json.loads(body)
    assert set(receipt) == RECEIPT_FIELDS
    assert receipt["v"] == 2
    assert receipt["request_id"] == asked.request_id.hex()
    assert receipt["model"] == model
    verify_key = CLIENT_KEY.public_key().public_bytes_raw()
    assert receipt["client"] == hashlib.sha256(verify_key).digest()[:8].hex()
    return receipt


# -- against the gateway -----------------------------------------------------------------------


@dataclass
class Served:
    """A gateway process in front of a fake model server, and the pinned operator key."""

    url: str
    fake: FakeVLLM
    operator_key: bytes


@pytest.fixture(params=["x25519", "mlkem768-x25519"])
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    key_file, operator_key = await new_operator_key(tmp_path)
    settings = {
        "VEIL_MAX_COMPLETION_TOKENS": "1024",
        "VEIL_STREAM_TICK": "0.01",
        "VEIL_GATEWAY_SUITE": request.param,
    }
    async with (
        FakeVLLM(answer=ANSWER) as fake,
        gateway_process(fake.url, key_file, settings) as gateway,
    ):
        yield Served(gateway.url, fake, operator_key)


async def fetch_bundle(http: aiohttp.ClientSession, served: Served) -> Bundle:
    async with http.get(f"{served.url}/v1/keys") as response:
        assert response.status == 200
        wire = await response.json()
    return verify_bundle(wire, served.operator_key, int(time.time()))


async def post(
    http: aiohttp.ClientSession, served: Served, asked: Asked, extra: dict[str, str] | None = None
) -> tuple[int, bytes]:
    headers = asked.headers() | (extra or {})
    async with http.post(
        f"{served.url}/v1/sealed/chat/completions", data=asked.body, headers=headers
    ) as response:
        if response.status == 200:
            assert response.headers["Content-Type"] == "application/vnd.veil.sealed-stream"
        return response.status, await response.read()


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Say it"}]}


async def test_a_client_from_the_spec_alone_reads_a_shaped_answer_and_its_receipt(
    http: aiohttp.ClientSession, served: Served
) -> None:
    bundle = await fetch_bundle(http, served)
    assert bundle.models == ["veil-test"]
    asked = seal(bundle, chat("veil-test"), int(time.time()))
    status, data = await post(http, served, asked)
    assert status == 200
    opened = open_stream(data, asked.response_key)
    assert opened.text == ANSWER
    assert opened.final_type == 2
    assert set(opened.final) == {"finish_reason", "receipt", "signature"}
    assert opened.final["finish_reason"] == "stop"
    receipt = check_receipt(opened.final, bundle, asked, "veil-test")
    assert receipt["status"] == "complete"
    assert receipt["completion_tokens"] > 0
    # §4 "Shaped streams": DELTA records at the stream's record size, which only grows; the
    # final padded to at least 1024 bytes
    sizes = opened.record_sizes
    deltas = [size for kind, size in zip(opened.kinds, sizes, strict=True) if kind == 1]
    assert deltas == sorted(deltas)
    assert sizes[0] == 64  # the first piece alone, at the smallest record size
    assert opened.kinds[-2] == 1  # a closing DELTA, always, then the final
    assert opened.record_sizes[-1] >= 1024
    # §5: the late receipt is the final record's payload, the same signed bytes
    async with http.get(
        f"{served.url}/v1/sealed/receipts/{asked.request_id.hex()}",
        headers={"Veil-Proof": asked.proof(b"veil/receipt-fetch/v2")},
    ) as response:
        assert response.status == 200
        late = await response.json()
    assert late == opened.final
    # §3 check 10: the same bytes again are a replay
    assert (await post(http, served, asked))[0] == 409


async def test_another_askers_proof_opens_no_receipt_and_stops_no_stream(
    http: aiohttp.ClientSession, served: Served
) -> None:
    bundle = await fetch_bundle(http, served)
    mine = seal(bundle, chat("veil-test"), int(time.time()))
    theirs = seal(bundle, chat("veil-test"), int(time.time()))
    assert (await post(http, served, mine))[0] == 200
    receipts = f"{served.url}/v1/sealed/receipts/{mine.request_id.hex()}"
    wrong = {"Veil-Proof": theirs.proof(b"veil/receipt-fetch/v2")}
    async with http.get(receipts, headers=wrong) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "bad_proof"
    # a cancel proof is not a receipt proof, nor the other way round
    cancel_as_receipt = {"Veil-Proof": mine.proof(b"veil/cancel/v2")}
    async with http.get(receipts, headers=cancel_as_receipt) as response:
        assert response.status == 403
    stop = {"request_id": mine.request_id.hex(), "proof": theirs.proof(b"veil/cancel/v2")}
    async with http.post(f"{served.url}/v1/sealed/cancel", json=stop) as response:
        assert response.status == 403
    stop["proof"] = mine.proof(b"veil/cancel/v2")
    async with http.post(f"{served.url}/v1/sealed/cancel", json=stop) as response:
        assert response.status == 200
        assert await response.json() == {"state": "finished"}
    unknown = {"request_id": theirs.request_id.hex(), "proof": theirs.proof(b"veil/cancel/v2")}
    async with http.post(f"{served.url}/v1/sealed/cancel", json=unknown) as response:
        assert response.status == 404


async def test_a_stop_from_the_spec_ends_with_a_signed_stopped_receipt(
    http: aiohttp.ClientSession, served: Served
) -> None:
    bundle = await fetch_bundle(http, served)
    served.fake.pauses = {2}
    asked = seal(bundle, chat("veil-test"), int(time.time()))
    posting = asyncio.ensure_future(post(http, served, asked))
    await wait_until(lambda: served.fake.paused > 0)
    # while it runs: only its asker learns that it runs (403 before 409); no one else stops it
    other = seal(bundle, chat("veil-test"), int(time.time()))
    receipts = f"{served.url}/v1/sealed/receipts/{asked.request_id.hex()}"
    for proof, status in ((other, 403), (asked, 409)):
        headers = {"Veil-Proof": proof.proof(b"veil/receipt-fetch/v2")}
        async with http.get(receipts, headers=headers) as response:
            assert response.status == status
    foreign = {"request_id": asked.request_id.hex(), "proof": other.proof(b"veil/cancel/v2")}
    async with http.post(f"{served.url}/v1/sealed/cancel", json=foreign) as response:
        assert response.status == 403
    stop = {"request_id": asked.request_id.hex(), "proof": asked.proof(b"veil/cancel/v2")}
    async with http.post(f"{served.url}/v1/sealed/cancel", json=stop) as response:
        assert response.status == 202
        assert await response.json() == {"state": "stopping"}
    status, data = await posting
    served.fake.resume()
    assert status == 200
    opened = open_stream(data, asked.response_key)
    assert opened.final["finish_reason"] == "stopped"
    receipt = check_receipt(opened.final, bundle, asked, "veil-test")
    assert receipt["status"] == "stopped"


async def test_a_tampered_record_does_not_open_for_the_spec_client(
    http: aiohttp.ClientSession, served: Served
) -> None:
    bundle = await fetch_bundle(http, served)
    asked = seal(bundle, chat("veil-test"), int(time.time()))
    status, data = await post(http, served, asked)
    assert status == 200
    flipped = bytearray(data)
    flipped[30] ^= 1
    with pytest.raises(InvalidTag):
        open_stream(bytes(flipped), asked.response_key)
    opened = open_stream(data, asked.response_key)
    forged = dict(opened.final, signature=b64e(bytes(64)))
    with pytest.raises(InvalidSignature):
        check_receipt(forged, bundle, asked, "veil-test")


async def test_a_relay_from_the_spec_alone_reads_its_receipt_after_the_final_chunk(
    http: aiohttp.ClientSession, served: Served
) -> None:
    bundle = await fetch_bundle(http, served)
    asked = seal(bundle, chat("veil-test"), int(time.time()))
    relayed = Relayed(secrets.token_bytes(32), asked.body)
    extra = {"Veil-Relay-Key": relay_key_header(bundle, relayed)}
    status, data = await post(http, served, asked, extra)
    assert status == 200
    opened = open_stream(data, asked.response_key, relayed=relayed)
    assert opened.text == ANSWER
    assert opened.relay_receipt == {
        "receipt": opened.final["receipt"],
        "signature": opened.final["signature"],
    }
    assert check_receipt(opened.relay_receipt, bundle, asked, "veil-test")["status"] == "complete"


def relay_terms(request_id: bytes, tokens: int, model: str) -> str:
    """§4, "Relay receipts": ``Veil-Relay-Terms``, the model's UTF-8 percent-encoded.

    Every byte but the unreserved ones, as JavaScript's ``encodeURIComponent`` does (which
    leaves ``!'()*`` too: the gateway reads any visible ASCII as it is).
    """
    unreserved = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!'()*"
    encoded = "".join(
        chr(byte) if byte in unreserved else f"%{byte:02X}" for byte in model.encode("utf-8")
    )
    return f"{request_id.hex()} {tokens} {encoded}"


@pytest.mark.parametrize("served", ["x25519"], indirect=True)  # the header, whatever the suite
async def test_a_relay_from_the_spec_holds_the_answer_to_its_terms(
    http: aiohttp.ClientSession, served: Served
) -> None:
    # §4, "Relay receipts" and checks 10a and 14a: a request declared under another id is
    # refused (and its id left free), the terms sent twice are malformed, and the declared
    # tokens cap the answer however many the sealed request names.
    bundle = await fetch_bundle(http, served)
    asked = seal(bundle, {**chat("veil-test"), "max_completion_tokens": 200}, int(time.time()))
    for terms, expected in (
        ([relay_terms(secrets.token_bytes(16), 3, "veil-test")], b"terms_mismatch"),
        ([relay_terms(asked.request_id, 3, "veil-test")] * 2, b"malformed"),
    ):
        head = [
            "POST /v1/sealed/chat/completions HTTP/1.1",
            "Host: gateway",
            f"Content-Length: {len(asked.body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in asked.headers().items()),
            *(f"Veil-Relay-Terms: {value}" for value in terms),
        ]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + asked.body
        reply = await raw_exchange(served.url, data)
        assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
        assert expected in reply, reply[:200]
    extra = {"Veil-Relay-Terms": relay_terms(asked.request_id, 3, "veil-test")}
    status, data = await post(http, served, asked, extra)
    assert status == 200
    opened = open_stream(data, asked.response_key)
    assert served.fake.requests[-1]["max_completion_tokens"] == 3
    receipt = check_receipt(opened.final, bundle, asked, "veil-test")
    assert receipt["completion_tokens"] <= 3


async def test_a_spec_client_reads_retry_after_only_when_it_asks_for_it(
    http: aiohttp.ClientSession, served: Served
) -> None:
    # §4, `retry_after`: the model server's wait, an int in 0-300, inside an `unavailable`
    # ERROR record for a client whose request names it in `Veil-Accept`; exactly the three
    # error fields for any other; never in the receipt fetched later.
    served.fake.fail_before_stream = (429, "Too many requests")
    served.fake.retry_after = "7"
    bundle = await fetch_bundle(http, served)
    for accept, fields in (
        (
            {"Veil-Accept": "something-else, Retry_After"},
            {"kind", "status", "message", "retry_after"},
        ),
        ({}, {"kind", "status", "message"}),
    ):
        asked = seal(bundle, chat("veil-test"), int(time.time()))
        status, data = await post(http, served, asked, accept)
        assert status == 200
        opened = open_stream(data, asked.response_key)
        assert opened.final_type == 3
        error = opened.final["error"]
        assert set(error) == fields
        assert (error["kind"], error["status"], error.get("retry_after")) == (
            "unavailable",
            429,
            7 if accept else None,
        )
        assert check_receipt(opened.final, bundle, asked, "veil-test")["status"] == "error"
        async with http.get(
            f"{served.url}/v1/sealed/receipts/{asked.request_id.hex()}",
            headers={"Veil-Proof": asked.proof(b"veil/receipt-fetch/v2")},
        ) as response:
            assert response.status == 200
            late = await response.json()
        assert set(late["error"]) == {"kind", "status", "message"}
        assert late["receipt"] == opened.final["receipt"]


async def raw_exchange(url: str, data: bytes) -> bytes:
    """Send ``data`` on a connection of its own; everything until the gateway closes it."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize("served", ["x25519"], indirect=True)  # framing, whatever the suite
@pytest.mark.parametrize(
    ("extensions", "status"),
    [
        ((b';a="b;c\\"d"', b";x;y=z"), b"200"),  # quoted-string values, several extensions
        ((b" ;a", b""), b"400"),  # RFC 9112 allows blanks there; the gateway does not
        ((b"; a", b""), b"400"),
    ],
)
async def test_a_chunked_body_with_extensions_is_read_as_the_spec_says(
    http: aiohttp.ClientSession, served: Served, extensions: tuple[bytes, bytes], status: bytes
) -> None:
    bundle = await fetch_bundle(http, served)
    asked = seal(bundle, chat("veil-test"), int(time.time()))
    head = "".join(f"{name}: {value}\r\n" for name, value in asked.headers().items())
    first, rest = asked.body[:10], asked.body[10:]
    body = b"".join(
        (
            b"%x%s\r\n%s\r\n" % (len(first), extensions[0], first),
            b"%X%s\r\n%s\r\n" % (len(rest), extensions[1], rest),
            b"0\r\nX-Trailer: 1\r\n\r\n",
        )
    )
    request = (
        b"POST /v1/sealed/chat/completions HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        + head.encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + body
    )
    reply = await raw_exchange(served.url, request)
    assert reply.split(b" ", 2)[1] == status
