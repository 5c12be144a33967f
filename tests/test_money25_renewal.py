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

from models import MasterKey, Store
from services.shop import RENEWAL_GRACE_S, SUBSCRIPTION_PERIOD, IncomingPayment, Plan, Shop
from tests.harness import Clock, wait_until
from tests.test_bot_payments import STAR, USER, paying_stack, pre_checkout
from tests.test_money25_plan_refund import PLAN, _menus

if TYPE_CHECKING:
    from pathlib import Path

START = 1_750_000_000


async def _subscribed(shop: Shop, clock: Clock, charge: str = "first") -> str:
    """A plan order paid by subscription at the clock's time; its order id."""
    order = await shop.create_plan_order(USER)
    assert await shop.check_pre_checkout(USER, order.id, "XTR", 300) is None
    paid = await shop.record_payment(
        IncomingPayment(
            USER,
            order.id,
            "XTR",
            300,
            charge,
            is_recurring=True,
            subscription_expires_at=int(clock()) + SUBSCRIPTION_PERIOD,
        )
    )
    assert paid.new
    return order.id


async def test_a_plan_order_is_refused_while_the_renewal_is_due_and_taken_after(
    tmp_path: Path,
) -> None:
    clock = Clock(START)
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        shop = Shop(store, (), plan=Plan(300, 400 * STAR), clock=clock)
        subscription = await _subscribed(shop, clock)
        end = START + SUBSCRIPTION_PERIOD
        clock.now = end + 3600  # the period ended an hour ago; Telegram's renewal not here yet
        assert await shop.plan_running(USER) is None
        assert await shop.renewal_due(USER) == end
        second = await shop.create_plan_order(USER)
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) == "plan_renewal_due"
        # The renewal comes (the same order, a new charge): the plan runs again.
        await shop.record_payment(
            IncomingPayment(
                USER,
                subscription,
                "XTR",
                300,
                "renewal",
                is_recurring=True,
                subscription_expires_at=end + SUBSCRIPTION_PERIOD,
            )
        )
        assert await shop.plan_running(USER) == end + SUBSCRIPTION_PERIOD
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) == "plan_active"
    finally:
        await store.close()


async def test_a_renewal_that_never_comes_frees_the_plan_a_day_after_its_end(
    tmp_path: Path,
) -> None:
    clock = Clock(START)
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        shop = Shop(store, (), plan=Plan(300, 400 * STAR), clock=clock, order_ttl=10**8)
        await _subscribed(shop, clock)
        end = START + SUBSCRIPTION_PERIOD
        second = await shop.create_plan_order(USER)
        clock.now = end + RENEWAL_GRACE_S - 1
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) == "plan_renewal_due"
        clock.now = end + RENEWAL_GRACE_S  # cancelled in Telegram, the bot was not told
        assert await shop.renewal_due(USER) is None
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) is None
    finally:
        await store.close()


async def test_a_refunded_plan_awaits_no_renewal(tmp_path: Path) -> None:
    # A refund cancels the subscription (test_money25_plan_refund): no renewal comes of it.
    clock = Clock(START)
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        shop = Shop(store, (), plan=Plan(300, 400 * STAR), clock=clock)
        subscription = await _subscribed(shop, clock)
        end = START + SUBSCRIPTION_PERIOD
        await shop.record_payment(
            IncomingPayment(
                USER,
                subscription,
                "XTR",
                300,
                "renewal",
                is_recurring=True,
                subscription_expires_at=end + SUBSCRIPTION_PERIOD,
            )
        )
        assert await shop.record_refund(USER, "renewal")  # the first period is kept
        clock.now = end + 60
        assert await shop.renewal_due(USER) is None
        second = await shop.create_plan_order(USER)
        assert await shop.check_pre_checkout(USER, second.id, "XTR", 300) is None
    finally:
        await store.close()


async def test_the_plan_button_says_the_renewal_is_due_instead_of_a_second_link(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        stack.telegram.send_text(USER, "/buy")
        await wait_until(lambda: len(_menus(stack)) == 1)
        menu = _menus(stack)[0]
        plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
        stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
        link = await stack.telegram.wait_for("createInvoiceLink")
        payload = str(link.params["payload"])
        assert (await pre_checkout(stack, USER, payload, 300))["ok"] is True
        # Paid a month ago (its period ended an hour ago) and not renewed yet.
        ended = int(time.time()) - 3600
        stack.telegram.pay(
            USER,
            payload=payload,
            total_amount=300,
            is_recurring=True,
            subscription_expiration_date=ended,
        )
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
        told = await stack.telegram.wait_for(
            "sendMessage", lambda c: "Telegram renews it" in c.params["text"]
        )
        assert "reply_markup" not in told.params  # no link
        assert len(stack.telegram.calls_of("createInvoiceLink")) == 1
        assert await stack.veil.chat.wait_idle(10)
