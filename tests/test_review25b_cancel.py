"""A refunded plan is cancelled even when the books do not have its first payment first.

The subscription was cancelled by the charge id of the order's first recurring payment in the
order the ledger booked them. A first payment the bot missed (a database restored from a backup
taken before it) and booked later by ``reconcile --fix`` is booked after the renewals: the
renewal's charge id was sent, Telegram refused it (``CHARGE_ID_INVALID``), and every /refund
again sent the same id: the refunded plan went on charging the user, the admin could do nothing.
The bot now tries the order's other recurring charges in turn when Telegram says the one it
sent names no subscription.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.reconcile import star_transactions
from tests.plan_helpers import PLAN, admin_told, charged_unheard, pay_plan, plan_link
from tests.test_bot_payments import ADMIN, USER, paying_stack

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack


async def _renewed_past_a_lost_first(stack: Stack) -> tuple[str, str]:
    """The plan paid, then renewed: (first charge id, renewal's charge id).

    Telegram charged the first period; the bot's record of it was lost (restored from a backup
    taken just before), so only Telegram's list has it. The renewal reached the bot.
    """
    payload = await plan_link(stack)
    charged_unheard(stack, payload, "stxFIRST")
    return "stxFIRST", await pay_plan(stack, payload)


async def test_a_first_payment_booked_by_reconcile_after_its_renewal_still_names_the_plan(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        first, renewal = await _renewed_past_a_lost_first(stack)
        fixed = await stack.veil.shop.fix(await star_transactions(stack.veil.bot))
        assert len(fixed) == 1
        assert fixed[0].startswith(f"credited payment {first}: 300 Stars from user {USER}")
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        told = await admin_told(stack, 1)
        assert "was cancelled too" in told, told
        assert stack.telegram.payments.subscriptions[first].canceled is True


async def test_a_plan_whose_first_payment_is_not_in_the_books_says_how_to_cancel_it(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        first, renewal = await _renewed_past_a_lost_first(stack)
        # Restored from a backup, not reconciled yet: no charge of ours names the subscription.
        # Sending the same /refund again cannot help; reconcile --fix books the first payment.
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        told = await admin_told(stack, 1)
        assert "python -m bot reconcile --fix" in told, told
        assert f"/refund {renewal}" in told
        assert stack.telegram.payments.subscriptions[first].canceled is False
        await stack.veil.shop.fix(await star_transactions(stack.veil.bot))
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        again = await admin_told(stack, 2)
        assert again == (
            "That payment was already refunded.\n"
            "The monthly plan it paid for was cancelled too:"
            " Telegram will not charge the user for it again."
        )
        assert stack.telegram.payments.subscriptions[first].canceled is True
