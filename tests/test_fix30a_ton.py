"""fix30a: what the last TON review left.

A payment in the other asset, dust notices, bodies too large to hold a comment. Each case
ends with every payment credited once, the books sound and the audit proving.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import pytest
from aiogram import Bot
from pytoniq_core.boc.cell import Cell
from structlog.testing import capture_logs

from common.texts import Catalogs
from handlers.ton import TonNotifier
from models import ton as ton_storage
from models.ton import TonPayment
from services.audit import Auditor
from services.ton.rules import credit
from tests.books import inconsistent_users
from tests.fakes.toncenter import comment_boc
from tests.test_review29a_ton import FAKE_MASTER, STRANGER, huge_body
from tests.tonstack import ALICE, BOB, DUST, WALLET_RAW, TonStack, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from models import Database

GRAM = 1_000_000_000
PACK_UNITS = 250_000_000  # the 1-Gram pack: 250 ★
FIVE_GRAM_UNITS = 1_300_000_000  # the 5-Gram pack: 1,300 ★
USDT = 1_000_000
USDT_PACK_UNITS = 70_000_000  # the 1-USDT pack: 70 ★
TOKEN = "123456:FIX30A"  # a bot that sends nothing here: the notice's text alone
QUIET = (
    "Further payments under {} naming this order are credited without a message, unless one"
    " completes it: /balance shows them."
)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[TonStack]:
    async with ton_stack(tmp_path / "veil.db") as parts:
        yield parts


def notice(stack: TonStack, index: int) -> str:
    """The English text of the ``index``-th notice the watcher sent."""
    return TonNotifier(Bot(TOKEN), Catalogs()).text(stack.told[index])


async def proven(stack: TonStack) -> None:
    """The audit finds nothing wrong, and every payment has its ledger row."""
    assert (await Auditor(stack.store, []).run()).problems == []
    assert await inconsistent_users(stack.store) == []


async def test_a_payment_in_the_other_asset_is_credited_at_its_own_rate_and_its_payer_told(
    stack: TonStack,
) -> None:
    # USDT sent with a Gram order's comment (or Gram with a USDT order's) was kept unmatched
    # for an admin, and its payer heard nothing. It is credited to the order's user at what
    # its amount buys as a pack of its own asset, and they are told; it pays no part of the
    # order, which the right asset pays in full after it, at the order's rate.
    gram = (await stack.shop.create_order(ALICE, "gram", str(GRAM))).order
    usdt = (await stack.shop.create_order(BOB, "usdt", str(USDT))).order
    stack.chain.add_transaction(WALLET_RAW, value=5 * GRAM, comment=usdt.id)
    stack.chain.add_jetton_transfer(WALLET_RAW, amount=USDT, comment=gram.id)
    watcher = stack.watcher()
    await watcher.poll()
    assert await stack.books.unmatched() == []
    assert await stack.balance(ALICE) == USDT_PACK_UNITS
    assert await stack.balance(BOB) == FIVE_GRAM_UNITS  # the 5-Gram pack's rate
    assert [(b.payment.user_id, b.payment.reason) for b in stack.told] == [
        (BOB, "wrong_asset"),
        (ALICE, "wrong_asset"),
    ]
    assert notice(stack, 1) == (
        f"Received 1 USDT for order {gram.id}, whose invoice asked for 1 GRAM: it is credited"
        " all the same, 70 ★ added (what 1 USDT buys). Balance: 70 ★.\n" + QUIET.format("0.1 USDT")
    )
    await proven(stack)
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=gram.id)
    stack.chain.add_jetton_transfer(WALLET_RAW, amount=USDT, comment=usdt.id)
    await watcher.poll()
    assert [b.payment.reason for b in stack.told[2:]] == [None, None]  # each paid in full
    assert await stack.balance(ALICE) == USDT_PACK_UNITS + PACK_UNITS
    assert await stack.balance(BOB) == FIVE_GRAM_UNITS + USDT_PACK_UNITS
    await proven(stack)


async def test_dust_naming_an_order_credits_its_user_without_a_message_each(
    stack: TonStack,
) -> None:
    # Anyone who read a paid order's id on the chain could send dust naming it, each payment
    # crediting its user a little and sending them a message (~0.015 Gram a message). Under a
    # tenth of the cheapest pack, a payment beside the order's own is credited quietly; the
    # one that pays the order in full is told however small, and one at the floor is told
    # with the floor.
    paid = (await stack.shop.create_order(ALICE, "gram", str(GRAM))).order
    values = [GRAM - GRAM // 20, DUST["gram"], GRAM // 20 - DUST["gram"]]  # paid in parts
    values += [DUST["gram"]] * 5 + [GRAM // 10]  # then a stranger's dust, and one at the floor
    for value in values:
        stack.chain.add_transaction(WALLET_RAW, value=value, comment=paid.id, source=STRANGER)
    await stack.watcher().poll()
    dust_units = DUST["gram"] * PACK_UNITS // GRAM
    assert await stack.balance(ALICE) == PACK_UNITS + 5 * dust_units + PACK_UNITS // 10
    assert [(b.payment.reason, b.payment.amount) for b in stack.told] == [
        ("underpaid", GRAM - GRAM // 20),
        (None, GRAM // 20 - DUST["gram"]),
        ("already_paid", GRAM // 10),
    ]
    assert notice(stack, 2).endswith("\n" + QUIET.format("0.1 GRAM"))
    assert await stack.books.unnotified() == []  # none of them is told later either
    await proven(stack)


def _spy_on_parsing(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes (bytes) of every BoC pytoniq-core is asked to parse from now on."""
    sizes: list[int] = []
    parse = Cell.one_from_boc

    def counted(data: Any) -> Cell:  # noqa: ANN401 -- as the library's
        sizes.append(len(data))
        return parse(data)

    monkeypatch.setattr(Cell, "one_from_boc", counted)
    return sizes


