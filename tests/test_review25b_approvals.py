"""Two pre-checkouts judged at once are not both approved: the check and the approval are one.

The shop read the order (and the user's other plan orders), judged, and wrote the approval in a
transaction of its own. Two pre-checkouts handled at the same time (the invoice paid on the
phone and on the laptop, aiogram handling both updates at once, or two replicas) both read no
approval and both were approved: two charges for one order, or two subscriptions for two plan
links. The approval is now written only if no other approval of the order, nor of another plan
order of the user's, came in meanwhile, decided under the write lock.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from models import MasterKey, Store
from services.shop import IncomingPayment, Pack, Plan, Shop
from tests.harness import Clock
from tests.test_bot_payments import STAR, USER

if TYPE_CHECKING:
    from pathlib import Path

PACK_STARS = 50
START = 1_750_000_000


async def test_one_order_paid_on_two_devices_at_once_is_approved_once(tmp_path: Path) -> None:
    clock = Clock(START)
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        shop = Shop(store, [Pack("50", PACK_STARS, 50 * STAR)], Plan(300, 400), clock=clock)
        order = await shop.create_order(USER, "50")
        verdicts = await asyncio.gather(
            shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS),
            shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS),
        )
        assert sorted(verdicts, key=str) == [None, "being_paid"]
    finally:
        await store.close()


async def test_two_plan_links_paid_at_once_make_one_subscription(tmp_path: Path) -> None:
    clock = Clock(START)
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    replica_store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        # The bot and a replica on one database, each judging one of the two links.
        shop = Shop(store, [Pack("50", PACK_STARS, 50 * STAR)], Plan(300, 400), clock=clock)
        replica = Shop(
            replica_store, [Pack("50", PACK_STARS, 50 * STAR)], Plan(300, 400), clock=clock
        )
        phone = await shop.create_plan_order(USER)
        laptop = await shop.create_plan_order(USER)
        verdicts = await asyncio.gather(
            shop.check_pre_checkout(USER, phone.id, "XTR", 300),
            shop.check_pre_checkout(USER, laptop.id, "XTR", 300),
        )
        assert sorted(verdicts, key=str) == [None, "plan_being_paid"]
        approved = phone if verdicts[0] is None else laptop
        # Its payment comes: the other link stays refused, by either process.
        await replica.record_payment(
            IncomingPayment(
                USER,
                approved.id,
                "XTR",
                300,
                "first",
                is_recurring=True,
                subscription_expires_at=START + 30 * 86_400,
            )
        )
        other = laptop if approved is phone else phone
        assert await replica.check_pre_checkout(USER, other.id, "XTR", 300) == "plan_active"
    finally:
        await replica_store.close()
        await store.close()
