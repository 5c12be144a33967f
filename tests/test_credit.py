"""Credit on a real SQLite file: prices, holds, settling, the free allowance, crash recovery."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from models import Database, MasterKey, StorageError, Store
from models import migrations as schema
from models.ledger import Balance
from models.usage import ReceiptProof, StoredBundle
from sealed.receipt import ReceiptStatus
from services.credit import Credit
from services.errors import BillingError, InsufficientCredit, LedgerUnavailable
from services.prices import ModelPrice, Prices, format_units
from tests.books import grant, inconsistent_users
from tests.harness import Clock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


ALICE, BOB = 1001, 2002
DAY = 86_400
NOON = 20_000 * DAY + 12 * 3600  # noon UTC on some day
PRICES = Prices.parse("big=100/300,*=20/60")
FREE = 2000
STAR = 1_000_000


@pytest.fixture(autouse=True)
async def _books_balance(db_path: Path, master_key: MasterKey) -> AsyncIterator[None]:
    """After every test: every hold, release, usage and payment row agrees with the others."""
    yield
    reopened = await Store.open(db_path, master_key)
    try:
        assert await inconsistent_users(reopened) == []
    finally:
        await reopened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON)


@pytest.fixture
async def store(db_path: Path, master_key: MasterKey) -> AsyncIterator[Store]:
    opened = await Store.open(db_path, master_key)
    yield opened
    await opened.close()


@pytest.fixture
def credit(store: Store, clock: Clock) -> Credit:
    return Credit(store, PRICES, FREE, clock=clock)


@pytest.fixture
def paid_only(store: Store, clock: Clock) -> Credit:
    """Credit with no free allowance, so every token costs."""
    return Credit(store, PRICES, 0, clock=clock)


async def _ledger(store: Store, user_id: int) -> list[tuple[str, int, str]]:
    rows = await store.read(
        lambda db: db.execute(
            "SELECT kind, amount, source FROM ledger WHERE user_id = ? ORDER BY id", [user_id]
        ).fetchall()
    )
    return [(str(kind), int(amount), str(source)) for kind, amount, source in rows]


# -- prices ----------------------------------------------------------------------------------


def test_prices_parse_per_model_and_default() -> None:
    prices = Prices.parse(" meta-llama/Llama-3.1-8B=5/15 , big=100/300,*=20/60 ")

    assert prices.for_model("meta-llama/Llama-3.1-8B") == ModelPrice(5, 15)
    assert prices.for_model("big") == ModelPrice(100, 300)
    assert prices.for_model("anything-else") == ModelPrice(20, 60)
    assert prices.cost("big", 10, 2) == 10 * 100 + 2 * 300
    assert prices.cost("unknown", 1000, 500) == 1000 * 20 + 500 * 60


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "prices are empty"),
        ("big", "is not model=in/out"),
        ("=1/2,*=1/1", "is not model=in/out"),
        ("big=12,*=1/1", "whole µ★ per token"),
        ("big=a/b,*=1/1", "whole µ★ per token"),
        ("big=1.5/2,*=1/1", "whole µ★ per token"),
        ("big=-1/2,*=1/1", "cannot be negative"),
        ("big=1/2", r"add \*=in/out"),
        ("*=1/2,*=3/4", "given twice"),
        ("big=1/2,big=3/4,*=1/1", "'big' is given twice"),
    ],
)
def test_prices_refuse_bad_settings_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Prices.parse(text)


def test_units_are_shown_as_exact_stars() -> None:
    assert format_units(1_500_000) == "1.5"
    assert format_units(50 * STAR) == "50"
    assert format_units(1) == "0.000001"
    assert format_units(-2 * STAR) == "-2"
    assert format_units(0) == "0"


# -- holds and settling ----------------------------------------------------------------------


async def test_a_request_is_charged_its_actual_cost_and_the_rest_is_given_back(
    paid_only: Credit, store: Store
) -> None:
    await grant(store, ALICE, STAR, "grant", "welcome:1")

    hold = await paid_only.hold(ALICE, "r1", "model", 100, 1000)
    assert hold.units == 100 * 20 + 1000 * 60
    during = await paid_only.balance(ALICE)
    assert (during.units, during.held) == (STAR - hold.units, hold.units)

    charge = await paid_only.settle(hold, 100, 200, receipt_valid=True)

    assert (charge.outcome, charge.cost, charge.units) == ("settled", 6000 + 8000, 14_000)
    after = await paid_only.balance(ALICE)
    assert (after.units, after.held) == (STAR - 14_000, 0)
    assert await _ledger(store, ALICE) == [
        ("grant", STAR, "welcome:1"),
        ("hold", -62_000, "hold:r1"),
        ("release", 62_000, "release:r1"),
        ("usage", -14_000, "usage:r1"),
    ]


async def test_the_model_price_is_the_one_the_hold_was_made_at(store: Store, clock: Clock) -> None:
    before = Credit(store, Prices.parse("*=10/10"), 0, clock=clock)
    await grant(store, ALICE, STAR, "grant", "g")
    hold = await before.hold(ALICE, "r1", "model", 10, 10)

    after_restart = Credit(store, Prices.parse("*=1000/1000"), 0, clock=clock)
    charge = await after_restart.settle(hold, 10, 10, receipt_valid=True)

    assert charge.units == 200
    assert (await after_restart.balance(ALICE)).units == STAR - 200


async def test_the_free_allowance_is_spent_first_and_resets_at_midnight_utc(
    credit: Credit, store: Store, clock: Clock
) -> None:
    # 1500 tokens fit the 2000 free: nothing is needed even with no credit at all.
    first = await credit.hold(ALICE, "r1", "model", 500, 1000)
    assert (first.units, first.free_tokens) == (0, 1500)
    assert (await credit.balance(ALICE)).free_tokens_left == 500  # reserved while running

    charge = await credit.settle(first, 500, 300, receipt_valid=True)
    assert (charge.free_tokens, charge.cost, charge.units) == (800, 500 * 20 + 300 * 60, 0)
    assert await credit.balance(ALICE) == _balance(0, 1200)
    assert await _ledger(store, ALICE) == [
        ("hold", 0, "hold:r1"),
        ("release", 0, "release:r1"),
        ("usage", -28_000, "usage:r1"),
        ("free", 28_000, "free:r1"),
    ]

    # 1200 free left and no credit: the answer is capped to the 700 tokens they still pay for.
    second = await credit.hold(ALICE, "r2", "model", 500, 1000)
    assert (second.units, second.free_tokens, second.max_completion_tokens) == (0, 1200, 700)
    charge = await credit.settle(second, 500, 700, receipt_valid=True)
    assert (charge.units, charge.free_tokens) == (0, 1200)
    assert await credit.balance(ALICE) == _balance(0, 0)

    # Not even a short answer fits now: refused, naming what a 64-token answer would cost.
    with pytest.raises(InsufficientCredit) as refused:
        await credit.hold(ALICE, "r3", "model", 500, 1000)
    assert (refused.value.needed, refused.value.balance) == (500 * 20 + 64 * 60, 0)
    assert refused.value.free_tokens_left == 0

    await grant(store, ALICE, STAR, "grant", "charge-1")
    third = await credit.hold(ALICE, "r3", "model", 500, 1000)
    assert (third.units, third.free_tokens) == (500 * 20 + 1000 * 60, 0)
    charge = await credit.settle(third, 500, 1000, receipt_valid=True)
    assert await credit.balance(ALICE) == _balance(STAR - charge.units, 0)

    clock.advance(12 * 3600 - 1)  # 23:59:59 UTC
    assert (await credit.balance(ALICE)).free_tokens_left == 0
    clock.advance(1)  # 00:00:00 UTC: a new day
    assert (await credit.balance(ALICE)).free_tokens_left == FREE
    fourth = await credit.hold(ALICE, "r4", "model", 100, 100)
    assert (fourth.units, fourth.free_tokens) == (0, 200)
    await credit.release(fourth)
    assert (await credit.balance(ALICE)).free_tokens_left == FREE


async def test_a_hold_counts_against_the_day_it_was_made(credit: Credit, clock: Clock) -> None:
    clock.advance(12 * 3600 - 10)  # ten seconds before midnight
    hold = await credit.hold(ALICE, "r1", "model", 1000, 1000)
    clock.advance(20)
    assert (await credit.balance(ALICE)).free_tokens_left == FREE

    await credit.settle(hold, 1000, 1000, receipt_valid=True)

    assert (await credit.balance(ALICE)).free_tokens_left == FREE


async def test_insufficient_credit_raises_and_writes_nothing(
    paid_only: Credit, store: Store
) -> None:
    await grant(store, ALICE, 1000, "grant", "g")
    before = await _ledger(store, ALICE)

    with pytest.raises(InsufficientCredit) as refused:
        await paid_only.hold(ALICE, "r1", "model", 100, 1000)

    # What the prompt and the shortest useful answer (64 tokens) cost.
    assert (refused.value.needed, refused.value.balance) == (100 * 20 + 64 * 60, 1000)
    assert await _ledger(store, ALICE) == before
    assert await paid_only.balance(ALICE) == _balance(1000, 0)
    # The refused request left no trace: the same id may be held once credit arrives.
    await grant(store, ALICE, STAR, "grant", "c1")
    assert (await paid_only.hold(ALICE, "r1", "model", 100, 1000)).units == 62_000


async def test_a_negative_balance_stops_even_free_requests(credit: Credit, store: Store) -> None:
    await grant(store, ALICE, -5, "grant", "debit:x")

    with pytest.raises(InsufficientCredit) as refused:
        await credit.hold(ALICE, "r1", "model", 10, 10)

    assert (refused.value.needed, refused.value.balance) == (0, -5)


async def test_fifty_concurrent_holds_never_overdraw(paid_only: Credit, store: Store) -> None:
    per_request = 10 * 20 + 100 * 60
    await grant(store, ALICE, 10 * per_request + per_request // 2, "grant", "c1")

    results = await asyncio.gather(
        *(paid_only.hold(ALICE, f"r{n}", "model", 10, 100) for n in range(50)),
        return_exceptions=True,
    )

    holds = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientCredit)]
    assert (len(holds), len(refused)) == (10, 40)
    assert await paid_only.balance(ALICE) == _balance(per_request // 2, 0, 10 * per_request)
    await asyncio.gather(*(paid_only.release(hold) for hold in holds))
    assert (await paid_only.balance(ALICE)).units == 10 * per_request + per_request // 2


async def test_concurrent_holds_cannot_share_the_same_free_tokens(credit: Credit) -> None:
    results = await asyncio.gather(
        *(credit.hold(ALICE, f"r{n}", "model", 100, 200) for n in range(50)),
        return_exceptions=True,
    )

    holds = [r for r in results if not isinstance(r, BaseException)]
    # Six full holds take 1800 free tokens; the seventh gets the 100 answer tokens left.
    assert sorted(h.max_completion_tokens for h in holds) == [100] + [200] * (FREE // 300)
    assert all(isinstance(r, InsufficientCredit) for r in results if r not in holds)
    assert await credit.balance(ALICE) == _balance(0, 0)
    for hold in holds:
        await credit.release(hold)


async def test_settling_or_releasing_twice_changes_nothing(paid_only: Credit, store: Store) -> None:
    await grant(store, ALICE, STAR, "grant", "g")
    hold = await paid_only.hold(ALICE, "r1", "model", 10, 100)
    charge = await paid_only.settle(hold, 10, 50, receipt_valid=True)
    rows = await _ledger(store, ALICE)

    assert await paid_only.settle(hold, 10, 100, receipt_valid=True) == charge
    assert await paid_only.settle(hold, 10, 100, receipt_valid=False) == charge
    assert await paid_only.release(hold) == charge
    assert await _ledger(store, ALICE) == rows

    other = await paid_only.hold(ALICE, "r2", "model", 10, 100)
    released = await paid_only.release(other)
    assert (released.outcome, released.units) == ("released", 0)
    assert await paid_only.release(other) == released
    assert await paid_only.settle(other, 10, 100, receipt_valid=True) == released
    assert (await paid_only.balance(ALICE)).units == STAR - charge.units


async def test_holding_a_request_id_again_returns_the_first_hold(
    paid_only: Credit, store: Store
) -> None:
    await grant(store, ALICE, STAR, "grant", "g")
    await grant(store, BOB, STAR, "grant", "g2")
    first = await paid_only.hold(ALICE, "r1", "model", 10, 100)

    assert await paid_only.hold(ALICE, "r1", "model", 10, 100) == first
    assert (await paid_only.balance(ALICE)).held == first.units
    with pytest.raises(BillingError, match="another user"):
        await paid_only.hold(BOB, "r1", "model", 10, 100)
    await paid_only.release(first)


async def test_settling_an_unknown_hold_is_refused(paid_only: Credit, store: Store) -> None:
    await grant(store, ALICE, STAR, "grant", "g")
    hold = await paid_only.hold(ALICE, "r1", "model", 1, 1)
    await paid_only.release(hold)
    forged = dataclasses.replace(hold, request_id="never-held")

    with pytest.raises(BillingError, match="no such hold"):
        await paid_only.settle(forged, 1, 1, receipt_valid=True)


async def test_an_invalid_receipt_is_charged_the_held_amount_and_logged(
    credit: Credit,
    store: Store,
) -> None:
    await grant(store, ALICE, STAR, "grant", "c1")
    hold = await credit.hold(ALICE, "r1", "model", 1000, 2000)

    with capture_logs() as logs:
        charge = await credit.settle(hold, 1, 1, receipt_valid=False)

    assert (charge.outcome, charge.units, charge.free_tokens) == ("unverified", hold.units, FREE)
    assert (charge.prompt_tokens, charge.completion_tokens) == (1000, 2000)
    assert await credit.balance(ALICE) == _balance(STAR - hold.units, 0)
    events = [entry for entry in logs if entry["event"] == "billing.receipt_invalid"]
    assert events == [
        {
            "event": "billing.receipt_invalid",
            "log_level": "warning",
            "request_id": "r1",
            "user_id": ALICE,
            "charged": hold.units,
        }
    ]


async def test_a_receipt_counting_more_than_was_held_is_charged_in_full(
    paid_only: Credit,
    store: Store,
) -> None:
    await grant(store, ALICE, STAR, "grant", "g")
    hold = await paid_only.hold(ALICE, "r1", "model", 10, 100)

    with capture_logs() as logs:
        charge = await paid_only.settle(hold, 50, 500, receipt_valid=True)

    assert charge.units == charge.cost == 50 * 20 + 500 * 60 > hold.units
    assert (await paid_only.balance(ALICE)).units == STAR - charge.units
    assert [entry["event"] for entry in logs] == ["billing.over_hold"]


async def test_past_the_balance_a_receipt_overdraws_and_answers_stop_until_a_top_up(
    credit: Credit, clock: Clock, store: Store
) -> None:
    await grant(store, ALICE, 10_000, "grant", "g")
    hold = await credit.hold(ALICE, "r1", "model", 1000, 1000)
    assert hold.free_tokens == FREE

    # The model server counted far more than the ceilings (a tokenizer nobody foresaw).
    with capture_logs() as logs:
        charge = await credit.settle(hold, 3000, 1000, receipt_valid=True)

    # Free tokens first, then the balance, then the overdraft: nothing is capped.
    assert (charge.free_tokens, charge.cost) == (FREE, 3000 * 20 + 1000 * 60)
    assert charge.units == 1000 * 20 + 1000 * 60
    assert await credit.balance(ALICE) == _balance(10_000 - charge.units, 0)
    events = [entry["event"] for entry in logs]
    assert events == ["billing.over_hold", "billing.overdraft"]
    with pytest.raises(InsufficientCredit) as refused:
        await credit.hold(ALICE, "r2", "model", 10, 10)
    assert refused.value.balance == 10_000 - charge.units < 0
    await grant(store, ALICE, STAR, "grant", "c1")
    clock.advance(DAY)
    assert (await credit.hold(ALICE, "r2", "model", 10, 10)).units == 0


async def test_an_answer_may_use_free_tokens_another_hold_gave_back(credit: Credit) -> None:
    first = await credit.hold(ALICE, "r1", "model", 100, 100)
    other = await credit.hold(ALICE, "r2", "model", 100, 100)
    await credit.release(other)  # 200 free tokens back in the pool

    charge = await credit.settle(first, 100, 300, receipt_valid=True)

    assert (charge.free_tokens, charge.units) == (400, 0)
    assert (await credit.balance(ALICE)).free_tokens_left == FREE - 400


async def test_a_stopped_receipt_is_charged_its_counts_and_its_status_kept(
    paid_only: Credit,
    store: Store,
) -> None:
    await grant(store, ALICE, STAR, "grant", "g")
    hold = await paid_only.hold(ALICE, "r1", "model", 100, 1000)

    charge = await paid_only.settle(hold, 90, 12, receipt_valid=True, status=ReceiptStatus.STOPPED)

    assert (charge.outcome, charge.receipt_status) == ("settled", "stopped")
    assert (charge.prompt_tokens, charge.completion_tokens) == (90, 12)
    assert charge.units == 90 * 20 + 12 * 60
    assert (await paid_only.balance(ALICE)).units == STAR - charge.units
    # Read back from the row, the status is the same.
    assert await paid_only.settle(hold, 1, 1, receipt_valid=True) == charge
    (usage,) = await paid_only.history(ALICE, kinds=("usage",))
    assert usage.note == "model: 90+12 tokens, 0 free, stopped"


async def test_text_delivered_without_a_receipt_is_charged_the_bots_estimate(
    paid_only: Credit,
    store: Store,
) -> None:
    await grant(store, ALICE, STAR, "grant", "g")
    hold = await paid_only.hold(ALICE, "r1", "model", 100, 1000)

    with capture_logs() as logs:
        charge = await paid_only.estimate(hold, 30)

    assert (charge.outcome, charge.receipt_status) == ("estimated", None)
    assert (charge.prompt_tokens, charge.completion_tokens) == (100, 30)  # the hold's prompt
    assert charge.units == charge.cost == 100 * 20 + 30 * 60
    assert (await paid_only.balance(ALICE)).units == STAR - charge.units
    assert await paid_only.estimate(hold, 500) == charge
    assert await paid_only.settle(hold, 1, 1, receipt_valid=True) == charge
    (usage,) = await paid_only.history(ALICE, kinds=("usage",))
    assert usage.note == "model: 100+30 tokens, 0 free, estimated"
    assert [entry["event"] for entry in logs] == ["billing.estimated"]


async def test_an_estimate_uses_the_free_allowance_and_never_exceeds_the_hold(
    credit: Credit, paid_only: Credit, store: Store
) -> None:
    free_hold = await credit.hold(ALICE, "r1", "model", 100, 1000)
    free = await credit.estimate(free_hold, 30)
    assert (free.units, free.free_tokens, free.cost) == (0, 130, 100 * 20 + 30 * 60)

    await grant(store, BOB, STAR, "grant", "g")
    small = await paid_only.hold(BOB, "r2", "model", 10, 20)
    capped = await paid_only.estimate(small, 5000)
    assert capped.units == small.units
    assert capped.outcome == "estimated"
    assert (await paid_only.balance(BOB)).units == STAR - small.units


async def test_the_estimated_outcome_migration_keeps_every_hold(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    schema.apply(db, schema.MIGRATIONS[:2])
    columns = (
        "request_id, user_id, model, prompt_tokens, max_completion_tokens, free_tokens, units,"
        " price_in, price_out, day, created_at, outcome, closed_at, prompt_used,"
        " completion_used, free_used, cost, charged"
    )
    rows = [
        ("closed", ALICE, "m", 10, 100, 0, 6100, 10, 60, 1, 86_400, "settled", 86_401, 10, 5, 0,
         400, 400),
        ("open", ALICE, "m", 10, 100, 0, 6100, 10, 60, 1, 86_400, None, None, None, None, None,
         None, None),
    ]  # fmt: skip
    with db.atomic():
        for row in rows:
            db.execute(f"INSERT INTO holds ({columns}) VALUES ({', '.join('?' * 18)})", row)  # noqa: S608 -- test data
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE holds SET outcome = 'estimated' WHERE request_id = 'open'")

    assert schema.apply(db, schema.MIGRATIONS[:3]) == ["m0003_estimated_charges"]

    assert [
        tuple(r)
        for r in db.execute(f"SELECT {columns}, receipt_status FROM holds ORDER BY request_id")  # noqa: S608 -- test data
    ] == [(*row, None) for row in rows]
    with db.atomic():
        db.execute("UPDATE holds SET outcome = 'estimated' WHERE request_id = 'open'")
    indexes = {index.name for index in db.table("holds").indexes}
    assert {"holds_user_day", "holds_open"} <= indexes
    db.close()


async def test_recover_releases_holds_a_crash_left_open(
    store: Store, db_path: Path, master_key: MasterKey, clock: Clock
) -> None:
    before = Credit(store, PRICES, 0, clock=clock)
    await grant(store, ALICE, STAR, "grant", "c1")
    done = await before.hold(ALICE, "r1", "model", 10, 100)
    await before.hold(ALICE, "r2", "model", 10, 100)  # in flight when the bot dies
    charge = await before.settle(done, 10, 40, receipt_valid=True)
    await store.close()

    clock.advance(120)
    reopened = await Store.open(db_path, master_key)
    try:
        after = Credit(reopened, PRICES, 0, clock=clock)
        fresh = await after.hold(ALICE, "r3", "model", 1, 1)
        assert (await after.balance(ALICE)).held == done.units + fresh.units

        assert await after.recover(older_than_seconds=60) == 1
        assert await after.recover(older_than_seconds=60) == 0

        assert await after.balance(ALICE) == _balance(
            STAR - charge.units - fresh.units, 0, fresh.units
        )
        released = await after.settle(done, 10, 100, receipt_valid=True)
        assert released == charge
        await after.release(fresh)
        assert (await after.balance(ALICE)).units == STAR - charge.units
    finally:
        await reopened.close()


# -- credits, history, figures ---------------------------------------------------------------


async def test_a_credit_is_written_once_per_source(credit: Credit, store: Store) -> None:
    assert await grant(store, ALICE, 5 * STAR, "grant", "admin:42")
    assert not await grant(store, ALICE, 5 * STAR, "grant", "admin:42")
    assert not await grant(store, BOB, 7 * STAR, "grant", "admin:42")

    assert (await credit.balance(ALICE)).units == 5 * STAR
    assert (await credit.balance(BOB)).units == 0


@pytest.mark.parametrize(
    ("kind", "source"),
    [("usage", "x"), ("hold", "x"), ("free", "x"), ("grant", ""), ("grant", "hold:r1")],
)
async def test_credit_refuses_request_kinds_and_keys(
    credit: Credit, kind: str, source: str, store: Store
) -> None:
    with pytest.raises(ValueError, match=r"kind must be one of|source must be"):
        await grant(store, ALICE, STAR, kind, source)  # type: ignore[arg-type]
    assert (await credit.balance(ALICE)).units == 0


async def test_history_lists_charges_and_purchases_newest_first(
    paid_only: Credit, store: Store
) -> None:
    await grant(store, ALICE, STAR, "grant", "c1")
    hold = await paid_only.hold(ALICE, "r1", "big", 10, 100)
    await paid_only.settle(hold, 10, 20, receipt_valid=True)
    await grant(store, BOB, STAR, "grant", "c2")

    history = await paid_only.history(ALICE)

    assert [(e.kind, e.amount, e.source) for e in history] == [
        ("usage", -(10 * 100 + 20 * 300), "usage:r1"),
        ("grant", STAR, "c1"),
    ]
    assert history[0].note == "big: 10+20 tokens, 0 free"
    assert len(await paid_only.history(ALICE, limit=1)) == 1


async def test_ledger_rows_cannot_be_changed_or_deleted(credit: Credit, store: Store) -> None:
    await grant(store, ALICE, STAR, "grant", "c1")

    def change(db: Database) -> None:
        db.execute("UPDATE ledger SET amount = 1")

    def delete(db: Database) -> None:
        db.execute("DELETE FROM ledger")

    for statement in (change, delete):
        with pytest.raises(StorageError, match="append-only") as refused:
            await store.write(statement)
        assert isinstance(refused.value.__cause__, sqlite3.IntegrityError)

    assert (await credit.balance(ALICE)).units == STAR


async def test_the_invariant_check_names_users_whose_rows_disagree(
    tmp_path: Path, clock: Clock
) -> None:
    other = await Store.open(tmp_path / "other.db", MasterKey.generate())
    try:
        credit = Credit(other, PRICES, 0, clock=clock)
        await grant(other, ALICE, STAR, "grant", "c1")
        hold = await credit.hold(ALICE, "r1", "model", 1, 1)
        await credit.settle(hold, 1, 1, receipt_valid=True)
        assert await inconsistent_users(other) == []

        def usage_without_a_hold(db: Database) -> None:
            db.execute(
                "INSERT INTO ledger (user_id, kind, amount, source, created_at)"
                " VALUES (?, 'usage', -5, 'usage:ghost', 0)",
                [BOB],
            )

        await other.write(usage_without_a_hold)
        assert await inconsistent_users(other) == [BOB]
    finally:
        await other.close()


async def test_a_closed_store_is_reported_as_an_unavailable_ledger(
    credit: Credit, store: Store
) -> None:
    await store.close()

    with pytest.raises(LedgerUnavailable):
        await credit.balance(ALICE)


def _balance(units: int, free_left: int, held: int = 0) -> Balance:
    return Balance(units=units, free_tokens_left=free_left, held=held)


async def test_the_sweep_releases_old_holds_but_spares_answers_still_running(
    paid_only: Credit, clock: Clock, store: Store
) -> None:
    await grant(store, ALICE, STAR, "grant", "g")
    orphan = await paid_only.hold(ALICE, "orphan", "model", 10, 100)
    running = await paid_only.hold(ALICE, "running", "model", 10, 100)
    clock.advance(100)
    young = await paid_only.hold(ALICE, "young", "model", 10, 100)

    assert await paid_only.recover(60, keep={"running"}) == 1

    assert (await paid_only.settle(orphan, 10, 10, receipt_valid=True)).outcome == "recovered"
    assert (await paid_only.balance(ALICE)).held == running.units + young.units
    await paid_only.release(running)
    await paid_only.release(young)


async def test_each_charge_keeps_its_proof_where_nothing_can_change_it(
    paid_only: Credit, store: Store
) -> None:
    await grant(store, ALICE, STAR, "grant", "g")
    bundle = StoredBundle(b'{"bundle": 1}', b"s" * 64, b"o" * 32)
    for request_id in ("r1", "r2"):
        hold = await paid_only.hold(ALICE, request_id, "model", 10, 100)
        proof = ReceiptProof(
            b'{"receipt": "' + request_id.encode() + b'"}', b"x" * 64, b"k" * 32, bundle
        )
        await paid_only.settle(hold, 10, 20, receipt_valid=True, proof=proof)
    estimated = await paid_only.hold(ALICE, "r3", "model", 10, 100)
    await paid_only.estimate(estimated, 500)

    rows = await store.read(
        lambda db: db.execute(
            "SELECT request_id, outcome, receipt, signature, receipt_key, bundle_id, price_in,"
            " price_out, prompt_tokens, completion_tokens, cost, charged FROM usage_receipts"
            " ORDER BY request_id"
        ).fetchall()
    )
    assert [tuple(row) for row in rows] == [
        ("r1", "settled", b'{"receipt": "r1"}', b"x" * 64, b"k" * 32, bundle.id, 20, 60, 10, 20,
         1400, 1400),
        ("r2", "settled", b'{"receipt": "r2"}', b"x" * 64, b"k" * 32, bundle.id, 20, 60, 10, 20,
         1400, 1400),
        # No receipt could be had: the bot's count, at most the answer tokens held.
        ("r3", "estimated", None, None, None, None, 20, 60, 10, 100, 6200, 6200),
    ]  # fmt: skip
    (bundles,) = await store.read(lambda db: db.execute("SELECT COUNT(*) FROM bundles").fetchone())
    assert bundles == 1

    def tamper(db: Database) -> None:
        db.execute("UPDATE usage_receipts SET charged = 0")

    with pytest.raises(StorageError, match="append-only") as refused:
        await store.write(tamper)
    assert isinstance(refused.value.__cause__, sqlite3.IntegrityError)
