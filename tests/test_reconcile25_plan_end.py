"""A plan payment ``reconcile --fix`` books runs the plan until its period ends.

It was booked with no end (``subscription_expires_at`` NULL): the plan counted as none, so
/balance said "No monthly plan", the plan button sent a second subscription link and
pre-checkout let it through, while Telegram charged the user every 30 days. It is booked now
with the end Telegram's list implies (the transaction's ``date`` plus the subscription's
``subscription_period``), as the live ``successful_payment`` would have; that update, if it
still comes, puts Telegram's own ``subscription_expiration_date`` in its place.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from services.shop import SUBSCRIPTION_PERIOD
from tests.plan_helpers import (
    PLAN,
    balance_text,
    charged_unheard,
    day,
    plan_link,
    press_plan,
    reconcile_fix,
)
from tests.test_bot_payments import USER, paying_stack, pre_checkout

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from tests.botstack import Stack

MISSED = "stxMISSED"


async def _listed_end(stack: Stack) -> int:
    """The missed payment's date in Telegram's list, plus the subscription's period."""
    listed = await stack.veil.bot.get_star_transactions()
    (tx,) = [tx for tx in listed.transactions if tx.id == MISSED]
    assert tx.source is not None
    period = getattr(tx.source, "subscription_period", None)
    assert period == SUBSCRIPTION_PERIOD
    return int(tx.date.timestamp()) + int(period)


async def _reconciled(stack: Stack, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``reconcile --fix`` run to a clean end."""
    done = await reconcile_fix(stack, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.timeout(120)  # one `python -m bot reconcile --fix` run to its end
async def test_a_plan_payment_booked_by_reconcile_runs_the_plan(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await plan_link(stack)
        charged_unheard(stack, payload, MISSED)  # the bot was down past the update's 24 hours
        end = await _listed_end(stack)
        fixed = await _reconciled(stack, tmp_path)
        assert fixed.stdout.splitlines()[0] == (
            f"credited payment {MISSED}: 300 Stars from user {USER}, 400000000 µ★"
        )
        # /balance tells the plan and its end, not "No monthly plan".
        balance = await balance_text(stack)
        assert f"Monthly plan active until {day(end)}." in balance
        assert await stack.veil.shop.plan_running(USER) == end
        # The plan button sends no second subscription link: the plan runs.
        sent = len(stack.telegram.sent_messages(USER))
        press_plan(stack)
        running = (await stack.final_messages(USER, sent + 1))[sent]["text"]
        assert running.startswith(f"You already have the monthly plan, active until {day(end)}.")
        assert len(stack.telegram.calls_of("createInvoiceLink")) == 1
        # A plan link made before (pressed on another device) is refused at pre-checkout.
        other = await stack.veil.shop.create_plan_order(USER)
        refused = await pre_checkout(stack, USER, other.id, 300)
        assert refused["ok"] is False
        assert refused["error_message"].startswith("You already have the monthly plan")


@pytest.mark.timeout(120)  # one `python -m bot reconcile --fix` run to its end
async def test_the_live_update_coming_after_reconcile_sets_telegrams_own_end(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await plan_link(stack)
        charged_unheard(stack, payload, MISSED)  # the bot was down past the update's 24 hours
        end = await _listed_end(stack)
        await _reconciled(stack, tmp_path)
        assert await stack.veil.shop.plan_until(USER) == end
        # The update Telegram still had queued comes after all, with Telegram's own end (a few
        # seconds off the reckoned one): it is Telegram's, so it wins; nothing is credited twice.
        telegrams = end + 7
        stack.telegram.pay(
            USER,
            payload=payload,
            total_amount=300,
            charge_id=MISSED,
            is_recurring=True,
            subscription_expiration_date=telegrams,
        )
        async with asyncio.timeout(10):
            while await stack.veil.shop.plan_until(USER) != telegrams:  # noqa: ASYNC110 -- the ledger has no event to wait on
                await asyncio.sleep(0.02)
        assert (await stack.veil.credit.balance(USER)).units == PLAN["plan_units"]
        # reconcile --fix again leaves Telegram's end alone: the payment is booked.
        again = await _reconciled(stack, tmp_path)
        assert again.stdout.splitlines() == ["ledger and Telegram agree on 1 transaction(s)"]
        assert await stack.veil.shop.plan_until(USER) == telegrams
