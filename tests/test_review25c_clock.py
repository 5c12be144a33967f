"""A proxy that dates its answers by its own clock and adds ``Age``: the bot's lead hidden.

ton25 reads toncenter's clock as ``Date`` plus ``Age`` (RFC 9111: a cache keeps the origin's
``Date``). A proxy that gives its own time as ``Date`` (the time it served the copy) and its
copy's age as ``Age`` makes toncenter look ahead by that age: a bot twenty minutes fast behind
one whose copies are twenty minutes old looks right, starts its stream ten minutes in the
chain's future, and the payment made at once is never read. Without ``Age`` (before ton25) it
was credited.

Seen from the bot this reply is the very one of a cache that kept toncenter's ``Date`` for 20
minutes: the two cannot be told apart. An ``Age`` is counted up to ``MAX_AGE_S`` only (half the
first read's margin), so a lead it hides stays inside the margin; past it, the lead looks larger
and the read starts earlier (older history booked as not Veil's, never a payment passed over).

And two replicas on one database, one fast and one right, read from the same kept start.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from models import MasterKey
from tests.fakes.toncenter import FakeToncenter
from tests.test_ton25_clock import bot_life
from tests.tonstack import ALICE, WALLET_RAW

if TYPE_CHECKING:
    from pathlib import Path

GRAM = 1_000_000_000
PACK_UNITS = 250_000_000
PROXY_AGE_S = 1200
FAST_S = 900


async def test_a_fast_bot_behind_a_proxy_dating_its_copies_now_loses_no_payment(
    tmp_path: Path,
) -> None:
    key = MasterKey.generate()
    # ``Age`` alone: the ``Date`` is the fake's own, now.
    async with (
        FakeToncenter(cache_age=str(PROXY_AGE_S)) as chain,
        bot_life(tmp_path / "veil.db", chain, key, lambda: time.time() + PROXY_AGE_S) as fast,
    ):
        assert await fast.watcher().poll() == 0
        invoice = await fast.shop.create_order(ALICE, "gram", str(GRAM))
        chain.add_transaction(WALLET_RAW, value=GRAM, comment=invoice.order.id)
        await fast.watcher().poll()
        assert await fast.balance(ALICE) == PACK_UNITS


async def test_two_replicas_one_fast_one_right_credit_a_payment_once(tmp_path: Path) -> None:
    # Webhook replicas share one database: the fast one starts the stream (``since`` five
    # minutes in the chain's future) and keeps its earlier start; the one whose clock is right
    # reads from that start too, and the payment is credited once, whichever books it.
    key, path = MasterKey.generate(), tmp_path / "veil.db"
    async with (
        FakeToncenter() as chain,
        bot_life(path, chain, key, lambda: time.time() + FAST_S) as fast,
        bot_life(path, chain, key, time.time) as right,
    ):
        assert await fast.watcher().poll() == 0
        cursor = await right.books.cursor("gram")
        assert cursor.since > time.time()
        assert cursor.chain_since == cursor.since - FAST_S
        invoice = await right.shop.create_order(ALICE, "gram", str(GRAM))
        chain.add_transaction(WALLET_RAW, value=GRAM, comment=invoice.order.id)
        assert await right.watcher().poll() == 1
        assert await fast.watcher().poll() == 0
        assert await right.balance(ALICE) == PACK_UNITS
        assert [b.payment.user_id for b in right.told + fast.told] == [ALICE]
