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

from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from tests.harness import wait_until
from tests.plan_helpers import (
    PLAN,
    cancel_of,
    cancel_refused,
    cancelled,
    cancels,
    charged_unheard,
    pay_plan,
    plan_link,
    reconcile_fix,
    refund_cancels,
    subscribe,
    telegram_refunds,
)
from tests.test_bot_payments import USER, balance_units, paying_stack

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_plan_payment_telegram_refunded_cancels_its_subscription(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, charge = await subscribe(stack)
        await refund_cancels(stack, payload, refunded=charge, subscription=charge)
        assert cancels(stack) == [cancel_of(charge)]
        notice = await stack.telegram.wait_for(
            "sendMessage", lambda c: "refunded" in c.params["text"].lower()
        )
        assert notice.params["chat_id"] == USER
        assert await balance_units(stack, USER) == 0


async def test_a_renewal_telegram_refunded_cancels_the_subscription_by_its_first_charge(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, first = await subscribe(stack)
        renewal = await pay_plan(stack, payload)
        await refund_cancels(stack, payload, refunded=renewal, subscription=first)
        assert cancels(stack) == [cancel_of(first)]
        assert await balance_units(stack, USER) == PLAN["plan_units"]


async def test_a_plan_refund_reported_before_its_payment_cancels_by_its_plan_order(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await plan_link(stack)
        # Telegram charged the plan and refunded it; the refund's report overtook the payment's.
        charged_unheard(stack, payload, "stxFIRST")
        await refund_cancels(stack, payload, refunded="stxFIRST", subscription="stxFIRST")
        assert cancels(stack) == [cancel_of("stxFIRST")]
        assert await balance_units(stack, USER) == 0


async def test_a_cancellation_telegram_refuses_is_logged_and_undoes_nothing(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, charge = await subscribe(stack)
        cancel_refused(stack, "Bad Request: USER_ID_INVALID")
        with capture_logs() as logs:
            telegram_refunds(stack, payload, charge)
            await wait_until(
                lambda: any(e["event"] == "stars.plan_not_canceled" for e in logs), within=10
            )
        (failed,) = [e for e in logs if e["event"] == "stars.plan_not_canceled"]
        assert failed["charge_id"] == charge
        assert stack.telegram.payments.subscriptions[charge].canceled is False
        assert await balance_units(stack, USER) == 0  # the refund stands
        # Telegram delivers the report again: taken back once, the cancellation made now.
        telegram_refunds(stack, payload, charge)
        await cancelled(stack, charge)
        assert cancels(stack) == [cancel_of(charge), cancel_of(charge)]
        assert await balance_units(stack, USER) == 0


@pytest.mark.timeout(180)  # two `python -m bot reconcile --fix` runs, each to its end
async def test_a_plan_refund_reconcile_books_cancels_its_subscription_once(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, first = await subscribe(stack)
        renewal = await pay_plan(stack, payload)
        # Telegram refunded the renewal; the bot never heard (down past the update's 24 hours).
        stack.telegram.payments.record_refund(renewal)
        fixed = await reconcile_fix(stack, tmp_path)
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
        assert cancels(stack) == [cancel_of(first)]
        assert await balance_units(stack, USER) == PLAN["plan_units"]
        # Run again: nothing to book, nothing to cancel again.
        again = await reconcile_fix(stack, tmp_path)
        assert again.stdout.splitlines() == ["ledger and Telegram agree on 3 transaction(s)"]
        assert cancels(stack) == [cancel_of(first)]


@pytest.mark.timeout(120)  # one `python -m bot reconcile --fix` run to its end
async def test_a_cancellation_reconcile_cannot_make_is_a_difference_to_look_at(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        _payload, charge = await subscribe(stack)
        stack.telegram.payments.record_refund(charge)
        cancel_refused(stack, "Bad Request: USER_ID_INVALID")
        fixed = await reconcile_fix(stack, tmp_path)
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
