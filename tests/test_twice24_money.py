"""One user, two hands, and money: a shop button or an invoice on the phone and on the laptop.

The user who taps "Monthly plan" on both devices gets a subscription link on each. Paying one
subscribes them; paying the other too subscribed them twice, two charges every 30 days for one
plan, with nothing in the bot to tell them so. One invoice, shown on both devices and paid on
both at once, was approved twice and charged twice (credited twice, the second flagged).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from models import MasterKey, Store
from services.shop import PAYING_S, IncomingPayment, Pack, Shop
from tests.harness import Clock
from tests.test_bot_payments import (
    STAR,
    USER,
    balance_units,
    buy_pack,
    paying_stack,
    pre_checkout,
)

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


async def test_one_invoice_paid_on_two_devices_at_once_is_charged_once(tmp_path: Path) -> None:
    # The phone and the laptop both show the invoice; both press Pay within a second.
    async with paying_stack(tmp_path) as stack:
        texts = stack.veil.catalogs.for_language("en")
        invoice = await buy_pack(stack, USER)
        phone = await pre_checkout(stack, USER, invoice["payload"], 50)
        laptop = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert phone["ok"] is True
        assert laptop["ok"] is False  # the second device's payment never happens
        assert laptop["error_message"] == texts("precheckout_being_paid")
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        assert await balance_units(stack, USER) == 50 * STAR
        again = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert again["error_message"] == texts("precheckout_already_paid")


async def test_an_approved_order_whose_payment_never_came_may_be_paid_later(
    tmp_path: Path,
) -> None:
    # A first attempt approved but never paid (Telegram gave up on it): a minute on, the same
    # invoice is approved again, and paid once.
    clock = Clock(1_750_000_000)
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        shop = Shop(store, Pack.parse_list("50:50000000"), clock=clock)
        order = await shop.create_order(USER, "50")
        assert await shop.check_pre_checkout(USER, order.id, "XTR", 50) is None
        clock.advance(PAYING_S - 1)
        assert await shop.check_pre_checkout(USER, order.id, "XTR", 50) == "being_paid"
        clock.advance(1)
        assert await shop.check_pre_checkout(USER, order.id, "XTR", 50) is None
        paid = await shop.record_payment(IncomingPayment(USER, order.id, "XTR", 50, "charge-1"))
        assert (paid.new, paid.flagged, paid.units) == (True, False, 50 * STAR)
    finally:
        await store.close()


async def test_the_plan_pressed_again_while_it_runs_says_so_and_sends_no_link(
    tmp_path: Path,
) -> None:
    # Paid on the phone; the laptop's /buy menu still offers the plan.
    async with paying_stack(tmp_path, plan_stars=300, plan_units=400 * STAR) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "/buy")
        await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
        menu = stack.telegram.sent_messages(USER)[0]
        plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
        stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
        link = await stack.telegram.wait_for("createInvoiceLink")
        assert (await pre_checkout(stack, USER, link.params["payload"], 300))["ok"] is True
        stack.telegram.pay(
            USER, payload=link.params["payload"], total_amount=300, is_recurring=True
        )
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
        told = await stack.telegram.wait_for(
            "sendMessage", lambda c: str(c.params["text"]).startswith("You already have")
        )
        assert await stack.veil.chat.wait_idle(10)
        until = await stack.veil.shop.plan_running(USER)
        assert until is not None
        day = dt.datetime.fromtimestamp(until, tz=dt.UTC).strftime("%Y-%m-%d")
        assert told.params["text"] == texts("plan_running", until=day)
        assert len(stack.telegram.calls_of("createInvoiceLink")) == 1
    # A plan cancelled in Telegram since (the bot is not told) is told how it goes on, not
    # that it renews by itself (review24d).
    assert "unless you cancelled it" in told.params["text"]
    assert "can be renewed" in told.params["text"]
    assert "You can cancel it" not in told.params["text"]
