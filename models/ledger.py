"""Money storage: the append-only ledger, request holds, Stars orders and payments.

All amounts are integers in one unit, the micro-Star (µ★): 1 Star = 1_000_000 units, fine
enough for per-token prices. A user's balance is ``SUM(amount)`` of their ledger rows; nothing
caches it. Every ledger row has a unique ``source`` (``hold:<request id>``, a Telegram charge
id, ``refund:<charge id>``…), so writing the same money event twice is a no-op, and triggers
refuse any UPDATE or DELETE of a ledger row.

The functions here run on the store's writer thread (``Store.run``) and take its ``Database``;
the services compose them inside ``db.atomic()`` so a money change and its source row commit
together. They return frozen records, never row dicts.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from sqlite_utils import Database

UNITS_PER_STAR = 1_000_000
SECONDS_PER_DAY = 86_400

Kind = Literal["purchase", "usage", "refund", "grant", "free", "hold", "release", "subscription"]
KINDS: tuple[Kind, ...] = (
    "purchase",
    "usage",
    "refund",
    "grant",
    "free",
    "hold",
    "release",
    "subscription",
)
Outcome = Literal["settled", "unverified", "estimated", "released", "recovered"]
OUTCOMES: tuple[Outcome, ...] = ("settled", "unverified", "estimated", "released", "recovered")
# Outcomes that charge: each has a usage row (and a free row when the allowance covered some).
CHARGED: frozenset[Outcome] = frozenset({"settled", "unverified", "estimated"})
ReceiptStatusValue = Literal["complete", "stopped", "error"]
OrderKind = Literal["pack", "plan"]


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """One transaction that takes the write lock first (``BEGIN IMMEDIATE``).

    A deferred transaction that reads and then writes fails at once when another process
    (``reconcile --fix``, a backup) holds the write lock: SQLite does not wait for a lock it
    would have to upgrade to. Taking it first makes the write wait the busy timeout instead.
    Inside an open transaction this is a savepoint.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
    else:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if _in_transaction(db):  # a failed COMMIT-time check may have ended it already
                db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")


def _in_transaction(db: Database) -> bool:
    return bool(db.conn.in_transaction)


