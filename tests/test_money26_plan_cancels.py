"""A refunded plan's cancellation is stored: sent once, sent after a crash, told as it stands.

The cancellation (``editUserStarSubscription(is_canceled=True)``) followed the refund in
memory only. A bot killed between the refund's booking and the call never made it: the
subscription went on charging every 30 days. The admin's /refund cancelled, and Telegram's
report of that refund cancelled again. A renewal Telegram charged between the refund and the
cancellation was kept while the admin read that Telegram would not charge again. And
``reconcile`` could not tell a refunded plan whose cancellation failed. Now the refund's
booking stores the cancellation as owed in its own transaction (``plan_cancels``), every
sender goes through ``services.shop_cancel``, and upkeep sends what is owed, at start too.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import pytest
from sqlite_utils import Database

from bot.shutdown import IN_FLIGHT
from models import orders
from models.migrations import MIGRATIONS, apply
from playground.wire import bad_request
from tests.botstack import TOKEN, bot_env, process_stack
from tests.fakes.telegram import FakeTelegram
from tests.harness import ManagedProcess, run_python, wait_until
from tests.plan_helpers import PLAN, admin_told, cancel_of, cancels, reconcile_fix, subscribe
from tests.test_bot_payments import ADMIN, USER, balance_units, paying_stack

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from playground.state import Method
    from tests.botstack import Stack

PLAN_ENV = {
    "VEIL_STAR_PACKS": "50:50000000,250:275000000",
    "VEIL_PLAN_STARS": "300",
    "VEIL_PLAN_UNITS": str(PLAN["plan_units"]),
    "VEIL_FREE_TOKENS_PER_DAY": "0",
}


class HeldCancels(FakeTelegram):
    """The fake Telegram whose editUserStarSubscription waits, unanswered, while ``hold`` is set.

    ``release`` lets the waiting calls through (Telegram takes them); ``drop`` answers them
    with an error and takes none (the bot that made them is dead).
    """

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.hold = True
        self.holding = asyncio.Event()
        self._gate = asyncio.Event()
        self._dropped = False
        self._answer: Method = self._methods["editUserStarSubscription"]
        self._methods["editUserStarSubscription"] = self._held

    def hold_again(self) -> None:
        """Hold the calls to come (until ``release`` or ``drop``)."""
        self.hold = True
        self._gate.clear()

    def release(self) -> None:
        """Let the waiting calls through; the calls to come pass at once."""
        self.hold = False
        self._gate.set()

    def drop(self) -> None:
        """Answer the waiting calls with an error, taking none; the calls to come pass."""
        self._dropped = True
        self.release()

    async def _held(self, p: dict[str, Any]) -> object:
        if self.hold:
            self.holding.set()
            await self._gate.wait()
            if self._dropped:
                raise bad_request("DROPPED_WITH_ITS_CALLER")
        return self._answer(p)


def _cancel_rows(database: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT charge_id, state FROM plan_cancels").fetchall()


async def _process_subscribe(telegram: FakeTelegram, payload: str) -> str:
    """A plan payment Telegram reports (an order the books lack: flagged, credited all the same)."""
    charge = telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
    await wait_until(lambda: len(telegram.sent_messages(USER)) == 1)
    return charge


@pytest.mark.timeout(120)  # two `python -m bot` starts
async def test_a_bot_killed_between_the_refund_and_the_cancel_cancels_once_restarted(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with process_stack(data, telegram_server=HeldCancels(token=TOKEN)) as stack:
        telegram = stack.telegram
        assert isinstance(telegram, HeldCancels)
        env = stack.env | PLAN_ENV
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        charge = await _process_subscribe(telegram, "plan-kill")
        telegram.refunded(USER, payload="plan-kill", total_amount=300, charge_id=charge)
        async with asyncio.timeout(20):
            await telegram.holding.wait()  # the refund booked, its cancellation on its way
        await bot.kill()
        telegram.drop()  # the killed bot's call never reached Telegram
        assert telegram.payments.subscriptions[charge].canceled is False
        found = await asyncio.to_thread(run_python, "-m", "bot", "reconcile", env=env)
        assert found.stdout.splitlines() == [
            (
                f"subscription of user {USER} not cancelled yet: its plan payment {charge} was"
                " refunded; the running bot or reconcile --fix cancels it"
            ),
            "1 difference(s) in 2 transaction(s)",
        ]
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            await wait_until(lambda: telegram.payments.subscriptions[charge].canceled)
        finally:
            assert await bot.stop() == 0
        made = [c.params for c in telegram.calls_of("editUserStarSubscription")]
        assert made == [cancel_of(charge), cancel_of(charge)]  # dropped, then made
        assert _cancel_rows(data / "veil.db") == [(charge, "done")]


async def _reported(stack: Stack, payload: str, charge: str) -> None:
    """Telegram reports the refund (``refunded_payment``); wait until it is handled whole."""
    stack.telegram.refunded(USER, payload=payload, total_amount=300, charge_id=charge)
    await stack.telegram.wait_for(
        "sendMessage",
        lambda c: c.params["chat_id"] == USER and "refunded" in c.params["text"],
    )
    assert await stack.veil.dispatcher[IN_FLIGHT].wait_idle(10)


async def test_telegrams_report_of_the_admins_refund_sends_no_second_cancel(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, charge = await subscribe(stack)
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        assert "was cancelled too" in await admin_told(stack, 1)
        assert cancels(stack) == [cancel_of(charge)]
        await _reported(stack, payload, charge)
        assert cancels(stack) == [cancel_of(charge)]
        assert await balance_units(stack, USER) == 0


async def test_the_report_delivered_again_after_a_refused_cancel_asks_once_more(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, charge = await subscribe(stack)
        stack.telegram.fail_next(
            "editUserStarSubscription", status=400, description="Bad Request: USER_ID_INVALID"
        )
        await _reported(stack, payload, charge)
        assert stack.telegram.payments.subscriptions[charge].canceled is False
        stack.telegram.send_text(ADMIN, f"/refund {charge}")  # CHARGE_ALREADY_REFUNDED: asks again
        assert await admin_told(stack, 1) == (
            "That payment was already refunded.\nThe monthly plan it paid for was cancelled too:"
            " Telegram will not charge the user for it again."
        )
        assert cancels(stack) == [cancel_of(charge), cancel_of(charge)]
        stack.telegram.send_text(ADMIN, f"/refund {charge}")  # done: not asked a third time
        await admin_told(stack, 2)
        assert cancels(stack) == [cancel_of(charge), cancel_of(charge)]


async def test_a_renewal_charged_before_the_cancel_took_is_told_to_the_admin(
    tmp_path: Path,
) -> None:
    held = HeldCancels(token=TOKEN)
    async with paying_stack(tmp_path, telegram_server=held, **PLAN) as stack:
        held.release()
        payload, first = await subscribe(stack)
        held.hold = True
        held._gate.clear()
        stack.telegram.send_text(ADMIN, f"/refund {first}")
        async with asyncio.timeout(20):
            await held.holding.wait()  # refunded; the cancellation not taken yet
        renewal = stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
        await wait_until(
            lambda: (
                sum("Thank you" in m.get("text", "") for m in stack.telegram.sent_messages(USER))
                == 2
            )
        )
        held.release()
        told = await admin_told(stack, 1)
        assert told.splitlines()[1:] == [
            (
                "The monthly plan it paid for was cancelled too:"
                " Telegram will not charge the user for it again."
            ),
            (
                "Telegram charged a renewal of that plan after you asked for the refund, before the"
                f" cancellation took: charge {renewal}, 300 ⭐, kept and credited. Send /refund"
                f" {renewal} to refund it too; no further renewal comes."
            ),
        ]
        assert stack.telegram.payments.subscriptions[first].canceled is True
        assert await balance_units(stack, USER) == PLAN["plan_units"]  # the renewal's credit


async def _reconcile(stack: Stack, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``python -m bot reconcile`` without ``--fix`` (``_reconcile_fix``'s settings)."""
    env = bot_env(stack.telegram.url, stack.gateway.url, stack.gateway.verify_key, tmp_path)
    return await asyncio.to_thread(run_python, "-m", "bot", "reconcile", env=env | PLAN_ENV)


