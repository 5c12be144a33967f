"""A plan whose period ended awaits Telegram's renewal for a day: no second subscription meanwhile.

Telegram charges a plan's next period when the current one ends, and its payment may reach the
bot minutes or hours later. Meanwhile the plan button sent a new subscription link, and
pre-checkout let it be paid: the user was subscribed twice. For ``RENEWAL_GRACE_S`` after the
end of a plan that renews by itself (its subscription not refunded, so not cancelled by the
bot), the button says the renewal is due and pre-checkout refuses a plan order.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from services.shop import RENEWAL_GRACE_S, SUBSCRIPTION_PERIOD
from tests.harness import Clock
from tests.plan_helpers import (
    PLAN,
    START,
    opened_shop,
    pay_plan,
    plan_link,
    plan_payment,
    press_plan,
    subscribed,
)
from tests.test_bot_payments import USER, paying_stack

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_plan_order_is_refused_while_the_renewal_is_due_and_taken_after(
    tmp_path: Path,
) -> None:
    clock = Clock(START)
    async with opened_shop(tmp_path, clock) as shop:
        subscription = await subscribed(shop, clock)
        end = START + SUBSCRIPTION_PERIOD
        clock.now = end + 3600  # the period ended an hour ago; Telegram's renewal not here yet
        assert await shop.plan_running(USER) is None
        assert await shop.renewal_due(USER) == end
        second = await shop.create_plan_order(USER)
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) == "plan_renewal_due"
        # The renewal comes (the same order, a new charge): the plan runs again.
        await shop.record_payment(plan_payment(subscription, "renewal", end + SUBSCRIPTION_PERIOD))
        assert await shop.plan_running(USER) == end + SUBSCRIPTION_PERIOD
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) == "plan_active"


async def test_a_renewal_that_never_comes_frees_the_plan_a_day_after_its_end(
    tmp_path: Path,
) -> None:
    clock = Clock(START)
    async with opened_shop(tmp_path, clock, order_ttl=10**8) as shop:
        await subscribed(shop, clock)
        end = START + SUBSCRIPTION_PERIOD
        second = await shop.create_plan_order(USER)
        clock.now = end + RENEWAL_GRACE_S - 1
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) == "plan_renewal_due"
        clock.now = end + RENEWAL_GRACE_S  # cancelled in Telegram, the bot was not told
        assert await shop.renewal_due(USER) is None
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) is None


async def test_a_refunded_plan_awaits_no_renewal(tmp_path: Path) -> None:
    # A refund cancels the subscription (test_money25_plan_refund): no renewal comes of it.
    clock = Clock(START)
    async with opened_shop(tmp_path, clock) as shop:
        subscription = await subscribed(shop, clock)
        end = START + SUBSCRIPTION_PERIOD
        await shop.record_payment(plan_payment(subscription, "renewal", end + SUBSCRIPTION_PERIOD))
        assert await shop.record_refund(USER, "renewal")  # the first period is kept
        clock.now = end + 60
        assert await shop.renewal_due(USER) is None
        second = await shop.create_plan_order(USER)
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) is None


async def test_the_plan_button_says_the_renewal_is_due_instead_of_a_second_link(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await plan_link(stack)
        # Paid a month ago (its period ended an hour ago) and not renewed yet.
        await pay_plan(stack, payload, int(time.time()) - 3600)
        press_plan(stack)
        told = await stack.telegram.wait_for(
            "sendMessage", lambda c: "Telegram renews it" in c.params["text"]
        )
        assert "reply_markup" not in told.params  # no link
        assert len(stack.telegram.calls_of("createInvoiceLink")) == 1
        assert await stack.veil.chat.wait_idle(10)