def utc_day(timestamp: float) -> int:
    """The UTC day number (days since the epoch) of a Unix time; days turn at 00:00 UTC."""
    return int(timestamp // SECONDS_PER_DAY)


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ledger row: ``amount`` in µ★, positive for credits, negative for debits."""

    id: int
    user_id: int
    kind: str
    amount: int
    source: str
    created_at: int
    note: str | None


@dataclass(frozen=True, slots=True)
class Hold:
    """Credit held for one request before the model is asked.

    ``units`` is the most the request can cost after ``free_tokens`` of the day's free
    allowance, which the hold reserves so two requests cannot both count on the same tokens.
    """

    request_id: str
    user_id: int
    model: str
    prompt_tokens: int
    max_completion_tokens: int
    free_tokens: int
    units: int
    created_at: int


@dataclass(frozen=True, slots=True)
class Charge:
    """How a hold ended: what was used and what it cost.

    ``cost`` is the gross price of the tokens (the usage row), ``units`` what the user paid
    after the free allowance covered ``free_tokens`` of them. ``outcome`` is ``settled`` (from
    a valid receipt), ``unverified`` (invalid receipt: charged the held amount), ``estimated``
    (no receipt could be had for text the user received: charged the bot's own count),
    ``released`` (nothing delivered and no receipt: nothing charged) or ``recovered`` (released
    at start-up after a crash). ``receipt_status`` is the settling receipt's status
    (``complete``, ``stopped``, ``error``), None without one.
    """

    request_id: str
    user_id: int
    model: str
    outcome: Outcome
    prompt_tokens: int
    completion_tokens: int
    free_tokens: int
    cost: int
    units: int
    receipt_status: ReceiptStatusValue | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """A user's money, free tokens left today, and what running requests hold.

    ``units`` is the ledger sum in µ★ (negative after a refund of spent credit); ``held`` is
    the part of it that open holds have taken, already subtracted.
    """

    units: int
    free_tokens_left: int
    held: int = 0


@dataclass(frozen=True, slots=True)
class BillingStats:
    """Figures for the admin's ``/stats``; "today" is the current UTC day."""

    users: int
    active_today: int
    tokens_today: int
    stars_received: int
    refunds: int
    stars_refunded: int
    flagged: int


@dataclass(frozen=True, slots=True)
class Order:
    """A Stars invoice; ``id`` is its payload (random, url-safe, single use)."""

    id: str
    user_id: int
    kind: OrderKind
    pack_id: str | None
    stars: int
    units: int
    status: Literal["pending", "paid"]
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Payment:
    """A successful Stars payment, keyed by Telegram's charge id.

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


@dataclass(frozen=True, slots=True)
class StarTx:
    """One Stars transaction as Telegram's ``getStarTransactions`` lists it.

    ``id`` is the charge id (a refund carries its payment's id), ``amount`` whole Stars,
    ``payload`` the invoice payload Telegram reports with it (our order id), if any;
    ``subscription`` whether it paid a subscription period.
    """

    id: str
    amount: int
    is_refund: bool
    user_id: int | None = None
    payload: str | None = None
    subscription: bool = False


# -- the ledger ------------------------------------------------------------------------------


def balance(db: Database, user_id: int) -> int:
    """The user's balance: the sum of their ledger rows."""
    (total,) = db.execute(
        "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE user_id = ?", [user_id]
    ).fetchone()
    return int(total)


def add_entry(  # noqa: PLR0913 -- one row's columns
    db: Database,
    user_id: int,
    kind: Kind,
    amount: int,
    *,
    source: str,
    created_at: int,
    note: str | None = None,
) -> bool:
    """Append a ledger row; False (and nothing written) if ``source`` is already recorded."""
    cursor = db.execute(
        "INSERT INTO ledger (user_id, kind, amount, source, created_at, note)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO NOTHING",
        [user_id, kind, amount, source, created_at, note],
    )
    return bool(cursor.rowcount)


def _append(  # noqa: PLR0913, PLR0917 -- one row's columns, private
    db: Database,
    user_id: int,
    kind: Kind,
    amount: int,
    source: str,
    created_at: int,
    note: str | None = None,
) -> None:
    """Append a request's row; a source already recorded raises ``sqlite3.IntegrityError``."""
    db.execute(
        "INSERT INTO ledger (user_id, kind, amount, source, created_at, note)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [user_id, kind, amount, source, created_at, note],
    )


def entries(db: Database, user_id: int, kinds: Iterable[str], limit: int) -> list[LedgerEntry]:
    """The user's newest ledger rows of the given kinds, newest first."""
    rows = db.execute(
        "SELECT id, user_id, kind, amount, source, created_at, note FROM ledger"
        " WHERE user_id = ? AND kind IN (SELECT value FROM json_each(?))"
        " ORDER BY id DESC LIMIT ?",
        [user_id, json.dumps(list(kinds)), limit],
    ).fetchall()
    return [
        LedgerEntry(
            id=int(row[0]),
            user_id=int(row[1]),
            kind=str(row[2]),
            amount=int(row[3]),
            source=str(row[4]),
            created_at=int(row[5]),
            note=None if row[6] is None else str(row[6]),
        )
        for row in rows
    ]


# -- holds -----------------------------------------------------------------------------------

_HOLD_COLUMNS = (
    "request_id, user_id, model, prompt_tokens, max_completion_tokens, free_tokens, units,"
    " created_at"
)


@dataclass(frozen=True, slots=True)
class HoldState:
    """A hold with the prices it was made at and, once closed, how it ended."""

    hold: Hold
    price_in: int
    price_out: int
    charge: Charge | None


def insert_hold(db: Database, hold: Hold, *, price_in: int, price_out: int) -> None:
    """Record an open hold and its ledger row (``hold:<request id>``, minus the held units)."""
    db.execute(
        f"INSERT INTO holds ({_HOLD_COLUMNS}, price_in, price_out, day)"  # noqa: S608 -- a constant column list
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            hold.request_id,
            hold.user_id,
            hold.model,
            hold.prompt_tokens,
            hold.max_completion_tokens,
            hold.free_tokens,
            hold.units,
            hold.created_at,
            price_in,
            price_out,
            utc_day(hold.created_at),
        ],
    )
    _append(db, hold.user_id, "hold", -hold.units, f"hold:{hold.request_id}", hold.created_at)


def get_hold(db: Database, request_id: str) -> HoldState | None:
    """The hold for ``request_id`` with its outcome, or None if there is none."""
    row = db.execute(
        f"SELECT {_HOLD_COLUMNS}, price_in, price_out, outcome, prompt_used, completion_used,"  # noqa: S608 -- a constant column list
        " free_used, cost, charged, receipt_status FROM holds WHERE request_id = ?",
        [request_id],
    ).fetchone()
    return None if row is None else _hold_state(row)


def open_holds(db: Database, created_before: int) -> list[Hold]:
    """Holds without an outcome created at or before ``created_before``, oldest first."""
    rows = db.execute(
        f"SELECT {_HOLD_COLUMNS} FROM holds"  # noqa: S608 -- a constant column list
        " WHERE outcome IS NULL AND created_at <= ? ORDER BY created_at",
        [created_before],
    ).fetchall()
    return [_hold(row) for row in rows]


def held(db: Database, user_id: int) -> int:
    """Units the user's open holds hold."""
    (total,) = db.execute(
        "SELECT COALESCE(SUM(units), 0) FROM holds WHERE user_id = ? AND outcome IS NULL",
        [user_id],
    ).fetchone()
    return int(total)


def close_hold(db: Database, charge: Charge, held_units: int, closed_at: int) -> None:
    """Close a hold: write its release row, the usage and free rows, and the outcome.

    Call inside ``db.atomic()``; the caller has checked that the hold is still open.
    """
    request_id, user_id = charge.request_id, charge.user_id
    _append(db, user_id, "release", held_units, f"release:{request_id}", closed_at)
    if charge.outcome in CHARGED:
        note = (
            f"{charge.model}: {charge.prompt_tokens}+{charge.completion_tokens} tokens,"
            f" {charge.free_tokens} free"
        )
        if charge.outcome == "estimated":
            note += ", estimated"
        elif charge.receipt_status not in {None, "complete"}:
            note += f", {charge.receipt_status}"
        _append(db, user_id, "usage", -charge.cost, f"usage:{request_id}", closed_at, note)
        if charge.cost > charge.units:
            _append(
                db, user_id, "free", charge.cost - charge.units, f"free:{request_id}", closed_at
            )
    db.execute(
        "UPDATE holds SET outcome = ?, closed_at = ?, prompt_used = ?, completion_used = ?,"
        " free_used = ?, cost = ?, charged = ?, receipt_status = ? WHERE request_id = ?",
        [
            charge.outcome,
            closed_at,
            charge.prompt_tokens,
            charge.completion_tokens,
            charge.free_tokens,
            charge.cost,
            charge.units,
            charge.receipt_status,
            request_id,
        ],
    )


def free_tokens_taken(db: Database, user_id: int, day: int) -> int:
    """Free tokens the user's holds of ``day`` use: reserved while open, used once closed."""
    (total,) = db.execute(
        "SELECT COALESCE(SUM(CASE WHEN outcome IS NULL THEN free_tokens ELSE free_used END), 0)"
        " FROM holds WHERE user_id = ? AND day = ?",
        [user_id, day],
    ).fetchone()
    return int(total)


def _hold(row: Any) -> Hold:  # noqa: ANN401 -- a sqlite3 row is untyped
    return Hold(
        request_id=str(row[0]),
        user_id=int(row[1]),
        model=str(row[2]),
        prompt_tokens=int(row[3]),
        max_completion_tokens=int(row[4]),
        free_tokens=int(row[5]),
        units=int(row[6]),
        created_at=int(row[7]),
    )


def _hold_state(row: Any) -> HoldState:  # noqa: ANN401 -- a sqlite3 row is untyped
    hold = _hold(row)
    outcome = row[10]
    charge = None
    if outcome is not None:
        charge = Charge(
            request_id=hold.request_id,
            user_id=hold.user_id,
            model=hold.model,
            outcome=_outcome(str(outcome)),
            prompt_tokens=int(row[11]),
            completion_tokens=int(row[12]),
            free_tokens=int(row[13]),
            cost=int(row[14]),
            units=int(row[15]),
            receipt_status=_receipt_status(row[16]),
        )
    return HoldState(hold, price_in=int(row[8]), price_out=int(row[9]), charge=charge)


def _outcome(value: str) -> Outcome:
    for outcome in OUTCOMES:
        if value == outcome:
            return outcome
    raise ValueError("unknown hold outcome")


def _receipt_status(value: object) -> ReceiptStatusValue | None:
    for status in ("complete", "stopped", "error"):
        if value == status:
            return status
    if value is None:
        return None
    raise ValueError("unknown receipt status")


# -- orders and payments ---------------------------------------------------------------------

_ORDER_COLUMNS = "id, user_id, kind, pack_id, stars, units, status, created_at, expires_at"
_PAYMENT_COLUMNS = (
    "charge_id, user_id, order_id, stars, units, is_recurring, flagged, flag_reason, refunded,"
    " created_at, subscription_expires_at"
)


def insert_order(db: Database, order: Order) -> None:
    """Store a new order."""
    db.execute(
        f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 -- a constant column list
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
        ],
    )


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
    )