@pytest.mark.timeout(180)  # `python -m bot reconcile` runs to its end, three times
async def test_reconcile_reports_a_refunded_plan_whose_cancellation_is_owed_or_failed(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, **PLAN) as stack:
        payload, charge = await subscribe(stack)
        stack.telegram.fail_next(
            "editUserStarSubscription", status=400, description="Bad Request: USER_ID_INVALID"
        )
        await _reported(stack, payload, charge)
        found = await _reconcile(stack, tmp_path)
        assert found.returncode == 1, found.stdout + found.stderr
        assert found.stdout.splitlines() == [
            (
                f"subscription {charge} of user {USER} not cancelled"
                f" (Bad Request: USER_ID_INVALID): send /refund {charge} to cancel it"
            ),
            "1 difference(s) in 2 transaction(s)",
        ]
        # --fix leaves a refused one to the admin's /refund: asked for owed ones only.
        fixed = await reconcile_fix(stack, tmp_path)
        assert fixed.returncode == 1, fixed.stdout + fixed.stderr
        assert cancels(stack) == [cancel_of(charge)]
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        await admin_told(stack, 1)
        agreed = await _reconcile(stack, tmp_path)
        assert agreed.stdout.splitlines() == ["ledger and Telegram agree on 2 transaction(s)"]


