"""The shop on a real SQLite file: orders, pre-checkout, payments, refunds, reconcile."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, NamedTuple

import pytest
from structlog.testing import capture_logs

from models import MasterKey, Store
from services.credit import Credit
from services.errors import OrderRejected
from services.prices import Prices
from services.shop import (
    MAX_OPEN_ORDERS,
    ORDER_TTL_S,
    IncomingPayment,
    Pack,
    Plan,
    Shop,
    StarTransaction,
)
from tests.books import inconsistent_users
from tests.harness import Clock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

ALICE, BOB = 1001, 2002
STAR = 1_000_000
PACKS = Pack.parse_list("250:275000000, 50:50000000,1000:1200000000")
PLAN = Plan(stars=300, units=400 * STAR)


@pytest.fixture(autouse=True)
async def _books_balance(db_path: Path, master_key: MasterKey) -> AsyncIterator[None]:
    """After every test: every payment, refund and hold agrees with its ledger rows."""
    yield
    reopened = await Store.open(db_path, master_key)
    try:
        assert await inconsistent_users(reopened) == []
    finally:
        await reopened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(1_750_000_000)


@pytest.fixture
async def store(db_path: Path, master_key: MasterKey) -> AsyncIterator[Store]:
    opened = await Store.open(db_path, master_key)
    yield opened
    await opened.close()


@pytest.fixture
def shop(store: Store, clock: Clock) -> Shop:
    return Shop(store, PACKS, PLAN, clock=clock)


@pytest.fixture
def credit(store: Store, clock: Clock) -> Credit:
    return Credit(store, Prices.parse("*=1000/1000"), 0, clock=clock)


async def _units(credit: Credit, user_id: int) -> int:
    return (await credit.balance(user_id)).units


# -- packs and plan settings -----------------------------------------------------------------


def test_packs_parse_from_the_setting() -> None:
    assert Pack.parse_list("50:50000000, 250:275000000,") == [
        Pack("50", 50, 50_000_000),
        Pack("250", 250, 275_000_000),
    ]
    assert Pack.parse_list("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("50", "is not stars:units"),
        ("50:lots", "is not stars:units"),
        ("0:100", "must be positive"),
        ("50:-1", "must be positive"),
        ("50:1,50:2", "two packs cost 50 Stars"),
    ],
)
def test_bad_packs_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pack.parse_list(text)


def test_a_plan_must_be_one_telegram_accepts() -> None:
    assert Plan(300, 1).period == 2_592_000
    with pytest.raises(ValueError, match="1 to 10000 Stars"):
        Plan(10_001, 1)
    with pytest.raises(ValueError, match="positive number of units"):
        Plan(300, 0)


def test_a_shop_needs_something_to_sell(store: Store) -> None:
    with pytest.raises(ValueError, match="at least one pack or a plan"):
        Shop(store, [])
    assert [pack.stars for pack in Shop(store, PACKS).packs] == [50, 250, 1000]


# -- orders and pre-checkout -----------------------------------------------------------------


async def test_an_order_is_bought_once_and_credited_once(
    shop: Shop, credit: Credit, clock: Clock
) -> None:
    order = await shop.create_order(ALICE, "250")

    assert (order.status, order.stars, order.units) == ("pending", 250, 275 * STAR)
    assert order.expires_at == int(clock()) + 3600
    assert len(order.id.encode()) <= 64
    assert order.id.replace("-", "").replace("_", "").isalnum()
    assert await shop.check_pre_checkout(ALICE, order.id, "XTR", 250) is None

    result = await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 250, "charge-1"))

    assert (result.new, result.units, result.flagged, result.plan) == (
        True,
        275 * STAR,
        False,
        False,
    )
    assert await _units(credit, ALICE) == 275 * STAR
    paid = await shop.order(order.id)
    assert paid is not None
    assert paid.status == "paid"
    assert await shop.check_pre_checkout(ALICE, order.id, "XTR", 250) == "already_paid"
    history = await credit.history(ALICE)
    assert [(e.kind, e.amount, e.source) for e in history] == [("purchase", 275 * STAR, "charge-1")]


class Case(NamedTuple):
    """Who pays which order (None: the order just made), how, and how much later."""

    who: int
    payload: str | None
    currency: str
    amount: int
    later: int
    reason: str | None
    units: int = 0


@pytest.mark.parametrize(
    "case",
    [
        Case(ALICE, "no-such-order", "XTR", 50, 0, "unknown_order"),
        Case(BOB, None, "XTR", 50, 0, "foreign_order"),
        Case(ALICE, None, "XTR", 50, 3601, "expired"),
        Case(ALICE, None, "USD", 50, 0, "wrong_currency"),
        Case(ALICE, None, "XTR", 49, 0, "wrong_amount"),
        Case(ALICE, None, "XTR", 50, 3600, None),
    ],
    ids=lambda case: str(case.reason),
)
async def test_pre_checkout_accepts_only_the_owners_pending_order_at_its_price(
    shop: Shop, clock: Clock, case: Case
) -> None:
    order = await shop.create_order(ALICE, "50")
    clock.advance(case.later)

    reason = await shop.check_pre_checkout(
        case.who, case.payload or order.id, case.currency, case.amount
    )

    assert reason == case.reason
    still = await shop.order(order.id)
    assert still is not None
    assert still.status == "pending"


async def test_pre_checkout_refuses_a_paid_order(shop: Shop) -> None:
    order = await shop.create_order(ALICE, "50")
    await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 50, "charge-1"))

    assert await shop.check_pre_checkout(ALICE, order.id, "XTR", 50) == "already_paid"


async def test_orders_for_things_not_sold_are_rejected(store: Store, clock: Clock) -> None:
    packs_only = Shop(store, PACKS, clock=clock)

    with pytest.raises(OrderRejected) as no_pack:
        await packs_only.create_order(ALICE, "75")
    with pytest.raises(OrderRejected) as no_plan:
        await packs_only.create_plan_order(ALICE)

    assert (no_pack.value.reason, no_plan.value.reason) == ("unknown_pack", "no_plan")


async def test_a_user_who_presses_buy_again_and_again_gets_no_more_open_orders_than_the_cap(
    shop: Shop, clock: Clock
) -> None:
    # Each press of a pack's button stored one more order, with no bound: 10,000 presses were
    # 10,000 rows kept a day past their hour. Unpaid orders of the last hour are capped per
    # user; an order paid, or one that expired, no longer counts.
    made = [await shop.create_order(ALICE, "50") for _ in range(MAX_OPEN_ORDERS - 1)]
    made.append(await shop.create_plan_order(ALICE))
    with capture_logs() as logs, pytest.raises(OrderRejected) as refused:
        await shop.create_order(ALICE, "50")
    assert refused.value.reason == "too_many_orders"
    assert [e["user_id"] for e in logs if e["event"] == "stars.orders_capped"] == [ALICE]
    with pytest.raises(OrderRejected):
        await shop.create_plan_order(ALICE)
    assert (await shop.create_order(BOB, "50")).user_id == BOB  # another user's own cap
    # The orders made before are untouched: each can still be paid.
    assert await shop.check_pre_checkout(ALICE, made[0].id, "XTR", 50) is None
    await shop.record_payment(IncomingPayment(ALICE, made[0].id, "XTR", 50, "stx-capped"))
    assert (await shop.create_order(ALICE, "50")).user_id == ALICE  # a paid one left the count
    with pytest.raises(OrderRejected):
        await shop.create_order(ALICE, "50")
    clock.advance(ORDER_TTL_S + 1)  # the hour passed: they expired, and no longer count
    assert (await shop.create_order(ALICE, "50")).user_id == ALICE


# -- payments --------------------------------------------------------------------------------


async def test_a_redelivered_payment_changes_nothing(
    shop: Shop, credit: Credit, store: Store
) -> None:
    order = await shop.create_order(ALICE, "50")
    first = await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 50, "charge-1"))

    again = await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 50, "charge-1"))

    assert (again.new, again.units, again.flagged) == (False, first.units, False)
    assert await _units(credit, ALICE) == 50 * STAR
    (count,) = await store.read(lambda db: db.execute("SELECT COUNT(*) FROM payments").fetchone())
    assert count == 1


@pytest.mark.parametrize(
    "case",
    [
        # Unknown order: the Stars at the cheapest pack's rate (50 Stars for 50 million µ★).
        Case(ALICE, "forgotten", "XTR", 75, 0, "unknown_order", 75 * STAR),
        Case(BOB, None, "XTR", 250, 0, "foreign_order", 250 * STAR),
        Case(ALICE, None, "XTR", 250, 7200, "expired", 275 * STAR),
        Case(ALICE, None, "XTR", 100, 0, "wrong_amount", 100 * STAR),
        Case(ALICE, None, "EUR", 250, 0, "wrong_currency", 0),
    ],
    ids=lambda case: str(case.reason),
)
async def test_a_payment_for_a_bad_order_is_still_credited_and_flagged(
    shop: Shop, credit: Credit, clock: Clock, case: Case
) -> None:
    order = await shop.create_order(ALICE, "250")
    clock.advance(case.later)

    with capture_logs() as logs:
        result = await shop.record_payment(
            IncomingPayment(
                case.who, case.payload or order.id, case.currency, case.amount, "charge-1"
            )
        )

    assert (result.new, result.flagged, result.flag_reason, result.units) == (
        True,
        True,
        case.reason,
        case.units,
    )
    assert await _units(credit, case.who) == case.units
    payment = await shop.payment("charge-1")
    assert payment is not None
    assert (payment.flagged, payment.flag_reason, payment.user_id) == (True, case.reason, case.who)
    assert [entry["event"] for entry in logs] == ["stars.payment_flagged"]
    assert (await credit.stats()).flagged == 1


async def test_a_payment_approved_before_its_order_expired_is_not_flagged_expired(
    shop: Shop, credit: Credit, clock: Clock
) -> None:
    approved = await shop.create_order(ALICE, "250")
    never_asked = await shop.create_order(ALICE, "250")
    clock.advance(3590)  # the pre-checkout comes 10 s before the order expires
    assert await shop.check_pre_checkout(ALICE, approved.id, "XTR", 250) is None
    clock.advance(30)  # the payment (or its booking, after a busy ledger) lands after expiry

    in_time = await shop.record_payment(IncomingPayment(ALICE, approved.id, "XTR", 250, "c-1"))
    late = await shop.record_payment(IncomingPayment(ALICE, never_asked.id, "XTR", 250, "c-2"))

    assert (in_time.flagged, in_time.flag_reason, in_time.units) == (False, None, 275 * STAR)
    assert (late.flagged, late.flag_reason) == (True, "expired")
    assert await _units(credit, ALICE) == 2 * 275 * STAR
    order = await shop.order(approved.id)
    assert order is not None
    assert (order.status, order.approved_at) == ("paid", approved.expires_at - 10)
    # Once expired, a pre-checkout is refused and records nothing.
    assert await shop.check_pre_checkout(ALICE, never_asked.id, "XTR", 250) == "already_paid"
    third = await shop.create_order(ALICE, "50")
    clock.advance(3601)
    assert await shop.check_pre_checkout(ALICE, third.id, "XTR", 50) == "expired"
    order = await shop.order(third.id)
    assert order is not None
    assert order.approved_at is None


async def test_a_ledger_too_busy_to_record_an_approval_still_approves(
    store: Store, db_path: Path, master_key: MasterKey, clock: Clock
) -> None:
    order = await Shop(store, PACKS, PLAN, clock=clock).create_order(ALICE, "50")
    hurried = await Store.open(db_path, master_key, busy_timeout=0.05)
    writer = sqlite3.connect(db_path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with capture_logs() as logs:
            reason = await Shop(hurried, PACKS, PLAN, clock=clock).check_pre_checkout(
                ALICE, order.id, "XTR", 50
            )
        writer.execute("ROLLBACK")
    finally:
        writer.close()
        await hurried.close()
    assert reason is None
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("storage.failed", "error"),  # every storage failure's own line
        ("stars.approval_unrecorded", "warning"),
    ]
    recorded = await Shop(store, PACKS, PLAN, clock=clock).order(order.id)
    assert recorded is not None
    assert recorded.approved_at is None


async def test_paying_a_paid_order_again_is_credited_and_flagged(
    shop: Shop, credit: Credit
) -> None:
    order = await shop.create_order(ALICE, "50")
    await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 50, "charge-1"))

    second = await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 50, "charge-2"))

    assert (second.new, second.flagged, second.flag_reason) == (True, True, "already_paid")
    assert await _units(credit, ALICE) == 100 * STAR


async def test_a_plan_renewal_credits_once_per_charge(
    shop: Shop, credit: Credit, clock: Clock
) -> None:
    order = await shop.create_plan_order(ALICE)
    assert (order.kind, order.stars, order.units) == ("plan", 300, 400 * STAR)
    assert await shop.check_pre_checkout(ALICE, order.id, "XTR", 300) is None
    month = int(clock()) + 2_592_000

    first = await shop.record_payment(
        IncomingPayment(
            ALICE, order.id, "XTR", 300, "sub-1", is_recurring=True, subscription_expires_at=month
        )
    )
    clock.advance(2_592_000)
    renewal = await shop.record_payment(
        IncomingPayment(
            ALICE,
            order.id,
            "XTR",
            300,
            "sub-2",
            is_recurring=True,
            subscription_expires_at=month * 2,
        )
    )
    redelivered = await shop.record_payment(
        IncomingPayment(
            ALICE,
            order.id,
            "XTR",
            300,
            "sub-2",
            is_recurring=True,
            subscription_expires_at=month * 2,
        )
    )

    assert [(r.new, r.units, r.flagged, r.plan) for r in (first, renewal, redelivered)] == [
        (True, 400 * STAR, False, True),
        (True, 400 * STAR, False, True),
        (False, 400 * STAR, False, True),
    ]
    assert await _units(credit, ALICE) == 800 * STAR
    assert await shop.plan_until(ALICE) == month * 2
    assert await shop.plan_until(BOB) is None
    assert [e.kind for e in await credit.history(ALICE)] == ["subscription", "subscription"]


async def test_a_renewal_of_someone_elses_plan_is_flagged(shop: Shop, credit: Credit) -> None:
    order = await shop.create_plan_order(ALICE)
    await shop.record_payment(
        IncomingPayment(ALICE, order.id, "XTR", 300, "sub-1", is_recurring=True)
    )

    stray = await shop.record_payment(
        IncomingPayment(BOB, order.id, "XTR", 300, "sub-2", is_recurring=True)
    )

    assert (stray.flagged, stray.flag_reason) == (True, "foreign_order")
    assert await _units(credit, BOB) == 300 * STAR  # the cheapest pack's rate


# -- refunds ---------------------------------------------------------------------------------


async def test_a_refund_takes_the_credit_back_once_even_into_the_negative(
    shop: Shop, credit: Credit
) -> None:
    order = await shop.create_order(ALICE, "50")
    await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 50, "charge-1"))
    hold = await credit.hold(ALICE, "r1", "model", 1000, 1000)
    spent = await credit.settle(hold, 1000, 500, receipt_valid=True)

    assert await shop.record_refund(ALICE, "charge-1")

    assert await _units(credit, ALICE) == -spent.units
    assert not await shop.record_refund(ALICE, "charge-1")
    assert not await shop.record_refund(ALICE, "no-such-charge")
    assert await _units(credit, ALICE) == -spent.units
    payment = await shop.payment("charge-1")
    assert payment is not None
    assert payment.refunded
    assert next(e.kind for e in await credit.history(ALICE)) == "refund"


async def test_a_refund_of_another_users_charge_changes_nothing(shop: Shop, credit: Credit) -> None:
    order = await shop.create_order(ALICE, "50")
    await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 50, "charge-1"))

    assert not await shop.record_refund(BOB, "charge-1")

    assert (await _units(credit, ALICE), await _units(credit, BOB)) == (50 * STAR, 0)


# -- reconcile and figures -------------------------------------------------------------------


async def test_reconcile_agrees_with_matching_books_and_names_each_difference(
    shop: Shop,
) -> None:
    for user, charge in ((ALICE, "c-1"), (BOB, "c-2"), (ALICE, "c-3")):
        order = await shop.create_order(user, "50")
        await shop.record_payment(IncomingPayment(user, order.id, "XTR", 50, charge))
    await shop.record_refund(BOB, "c-2")
    telegram = [
        StarTransaction("c-1", 50, is_refund=False, user_id=ALICE),
        StarTransaction("c-2", 50, is_refund=False, user_id=BOB),
        StarTransaction("c-2", 50, is_refund=True, user_id=BOB),
        StarTransaction("c-3", 50, is_refund=False, user_id=ALICE),
    ]
    assert await shop.reconcile(telegram) == []

    mismatched = [
        StarTransaction("c-1", 60, is_refund=False, user_id=BOB),  # amount and user differ
        StarTransaction("c-2", 50, is_refund=False, user_id=BOB),  # our refund is missing there
        StarTransaction("c-3", 50, is_refund=True, user_id=ALICE),  # a refund we never booked
        StarTransaction("c-9", 250, is_refund=False, user_id=ALICE),  # a payment we never booked
    ]
    lines = await shop.reconcile(mismatched)

    assert lines == [
        f"payment c-9: 250 Stars from user {ALICE} is in Telegram's list but not in the ledger",
        f"payment c-3: 50 Stars from user {ALICE} is in the ledger but not in Telegram's list",
        "payment c-1: the ledger has 50 Stars, Telegram 60",
        f"payment c-1: the ledger has user {ALICE}, Telegram user {BOB}",
        "refund c-3: Telegram refunded it but the ledger did not take the credit back",
        "refund c-2: the ledger took the credit back but Telegram lists no refund",
    ]


async def test_stats_count_users_activity_stars_and_refunds(
    shop: Shop, credit: Credit, clock: Clock
) -> None:
    for user, charge, pack in ((ALICE, "c-1", "250"), (BOB, "c-2", "50")):
        order = await shop.create_order(user, pack)
        await shop.record_payment(IncomingPayment(user, order.id, "XTR", int(pack), charge))
    await shop.record_refund(BOB, "c-2")
    clock.advance(-86_400)
    yesterday = await credit.hold(ALICE, "r0", "model", 100, 100)
    await credit.settle(yesterday, 100, 100, receipt_valid=True)
    clock.advance(86_400)
    hold = await credit.hold(ALICE, "r1", "model", 100, 100)
    await credit.settle(hold, 30, 20, receipt_valid=True)

    stats = await credit.stats()

    assert (stats.users, stats.active_today, stats.tokens_today) == (2, 1, 50)
    assert (stats.stars_received, stats.refunds, stats.stars_refunded, stats.flagged) == (
        300,
        1,
        50,
        0,
    )


async def test_expired_unpaid_orders_are_purged_and_paid_ones_kept(
    shop: Shop, store: Store, clock: Clock
) -> None:
    paid = await shop.create_order(ALICE, "50")
    await shop.record_payment(IncomingPayment(ALICE, paid.id, "XTR", 50, "charge-1"))
    stale = await shop.create_order(BOB, "50")
    clock.advance(3600 + 86_400 + 1)
    fresh = await shop.create_order(BOB, "250")

    assert await shop.purge_expired_orders() == 1
    assert await shop.purge_expired_orders() == 0

    assert await shop.order(stale.id) is None
    assert await shop.order(paid.id) is not None
    assert await shop.order(fresh.id) is not None
    (count,) = await store.read(lambda db: db.execute("SELECT COUNT(*) FROM orders").fetchone())
    assert count == 2


async def test_an_approved_order_whose_payment_is_booked_days_later_is_not_purged(
    shop: Shop, credit: Credit, clock: Clock
) -> None:
    # Its pre-checkout was approved and Telegram took the Stars; the payment's booking waited
    # in the journal (a ledger down for two days, an entry kept open for a person). The purge
    # of unpaid orders a day past expiry deleted its order meanwhile: the payment was then
    # flagged unknown_order and credited at the cheapest pack's rate, 250 ★ for 275 ★ bought.
    order = await shop.create_order(ALICE, "250")
    assert await shop.check_pre_checkout(ALICE, order.id, "XTR", 250) is None
    clock.advance(2 * 86_400)
    assert await shop.purge_expired_orders() == 0
    paid = await shop.record_payment(IncomingPayment(ALICE, order.id, "XTR", 250, "c-late"))
    assert (paid.flagged, paid.units) == (False, 275 * STAR)
    assert await _units(credit, ALICE) == 275 * STAR
    # Paid, it stays like any paid order; one approved and never paid is kept too (its
    # payment may still come: Telegram took the Stars once it was approved).
    assert await shop.purge_expired_orders() == 0


async def test_fix_credits_what_telegram_lists_once_and_says_so(shop: Shop, credit: Credit) -> None:
    order = await shop.create_order(ALICE, "250")
    await shop.record_payment(IncomingPayment(BOB, "x", "XTR", 50, "c-booked"))
    telegram = [
        StarTransaction("c-booked", 50, is_refund=False, user_id=BOB, payload="x"),
        StarTransaction("c-lost", 250, is_refund=False, user_id=ALICE, payload=order.id),
        StarTransaction("c-stray", 75, is_refund=False, user_id=BOB, payload="never-made"),
        StarTransaction("c-booked", 50, is_refund=True, user_id=BOB),
    ]

    lines = await shop.fix(telegram)

    assert lines == [
        f"credited payment c-lost: 250 Stars from user {ALICE}, 275000000 µ★",
        f"credited payment c-stray: 75 Stars from user {BOB}, 75000000 µ★ (flagged: unknown_order)",
        f"took back refund c-booked: 50000000 µ★ from user {BOB}",
    ]
    assert await shop.fix(telegram) == []  # idempotent: by charge id
    assert await shop.reconcile(telegram) == []
    assert await _units(credit, ALICE) == 275 * STAR
    assert await _units(credit, BOB) == 75 * STAR


async def test_fix_says_so_when_a_payment_it_credits_had_its_refund_booked_first(
    shop: Shop, credit: Credit
) -> None:
    # The refund's update was booked before its payment's (which was lost): crediting the
    # payment takes the credit back in the same transaction, and fix said only "credited".
    order = await shop.create_order(ALICE, "250")
    assert not await shop.record_refund(ALICE, "c-refunded-first")
    telegram = [
        StarTransaction("c-refunded-first", 250, is_refund=False, user_id=ALICE, payload=order.id),
        StarTransaction("c-refunded-first", 250, is_refund=True, user_id=ALICE),
    ]

    lines = await shop.fix(telegram)

    assert lines == [
        f"credited payment c-refunded-first: 250 Stars from user {ALICE}, 275000000 µ★",
        f"took back refund c-refunded-first: 275000000 µ★ from user {ALICE}",
    ]
    assert await shop.fix(telegram) == []
    assert await shop.reconcile(telegram) == []
    assert await _units(credit, ALICE) == 0


async def test_the_books_flag_a_payment_kept_whose_refund_came_first(
    shop: Shop, credit: Credit, store: Store, db_path: Path
) -> None:
    # A replica still on older code books the payment as a credit alone (it reads no refund
    # kept in the ledger's database): the invariant the audit checks names its user, and
    # reconcile --fix takes it back.
    order = await shop.create_order(ALICE, "250")
    assert not await shop.record_refund(ALICE, "c-old-replica")
    with sqlite3.connect(db_path) as db:
        db.execute(
            "INSERT INTO payments (charge_id, user_id, order_id, stars, units, is_recurring,"
            " flagged, refunded, created_at) VALUES (?, ?, ?, 250, ?, 0, 0, 0, 1750000000)",
            ["c-old-replica", ALICE, order.id, 275 * STAR],
        )
        db.execute(
            "INSERT INTO ledger (user_id, kind, amount, source, created_at)"
            " VALUES (?, 'purchase', ?, 'c-old-replica', 1750000000)",
            [ALICE, 275 * STAR],
        )
    assert await inconsistent_users(store) == [ALICE]
    telegram = [
        StarTransaction("c-old-replica", 250, is_refund=False, user_id=ALICE, payload=order.id),
        StarTransaction("c-old-replica", 250, is_refund=True, user_id=ALICE),
    ]
    assert await shop.fix(telegram) == [
        f"took back refund c-old-replica: 275000000 µ★ from user {ALICE}"
    ]
    assert await _units(credit, ALICE) == 0
