"""The ``being_paid`` window runs from an order's latest approval, not only its first.

An order approved, its payment never came (Telegram failed it), approved again over a minute
later: the window was anchored on the first approval, so a third pre-checkout a few seconds
after the second (the same invoice paid on another device) was let through: two charges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from services.shop import PAYING_S, IncomingPayment, Pack, Plan
from tests.harness import Clock
from tests.plan_helpers import START, opened_shop
from tests.test_bot_payments import STAR, USER

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from services.shop import Shop

PACK_STARS = 50
PACKS = [Pack("50", PACK_STARS, 50 * STAR)]
PLAN = Plan(300, 400)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def shop(tmp_path: Path, clock: Clock) -> AsyncIterator[Shop]:
    async with opened_shop(tmp_path, clock, PACKS, PLAN) as opened:
        yield opened


async def _pre_checkout(shop: Shop, order_id: str) -> str | None:
    """The shop's answer to the pack order's pre-checkout: None approves it."""
    return await shop.check_pre_checkout(USER, order_id, "XTR", PACK_STARS)


async def _approved_twice(shop: Shop, clock: Clock) -> str:
    """A pack order approved, its payment never come, approved again 70 s later: its id."""
    order = await shop.create_order(USER, "50")
    assert await _pre_checkout(shop, order.id) is None
    clock.advance(70)  # that payment never came: Pay tapped again
    assert await _pre_checkout(shop, order.id) is None
    return order.id


async def test_a_second_payment_within_a_minute_of_a_later_approval_is_refused(
    shop: Shop, clock: Clock
) -> None:
    order = await _approved_twice(shop, clock)
    clock.advance(10)  # the same invoice paid on the laptop meanwhile
    assert await _pre_checkout(shop, order) == "being_paid"
    # A minute after the latest approval (no payment came of it either) it may be paid.
    clock.advance(PAYING_S - 10)
    assert await _pre_checkout(shop, order) is None


async def test_a_lost_second_approval_is_taken_back_and_the_first_still_counts(
    shop: Shop, clock: Clock
) -> None:
    order = await _approved_twice(shop, clock)
    await shop.approval_lost(order)  # Telegram never took that answer
    clock.advance(1)
    assert await _pre_checkout(shop, order) is None
    await shop.approval_lost(order)
    # The first approval's payment, booked long after the order expired, is not "expired".
    kept = await shop.order(order)
    assert kept is not None
    assert kept.approved_at == START
    clock.advance(2 * 86_400)
    assert await shop.purge_expired_orders() == 0
    paid = await shop.record_payment(IncomingPayment(USER, order, "XTR", PACK_STARS, "charge-1"))
    assert (paid.new, paid.flagged, paid.units) == (True, False, 50 * STAR)


async def test_a_plan_last_approved_a_moment_ago_refuses_another_plan_link(
    shop: Shop, clock: Clock
) -> None:
    phone = await shop.create_plan_order(USER)
    laptop = await shop.create_plan_order(USER)
    assert await shop.check_pre_checkout(USER, phone.id, "XTR", 300) is None
    clock.advance(70)
    assert await shop.check_pre_checkout(USER, phone.id, "XTR", 300) is None
    clock.advance(10)
    assert await shop.check_pre_checkout(USER, laptop.id, "XTR", 300) == "plan_being_paid"
