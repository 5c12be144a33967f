"""A refunded plan payment cancels its subscription: Telegram charges the user no more for it.

The admin's /refund gave the Stars back and took the credit back, and the subscription went on:
Telegram charged the user again every 30 days for the plan the admin had refunded. Now the bot
cancels it (``editUserStarSubscription(is_canceled=True)``) once the refund is made; a failure
of that call undoes nothing of the refund and is told to the admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from aiogram.exceptions import TelegramBadRequest

from tests.fakes.telegram import FakeTelegram
from tests.harness import wait_until
from tests.plan_helpers import (
    PLAN,
    admin_told,
    cancel_of,
    cancel_refused,
    cancels,
    menus,
    pay_plan,
    press_plan,
    subscribe,
)
from tests.test_bot_payments import ADMIN, USER, balance_units, buy_pack, paying_stack
from tests.test_fake_telegram import close_bot, make_bot

if TYPE_CHECKING:
    from pathlib import Path


async def test_refunding_a_plan_payment_cancels_its_subscription(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        _payload, charge = await subscribe(stack)
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        told = await admin_told(stack, 1)
        assert told == (
            f"Refunded 300 ⭐ to user {USER}; 400 ★ of credit taken back.\n"
            "The monthly plan it paid for was cancelled too:"
            " Telegram will not charge the user for it again."
        )
        assert cancels(stack) == [cancel_of(charge)]
        assert stack.telegram.payments.subscriptions[charge].canceled is True
        assert await balance_units(stack, USER) == 0
        # Refunded and cancelled, the plan is over: the button offers a new link again.
        shown = len(menus(stack))
        stack.telegram.send_text(USER, "/buy")
        await wait_until(lambda: len(menus(stack)) > shown)
        press_plan(stack, menus(stack)[-1])
        await wait_until(lambda: len(stack.telegram.calls_of("createInvoiceLink")) == 2)


async def test_refunding_a_renewal_cancels_the_subscription_by_its_first_charge(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, first = await subscribe(stack)
        renewal = await pay_plan(stack, payload)
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        assert "was cancelled too" in await admin_told(stack, 1)
        assert cancels(stack) == [cancel_of(first)]
        assert stack.telegram.payments.subscriptions[first].canceled is True


async def test_a_pack_refund_cancels_nothing(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        invoice = await buy_pack(stack, USER)
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        assert await admin_told(stack, 1) == (
            f"Refunded 50 ⭐ to user {USER}; 50 ★ of credit taken back."
        )
        assert cancels(stack) == []


async def test_a_cancellation_telegram_refuses_keeps_the_refund_and_is_told_and_retried(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        _payload, charge = await subscribe(stack)
        cancel_refused(stack, "Bad Request: CHARGE_ID_INVALID")
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        told = await admin_told(stack, 1)
        assert told.startswith(f"Refunded 300 ⭐ to user {USER}; 400 ★ of credit taken back.\n")
        assert "did not cancel the monthly plan" in told
        assert "Bad Request: CHARGE_ID_INVALID" in told
        assert f"/refund {charge} again" in told
        assert stack.telegram.payments.subscriptions[charge].canceled is False
        assert await balance_units(stack, USER) == 0  # the refund stands
        assert len(stack.telegram.calls_of("refundStarPayment")) == 1
        # The same /refund again: already refunded (nothing taken twice), cancelled now.
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        assert await admin_told(stack, 2) == (
            "That payment was already refunded.\n"
            "The monthly plan it paid for was cancelled too:"
            " Telegram will not charge the user for it again."
        )
        assert stack.telegram.payments.subscriptions[charge].canceled is True
        assert await balance_units(stack, USER) == 0


async def test_the_fake_speaks_edit_user_star_subscription_as_the_bot_api_does() -> None:
    async with FakeTelegram() as telegram:
        telegram.send_text(USER, "/start")  # the user is known to the fake
        charge = telegram.pay(USER, payload="p1", total_amount=300, is_recurring=True)
        renewal = telegram.pay(USER, payload="p1", total_amount=300, is_recurring=True)
        pack = telegram.pay(USER, payload="p2", total_amount=50)
        bot = make_bot(telegram)
        try:
            assert await bot.edit_user_star_subscription(USER, charge, is_canceled=True) is True
            assert telegram.payments.subscriptions[charge].canceled is True
            assert telegram.payments.subscriptions[charge].renewals == [renewal]
            assert await bot.edit_user_star_subscription(USER, charge, is_canceled=False) is True
            assert telegram.payments.subscriptions[charge].canceled is False
            for user, wrong in ((USER, pack), (USER, renewal), (USER + 1, charge), (USER, "x")):
                with pytest.raises(TelegramBadRequest) as refused:
                    await bot.edit_user_star_subscription(user, wrong, is_canceled=True)
                assert refused.value.message == "Bad Request: CHARGE_ID_INVALID"
            assert telegram.payments.subscriptions[charge].canceled is False
        finally:
            await close_bot(bot)
