"""review29a: Gram and USDT payments attacked by payers and by a hostile toncenter.

Each case ends with every payment credited once, none lost, and the books sound.
"""

from __future__ import annotations

import base64
import functools
import os
from typing import TYPE_CHECKING

import pytest
from pytoniq_core.boc.builder import Builder
from structlog.testing import capture_logs

from models.ton import TonCursor
from services.ton import toncenter as toncenter_module
from services.ton.errors import ToncenterTooLarge
from tests.books import inconsistent_users
from tests.tonstack import ALICE, WALLET_RAW, TonStack, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from pytoniq_core.boc.cell import Cell

GRAM = 1_000_000_000
PACK_UNITS = 250_000_000
USDT = 1_000_000
USDT_PACK_UNITS = 70_000_000
STRANGER = "0:" + "5e" * 32
FAKE_MASTER = "0:" + "fa" * 32
# A message body as large as a payer can send, near enough: TON takes messages of up to
# 2**21 bits in 2**13 cells (config param 43), so ~256 KiB; this one is ~175 KiB of random
# bits in 1,365 cells (~240 KB as base64). Random, so none of its cells repeat; one payer
# may send the same body many times.
_TREE_DEPTH = 4


def _tree(depth: int) -> Cell:
    builder = Builder().store_bytes(os.urandom(127))
    for _ in range(4 if depth else 0):
        builder = builder.store_ref(_tree(depth - 1))
    cell: Cell = builder.end_cell()
    return cell


@functools.cache
def huge_body() -> str:
    """A binary comment (op 0xffffffff) of ~175 KiB of random cells, as a base64 BoC."""
    root = Builder().store_uint(0xFFFFFFFF, 32).store_bytes(os.urandom(120))
    for _ in range(4):
        root = root.store_ref(_tree(_TREE_DEPTH))
    return base64.b64encode(root.end_cell().to_boc()).decode()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[TonStack]:
    async with ton_stack(tmp_path / "veil.db") as parts:
        yield parts


async def test_payers_huge_message_bodies_never_stop_the_gram_stream(stack: TonStack) -> None:
    # A page of 100 transactions is far under toncenter's 8 MiB cap only while their bodies
    # are small; anyone can send 40 transfers with bodies of ~240 KB (a few Gram in fees),
    # and every page read from the cursor was then refused as too large, pass after pass:
    # no Gram payment after them was ever credited.
    paid = (await stack.shop.create_order(ALICE, "gram", str(GRAM))).order
    bodies = 40
    for _ in range(bodies):
        stack.chain.add_transaction(WALLET_RAW, value=GRAM, source=STRANGER, body=huge_body())
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    watcher = stack.watcher()
    with capture_logs() as logs:
        assert await watcher.poll() == bodies + 1
    assert await stack.balance(ALICE) == PACK_UNITS
    assert [b.payment.user_id for b in stack.told] == [ALICE]
    shrunk = [e for e in logs if e["event"] == "ton.page_too_large"]
    assert shrunk, logs
    assert all(set(e) >= {"asset", "limit", "log_level"} for e in shrunk)
    # reconcile reads the same stream whole, and finds nothing missing.
    cursor = await stack.books.cursor("gram")
    start = TonCursor("gram", cursor.since, None, None, chain_since=cursor.chain_since)
    assert await stack.books.reconcile(await stack.reader.everything("gram", start)) == []
    assert await inconsistent_users(stack.store) == []


async def test_huge_fake_jetton_payloads_never_stop_the_usdt_stream(
    stack: TonStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same with a jetton anyone can mint: its transfers, listed with every jetton's, carry
    # a forward payload as large as a message; read on from the cursor and read again behind
    # it (the same minute), every page was too large. (At an eighth of the scale, for speed:
    # a cap of 1 MiB and 8 such transfers.)
    monkeypatch.setattr(toncenter_module, "MAX_BODY", 1024 * 1024)
    paid = (await stack.shop.create_order(ALICE, "usdt", str(USDT))).order
    fakes = 8
    for _ in range(fakes):
        fake = stack.chain.add_jetton_transfer(
            WALLET_RAW, amount=USDT, master=FAKE_MASTER, source=STRANGER
        )
        fake["forward_payload"] = huge_body()
    stack.chain.add_jetton_transfer(WALLET_RAW, amount=USDT, comment=paid.id)
    watcher = stack.watcher()
    assert await watcher.poll() == 1
    assert await stack.balance(ALICE) == USDT_PACK_UNITS
    # The next pass reads behind the cursor again, over the same records: nothing twice.
    assert await watcher.poll() == 0
    assert await stack.balance(ALICE) == USDT_PACK_UNITS
    assert await inconsistent_users(stack.store) == []


async def test_an_answer_too_large_even_for_one_record_stops_the_pass_and_skips_nothing(
    stack: TonStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No record on the chain is near 8 MiB; a proxy that pads every answer is a failure like
    # any other: the pass stops (the watcher backs off), the cursor kept, nothing stepped over.
    paid = (await stack.shop.create_order(ALICE, "gram", str(GRAM))).order
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, source=STRANGER, body=huge_body())
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    watcher = stack.watcher()
    monkeypatch.setattr(toncenter_module, "MAX_BODY", 64 * 1024)
    with pytest.raises(ToncenterTooLarge, match="too large"):
        await watcher.poll()
    assert await stack.books.recorded() == []
    monkeypatch.undo()
    assert await watcher.poll() == 2
    assert await stack.balance(ALICE) == PACK_UNITS
