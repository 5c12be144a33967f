"""A renewal Telegram delivers after the admin's /refund was answered is flagged to the admins.

money26's /refund answer names a renewal booked while the cancellation was on its way; one
Telegram charged before the cancel took but delivered after the answer (a slow update, the
journal's retry, ``reconcile --fix`` booking it) was credited silently: the admin, told "Telegram
will not charge the user for it again", never heard of the month the user was charged. Now a
subscription payment booked after its subscription's cancellation was settled (done, or refused)
is flagged ``refunded_plan``: the admins read its charge and can /refund it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.harness import wait_until
from tests.plan_helpers import PLAN, admin_told, subscribe, thank_yous
from tests.test_bot_payments import ADMIN, USER, balance_units, paying_stack

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_renewal_delivered_after_the_admins_refund_reply_is_flagged_to_the_admins(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, first = await subscribe(stack)
        stack.telegram.send_text(ADMIN, f"/refund {first}")
        assert "was cancelled too" in await admin_told(stack, 1)
        assert await balance_units(stack, USER) == 0
        # Charged before the cancellation took, delivered now.
        renewal = stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
        assert await admin_told(stack, 2) == (
            f"Payment flagged (refunded_plan): user {USER}, charge {renewal}, 300 ⭐ credited as"
            f" {PLAN['plan_units'] // 1_000_000} ★."
        )
        await wait_until(lambda: thank_yous(stack) == 2)
        assert await balance_units(stack, USER) == PLAN["plan_units"]  # kept and credited
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        reply = await admin_told(stack, 3)
        if reply.endswith("then refunded: that credit was taken back."):
            # The renewal's notices may still be ending as the refund is booked (a loaded
            # machine: its thank-you out, the check after it not yet): the admins told
            # "credited as" are told it was taken back too (``_corrected``), before the reply.
            reply = await admin_told(stack, 4)
        assert "was cancelled too" in reply
        assert await balance_units(stack, USER) == 0
