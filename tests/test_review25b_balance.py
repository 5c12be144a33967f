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
from tests.plan_helpers import PLAN, balance_text, day, pay_plan, plan_link
from tests.test_bot_payments import paying_stack

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack


async def _plan_line(stack: Stack) -> str:
    """The line of /balance's answer that tells the plan."""
    return (await balance_text(stack)).splitlines()[2]


async def test_balance_says_a_plan_awaiting_its_renewal_has_ended(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await plan_link(stack)
        ended = int(time.time()) - 3600  # paid a month ago, its renewal not here yet
        await pay_plan(stack, payload, ended)
        line = await _plan_line(stack)
        assert line == (
            f"Monthly plan ended on {day(ended)}; Telegram renews it by itself,"
            " and its payment for the next 30 days may take a few hours."
        )


async def test_balance_says_a_plan_past_its_grace_has_ended(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await plan_link(stack)
        ended = int(time.time()) - RENEWAL_GRACE_S - 3600  # cancelled in Telegram
        await pay_plan(stack, payload, ended)
        assert await _plan_line(stack) == f"Monthly plan ended on {day(ended)}."
        # A plan that runs still says until when.
        until = int(time.time()) + 86_400
        await pay_plan(stack, payload, until)
        assert await _plan_line(stack) == f"Monthly plan active until {day(until)}."
