"""A plan being paid is a plan: a second plan link paid in the same minute is refused.

While a plan runs the plan button sends no link (twice24), but "a plan runs" did not cover the
plan being paid: a second link paid in the same minute as the first, before the first's payment
was booked, subscribed the user twice. (What a user who cancelled their plan in Telegram is
told when they press the button again is checked in test_twice24_money.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import MasterKey, Store
from services.shop import PAYING_S, Plan, Shop
from tests.harness import Clock, wait_until
from tests.test_bot_payments import STAR, USER, paying_stack, pre_checkout

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_second_plan_link_paid_while_the_first_is_being_paid_is_refused(
    tmp_path: Path,
) -> None:
    # Two plan links (the button pressed on the phone and on the laptop), paid within the same
    # minute: the first's successful_payment is not booked yet, so no plan runs, and both were
    # approved: two subscriptions, two charges every 30 days for one plan.
    clock = Clock(1_750_000_000)
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        shop = Shop(store, (), plan=Plan(300, 400 * STAR), clock=clock)
        phone = await shop.create_plan_order(USER)
        laptop = await shop.create_plan_order(USER)
        assert await shop.check_pre_checkout(USER, phone.id, "XTR", 300) is None
        clock.advance(5)
        assert await shop.check_pre_checkout(USER, laptop.id, "XTR", 300) == "plan_being_paid"
        # The first never paid (Telegram failed it): a minute on, the other may be.
        clock.advance(PAYING_S)
        assert await shop.check_pre_checkout(USER, laptop.id, "XTR", 300) is None
    finally:
        await store.close()


async def test_the_second_plan_link_is_told_the_plan_is_being_paid(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, plan_stars=300, plan_units=400 * STAR) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "/buy")
        await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
        menu = stack.telegram.sent_messages(USER)[0]
        plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
        for _device in range(2):  # the phone's press and the laptop's
            stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
        await wait_until(lambda: len(stack.telegram.calls_of("createInvoiceLink")) == 2)
        phone, laptop = (c.params["payload"] for c in stack.telegram.calls_of("createInvoiceLink"))
        assert (await pre_checkout(stack, USER, phone, 300))["ok"] is True
        refused = await pre_checkout(stack, USER, laptop, 300)
        assert refused["ok"] is False
        assert refused["error_message"] == texts("precheckout_plan_being_paid")
        stack.telegram.pay(USER, payload=phone, total_amount=300, is_recurring=True)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        assert await stack.veil.chat.wait_idle(10)
