"""Orders and payments: what the shop sold, and the payments Telegram reported for it.

An order is an invoice's single-use payload, stored while it waits to be paid. A payment row is
keyed by Telegram's charge id (UNIQUE), so a redelivered update cannot be booked twice; its
ledger credit has the charge id as its source, and a refund's has ``refund:<charge id>``. Paid
orders stay, since their payments name them; unpaid ones are purged after they expire. A refund
that came before its payment is kept (``early_refunds``) so the payment's booking takes the
credit back in its own transaction. A refunded subscription payment owes its subscription's
cancellation (``plan_cancels``: owed, done, failed), stored with the refund.

The functions here take the ``Database`` of a store call and run inside its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sqlite_utils import Database

OrderKind = Literal["pack", "plan"]


@dataclass(frozen=True, slots=True)
class Order:
    """An invoice; ``id`` is its payload (random, url-safe, single use).

    ``approved_at`` is when its pre-checkout was first approved (before it expired), if ever;
    ``last_approved_at`` when it was last approved: a second payment is refused for ``PAYING_S``
    from each approval, the latest included, not only from the first.
    """

    id: str
    user_id: int
    kind: OrderKind
    pack_id: str | None
    stars: int
    units: int
    status: Literal["pending", "paid"]
    created_at: int
    expires_at: int
    approved_at: int | None = None
    last_approved_at: int | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    """A successful payment, keyed by Telegram's charge id.

    ``flag_reason`` says why a credited payment needs the admin's eye (an unknown, foreign,
    expired or already-paid order, a wrong amount or currency); ``None`` when all was in order.
    """

    charge_id: str
    user_id: int
    order_id: str
    stars: int
    units: int
    is_recurring: bool
    flagged: bool
    flag_reason: str | None
    refunded: bool
    created_at: int
    subscription_expires_at: int | None


_ORDER_COLUMNS = (
    "id, user_id, kind, pack_id, stars, units, status, created_at, expires_at, approved_at,"
    " last_approved_at"
)
_PAYMENT_COLUMNS = (
    "charge_id, user_id, order_id, stars, units, is_recurring, flagged, flag_reason, refunded,"
    " created_at, subscription_expires_at"
)


def insert_order(db: Database, order: Order) -> None:
    """Store a new order."""
    db.execute(
        f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 -- a constant column list
        [
            order.id,
            order.user_id,
            order.kind,
            order.pack_id,
            order.stars,
            order.units,
            order.status,
            order.created_at,
            order.expires_at,
            order.approved_at,
            order.last_approved_at,
        ],
    )


def open_orders(db: Database, user_id: int, now: int) -> int:
    """How many of the user's orders are unpaid and not expired at ``now``."""
    row = db.execute(
        "SELECT COUNT(*) FROM orders WHERE user_id = ? AND status = 'pending' AND expires_at >= ?",
        [user_id, now],
    ).fetchone()
    return int(row[0])


def get_order(db: Database, order_id: str) -> Order | None:
    """The order with this payload, or None."""
    row = db.execute(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?",  # noqa: S608 -- a constant column list
        [order_id],
    ).fetchone()
    if row is None:
        return None
    return Order(
        id=str(row[0]),
        user_id=int(row[1]),
        kind="plan" if row[2] == "plan" else "pack",
        pack_id=None if row[3] is None else str(row[3]),
        stars=int(row[4]),
        units=int(row[5]),
        status="paid" if row[6] == "paid" else "pending",
        created_at=int(row[7]),
        expires_at=int(row[8]),
        approved_at=None if row[9] is None else int(row[9]),
        last_approved_at=None if row[10] is None else int(row[10]),
    )


def purge_orders(db: Database, expired_before: int) -> int:
    """Delete unpaid orders that expired before ``expired_before``; returns how many.

    An order whose pre-checkout was approved is kept: Telegram may have taken its Stars, and
    its payment's booking, however late (the journal keeps it open until it books), needs it.
    """
    cursor = db.execute(
        "DELETE FROM orders WHERE status = 'pending' AND approved_at IS NULL AND expires_at < ?",
        [expired_before],
    )
    return int(cursor.rowcount)


