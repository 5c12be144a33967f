"""The ``being_paid`` window runs from an order's latest approval, not only its first.

An order approved, its payment never came (Telegram failed it), approved again over a minute
later: the window was anchored on the first approval, so a third pre-checkout a few seconds
after the second (the same invoice paid on another device) was let through: two charges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import MasterKey, Store
from services.shop import PAYING_S, IncomingPayment, Pack, Plan, Shop
from tests.harness import Clock
from tests.test_bot_payments import STAR, USER

if TYPE_CHECKING:
    from pathlib import Path

PACK_STARS = 50


async def _shop(tmp_path: Path, clock: Clock) -> tuple[Store, Shop]:
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    return store, Shop(store, [Pack("50", PACK_STARS, 50 * STAR)], Plan(300, 400), clock=clock)


async def test_a_second_payment_within_a_minute_of_a_later_approval_is_refused(
    tmp_path: Path,
) -> None:
    clock = Clock(1_750_000_000)
    store, shop = await _shop(tmp_path, clock)
    try:
        order = await shop.create_order(USER, "50")
        assert await shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS) is None
        clock.advance(70)  # that payment never came: Pay tapped again
        assert await shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS) is None
        clock.advance(10)  # the same invoice paid on the laptop meanwhile
        assert await shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS) == "being_paid"
        # A minute after the latest approval (no payment came of it either) it may be paid.
        clock.advance(PAYING_S - 10)
        assert await shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS) is None
    finally:
        await store.close()


async def test_a_lost_second_approval_is_taken_back_and_the_first_still_counts(
    tmp_path: Path,
) -> None:
    clock = Clock(1_750_000_000)
    store, shop = await _shop(tmp_path, clock)
    try:
        order = await shop.create_order(USER, "50")
        assert await shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS) is None
        clock.advance(70)
        assert await shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS) is None
        await shop.approval_lost(order.id)  # Telegram never took that answer
        clock.advance(1)
        assert await shop.check_pre_checkout(USER, order.id, "XTR", PACK_STARS) is None
        await shop.approval_lost(order.id)
        # The first approval's payment, booked long after the order expired, is not "expired".
        kept = await shop.order(order.id)
        assert kept is not None
        assert kept.approved_at == 1_750_000_000
        clock.advance(2 * 86_400)
        assert await shop.purge_expired_orders() == 0
        paid = await shop.record_payment(
            IncomingPayment(USER, order.id, "XTR", PACK_STARS, "charge-1")
        )
        assert (paid.new, paid.flagged, paid.units) == (True, False, 50 * STAR)
    finally:
        await store.close()


async def test_a_plan_last_approved_a_moment_ago_refuses_another_plan_link(
    tmp_path: Path,
) -> None:
    clock = Clock(1_750_000_000)
    store, shop = await _shop(tmp_path, clock)
    try:
        phone = await shop.create_plan_order(USER)
        laptop = await shop.create_plan_order(USER)
        assert await shop.check_pre_checkout(USER, phone.id, "XTR", 300) is None
        clock.advance(70)
        assert await shop.check_pre_checkout(USER, phone.id, "XTR", 300) is None
        clock.advance(10)
        assert await shop.check_pre_checkout(USER, laptop.id, "XTR", 300) == "plan_being_paid"
    finally:
        await store.close()
