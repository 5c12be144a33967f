"""Telegram's refund report waits on no write lock for a cancellation that is stored already.

money26's ``refunded_payment`` handler stored the cancellation as owed with a write transaction
every time, though the refund's booking (just before, in the desk) had stored it already, and a
charge that paid no plan owes nothing. A ledger busy meanwhile (another replica's write, a
``reconcile``, a backup) held the handler up to the busy timeout and then failed it, and the
user's next update waited behind it (``test_sigkill_between_a_payments_take_back_and_its_journal
_write`` timed out two runs in three). Now what is stored already is read, not written: only a
cancellation missing (the refund came before its payment) or refused before is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.plan_helpers import PLAN, admin_told, subscribe
from tests.test_bot_payments import ADMIN, USER, paying_stack
from tests.test_journal import ledger_locked

if TYPE_CHECKING:
    from pathlib import Path

    from services.shop_cancel import PlanCancels


async def test_a_report_of_a_stored_cancellation_or_of_no_plan_needs_no_write_lock(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path, db_busy_timeout=1, **PLAN) as stack:
        payload, charge = await subscribe(stack)
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        assert "was cancelled too" in await admin_told(stack, 1)
        plan_cancels: PlanCancels = stack.veil.dispatcher["plan_cancels"]
        with ledger_locked(tmp_path / "veil.db"):
            # Telegram's report of that refund (its booking found it booked: nothing written).
            done = await plan_cancels.owe(USER, charge, payload)
            assert done is not None
            assert (done.charge_id, done.state) == (charge, "done")
            # A refund of a charge no plan order of the user's names owes nothing.
            assert await plan_cancels.owe(USER, "stx-no-plan", "no-such-order") is None
