"""What Veil reads from TON: addresses, hashes, comments, toncenter's answers; the settings."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from pytoniq_core.boc.builder import Builder

from bot.__main__ import main
from models.ton import TonCursor
from services.ton.chain import (
    WalletAddress,
    address_boc,
    address_from_boc,
    comment_from_boc,
    gram_transfer,
    jetton_transfer,
    normalise_hash,
)
from services.ton.errors import MalformedTransfer, ToncenterRateLimited, ToncenterUnavailable
from services.ton.shop import TonPack, format_amount
from services.ton.toncenter import ToncenterClient
from tests.fakes.toncenter import USDT_MASTER, FakeToncenter, comment_boc, jetton_wallet, op_boc
from tests.harness import free_port, serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

RAW = "0:b113a994b5024a16719f69139328eb759596c38a25f59028b146fecdc3621dfe"
FORMS = {
    "raw": RAW,
    "raw upper case": RAW.upper(),
    "bounceable": "EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDs",
    "non-bounceable": "UQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_p0p",
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_address_form_parses_to_one_raw_address(form: str) -> None:
    address = WalletAddress.parse(FORMS[form])
    assert address.raw == RAW
    assert address.friendly == FORMS["non-bounceable"]
    assert address.bounceable == FORMS["bounceable"]


def test_testnet_flags_are_checked_both_ways() -> None:
    testnet = WalletAddress.parse(RAW, testnet=True)
    assert testnet.friendly.startswith("0Q")
    assert testnet.bounceable.startswith("kQ")
    assert WalletAddress.parse(testnet.friendly, testnet=True).raw == RAW
    with pytest.raises(ValueError, match="testnet address but VEIL_TON_TESTNET is off"):
        WalletAddress.parse(testnet.friendly)
    with pytest.raises(ValueError, match="mainnet address but VEIL_TON_TESTNET is on"):
        WalletAddress.parse(FORMS["bounceable"], testnet=True)


@pytest.mark.parametrize(
    "bad",
    [
        "EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDt",  # one character off: checksum
        "0:b113",
        "0:" + "zz" * 32,
        "not an address",
        "",
        " ",
    ],
)
def test_a_bad_address_is_refused_with_a_clear_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a TON address"):
        WalletAddress.parse(bad)


def test_a_bad_address_stops_start_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VEIL_BOT_TOKEN", "123456:TEST-TOKEN")
    monkeypatch.setenv("VEIL_OPERATOR_KEYS", base64.urlsafe_b64encode(b"k" * 32).decode()[:43])
    monkeypatch.setenv("VEIL_TON_ADDRESS", "EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDt")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        (
            "veil: setting VEIL_TON_ADDRESS is invalid:"
            " 'EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDt' is not a TON address"
            " (raw 0:<hex> or EQ…/UQ…)"
        )
    ]


def test_hashes_are_read_in_every_form_toncenter_uses() -> None:
    raw = bytes(range(32))
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
        raw.hex().upper(),
    ):
        assert normalise_hash(text) == raw.hex()
    for bad in ("", "abc", base64.b64encode(raw[:31]).decode(), None, 7):
        with pytest.raises(MalformedTransfer):
            normalise_hash(bad)


def test_comments_are_read_from_the_boc_and_nothing_else_counts_as_one() -> None:
    assert comment_from_boc(comment_boc("VEIL-ABC ünïcode")) == "VEIL-ABC ünïcode"
    long = "x" * 400  # spans several cells (a snake string)
    assert comment_from_boc(comment_boc(long)) == long
    assert comment_from_boc(comment_boc(None)) is None  # an empty body
    assert comment_from_boc(op_boc(0x2167DA4B, b"secret")) is None  # an encrypted comment
    bad_utf8 = Builder().store_uint(0, 32).store_bytes(b"\xff\xfe").end_cell()
    assert comment_from_boc(base64.b64encode(bad_utf8.to_boc()).decode()) is None
    for junk in ("", "bm90IGEgYm9j", "!!!", None, 12):
        assert comment_from_boc(junk) is None


def test_records_of_the_wrong_shape_are_refused_not_skipped() -> None:
    fake = FakeToncenter()
    record = fake.add_transaction(RAW, value=5, comment="x")
    assert gram_transfer(record, RAW).amount == 5
    for field, value in (("lt", "12a"), ("lt", None), ("now", True), ("lt", "-1")):
        broken = record | {field: value}
        with pytest.raises(MalformedTransfer):
            gram_transfer(broken, RAW)
    # A number longer than Python reads from text (4300 digits) too: it raised ValueError.
    for bad in ("1.5", "9" * 5000):
        broken_value = record | {"in_msg": record["in_msg"] | {"value": bad}}
        with pytest.raises(MalformedTransfer):
            gram_transfer(broken_value, RAW)
    with pytest.raises(MalformedTransfer):
        gram_transfer([], RAW)
    transfer = fake.add_jetton_transfer(RAW, amount=3, comment="y")
    master = WalletAddress.parse(USDT_MASTER).raw
    assert jetton_transfer(transfer, RAW, master).comment == "y"
    with pytest.raises(MalformedTransfer):
        jetton_transfer(transfer | {"amount": ""}, RAW, master)


def test_amounts_and_packs() -> None:
    assert format_amount("gram", 1_500_000_000) == "1.5 GRAM"
    assert format_amount("gram", 1) == "0.000000001 GRAM"
    assert format_amount("usdt", 20_000_000) == "20 USDT"
    assert format_amount("usdt", -250_000) == "-0.25 USDT"
    packs = TonPack.parse_list("5000000000:1300000000, 1000000000:250000000", "gram")
    assert [p.amount for p in packs] == [1_000_000_000, 5_000_000_000]
    for bad, reason in (
        ("1000:", "amount:units"),
        ("1000", "amount:units"),
        ("0:5", "positive"),
        ("5:5,5:6", "two packs"),
    ):
        with pytest.raises(ValueError, match=reason):
            TonPack.parse_list(bad, "gram")


async def _serve(body: bytes, status: int) -> tuple[web.AppRunner, str]:
    """A server answering every transactions request with ``body``; (runner, base URL)."""

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v3/transactions", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b'{"ok":false,"result":"Ratelimit exceed","code":429}', 429, ToncenterRateLimited),
        (b'{"ok":false,"result":"Ratelimit exceed","code":429}', 200, ToncenterRateLimited),
        (b'{"error":"boom"}', 500, ToncenterUnavailable),
        (b"<html>gateway timeout</html>", 200, ToncenterUnavailable),
        (b"[1, 2]", 200, ToncenterUnavailable),
        (b'{"transactions": {}}', 200, ToncenterUnavailable),
        (b'{"ok": false, "error": "bad account"}', 200, ToncenterUnavailable),
        # A proxy's error page nested deeper than the JSON parser goes (RecursionError).
        (b'{"transactions": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 200, ToncenterUnavailable),
    ],
)
async def test_toncenter_failures_become_our_errors(
    session: aiohttp.ClientSession, body: bytes, status: int, error: type[Exception]
) -> None:
    runner, url = await _serve(body, status)
    try:
        client = ToncenterClient(url, session, api_key="secret-key")
        with pytest.raises(error) as raised:
            await client.transactions(RAW, TonCursor("gram", 0, None, None), limit=10)
        assert "secret-key" not in str(raised.value)
    finally:
        await runner.cleanup()


async def test_a_redirect_elsewhere_never_carries_the_api_key(
    session: aiohttp.ClientSession,
) -> None:
    # The client followed a redirect (a proxy or a moved host in the way) and sent the
    # X-API-Key header along to whatever host it named: aiohttp drops only Authorization,
    # Cookie and Proxy-Authorization on a redirect to another origin.
    keys: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.Response:
        keys.append(request.headers.get("X-API-Key"))
        return web.json_response({"transactions": []})

    other = web.Application()
    other.router.add_get("/api/v3/transactions", elsewhere)
    async with serving(other) as other_url:

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPFound(other_url + request.path_qs)

        app = web.Application()
        app.router.add_get("/api/v3/transactions", moved)
        async with serving(app) as url:
            client = ToncenterClient(url, session, api_key="secret-key")
            with pytest.raises(ToncenterUnavailable) as raised:
                await client.transactions(RAW, TonCursor("gram", 0, None, None), limit=10)
    assert keys == []
    assert "secret-key" not in str(raised.value)


async def test_an_unreachable_toncenter_is_unavailable(session: aiohttp.ClientSession) -> None:
    client = ToncenterClient(f"http://127.0.0.1:{free_port()}", session)
    with pytest.raises(ToncenterUnavailable):
        await client.transactions(RAW, TonCursor("gram", 0, 5, "ab"), limit=10)


async def test_the_client_asks_from_the_cursor(session: aiohttp.ClientSession) -> None:
    async with FakeToncenter(api_key="k") as chain:
        client = ToncenterClient(chain.url, session, api_key="k")
        await client.transactions(RAW, TonCursor("gram", 1_700_000_000, None, None), limit=5)
        await client.jetton_transfers(RAW, TonCursor("usdt", 0, 77, "ab"), limit=5, offset=5)
        first, second = chain.requests
        assert first.params == {
            "account": RAW,
            "sort": "asc",
            "limit": "5",
            "offset": "0",
            "start_utime": "1700000000",
        }
        assert second.params == {
            "owner_address": RAW,
            "direction": "in",
            "sort": "asc",
            "limit": "5",
            "offset": "5",
            "start_lt": "77",
        }
        assert {first.api_key, second.api_key} == {"k"}


async def test_a_page_that_arrives_in_pieces_is_read_whole(session: aiohttp.ClientSession) -> None:
    # A full page is hundreds of kilobytes, sent in many TCP segments; reading one buffer's
    # worth of it took a truncated body for "not JSON", and the watcher never got past it.
    record = {"hash": "ab" * 32, "lt": "5", "padding": "x" * 1000}
    body = json.dumps({"transactions": [record] * 100}).encode()

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        for start in range(0, len(body), 4096):
            await response.write(body[start : start + 4096])
            await asyncio.sleep(0.001)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/api/v3/transactions", answer)
    async with serving(app) as url:
        client = ToncenterClient(url, session)
        page = await client.transactions(RAW, TonCursor("gram", 0, None, None), limit=100)
    assert page == [record] * 100


async def test_the_wallet_check_asks_the_master_in_toncenters_shape(
    session: aiohttp.ClientSession,
) -> None:
    owner = "0:" + "cd" * 32
    async with FakeToncenter(api_key="k") as chain:
        client = ToncenterClient(chain.url, session, api_key="k")
        master = WalletAddress.parse(USDT_MASTER).raw
        wallet = await client.jetton_wallet(master, owner)
        assert wallet == jetton_wallet(USDT_MASTER, owner).lower()
        (asked,) = chain.requests
        assert (asked.path, asked.params, asked.api_key) == (
            "/api/v3/runGetMethod",
            {"address": master, "method": "get_wallet_address"},
            "k",
        )
        # The fake answers as toncenter does: the result itself, a slice as a base64 BoC; a
        # stack the method cannot take fails in the TVM (a nonzero exit code, no stack).
        url, headers = chain.url + "/api/v3/runGetMethod", {"X-API-Key": "k"}
        good = {"type": "slice", "value": address_boc(owner)}
        body = {"address": USDT_MASTER, "method": "get_wallet_address", "stack": [good]}
        async with session.post(url, json=body, headers=headers) as response:
            answer = await response.json()
        assert set(answer) == {"gas_used", "exit_code", "stack"}
        assert answer["exit_code"] == 0
        assert [item["type"] for item in answer["stack"]] == ["slice"]
        assert address_from_boc(answer["stack"][0]["value"]) == wallet
        body["stack"] = [{"type": "num", "value": "0x1"}]
        async with session.post(url, json=body, headers=headers) as response:
            assert (await response.json())["exit_code"] != 0


@pytest.mark.parametrize(
    ("answer", "wallet"),
    [
        ({"gas_used": 1, "exit_code": 0, "stack": [{"type": "cell", "value": "ADDR"}]}, RAW),
        ({"gas_used": 1, "exit_code": 0, "stack": [{"type": "slice", "value": "ADDR"}]}, RAW),
        ({"gas_used": 1, "exit_code": 11, "stack": []}, None),
        ({"gas_used": 1, "exit_code": 0, "stack": []}, None),
        ({"gas_used": 1, "exit_code": 0, "stack": [{"type": "num", "value": "0x1"}]}, None),
        ({"gas_used": 1, "exit_code": 0, "stack": [{"type": "slice", "value": "!!"}]}, None),
        ({"gas_used": 1, "exit_code": 0, "stack": [{"type": "slice", "value": "TEXT"}]}, None),
        ({"exit_code": 0, "stack": [{"type": "slice", "value": "ADDR"}] * 2}, None),
        ({"ok": False, "result": "Ratelimit exceed", "code": 429}, None),
    ],
)
async def test_only_one_address_from_the_master_is_a_wallet(
    session: aiohttp.ClientSession, answer: dict[str, object], wallet: str | None
) -> None:
    text = json.dumps(answer)
    text = text.replace("ADDR", address_boc(RAW)).replace("TEXT", comment_boc("hi"))

    async def run(_request: web.Request) -> web.Response:
        return web.Response(text=text, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v3/runGetMethod", run)
    async with serving(app) as url:
        client = ToncenterClient(url, session)
        if wallet is not None:
            assert await client.jetton_wallet(USDT_MASTER, "0:" + "cd" * 32) == wallet
        else:
            with pytest.raises(ToncenterUnavailable):
                await client.jetton_wallet(USDT_MASTER, "0:" + "cd" * 32)


# -- comments in the BoCs toncenter v3 gives, built byte by byte -------------------------------
#
# toncenter v3 is ton-indexer. A message's ``message_content.body`` is the body cell as a
# base64 BoC, and ``decoded`` is ``{"type": "text_comment", "comment": …}`` when it holds one.
# A jetton transfer's ``forward_payload`` is the payload cell that the ``transfer`` message's
# ``forward_payload:(Either Cell ^Cell)`` refers to: the indexer reads that field with
# ``fetch_maybe_ref``, so a payload carried in a reference comes back as that cell's BoC (a text
# comment: 32 zero bits, then a snake string that goes on in the first reference), and one
# carried inline comes back as null. Sources: docs/payments-ton.md, "What toncenter returns".

TEXT_COMMENT, BINARY_COMMENT, TRANSFER_NOTIFICATION = 0x00000000, 0xFFFFFFFF, 0x7362D09C


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as a BoC's ``has_crc32c`` flag appends it (little-endian)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def cell_bytes(data: bytes, bits: int, refs: list[int]) -> bytes:
    """One ordinary cell in a BoC: its two descriptor bytes, padded data, reference indexes."""
    full, partial = divmod(bits, 8)
    payload = bytearray(data[: full + (1 if partial else 0)])
    if partial:  # the completion tag: a 1 bit after the data, then zeros
        payload[-1] = (payload[-1] & (0xFF << (8 - partial)) & 0xFF) | (0x80 >> partial)
    return bytes([len(refs), full + (full + (1 if partial else 0))]) + payload + bytes(refs)


def standard_boc(cells: list[tuple[bytes, int, list[int]]]) -> str:
    """A one-root BoC of ``cells`` (the root first, each ref pointing further on), with CRC-32C.

    The layout ``te6cck…`` bodies have: magic, flags (crc, one-byte cell indexes), the size of
    an offset, cell count, one root, no absent cells, the data size, root 0, the cells, the
    checksum.
    """
    body = b"".join(cell_bytes(data, bits, refs) for data, bits, refs in cells)
    offset_bytes = max(1, (len(body).bit_length() + 7) // 8)
    head = bytes.fromhex("b5ee9c72") + bytes([0x40 | 1, offset_bytes, len(cells), 1, 0])
    boc = head + len(body).to_bytes(offset_bytes, "big") + b"\x00" + body
    return base64.b64encode(boc + crc32c(boc).to_bytes(4, "little")).decode()


def test_our_boc_is_the_one_the_library_writes() -> None:
    cell = Builder().store_uint(TEXT_COMMENT, 32).store_bytes(b"VEIL").end_cell()
    ours = standard_boc([(bytes(4) + b"VEIL", 64, [])])
    assert base64.b64decode(ours) == cell.to_boc(hash_crc32=True)
    assert ours.startswith("te6cck")  # as toncenter's bodies begin


def test_a_long_comment_in_snake_cells_is_read_whole_even_across_a_split_character() -> None:
    # 123 bytes fit beside the op in the first cell (1023 bits); "é" (2 bytes) straddles it.
    text = "A" * 122 + "é" + "B" * 70 + "ж" * 60
    raw = text.encode()
    first, rest = raw[:123], raw[123:]
    second, third = rest[:127], rest[127:]
    boc = standard_boc(
        [
            (bytes(4) + first, 32 + 8 * len(first), [1]),
            (second, 8 * len(second), [2]),
            (third, 8 * len(third), []),
        ]
    )
    assert comment_from_boc(boc) == text
    whole = base64.b64decode(boc)
    damaged = whole[:-1] + bytes([whole[-1] ^ 0xFF])  # the checksum no longer matches
    assert comment_from_boc(base64.b64encode(damaged).decode()) is None
    master = WalletAddress.parse(USDT_MASTER).raw
    record = FakeToncenter().add_jetton_transfer(RAW, amount=1) | {"forward_payload": boc}
    assert jetton_transfer(record, RAW, master).comment == text


def test_only_a_text_comment_op_counts_as_a_comment() -> None:
    binary = standard_boc([(BINARY_COMMENT.to_bytes(4, "big") + b"VEIL-1", 80, [])])
    assert comment_from_boc(binary) is None  # a binary comment: bytes, not text
    # The notice an owner's wallet gets (op, query id, no jettons, no sender, then the forward
    # payload inline: Either bit 0, a text comment): the text in it is not the body's comment.
    bits = f"{TRANSFER_NOTIFICATION:032b}" + "0" * 64 + "0000" + "00" + "0" + "0" * 32
    bits += "".join(f"{byte:08b}" for byte in b"VEIL")
    data = int(bits + "0" * (-len(bits) % 8), 2).to_bytes((len(bits) + 7) // 8, "big")
    assert comment_from_boc(standard_boc([(data, len(bits), [])])) is None
    assert comment_from_boc(standard_boc([(bytes(4) + b"\xc3", 40, [])])) is None  # cut UTF-8
    assert comment_from_boc(standard_boc([(bytes(4) + b"VEIL", 36, [])])) is None  # not bytes


def test_a_forward_payload_carried_inline_reaches_the_books_as_no_comment() -> None:
    # ton-indexer keeps only a payload in a reference: inline, it lists the transfer with a
    # null forward_payload (and a null decoded_forward_payload). It is recorded, unmatched.
    master = WalletAddress.parse(USDT_MASTER).raw
    record = FakeToncenter().add_jetton_transfer(RAW, amount=5, comment="VEIL-1", inline=True)
    assert (record["forward_payload"], record["decoded_forward_payload"]) == (None, None)
    transfer = jetton_transfer(record, RAW, master)
    assert (transfer.comment, transfer.skip, transfer.amount) == (None, None, 5)