def purge_orders(db: Database, expired_before: int) -> int:
    """Delete unpaid orders that expired before ``expired_before``; returns how many.

    Paid orders stay: their payments name them.
    """
    cursor = db.execute(
        "DELETE FROM orders WHERE status = 'pending' AND expires_at < ?", [expired_before]
    )
    return int(cursor.rowcount)


def mark_order_paid(db: Database, order_id: str) -> None:
    """Mark an order paid (a no-op for an unknown one)."""
    db.execute("UPDATE orders SET status = 'paid' WHERE id = ?", [order_id])


def insert_payment(db: Database, payment: Payment) -> None:
    """Store a payment; a duplicate charge id raises ``sqlite3.IntegrityError``."""
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


def mark_refunded(db: Database, charge_id: str) -> None:
    """Mark a payment refunded."""
    db.execute("UPDATE payments SET refunded = 1 WHERE charge_id = ?", [charge_id])


def plan_until(db: Database, user_id: int) -> int | None:
    """The latest subscription expiry among the user's unrefunded payments, or None."""
    (until,) = db.execute(
        "SELECT MAX(subscription_expires_at) FROM payments WHERE user_id = ? AND refunded = 0",
        [user_id],
    ).fetchone()
    return None if until is None else int(until)


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


# -- checks and figures ----------------------------------------------------------------------

