"""A refunded plan payment cancels its subscription: Telegram charges the user no more for it.

The admin's /refund gave the Stars back and took the credit back, and the subscription went on:
Telegram charged the user again every 30 days for the plan the admin had refunded. Now the bot
cancels it (``editUserStarSubscription(is_canceled=True)``) once the refund is made; a failure
of that call undoes nothing of the refund and is told to the admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from aiogram.exceptions import TelegramBadRequest

from tests.fakes.telegram import FakeTelegram
from tests.harness import wait_until
from tests.test_bot_payments import ADMIN, STAR, USER, balance_units, paying_stack, pre_checkout
from tests.test_fake_telegram import close_bot, make_bot

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

PLAN = {"plan_stars": 300, "plan_units": 400 * STAR}


async def _subscribe(stack: Stack) -> tuple[str, str]:
    """/buy, the plan button, its link paid by subscription: (payload, first charge id)."""
    stack.telegram.send_text(USER, "/buy")
    await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
    menu = stack.telegram.sent_messages(USER)[0]
    plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
    stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
    link = await stack.telegram.wait_for("createInvoiceLink")
    payload = str(link.params["payload"])
    assert (await pre_checkout(stack, USER, payload, 300))["ok"] is True
    charge = stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
    await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
    return payload, charge


async def _admin_told(stack: Stack, count: int) -> str:
    return str((await stack.final_messages(ADMIN, count))[count - 1]["text"])


def _menus(stack: Stack) -> list[dict[str, Any]]:
    """The /buy menus the user was sent (the plan's is the last button)."""
    return [
        m
        for m in stack.telegram.sent_messages(USER)
        if "buy-plan" in str(m.get("reply_markup", {}).get("inline_keyboard", [[{}]])[-1])
    ]


def _cancels(stack: Stack) -> list[dict[str, Any]]:
    return [c.params for c in stack.telegram.calls_of("editUserStarSubscription")]


async def test_refunding_a_plan_payment_cancels_its_subscription(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        _payload, charge = await _subscribe(stack)
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        told = await _admin_told(stack, 1)
        assert told == (
            f"Refunded 300 ⭐ to user {USER}; 400 ★ of credit taken back.\n"
            "The monthly plan it paid for was cancelled too:"
            " Telegram will not charge the user for it again."
        )
        assert _cancels(stack) == [
            {"user_id": USER, "telegram_payment_charge_id": charge, "is_canceled": "true"}
        ]
        assert stack.telegram.payments.subscriptions[charge].canceled is True
        assert await balance_units(stack, USER) == 0
        # Refunded and cancelled, the plan is over: the button offers a new link again.
        menus = len(_menus(stack))
        stack.telegram.send_text(USER, "/buy")
        await wait_until(lambda: len(_menus(stack)) > menus)
        menu = _menus(stack)[-1]
        plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
        stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
        await wait_until(lambda: len(stack.telegram.calls_of("createInvoiceLink")) == 2)


async def test_refunding_a_renewal_cancels_the_subscription_by_its_first_charge(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, first = await _subscribe(stack)
        renewal = stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
        await wait_until(
            lambda: (
                sum("Thank you" in m.get("text", "") for m in stack.telegram.sent_messages(USER))
                == 2
            )
        )
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        assert "was cancelled too" in await _admin_told(stack, 1)
        assert _cancels(stack) == [
            {"user_id": USER, "telegram_payment_charge_id": first, "is_canceled": "true"}
        ]
        assert stack.telegram.payments.subscriptions[first].canceled is True


async def test_a_pack_refund_cancels_nothing(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        stack.telegram.send_text(USER, "/buy")
        await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
        menu = stack.telegram.sent_messages(USER)[0]
        pack = menu["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        stack.telegram.press_button(USER, pack, message_id=menu["message_id"])
        invoice = await stack.telegram.wait_for("sendInvoice")
        charge = stack.telegram.pay(USER, payload=invoice.params["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        assert await _admin_told(stack, 1) == (
            f"Refunded 50 ⭐ to user {USER}; 50 ★ of credit taken back."
        )
        assert _cancels(stack) == []


async def test_a_cancellation_telegram_refuses_keeps_the_refund_and_is_told_and_retried(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        _payload, charge = await _subscribe(stack)
        stack.telegram.fail_next(
            "editUserStarSubscription", status=400, description="Bad Request: CHARGE_ID_INVALID"
        )
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        told = await _admin_told(stack, 1)
        assert told.startswith(f"Refunded 300 ⭐ to user {USER}; 400 ★ of credit taken back.\n")
        assert "did not cancel the monthly plan" in told
        assert "Bad Request: CHARGE_ID_INVALID" in told
        assert f"/refund {charge} again" in told
        assert stack.telegram.payments.subscriptions[charge].canceled is False
        assert await balance_units(stack, USER) == 0  # the refund stands
        assert len(stack.telegram.calls_of("refundStarPayment")) == 1
        # The same /refund again: already refunded (nothing taken twice), cancelled now.
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        assert await _admin_told(stack, 2) == (
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
