"""One user, two hands, and money: a shop button pressed on the phone and on the laptop.

The user who taps "Monthly plan" on both devices gets a subscription link on each. Paying one
subscribes them; paying the other too subscribed them twice, two charges every 30 days for one
plan, with nothing in the bot to tell them so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.test_bot_payments import STAR, USER, balance_units, paying_stack, pre_checkout

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_second_plan_link_is_refused_while_the_plan_runs(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, plan_stars=300, plan_units=400 * STAR) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "/buy")
        await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
        menu = stack.telegram.sent_messages(USER)[0]
        plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
        for _device in range(2):  # the phone's tap and the laptop's
            stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
        await stack.telegram.wait_for(
            "createInvoiceLink", lambda _c: len(stack.telegram.calls_of("createInvoiceLink")) == 2
        )
        phone, laptop = (c.params["payload"] for c in stack.telegram.calls_of("createInvoiceLink"))
        assert (await pre_checkout(stack, USER, phone, 300))["ok"] is True
        stack.telegram.pay(USER, payload=phone, total_amount=300, is_recurring=True)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        answer = await pre_checkout(stack, USER, laptop, 300)
        assert answer["ok"] is False  # nothing charged: the plan runs already
        assert answer["error_message"] == texts("precheckout_plan_active")
        assert await balance_units(stack, USER) == 400 * STAR
