"""/balance tells a plan that has ended as ended, not as "active until" a date gone by.

It showed the latest period's end whatever the date: a plan that ended (cancelled in Telegram,
or its renewal not here yet) read "Monthly plan active until <a past date>", while the plan
button said it had ended. It now says the plan ended, and while Telegram's renewal is awaited
(``RENEWAL_GRACE_S``), that its payment may still come.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from services.shop import RENEWAL_GRACE_S
from tests.harness import wait_until
from tests.test_bot_payments import USER, paying_stack
from tests.test_money25_plan_refund import PLAN
from tests.test_review25b_cancel import _plan_link

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack


def _day(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


async def _plan_line(stack: Stack) -> str:
    before = len(stack.telegram.sent_messages(USER))
    stack.telegram.send_text(USER, "/balance")
    text = str((await stack.final_messages(USER, before + 1))[before]["text"])
    return text.splitlines()[2]


async def test_balance_says_a_plan_awaiting_its_renewal_has_ended(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await _plan_link(stack)
        ended = int(time.time()) - 3600  # paid a month ago, its renewal not here yet
        stack.telegram.pay(
            USER,
            payload=payload,
            total_amount=300,
            is_recurring=True,
            subscription_expiration_date=ended,
        )
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        line = await _plan_line(stack)
        assert line == (
            f"Monthly plan ended on {_day(ended)}; Telegram renews it by itself,"
            " and its payment for the next 30 days may take a few hours."
        )


async def test_balance_says_a_plan_past_its_grace_has_ended(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await _plan_link(stack)
        ended = int(time.time()) - RENEWAL_GRACE_S - 3600  # cancelled in Telegram
        stack.telegram.pay(
            USER,
            payload=payload,
            total_amount=300,
            is_recurring=True,
            subscription_expiration_date=ended,
        )
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        assert await _plan_line(stack) == f"Monthly plan ended on {_day(ended)}."
        # A plan that runs still says until when.
        until = int(time.time()) + 86_400
        stack.telegram.pay(
            USER,
            payload=payload,
            total_amount=300,
            is_recurring=True,
            subscription_expiration_date=until,
        )
        await wait_until(
            lambda: sum("Thank you" in m["text"] for m in stack.telegram.sent_messages(USER)) == 2
        )
        assert await _plan_line(stack) == f"Monthly plan active until {_day(until)}."
