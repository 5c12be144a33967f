"""A replica whose clock stepped forward past a running answer's hold sweeps it.

Holds are leased by the wall clock (replicas share them): another bot replica, its clock
stepped (or running) more than the hold's lifetime ahead, takes a hold whose answer still runs
here for a crash's leftover and recovers it: the held credit goes back. The answer then
finished and its settlement found the hold closed, so it was never charged. It is now charged
when it settles (``billing.charged_after_recovery``), exactly once, and the books agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from structlog.testing import capture_logs

from models import MasterKey, Store
from services.credit import Credit
from services.prices import Prices
from tests.books import grant, inconsistent_users
from tests.botstack import running_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from bot.app import Veil

USER = 2401
STAR = 1_000_000
ANSWER = " ".join(f"heron{i}" for i in range(60))


async def _holds(store: Store) -> list[tuple[str, int]]:
    rows = await store.read(
        lambda db: db.execute(
            "SELECT outcome, charged FROM holds WHERE user_id = ? ORDER BY created_at", [USER]
        ).fetchall()
    )
    return [(str(outcome), int(charged)) for outcome, charged in rows]


async def ledger_amounts(store: Store, user: int, kind: str) -> list[int]:
    """The amounts of ``user``'s ledger rows of ``kind``."""
    rows = await store.read(
        lambda db: db.execute(
            "SELECT amount FROM ledger WHERE user_id = ? AND kind = ?", [user, kind]
        ).fetchall()
    )
    return [int(amount) for (amount,) in rows]


@contextlib.asynccontextmanager
async def replica_ahead(veil: Veil) -> AsyncIterator[tuple[Store, Credit]]:
    """Another replica of ``veil``: its store and its credit, its clock stepped forward.

    Its own connection to the same database; its clock past the longest an answer can take.
    """
    step = veil.chat.hold_lifetime + 60
    other = await Store.open(
        veil.settings.database_path, MasterKey.load_or_create(veil.settings.master_key_path)
    )
    try:
        yield other, Credit(other, Prices.parse("*=20/60"), 0, clock=lambda: time.time() + step)
    finally:
        await other.close()


async def test_an_answer_whose_hold_a_fast_replica_swept_is_charged_once(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, free_tokens_per_day=0
    ) as stack:
        veil = stack.veil
        assert await grant(veil.store, USER, STAR, "grant", "test:welcome")
        async with replica_ahead(veil) as (other, ahead):
            with capture_logs() as logs:
                stack.telegram.send_text(USER, "Tell me about herons")
                await stack.telegram.wait_for("sendMessageDraft")  # the answer is under way
                assert await ahead.recover(veil.chat.hold_lifetime) == 1
                assert (await ahead.balance(USER)).units == STAR  # the hold was given back
                (message,) = await stack.final_messages(USER, within=30)
                async with asyncio.timeout(10):
                    while not await ledger_amounts(veil.store, USER, "usage"):  # noqa: ASYNC110
                        await asyncio.sleep(0.02)  # the ledger has no event to wait for
                # The other replica sweeps again, and the answer's user is not told of a cut.
                assert await ahead.recover(veil.chat.hold_lifetime) == 0
                assert await veil.credit.interrupted() == []
            ((outcome, charged),) = await _holds(other)
            usages = await ledger_amounts(other, USER, "usage")
            balance = await ahead.balance(USER)
            assert await inconsistent_users(other) == []
    assert message["text"] == ANSWER
    assert outcome == "settled"
    assert charged > 0
    assert len(usages) == 1
    assert balance.units == STAR - charged
    assert balance.held == 0
    assert [e["event"] for e in logs if e["event"] == "billing.charged_after_recovery"] == [
        "billing.charged_after_recovery"
    ]
