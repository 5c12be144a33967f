"""A renewal of a plan that comes while another plan of the user's runs is flagged to the admins.

A plan whose renewal did not come within ``RENEWAL_GRACE_S`` frees the plan button; the user
subscribes anew, and then the old subscription's renewal comes after all (renewed late in
Telegram's settings, or Telegram's charge late): two subscriptions, each charging every 30 days,
and nobody told. Such a payment is still credited (the user paid) but flagged ``second_plan``,
so the admins are told and can /refund it, which cancels that subscription.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.shop import RENEWAL_GRACE_S, SUBSCRIPTION_PERIOD
from tests.harness import Clock
from tests.plan_helpers import START, opened_shop, plan_payment, subscribed
from tests.test_bot_payments import STAR

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_late_renewal_beside_a_new_plan_is_flagged(tmp_path: Path) -> None:
    clock = Clock(START)
    async with opened_shop(tmp_path, clock) as shop:
        old = await subscribed(shop, clock, "first")
        end = START + SUBSCRIPTION_PERIOD
        clock.now = end + RENEWAL_GRACE_S + 60  # no renewal came: the button is free again
        await subscribed(shop, clock, "second")
        clock.advance(3600)
        late = await shop.record_payment(
            plan_payment(old, "late", int(clock()) + SUBSCRIPTION_PERIOD)
        )
        assert late.new
        assert late.units == 400 * STAR  # credited all the same
        assert (late.flagged, late.flag_reason) == (True, "second_plan")


async def test_a_renewal_with_no_other_plan_running_is_not_flagged(tmp_path: Path) -> None:
    clock = Clock(START)
    async with opened_shop(tmp_path, clock) as shop:
        order = await subscribed(shop, clock, "first")
        clock.now = START + SUBSCRIPTION_PERIOD + 60
        renewal = await shop.record_payment(
            plan_payment(order, "renewal", START + 2 * SUBSCRIPTION_PERIOD)
        )
        assert (renewal.new, renewal.flagged) == (True, False)