def mark_order_approved(db: Database, order_id: str, at: int) -> None:
    """Its pre-checkout was approved at ``at``: the latest approval, and the first if none was."""
    db.execute(
        "UPDATE orders SET approved_at = COALESCE(approved_at, ?), last_approved_at = ?"
        " WHERE id = ?",
        [at, at, order_id],
    )


def withdraw_approval(db: Database, order_id: str, since: int) -> None:
    """Forget an approval made at ``since`` or later that never reached Telegram (still unpaid).

    Its answer refused (too late, or held by a flood wait), Telegram failed that payment: no
    Stars are on their way, so nothing is to be kept for them, nor a retry refused for them.
    An earlier approval of the order (``PAYING_S`` or more before, or this one was refused as
    ``being_paid``) stays the first: its payment may still be booked, however late.
    """
    db.execute(
        "UPDATE orders SET last_approved_at = NULL,"
        " approved_at = CASE WHEN approved_at >= ? THEN NULL ELSE approved_at END"
        " WHERE id = ? AND status = 'pending' AND last_approved_at >= ?",
        [since, order_id, since],
    )


def plan_being_paid(db: Database, user_id: int, since: int, until: int, other_than: str) -> bool:
    """Whether another plan order of the user's, unpaid, was last approved in [since, until]."""
    row = db.execute(
        "SELECT 1 FROM orders WHERE user_id = ? AND kind = 'plan' AND status = 'pending'"
        " AND last_approved_at BETWEEN ? AND ? AND id != ? LIMIT 1",
        [user_id, since, until, other_than],
    ).fetchone()
    return row is not None


def mark_order_paid(db: Database, order_id: str) -> None:
    """Mark an order paid (a no-op for an unknown one)."""
    db.execute("UPDATE orders SET status = 'paid' WHERE id = ?", [order_id])


def insert_payment(db: Database, payment: Payment) -> None:
    """Store a payment; a charge id stored already fails the whole write."""
    db.execute(
        f"INSERT INTO payments ({_PAYMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 -- a constant column list
        [
            payment.charge_id,
            payment.user_id,
            payment.order_id,
            payment.stars,
            payment.units,
            int(payment.is_recurring),
            int(payment.flagged),
            payment.flag_reason,
            int(payment.refunded),
            payment.created_at,
            payment.subscription_expires_at,
        ],
    )


def get_payment(db: Database, charge_id: str) -> Payment | None:
    """The payment with this charge id, or None."""
    row = db.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE charge_id = ?",  # noqa: S608 -- a constant column list
        [charge_id],
    ).fetchone()
    return None if row is None else _payment(row)


def all_payments(db: Database) -> list[Payment]:
    """Every payment, oldest first."""
    rows = db.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM payments ORDER BY created_at, charge_id"  # noqa: S608 -- a constant column list
    ).fetchall()
    return [_payment(row) for row in rows]


def set_subscription_end(db: Database, charge_id: str, until: int) -> None:
    """Set when the period a subscription payment paid ends (Telegram's own end, once known)."""
    db.execute(
        "UPDATE payments SET subscription_expires_at = ? WHERE charge_id = ?", [until, charge_id]
    )


def mark_refunded(db: Database, charge_id: str) -> None:
    """Mark a payment refunded."""
    db.execute("UPDATE payments SET refunded = 1 WHERE charge_id = ?", [charge_id])


def record_early_refund(db: Database, charge_id: str, user_id: int, at: int) -> None:
    """A refund of ``user_id`` came for a charge id with no payment yet (the first is kept)."""
    db.execute(
        "INSERT INTO early_refunds (charge_id, user_id, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (charge_id) DO NOTHING",
        [charge_id, user_id, at],
    )


def early_refund(db: Database, charge_id: str, user_id: int) -> bool:
    """Whether a refund of ``user_id`` for ``charge_id`` came before its payment."""
    row = db.execute(
        "SELECT 1 FROM early_refunds WHERE charge_id = ? AND user_id = ?", [charge_id, user_id]
    ).fetchone()
    return row is not None


