"""review29a: Gram and USDT payments attacked by payers and by a hostile toncenter.

Each case ends with every payment credited once, none lost, and the books sound.
"""

from __future__ import annotations

import base64
import functools
import os
from typing import TYPE_CHECKING

import pytest
from aiogram import Bot
from pytoniq_core.boc.builder import Builder
from structlog.testing import capture_logs

from common.texts import Catalogs
from handlers.ton import TonNotifier
from models import ton as ton_storage
from models.ton import TonCursor, TonPayment
from services.audit import Auditor
from services.ton import toncenter as toncenter_module
from services.ton.errors import ToncenterTooLarge
from services.ton.rules import credit
from tests.books import inconsistent_users
from tests.tonstack import ALICE, BOB, DUST, WALLET_RAW, TonStack, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from pytoniq_core.boc.cell import Cell

    from models import Database

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


TOKEN = "123456:REVIEW29A"  # a bot that sends nothing here: the notice's text alone
FIVE_GRAM_UNITS = 1_300_000_000  # the 5-Gram pack: 1,300 ★, 260 ★ a Gram (the 1-Gram: 250)


async def audited(stack: TonStack) -> list[str]:
    """What the audit finds wrong (empty when the books prove)."""
    return (await Auditor(stack.store, []).run()).problems


async def test_part_of_a_larger_pack_buys_no_more_than_the_smallest_packs_rate(
    stack: TonStack,
) -> None:
    # Each payment was credited at its order's rate, whatever part of the order it paid: order
    # the 5-Gram pack (260 ★ a Gram), send 1 Gram and leave it there, and the Gram bought 260 ★
    # where the 1-Gram pack sells 250; again and again (the order cap counts an order paid in
    # part, but it expires in an hour), every Gram at the largest pack's rate.
    paid = (await stack.shop.create_order(ALICE, "gram", str(5 * GRAM))).order
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    watcher = stack.watcher()
    await watcher.poll()
    assert await stack.balance(ALICE) == PACK_UNITS  # the 1-Gram pack's rate, not 260 ★
    assert stack.told[-1].payment.reason == "underpaid"
    # The rest completes the pack: all five Gram at its rate, the pack's credit exactly.
    stack.chain.add_transaction(WALLET_RAW, value=4 * GRAM, comment=paid.id)
    await watcher.poll()
    assert await stack.balance(ALICE) == FIVE_GRAM_UNITS
    assert [b.payment.reason for b in stack.told] == ["underpaid", None]
    assert await audited(stack) == []
    assert await inconsistent_users(stack.store) == []


async def test_an_exchange_short_by_its_fee_then_the_rest_gets_the_whole_pack(
    stack: TonStack,
) -> None:
    # An exchange that takes its fee from the amount sends a little less; the payer sends the
    # rest as told, in two payments: the pack's credit in full, and more paid is at its rate.
    # (The second, dust, is credited without a message since fix30a.)
    paid = (await stack.shop.create_order(ALICE, "gram", str(5 * GRAM))).order
    short = 5 * GRAM - 30_000_001
    for value in (short, DUST["gram"], 20_000_001 + GRAM):
        stack.chain.add_transaction(WALLET_RAW, value=value, comment=paid.id)
    await stack.watcher().poll()
    extra = GRAM * FIVE_GRAM_UNITS // (5 * GRAM)
    assert await stack.balance(ALICE) == FIVE_GRAM_UNITS + extra
    assert [b.payment.reason for b in stack.told] == ["underpaid", "overpaid"]
    assert stack.told[0].payment.units == short * PACK_UNITS // GRAM
    assert await audited(stack) == []
    assert await inconsistent_users(stack.store) == []


