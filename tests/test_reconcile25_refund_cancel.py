"""A plan payment Telegram refunded on its own cancels its subscription too.

The bot cancelled a refunded plan (``editUserStarSubscription(is_canceled=True)``) only on the
admin's /refund. A refund Telegram made itself (reported by ``refunded_payment``, or found by
``reconcile --fix`` in Telegram's list) took the credit back, and the renewal grace took the
plan for cancelled (a refunded subscription renews no more), but the subscription went on:
Telegram charged the user again at the period's end for a plan the books said was over. Now
both cancel it; a cancellation Telegram refuses is logged (``stars.plan_not_canceled``) and
undoes nothing, and the call again (the same report delivered again, or the admin's /refund)
cancels it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from tests.botstack import bot_env
from tests.harness import run_python, wait_until
from tests.test_bot_payments import USER, balance_units, paying_stack
from tests.test_money25_plan_refund import PLAN, _cancels, _subscribe
from tests.test_review25b_cancel import _plan_link

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from tests.botstack import Stack


def _cancel_of(charge: str) -> dict[str, object]:
    return {"user_id": USER, "telegram_payment_charge_id": charge, "is_canceled": "true"}


async def _renewed(stack: Stack, payload: str) -> str:
    """Telegram charges the next period: the renewal's charge id, once the user is thanked."""
    renewal = stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
    await wait_until(
        lambda: (
            sum("Thank you" in m.get("text", "") for m in stack.telegram.sent_messages(USER)) == 2
        )
    )
    return renewal


async def _reconcile_fix(stack: Stack, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = bot_env(stack.telegram.url, stack.gateway.url, stack.gateway.verify_key, tmp_path)
    env |= {"VEIL_STAR_PACKS": "50:50000000,250:275000000", "VEIL_PLAN_STARS": "300"}
    env |= {"VEIL_PLAN_UNITS": str(PLAN["plan_units"])}
    return await asyncio.to_thread(run_python, "-m", "bot", "reconcile", "--fix", env=env)


async def test_a_plan_payment_telegram_refunded_cancels_its_subscription(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, charge = await _subscribe(stack)
        stack.telegram.refunded(USER, payload=payload, total_amount=300, charge_id=charge)
        await wait_until(lambda: stack.telegram.payments.subscriptions[charge].canceled)
        assert _cancels(stack) == [_cancel_of(charge)]
        notice = await stack.telegram.wait_for(
            "sendMessage", lambda c: "refunded" in c.params["text"].lower()
        )
        assert notice.params["chat_id"] == USER
        assert await balance_units(stack, USER) == 0


async def test_a_renewal_telegram_refunded_cancels_the_subscription_by_its_first_charge(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, first = await _subscribe(stack)
        renewal = await _renewed(stack, payload)
        stack.telegram.refunded(USER, payload=payload, total_amount=300, charge_id=renewal)
        await wait_until(lambda: stack.telegram.payments.subscriptions[first].canceled)
        assert _cancels(stack) == [_cancel_of(first)]
        assert await balance_units(stack, USER) == PLAN["plan_units"]


async def test_a_plan_refund_reported_before_its_payment_cancels_by_its_plan_order(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await _plan_link(stack)
        # Telegram charged the plan and refunded it; the refund's report overtook the payment's.
        user = {"id": USER, "is_bot": False, "first_name": "User"}
        invoice = {"invoice_payload": payload, "total_amount": 300, "currency": "XTR"}
        stack.telegram.payments.record_payment(user, "stxFIRST", invoice | {"is_recurring": True})
        stack.telegram.refunded(USER, payload=payload, total_amount=300, charge_id="stxFIRST")
        await wait_until(lambda: stack.telegram.payments.subscriptions["stxFIRST"].canceled)
        assert _cancels(stack) == [_cancel_of("stxFIRST")]
        assert await balance_units(stack, USER) == 0


async def test_a_cancellation_telegram_refuses_is_logged_and_undoes_nothing(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, charge = await _subscribe(stack)
        stack.telegram.fail_next(
            "editUserStarSubscription", status=400, description="Bad Request: USER_ID_INVALID"
        )
        with capture_logs() as logs:
            stack.telegram.refunded(USER, payload=payload, total_amount=300, charge_id=charge)
            await wait_until(
                lambda: any(e["event"] == "stars.plan_not_canceled" for e in logs), within=10
            )
        (failed,) = [e for e in logs if e["event"] == "stars.plan_not_canceled"]
        assert failed["charge_id"] == charge
        assert stack.telegram.payments.subscriptions[charge].canceled is False
        assert await balance_units(stack, USER) == 0  # the refund stands
        # Telegram delivers the report again: taken back once, the cancellation made now.
        stack.telegram.refunded(USER, payload=payload, total_amount=300, charge_id=charge)
        await wait_until(lambda: stack.telegram.payments.subscriptions[charge].canceled)
        assert _cancels(stack) == [_cancel_of(charge), _cancel_of(charge)]
        assert await balance_units(stack, USER) == 0


@pytest.mark.timeout(180)  # two `python -m bot reconcile --fix` runs, each to its end
async def test_a_plan_refund_reconcile_books_cancels_its_subscription_once(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, first = await _subscribe(stack)
        renewal = await _renewed(stack, payload)
        # Telegram refunded the renewal; the bot never heard (down past the update's 24 hours).
        stack.telegram.payments.record_refund(renewal)
        fixed = await _reconcile_fix(stack, tmp_path)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert fixed.stdout.splitlines() == [
            f"took back refund {renewal}: 400000000 µ★ from user {USER}",
            (
                f"cancelled subscription {first} of user {USER}: its plan payment {renewal}"
                " was refunded"
            ),
            "ledger and Telegram agree on 3 transaction(s)",
        ]
        assert stack.telegram.payments.subscriptions[first].canceled is True
        assert _cancels(stack) == [_cancel_of(first)]
        assert await balance_units(stack, USER) == PLAN["plan_units"]
        # Run again: nothing to book, nothing to cancel again.
        again = await _reconcile_fix(stack, tmp_path)
        assert again.stdout.splitlines() == ["ledger and Telegram agree on 3 transaction(s)"]
        assert _cancels(stack) == [_cancel_of(first)]


@pytest.mark.timeout(120)  # one `python -m bot reconcile --fix` run to its end
async def test_a_cancellation_reconcile_cannot_make_is_a_difference_to_look_at(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        _payload, charge = await _subscribe(stack)
        stack.telegram.payments.record_refund(charge)
        stack.telegram.fail_next(
            "editUserStarSubscription", status=400, description="Bad Request: USER_ID_INVALID"
        )
        fixed = await _reconcile_fix(stack, tmp_path)
        assert fixed.returncode == 1, fixed.stdout + fixed.stderr
        assert fixed.stdout.splitlines() == [
            f"took back refund {charge}: 400000000 µ★ from user {USER}",
            (
                f"subscription {charge} of user {USER} not cancelled"
                f" (Bad Request: USER_ID_INVALID): send /refund {charge} to cancel it"
            ),
            "1 difference(s) in 2 transaction(s)",
        ]
        assert stack.telegram.payments.subscriptions[charge].canceled is False
        assert await balance_units(stack, USER) == 0  # the refund stands