def recurring_charges(db: Database, order_id: str, user_id: int) -> list[str]:
    """The charge ids of the user's subscription payments of ``order_id``, first booked first."""
    rows = db.execute(
        "SELECT charge_id FROM payments WHERE order_id = ? AND user_id = ? AND is_recurring = 1"
        " ORDER BY created_at, rowid",
        [order_id, user_id],
    ).fetchall()
    return [str(row[0]) for row in rows]


def plan_until(db: Database, user_id: int) -> int | None:
    """The latest subscription expiry among the user's unrefunded payments, or None."""
    (until,) = db.execute(
        "SELECT MAX(subscription_expires_at) FROM payments WHERE user_id = ? AND refunded = 0",
        [user_id],
    ).fetchone()
    return None if until is None else int(until)


def other_subscription_runs(db: Database, user_id: int, order_id: str, now: int) -> bool:
    """Whether a subscription of the user's other than ``order_id``'s has a period running.

    One none of whose payments was refunded: a refund cancels the subscription, so that one
    charges no further period.
    """
    row = db.execute(
        "SELECT 1 FROM payments p WHERE p.user_id = ? AND p.order_id != ? AND p.is_recurring = 1"
        " AND p.refunded = 0 AND p.subscription_expires_at > ? AND NOT EXISTS (SELECT 1"
        " FROM payments r WHERE r.order_id = p.order_id AND r.user_id = p.user_id"
        " AND r.refunded = 1) LIMIT 1",
        [user_id, order_id, now],
    ).fetchone()
    return row is not None


def renewal_expected(db: Database, user_id: int) -> bool:
    """Whether the user's plan renews by itself: Telegram is to charge its next period.

    True when the unrefunded payment whose period ends last paid a subscription (recurring)
    none of whose payments was refunded: a refund cancels the subscription
    (``editUserStarSubscription``), so no renewal of it comes.
    """
    row = db.execute(
        "SELECT p.is_recurring AND NOT EXISTS (SELECT 1 FROM payments r"
        " WHERE r.order_id = p.order_id AND r.user_id = p.user_id AND r.refunded = 1)"
        " FROM payments p WHERE p.user_id = ? AND p.refunded = 0"
        " AND p.subscription_expires_at IS NOT NULL"
        " ORDER BY p.subscription_expires_at DESC, p.rowid DESC LIMIT 1",
        [user_id],
    ).fetchone()
    return row is not None and bool(row[0])


def _payment(row: Any) -> Payment:  # noqa: ANN401 -- a sqlite3 row is untyped
    return Payment(
        charge_id=str(row[0]),
        user_id=int(row[1]),
        order_id=str(row[2]),
        stars=int(row[3]),
        units=int(row[4]),
        is_recurring=bool(row[5]),
        flagged=bool(row[6]),
        flag_reason=None if row[7] is None else str(row[7]),
        refunded=bool(row[8]),
        created_at=int(row[9]),
        subscription_expires_at=None if row[10] is None else int(row[10]),
    )


CancelState = Literal["owed", "done", "failed"]


@dataclass(frozen=True, slots=True)
class PlanCancel:
    """A refunded subscription's cancellation: owed, done, or failed (and why).

    One per subscription: its plan order ``order_id`` and ``user_id``. ``charge_id`` is the
    refunded payment that owes it; ``named`` the charge Telegram was last asked by (None
    before it was), ``reason`` Telegram's words for the last refusal (a cancellation owed
    still, Telegram down, has one too), ``unnamed`` that Telegram said ``named`` names no
    subscription of the user's.
    """

    order_id: str
    user_id: int
    charge_id: str
    state: CancelState
    reason: str | None
    named: str | None
    unnamed: bool
    created_at: int
    updated_at: int


_CANCEL_COLUMNS = (
    "order_id, user_id, charge_id, state, reason, named, unnamed, created_at, updated_at"
)