async def test_a_cancellation_telegram_cannot_take_now_is_owed_and_sent_by_upkeep(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, sweep_every=0.5, **PLAN) as stack:
        _payload, charge = await subscribe(stack)
        stack.telegram.fail_next(
            "editUserStarSubscription", status=502, description="Bad Gateway", count=1000
        )
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        told = await admin_told(stack, 1)
        assert told.splitlines()[1].startswith(
            "The refund went through; Telegram could not take the cancellation of the monthly"
            " plan it paid for now ("
        ), told
        assert stack.telegram.payments.subscriptions[charge].canceled is False
        stack.telegram.clear_failures()  # Telegram is back: the next upkeep pass cancels
        await wait_until(lambda: stack.telegram.payments.subscriptions[charge].canceled)
        assert await balance_units(stack, USER) == 0


def test_the_plan_refunds_booked_before_the_migration_are_owed_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "veil.db")
    apply(db, MIGRATIONS[:-1])
    month, now = 2_592_000, int(time.time())
    for charge, order, refunded, at in [
        ("stxA", "order-a", 1, now - 2 * month + 1000),
        ("stxB", "order-a", 0, now - month + 1000),  # its renewal: one subscription, one cancel
        ("stxC", "order-c", 0, now - 1000),  # a plan never refunded: nothing owed
        # Refunded, its last period ended two days ago with no renewal: lapsed, nothing owed
        # (Telegram may refuse a cancel of it, and reconcile would report that for good).
        ("stxD", "order-d", 1, now - month - 2 * 86_400),
    ]:
        db.execute(
            "INSERT INTO payments (charge_id, user_id, order_id, stars, units, is_recurring,"
            " flagged, flag_reason, refunded, created_at, subscription_expires_at)"
            " VALUES (?, ?, ?, 300, 1, 1, 0, NULL, ?, ?, ?)",
            [charge, USER, order, refunded, at, at + month],
        )
    db.conn.commit()
    assert apply(db) == ["m0023_plan_cancels"]
    rows = db.execute("SELECT order_id, user_id, charge_id, state FROM plan_cancels").fetchall()
    assert rows == [("order-a", USER, "stxA", "owed")]
    db.close()


def test_a_cancellation_done_stays_done_whatever_a_second_sender_writes(tmp_path: Path) -> None:
    # Two senders read it owed; the first's call took, the second's was refused (or could not
    # be taken now): last write won, and reconcile reported a cancelled plan as failed.
    db = Database(tmp_path / "veil.db")
    apply(db)
    now = int(time.time())
    orders.owe_cancel(db, "order-a", USER, "stxA", now)

    def settle(order: str, state: orders.CancelState, reason: str | None) -> None:
        orders.settle_cancel(
            db, order, USER, state=state, named="stxA", reason=reason, unnamed=False, at=now
        )

    settle("order-a", "done", None)
    for state in ("failed", "owed"):
        settle("order-a", state, "REFUSED")
        cancel = orders.plan_cancel(db, "order-a", USER)
        assert cancel is not None
        assert (cancel.state, cancel.reason) == ("done", None)
    # A failure is still overwritten by what a later try did.
    orders.owe_cancel(db, "order-b", USER, "stxB", now)
    settle("order-b", "failed", "REFUSED")
    settle("order-b", "done", None)
    cancel = orders.plan_cancel(db, "order-b", USER)
    assert cancel is not None
    assert cancel.state == "done"
    db.close()