# Each query names users whose rows break one rule of the money tables.
_INVARIANT_QUERIES = (
    # Every hold has exactly its ledger row, for its user, of minus the held units.
    """SELECT h.user_id FROM holds h LEFT JOIN ledger l ON l.source = 'hold:' || h.request_id
       WHERE l.id IS NULL OR l.kind != 'hold' OR l.user_id != h.user_id OR l.amount != -h.units""",
    # A closed hold has its release row giving back exactly the held units; an open one none.
    """SELECT h.user_id FROM holds h LEFT JOIN ledger l ON l.source = 'release:' || h.request_id
       WHERE (h.outcome IS NULL) != (l.id IS NULL)
          OR (l.id IS NOT NULL AND (l.kind != 'release' OR l.user_id != h.user_id
                                    OR l.amount != h.units))""",
    # A charged hold's usage row is its gross cost and its free row covers cost - charged.
    # (A settled charge may exceed the hold: the signed receipt is charged in full.)
    """SELECT h.user_id FROM holds h
       LEFT JOIN ledger u ON u.source = 'usage:' || h.request_id
       LEFT JOIN ledger f ON f.source = 'free:' || h.request_id
       WHERE (h.outcome IN ('settled', 'unverified', 'estimated')
              AND (u.id IS NULL OR u.kind != 'usage' OR u.amount != -h.cost
                   OR COALESCE(f.amount, 0) != h.cost - h.charged
                   OR (h.outcome != 'settled' AND h.charged > h.units)))
          OR (COALESCE(h.outcome, 'open') NOT IN ('settled', 'unverified', 'estimated')
              AND (u.id IS NOT NULL OR f.id IS NOT NULL))""",
    # Hold, release, usage and free rows all belong to a hold of the same user.
    """SELECT l.user_id FROM ledger l LEFT JOIN holds h
         ON h.request_id = substr(l.source, instr(l.source, ':') + 1)
       WHERE l.kind IN ('hold', 'release', 'usage', 'free')
         AND (h.request_id IS NULL OR h.user_id != l.user_id
              OR l.source != l.kind || ':' || h.request_id)""",
    # A proof row belongs to a charged hold of the same user and agrees with it.
    """SELECT r.user_id FROM usage_receipts r LEFT JOIN holds h ON h.request_id = r.request_id
       WHERE h.request_id IS NULL OR h.user_id != r.user_id OR h.outcome != r.outcome
          OR h.prompt_used != r.prompt_tokens OR h.completion_used != r.completion_tokens
          OR h.free_used != r.free_tokens OR h.cost != r.cost OR h.charged != r.charged
          OR h.price_in != r.price_in OR h.price_out != r.price_out""",
    # Every payment has its credit row, for its user, of exactly its units.
    """SELECT p.user_id FROM payments p LEFT JOIN ledger l ON l.source = p.charge_id
       WHERE l.id IS NULL OR l.user_id != p.user_id OR l.amount != p.units
          OR l.kind NOT IN ('purchase', 'subscription')""",
    # A refunded payment has its refund row taking back exactly its units; others have none.
    """SELECT p.user_id FROM payments p LEFT JOIN ledger l ON l.source = 'refund:' || p.charge_id
       WHERE (p.refunded = 1) != (l.id IS NOT NULL)
          OR (l.id IS NOT NULL AND (l.kind != 'refund' OR l.user_id != p.user_id
                                    OR l.amount != -p.units))""",
)


