"""A hold another replica's sweep recovered under a running answer, charged late: attacked.

Holds are leased by the wall clock: a replica whose clock is ahead by more than a hold's
lifetime recovers a hold whose answer still runs here, and the answer is charged when it ends
(``billing.charged_after_recovery``). Two ways that went wrong:

- that replica's teller told the user first: "the answer may have been cut off. It was not
  charged", and then the answer was charged all the same;
- the hold's free tokens went back with it and another question of the user took them: an
  answer charged late without a receipt (``estimated``, ``unverified``) then cost more than
  its hold, which no such charge may (the books disagreed, and the audit failed).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from structlog.testing import capture_logs

from handlers.chat import tell_interrupted
from models import MasterKey, Store
from models.holds import AnswerChat
from services.audit import Auditor
from services.credit import Credit
from services.prices import Prices
from tests.books import grant, inconsistent_users
from tests.botstack import running_stack
from tests.test_clock24_holds import ledger_amounts, replica_ahead

if TYPE_CHECKING:
    from pathlib import Path

USER = 2402
STAR = 1_000_000
ANSWER = " ".join(f"egret{i}" for i in range(60))
NOT_CHARGED = "It was not charged."
LIFETIME = 600


async def test_a_user_told_an_answer_was_not_charged_is_not_charged_for_it(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, free_tokens_per_day=0
    ) as stack:
        veil = stack.veil
        assert await grant(veil.store, USER, STAR, "grant", "test:welcome")
        async with replica_ahead(veil) as (other, ahead):
            with capture_logs() as logs:
                stack.telegram.send_text(USER, "Tell me about egrets")
                await stack.telegram.wait_for("sendMessageDraft")  # the answer is under way
                assert await ahead.recover(veil.chat.hold_lifetime) == 1
                # The other replica's teller tells the user at once, while the answer runs.
                assert await tell_interrupted(veil.bot, veil.catalogs, ahead) == 1
                sent = await stack.final_messages(USER, count=2, within=30)
                assert await veil.chat.wait_idle(30)
            usages = await ledger_amounts(other, USER, "usage")
            balance = await ahead.balance(USER)
            assert await inconsistent_users(other) == []
    notice, answer = (m["text"] for m in sent)
    assert NOT_CHARGED in notice
    assert answer == ANSWER
    # As the user was told: nothing charged, the whole balance theirs.
    assert usages == []
    assert balance.units == STAR
    assert balance.held == 0
    assert not [e for e in logs if e["event"] == "billing.charged_after_recovery"]


async def _late_charge_without_receipt(tmp_path: Path, *, estimated: bool) -> tuple[int, int]:
    """An answer's hold reserved free tokens; swept, and they went to the next question.

    Returns (the late charge, the hold's units) once the books and the audit agree.
    """
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        prices = Prices.parse("*=20/60")
        here = Credit(store, prices, 1000)
        ahead = Credit(store, prices, 1000, clock=lambda: time.time() + LIFETIME + 60)
        assert await grant(store, USER, STAR, "grant", "test:welcome")
        first = await here.hold(USER, "a1", "m", 400, 1600)
        assert (first.free_tokens, first.max_completion_tokens) == (1000, 1600)
        assert await ahead.recover(LIFETIME) == 1
        second = await here.hold(USER, "a2", "m", 400, 600)  # takes the free tokens back
        assert second.free_tokens == 1000
        if estimated:
            charge = await here.estimate(first, 1600)
        else:
            charge = await here.settle(first, 400, 1600, receipt_valid=False)
        await here.estimate(second, 600)
        assert await inconsistent_users(store) == []
        report = await Auditor(store, []).run()
        assert [p for p in report.problems if "without a valid receipt" not in p] == []
        return charge.units, first.units
    finally:
        await store.close()


async def test_an_estimate_charged_late_is_never_more_than_its_hold(tmp_path: Path) -> None:
    charged, held = await _late_charge_without_receipt(tmp_path, estimated=True)
    assert charged <= held


async def test_an_invalid_receipt_charged_late_takes_the_held_amount(tmp_path: Path) -> None:
    charged, held = await _late_charge_without_receipt(tmp_path, estimated=False)
    assert charged == held


async def test_no_late_charge_counts_more_free_tokens_than_the_day_has(tmp_path: Path) -> None:
    # With a receipt, the late charge is the receipt's in full: it takes only the free tokens
    # no other question took, so the day's allowance is not counted twice.
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        prices = Prices.parse("*=20/60")
        here = Credit(store, prices, 1000)
        ahead = Credit(store, prices, 1000, clock=lambda: time.time() + LIFETIME + 60)
        assert await grant(store, USER, STAR, "grant", "test:welcome")
        first = await here.hold(USER, "b1", "m", 400, 600)
        assert await ahead.recover(LIFETIME) == 1
        second = await here.hold(USER, "b2", "m", 400, 600)
        late = await here.settle(first, 400, 600, receipt_valid=True)
        after = await here.settle(second, 400, 600, receipt_valid=True)
        assert await inconsistent_users(store) == []
    finally:
        await store.close()
    assert (late.outcome, late.free_tokens, after.free_tokens) == ("settled", 0, 1000)
    assert late.units == prices.for_model("m").cost(400, 600)


async def test_a_stop_of_a_swept_hold_changes_nothing(tmp_path: Path) -> None:
    # Nothing delivered and no receipt (stopped before the gateway answered, or it failed):
    # released, not charged, once; the user, told here how it ended ("Stopped.", an error),
    # is not told later that a restart cut the answer off.
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        prices = Prices.parse("*=20/60")
        here = Credit(store, prices, 0)
        ahead = Credit(store, prices, 0, clock=lambda: time.time() + LIFETIME + 60)
        assert await grant(store, USER, STAR, "grant", "test:welcome")
        hold = await here.hold(USER, "c1", "m", 400, 600, chat=AnswerChat(USER))
        assert await ahead.recover(LIFETIME) == 1
        assert [cut.request_id for cut in await ahead.interrupted()] == ["c1"]
        released = await here.release(hold)
        told = await ahead.interrupted()
        again = await asyncio.gather(here.settle(hold, 400, 600, receipt_valid=True))
        balance = await here.balance(USER)
        assert await inconsistent_users(store) == []
    finally:
        await store.close()
    assert released.outcome == "recovered"
    assert told == []
    assert again[0].outcome == "recovered"  # a settle after the release charges nothing
    assert (balance.units, balance.held) == (STAR, 0)


async def test_a_settle_racing_another_replicas_sweep_charges_once(tmp_path: Path) -> None:
    # The two replicas each on their own connection, the sweep and the settle in one instant:
    # whichever writes first, the answer is charged once and the books agree.
    path = tmp_path / "veil.db"
    key = MasterKey.generate()
    store = await Store.open(path, key)
    other = await Store.open(path, key)
    try:
        prices = Prices.parse("*=20/60")
        here = Credit(store, prices, 0)
        ahead = Credit(other, prices, 0, clock=lambda: time.time() + LIFETIME + 60)
        assert await grant(store, USER, STAR, "grant", "test:welcome")
        holds = [await here.hold(USER, f"d{i}", "m", 400, 600) for i in range(8)]
        sweep = asyncio.ensure_future(ahead.recover(LIFETIME))
        charges = await asyncio.gather(
            *(here.settle(hold, 400, 300, receipt_valid=True) for hold in holds)
        )
        await sweep
        usages = await ledger_amounts(store, USER, "usage")
        balance = await here.balance(USER)
        assert await inconsistent_users(store) == []
    finally:
        await other.close()
        await store.close()
    assert {charge.outcome for charge in charges} == {"settled"}
    assert len(usages) == len(holds)
    assert (balance.units, balance.held) == (STAR + sum(usages), 0)
