"""A cancellation Telegram cannot take now is asked again after passes skipped, not every pass.

money26 left one Telegram answered 5xx (a flood wait, unreachable) owed, and each upkeep pass
(every minute) asked again and logged ``stars.plan_not_canceled``: a subscription Telegram kept
failing for days was asked 1440 times a day, forever. Now it waits 1, 3, 7 … passes (at most
``LATER_SKIPS_MAX``) between asks; the admin's /refund of it asks at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.plan_helpers import PLAN, admin_told, cancel_of, cancels, subscribe
from tests.test_bot_payments import ADMIN, paying_stack

if TYPE_CHECKING:
    from pathlib import Path

    from services.shop_cancel import PlanCancels


async def test_a_cancellation_telegram_keeps_failing_is_asked_again_on_fewer_passes(
    tmp_path: Path,
) -> None:
    # Upkeep's own passes after the first are an hour away: this test makes the passes.
    async with paying_stack(tmp_path, sweep_every=3600, **PLAN) as stack:
        _payload, charge = await subscribe(stack)
        stack.telegram.fail_next(
            "editUserStarSubscription", status=502, description="Bad Gateway", count=1000
        )
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        assert "could not take the cancellation" in await admin_told(stack, 1)
        plan_cancels: PlanCancels = stack.veil.dispatcher["plan_cancels"]
        asked: list[bool] = []
        for _ in range(10):
            before = len(cancels(stack))
            await plan_cancels.send()
            asked.append(len(cancels(stack)) > before)
        # Skipped 1 pass, asked; skipped 3, asked; then 7 skipped.
        assert asked == [False, True, False, False, False, True, False, False, False, False]
        assert stack.telegram.payments.subscriptions[charge].canceled is False
        stack.telegram.clear_failures()
        before = len(cancels(stack))
        stack.telegram.send_text(ADMIN, f"/refund {charge}")  # the admin asks now: not skipped
        assert "was cancelled too" in await admin_told(stack, 2)
        assert cancels(stack)[before:] == [cancel_of(charge)]
        assert stack.telegram.payments.subscriptions[charge].canceled is True
        assert await plan_cancels.send() == []
