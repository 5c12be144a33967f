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
import datetime as dt
from typing import TYPE_CHECKING

import pytest

from services.shop import SUBSCRIPTION_PERIOD
from tests.botstack import bot_env
from tests.harness import run_python
from tests.test_bot_payments import USER, paying_stack, pre_checkout
from tests.test_money25_plan_refund import PLAN

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from tests.botstack import Stack

MISSED = "stxMISSED"


async def _plan_link(stack: Stack) -> str:
    """/buy, the plan button, its pre-checkout approved: the link's payload."""
    stack.telegram.send_text(USER, "/buy")
    await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
    _press_plan(stack)
    link = await stack.telegram.wait_for("createInvoiceLink")
    payload = str(link.params["payload"])
    assert (await pre_checkout(stack, USER, payload, 300))["ok"] is True
    return payload


def _press_plan(stack: Stack) -> None:
    """The plan button of the first /buy menu pressed."""
    menu = stack.telegram.sent_messages(USER)[0]
    plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
    stack.telegram.press_button(USER, plan, message_id=menu["message_id"])


def _missed_plan_payment(stack: Stack, payload: str) -> None:
    """Telegram charged the plan; the bot never heard (down past the update's 24 hours)."""
    user = {"id": USER, "is_bot": False, "first_name": "User"}
    invoice = {"invoice_payload": payload, "total_amount": 300, "currency": "XTR"}
    stack.telegram.payments.record_payment(user, MISSED, invoice | {"is_recurring": True})


async def _listed_end(stack: Stack) -> int:
    """The missed payment's date in Telegram's list, plus the subscription's period."""
    listed = await stack.veil.bot.get_star_transactions()
    (tx,) = [tx for tx in listed.transactions if tx.id == MISSED]
    assert tx.source is not None
    period = getattr(tx.source, "subscription_period", None)
    assert period == SUBSCRIPTION_PERIOD
    return int(tx.date.timestamp()) + int(period)


async def _reconcile_fix(stack: Stack, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = bot_env(stack.telegram.url, stack.gateway.url, stack.gateway.verify_key, tmp_path)
    env |= {"VEIL_STAR_PACKS": "50:50000000,250:275000000", "VEIL_PLAN_STARS": "300"}
    env |= {"VEIL_PLAN_UNITS": str(PLAN["plan_units"])}
    done = await asyncio.to_thread(run_python, "-m", "bot", "reconcile", "--fix", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _day(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d")


@pytest.mark.timeout(120)  # one `python -m bot reconcile --fix` run to its end
async def test_a_plan_payment_booked_by_reconcile_runs_the_plan(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload = await _plan_link(stack)
        _missed_plan_payment(stack, payload)
        end = await _listed_end(stack)
        fixed = await _reconcile_fix(stack, tmp_path)
        assert fixed.stdout.splitlines()[0] == (
            f"credited payment {MISSED}: 300 Stars from user {USER}, 400000000 µ★"
        )
        # /balance tells the plan and its end, not "No monthly plan".
        sent = len(stack.telegram.sent_messages(USER))
        stack.telegram.send_text(USER, "/balance")
        balance = (await stack.final_messages(USER, sent + 1))[sent]["text"]
        assert f"Monthly plan active until {_day(end)}." in balance
        assert await stack.veil.shop.plan_running(USER) == end
        # The plan button sends no second subscription link: the plan runs.
        _press_plan(stack)
        running = (await stack.final_messages(USER, sent + 2))[sent + 1]["text"]
        assert running.startswith(f"You already have the monthly plan, active until {_day(end)}.")
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
        payload = await _plan_link(stack)
        _missed_plan_payment(stack, payload)
        end = await _listed_end(stack)
        await _reconcile_fix(stack, tmp_path)
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
        again = await _reconcile_fix(stack, tmp_path)
        assert again.stdout.splitlines() == ["ledger and Telegram agree on 1 transaction(s)"]
        assert await stack.veil.shop.plan_until(USER) == telegrams