def owe_cancel(db: Database, order_id: str, user_id: int, charge_id: str, at: int) -> None:
    """The subscription ``order_id`` paid is to be cancelled (a refund of ``charge_id``).

    A cancellation done stays done: nothing is sent twice. One that failed is owed again (the
    refund reported again, the admin's /refund again): Telegram is asked once more.
    """
    db.execute(
        "INSERT INTO plan_cancels (order_id, user_id, charge_id, state, created_at, updated_at)"
        " VALUES (?, ?, ?, 'owed', ?, ?) ON CONFLICT (order_id, user_id)"
        " DO UPDATE SET state = 'owed', charge_id = excluded.charge_id,"
        " updated_at = excluded.updated_at WHERE plan_cancels.state = 'failed'",
        [order_id, user_id, charge_id, at, at],
    )


def settle_cancel(  # noqa: PLR0913 -- the row's key and what Telegram answered
    db: Database,
    order_id: str,
    user_id: int,
    *,
    state: CancelState,
    named: str,
    reason: str | None,
    unnamed: bool,
    at: int,
) -> None:
    """Record what asking Telegram by ``named`` did (``owed`` again: it could not take it now).

    A cancellation done stays done: a second sender (two replicas, ``reconcile --fix`` beside
    the bot) that read it owed before the first had written, and whose own call Telegram then
    refused or could not take, would otherwise report a cancelled plan as failed, or send it
    again.
    """
    db.execute(
        "UPDATE plan_cancels SET state = ?, named = ?, reason = ?, unnamed = ?, updated_at = ?"
        " WHERE order_id = ? AND user_id = ? AND state != 'done'",
        [state, named, reason, int(unnamed), at, order_id, user_id],
    )


def plan_cancel(db: Database, order_id: str, user_id: int) -> PlanCancel | None:
    """The cancellation of the subscription ``order_id`` paid ``user_id``, if one is stored."""
    row = db.execute(
        f"SELECT {_CANCEL_COLUMNS} FROM plan_cancels WHERE order_id = ? AND user_id = ?",  # noqa: S608 -- a constant column list
        [order_id, user_id],
    ).fetchone()
    return None if row is None else _plan_cancel(row)


def cancel_settled(db: Database, order_id: str, user_id: int, charge_id: str) -> bool:
    """Whether the subscription ``order_id`` paid had its cancellation answered (done, refused).

    For a refund of another charge than ``charge_id``: a payment of it booked now was charged
    before the cancel took, or despite its refusal.
    """
    row = db.execute(
        "SELECT 1 FROM plan_cancels WHERE order_id = ? AND user_id = ? AND charge_id != ?"
        " AND state IN ('done', 'failed')",
        [order_id, user_id, charge_id],
    ).fetchone()
    return row is not None


def plan_cancels(db: Database, states: tuple[CancelState, ...]) -> list[PlanCancel]:
    """The cancellations in ``states``, oldest first."""
    marks = ", ".join("?" * len(states))
    rows = db.execute(
        f"SELECT {_CANCEL_COLUMNS} FROM plan_cancels WHERE state IN ({marks})"  # noqa: S608 -- constant columns and placeholders
        " ORDER BY created_at, rowid",
        list(states),
    ).fetchall()
    return [_plan_cancel(row) for row in rows]


def subscription_payments(db: Database, order_id: str, user_id: int) -> list[Payment]:
    """The user's subscription payments of ``order_id`` (refunded too), first booked first."""
    rows = db.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE order_id = ? AND user_id = ?"  # noqa: S608 -- a constant column list
        " AND is_recurring = 1 ORDER BY created_at, rowid",
        [order_id, user_id],
    ).fetchall()
    return [_payment(row) for row in rows]


def _plan_cancel(row: Any) -> PlanCancel:  # noqa: ANN401 -- a sqlite3 row is untyped
    return PlanCancel(
        order_id=str(row[0]),
        user_id=int(row[1]),
        charge_id=str(row[2]),
        state="done" if row[3] == "done" else "failed" if row[3] == "failed" else "owed",
        reason=None if row[4] is None else str(row[4]),
        named=None if row[5] is None else str(row[5]),
        unnamed=bool(row[6]),
        created_at=int(row[7]),
        updated_at=int(row[8]),
    )
