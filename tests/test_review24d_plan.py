"""The plan pressed again while it runs, by a user who cancelled it in Telegram.

The bot is not told of a cancellation: a cancelled plan runs to the end of its period and stops.
While it runs the plan button sends no link (twice24), and said "it renews by itself. You can
cancel it in Telegram's settings": to the user who had cancelled it and came back for the plan,
that their cancellation had not taken, and nothing about how to keep the plan, so it lapsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.test_bot_payments import STAR, USER, paying_stack, pre_checkout

if TYPE_CHECKING:
    from pathlib import Path


async def test_the_plan_pressed_while_it_runs_tells_a_cancelled_plan_how_to_go_on(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, plan_stars=300, plan_units=400 * STAR) as stack:
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
        # Cancelled in Telegram since (the bot is not told); back for the plan.
        stack.telegram.press_button(USER, plan, message_id=menu["message_id"])
        told = await stack.telegram.wait_for(
            "sendMessage", lambda c: str(c.params["text"]).startswith("You already have")
        )
        text = str(told.params["text"])
        assert "unless you cancelled it" in text
        assert "can be renewed" in text  # how a cancelled plan goes on
        assert "You can cancel it" not in text
        assert await stack.veil.chat.wait_idle(10)