async def test_the_audit_still_proves_payments_credited_at_their_orders_rate_before(
    stack: TonStack,
) -> None:
    # Books written before review29a credited every part of an order at the order's rate,
    # each rounded down on its own (a µ★ short of the whole at that rate, here): still sound.
    # Edited by hand, a part credited above its order's rate, or an order paid in full whose
    # payments credited more than all they brought at its rate, are found.
    before, above, more = [
        (await stack.shop.create_order(ALICE, "gram", str(5 * GRAM))).order for _ in range(3)
    ]
    rate = (5 * GRAM, FIVE_GRAM_UNITS)
    rows = [
        (before, GRAM - 1, "underpaid", rate[1], 0),
        (before, 4 * GRAM + 1, None, rate[1], 0),
        (above, GRAM, "underpaid", rate[1] + 5 * GRAM, 0),
        (more, 5 * GRAM, None, rate[1], 1),
    ]

    def booked_before(db: Database) -> None:
        for order, amount, reason, rate_units, edit in rows:
            payment = TonPayment(
                hash=os.urandom(32).hex(),
                asset="gram",
                lt=1,
                utime=1,
                sender=STRANGER,
                amount=amount,
                comment=order.id,
                order_id=order.id,
                status="credited",
                reason=reason,
                late=False,
                user_id=ALICE,
                units=amount * rate_units // rate[0] + edit,
                created_at=1,
                rate_amount=rate[0],
                rate_units=rate_units,
                credited_at=1,
            )
            ton_storage.insert_payment(db, payment)
            credit(db, payment, 1)

    await stack.store.write(booked_before)
    problems = await audited(stack)
    assert len(problems) == 2, problems
    assert any(line.endswith("credited above its order's rate") for line in problems)
    assert any(
        line.startswith(f"ton order {more.id} ") and "credited 1300000001 µ★" in line
        for line in problems
    )
    assert await inconsistent_users(stack.store) == []


async def test_words_that_name_two_orders_once_joined_are_left_to_the_admins(
    stack: TonStack,
) -> None:
    # Joined across a dash, one word names one order and the words either side another: which
    # the payer meant is the admins' to say, as for any comment naming two.
    first = (await stack.shop.create_order(ALICE, "gram", str(GRAM))).order
    second = (await stack.shop.create_order(BOB, "gram", str(GRAM))).order
    comment = f"{first.id[:4]}-{first.id[4:]} {second.id}"
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=comment)
    await stack.watcher().poll()
    assert [(p.status, p.reason) for p in await stack.books.recorded()] == [
        ("unmatched", "two_orders")
    ]
    assert await stack.balance(ALICE) == await stack.balance(BOB) == 0


async def test_an_invoice_paid_twice_or_topped_up_is_credited_and_the_user_told(
    stack: TonStack,
) -> None:
    # A payment naming an order paid in full was kept unmatched for an admin, and its payer
    # heard nothing: a wallet that sent the invoice twice (a tap again on a slow confirmation),
    # a friend who paid it too. It is credited to the order's user, at what it buys as a pack
    # (the pack again for the same amount; a top-up of 1 Gram at the 1-Gram pack's rate, not
    # the 5-Gram pack's), and they are told.
    paid = (await stack.shop.create_order(ALICE, "gram", str(5 * GRAM))).order
    for value in (5 * GRAM, 5 * GRAM, GRAM):
        stack.chain.add_transaction(WALLET_RAW, value=value, comment=paid.id)
    await stack.watcher().poll()
    assert await stack.balance(ALICE) == 2 * FIVE_GRAM_UNITS + PACK_UNITS
    assert [(b.payment.status, b.payment.reason) for b in stack.told] == [
        ("credited", None),
        ("credited", "already_paid"),
        ("credited", "already_paid"),
    ]
    assert await stack.books.unmatched() == []
    notices = [TonNotifier(Bot(TOKEN), Catalogs()).text(b) for b in stack.told]
    assert notices[1] == (
        f"Received 5 GRAM for order {paid.id}, which was paid already: it is credited all the"
        " same, 1300 ★ added. Balance: 2600 ★.\nFurther payments under 0.1 GRAM naming this"
        " order are credited without a message, unless one completes it: /balance shows them."
    )
    assert await audited(stack) == []
    assert await inconsistent_users(stack.store) == []