def inconsistent_users(db: Database) -> list[int]:
    """Users whose holds, payments and ledger rows disagree; empty when all is well."""
    users: set[int] = set()
    for query in _INVARIANT_QUERIES:
        users.update(int(user_id) for (user_id,) in db.execute(query).fetchall())
    return sorted(users)


def stats(db: Database, day: int) -> BillingStats:
    """Figures for the admin: users with money rows, activity and Stars."""
    (users,) = db.execute("SELECT COUNT(DISTINCT user_id) FROM ledger").fetchone()
    active, tokens = db.execute(
        "SELECT COUNT(DISTINCT user_id),"
        " COALESCE(SUM(COALESCE(prompt_used, 0) + COALESCE(completion_used, 0)), 0)"
        " FROM holds WHERE day = ?",
        [day],
    ).fetchone()
    received, refunds, refunded, flagged = db.execute(
        "SELECT COALESCE(SUM(stars), 0), COALESCE(SUM(refunded), 0),"
        " COALESCE(SUM(CASE WHEN refunded = 1 THEN stars ELSE 0 END), 0),"
        " COALESCE(SUM(flagged), 0) FROM payments"
    ).fetchone()
    return BillingStats(
        users=int(users),
        active_today=int(active),
        tokens_today=int(tokens),
        stars_received=int(received),
        refunds=int(refunds),
        stars_refunded=int(refunded),
        flagged=int(flagged),
    )