async def test_a_body_too_large_to_hold_a_comment_is_never_parsed(
    stack: TonStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytoniq-core parses a body of ~175 KiB in tens of milliseconds, on the event loop: a page
    # of them stalled the bot for a second or more. A body larger than a comment naming an
    # order could be is not parsed: its payment is kept for the admins (``body_too_large``),
    # and so is a comment toncenter decoded as large. A long comment under that size is read.
    paid = (await stack.shop.create_order(ALICE, "gram", str(GRAM))).order
    usdt = (await stack.shop.create_order(BOB, "usdt", str(USDT))).order
    large = comment_boc(f"{paid.id} " + "x" * 4000)
    long = comment_boc("y" * 1500 + f" {paid.id}")
    for body in (huge_body(), large, long):
        stack.chain.add_transaction(WALLET_RAW, value=GRAM, source=STRANGER, body=body)
    stack.chain.add_transaction(
        WALLET_RAW, value=GRAM, comment=f"{paid.id} " + "z" * 4000, comment_in="decoded"
    )
    # A jetton message that large is still no Gram payment, by the op toncenter lists for it.
    notice = stack.chain.add_transaction(WALLET_RAW, value=GRAM, source=STRANGER, body=large)
    notice["in_msg"]["opcode"] = "0x7362d09c"
    # A fake jetton's payload is never read, whatever its size; the real one's as the body.
    fake = stack.chain.add_jetton_transfer(WALLET_RAW, amount=USDT, master=FAKE_MASTER)
    fake["forward_payload"] = huge_body()
    real = stack.chain.add_jetton_transfer(WALLET_RAW, amount=USDT)
    real["forward_payload"] = comment_boc(f"{usdt.id} " + "x" * 4000)
    parsed = _spy_on_parsing(monkeypatch)
    with capture_logs() as logs:
        await stack.watcher().poll()
    assert max(parsed) < len(base64.b64decode(large)), sorted(parsed)[-3:]
    assert [(p.asset, p.status, p.reason) for p in reversed(await stack.books.recorded())] == [
        ("gram", "unmatched", "body_too_large"),
        ("gram", "unmatched", "body_too_large"),
        ("gram", "credited", None),
        ("gram", "unmatched", "body_too_large"),
        ("usdt", "unmatched", "body_too_large"),
    ]
    assert await stack.balance(ALICE) == PACK_UNITS
    kept = await stack.store.read(ton_storage.jetton_gram)
    assert [(g.reason, g.amount) for g in kept] == [("jetton_notification", GRAM)]
    unread = [e for e in logs if e["event"] == "ton.body_too_large"]
    assert [(e["asset"], e["chars"] > 4000) for e in unread] == [("gram", True)] * 3 + [
        ("usdt", True)
    ]
    await proven(stack)


async def test_the_audit_finds_a_payment_in_the_other_asset_booked_wrong(stack: TonStack) -> None:
    # Edited by hand: one in the other asset credited to another user than its order's, one
    # that says ``wrong_asset`` in its order's own asset, one in the other asset that does not
    # say so, one credited more than its amount at its stored rate. Each is found; the order's
    # sums leave them out (no "its payments credited" line for the Gram order).
    gram = (await stack.shop.create_order(ALICE, "gram", str(GRAM))).order
    rows = [
        ("usdt", USDT, BOB, "wrong_asset", 0),
        ("gram", GRAM, ALICE, "wrong_asset", 0),
        ("usdt", USDT, ALICE, None, 0),
        ("usdt", USDT, ALICE, "wrong_asset", 1),
    ]

    def booked(db: Database) -> None:
        for n, (asset, amount, user, reason, edit) in enumerate(rows):
            rate = (USDT, USDT_PACK_UNITS) if asset == "usdt" else (GRAM, PACK_UNITS)
            payment = TonPayment(
                hash=f"{n + 1:064x}",
                asset=asset,  # type: ignore[arg-type]
                lt=n + 1,
                utime=1,
                sender=STRANGER,
                amount=amount,
                comment=gram.id,
                order_id=gram.id,
                status="credited",
                reason=reason,
                late=False,
                user_id=user,
                units=amount * rate[1] // rate[0] + edit,
                created_at=1,
                rate_amount=rate[0],
                rate_units=rate[1],
                credited_at=1,
            )
            ton_storage.insert_payment(db, payment)
            credit(db, payment, 1)

    await stack.store.write(booked)
    problems = (await Auditor(stack.store, []).run()).problems
    assert sorted(line.split(": ", 1)[1] for line in problems) == [
        "credited 70000001 µ★, its amount at its rate is 70000000",
        "its user or asset is not its order's",
        "its user or asset is not its order's",
        "its user or asset is not its order's",
    ], problems
    assert await inconsistent_users(stack.store) == []
