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
from tests.test_bot_payments import ADMIN, USER, paying_stack, pre_checkout
from tests.test_money25_plan_refund import PLAN

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack


async def _plan_link(stack: Stack) -> str:
    """/buy, the plan button, its pre-checkout approved: the link's payload."""
    stack.telegram.send_text(USER, "/buy")
    await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
    menu = stack.telegram.sent_messages(USER)[0]
    plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
    stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
    link = await stack.telegram.wait_for("createInvoiceLink")
    payload = str(link.params["payload"])
    assert (await pre_checkout(stack, USER, payload, 300))["ok"] is True
    return payload


async def test_a_first_payment_booked_by_reconcile_after_its_renewal_still_names_the_plan(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await _plan_link(stack)
        # Telegram charged the first period; the bot's record of it was lost (restored from a
        # backup taken just before), so only Telegram's list has it.
        user = {"id": USER, "is_bot": False, "first_name": "User"}
        first = "stxFIRST"
        invoice = {"invoice_payload": payload, "total_amount": 300, "currency": "XTR"}
        stack.telegram.payments.record_payment(user, first, invoice | {"is_recurring": True})
        renewal = stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        fixed = await stack.veil.shop.fix(await star_transactions(stack.veil.bot))
        assert len(fixed) == 1
        assert fixed[0].startswith(f"credited payment {first}: 300 Stars from user {USER}")
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        told = str((await stack.final_messages(ADMIN, 1))[0]["text"])
        assert "was cancelled too" in told, told
        assert stack.telegram.payments.subscriptions[first].canceled is True


async def test_a_plan_whose_first_payment_is_not_in_the_books_says_how_to_cancel_it(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await _plan_link(stack)
        user = {"id": USER, "is_bot": False, "first_name": "User"}
        first = "stxFIRST"
        invoice = {"invoice_payload": payload, "total_amount": 300, "currency": "XTR"}
        stack.telegram.payments.record_payment(user, first, invoice | {"is_recurring": True})
        renewal = stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        # Restored from a backup, not reconciled yet: no charge of ours names the subscription.
        # Sending the same /refund again cannot help; reconcile --fix books the first payment.
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        told = str((await stack.final_messages(ADMIN, 1))[0]["text"])
        assert "python -m bot reconcile --fix" in told, told
        assert f"/refund {renewal}" in told
        assert stack.telegram.payments.subscriptions[first].canceled is False
        await stack.veil.shop.fix(await star_transactions(stack.veil.bot))
        stack.telegram.send_text(ADMIN, f"/refund {renewal}")
        again = str((await stack.final_messages(ADMIN, 2))[1]["text"])
        assert again == (
            "That payment was already refunded.\n"
            "The monthly plan it paid for was cancelled too:"
            " Telegram will not charge the user for it again."
        )
        assert stack.telegram.payments.subscriptions[first].canceled is True
