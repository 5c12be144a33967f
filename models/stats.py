"""Checks and figures across the money tables: do the books agree, and the admin's ``/stats``.

``inconsistent_users`` is the invariant the tests and ``python -m bot audit`` check: every hold,
payment, refund and proof row has exactly the ledger rows it implies, and no ledger row of a
request stands without its hold, nor a purchase, subscription or refund row without its
payment; Gram and USDT payments too (``models.ton.inconsistent_users``).
Balances need no check: they are always the ledger sum.

The functions here take the ``Database`` of a store call (a read: one snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from models import ton

if TYPE_CHECKING:
    from sqlite_utils import Database


@dataclass(frozen=True, slots=True)
class Stats:
    """Figures for the admin's ``/stats``; "today" is the current UTC day."""

    users: int
    active_today: int
    tokens_today: int
    stars_received: int
    refunds: int
    stars_refunded: int
    flagged: int


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
    # A Stars credit row stands only with its payment, for its user, of exactly its units (the
    # triggers refuse UPDATE and DELETE, not INSERT: credit written in by hand must not pass).
    # Gram and USDT credits (ton:<hash>) are models.ton's to check.
    """SELECT l.user_id FROM ledger l LEFT JOIN payments p ON p.charge_id = l.source
       WHERE l.kind IN ('purchase', 'subscription') AND l.source NOT LIKE 'ton:%'
         AND (p.charge_id IS NULL OR p.user_id != l.user_id OR p.units != l.amount)""",
    # A refund row stands only with its refunded payment (the query below checks its amount).
    """SELECT l.user_id FROM ledger l
       LEFT JOIN payments p ON p.charge_id = substr(l.source, length('refund:') + 1)
       WHERE l.kind = 'refund'
         AND (l.source NOT LIKE 'refund:%' OR p.charge_id IS NULL OR p.refunded != 1
              OR p.user_id != l.user_id)""",
    # A refunded payment has its refund row taking back exactly its units; others have none.
    """SELECT p.user_id FROM payments p LEFT JOIN ledger l ON l.source = 'refund:' || p.charge_id
       WHERE (p.refunded = 1) != (l.id IS NOT NULL)
          OR (l.id IS NOT NULL AND (l.kind != 'refund' OR l.user_id != p.user_id
                                    OR l.amount != -p.units))""",
    # A refund booked before its payment took that payment's credit back once it came.
    """SELECT e.user_id FROM early_refunds e
       JOIN payments p ON p.charge_id = e.charge_id AND p.user_id = e.user_id
       WHERE p.refunded != 1""",
)


def inconsistent_users(db: Database) -> list[int]:
    """Users whose holds, payments and ledger rows disagree; empty when all is well."""
    users: set[int] = set(ton.inconsistent_users(db))
    for query in _INVARIANT_QUERIES:
        users.update(int(user_id) for (user_id,) in db.execute(query).fetchall())
    return sorted(users)


def figures(db: Database, day: int) -> Stats:
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
    return Stats(
        users=int(users),
        active_today=int(active),
        tokens_today=int(tokens),
        stars_received=int(received),
        refunds=int(refunds),
        stars_refunded=int(refunded),
        flagged=int(flagged),
    )
