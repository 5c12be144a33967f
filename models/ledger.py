"""The ledger: one append-only table of money events, and balances summed from it.

All amounts are integers in one unit, the micro-Star (µ★): 1 Star = 1_000_000 units, fine
enough for per-token prices. A user's balance is ``SUM(amount)`` of their ledger rows; nothing
caches it. Every row has a unique ``source`` (``hold:<request id>``, a Telegram charge id,
``refund:<charge id>``…), so writing the same money event twice is a no-op, and triggers
refuse any UPDATE or DELETE of a ledger row.

The functions here take the ``Database`` of a store call and run inside its transaction
(``Store.write`` and ``Store.read`` own it; see ``models.database``), so a money change and
its source row commit together. They return frozen records, never row dicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, get_args

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlite_utils import Database

UNITS_PER_STAR = 1_000_000
SECONDS_PER_DAY = 86_400

Kind = Literal["purchase", "usage", "refund", "grant", "free", "hold", "release", "subscription"]


def utc_day(timestamp: float) -> int:
    """The UTC day number (days since the epoch) of a Unix time; days turn at 00:00 UTC."""
    return int(timestamp // SECONDS_PER_DAY)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ledger row: ``amount`` in µ★, positive for credits, negative for debits."""

    user_id: int
    kind: Kind
    amount: int
    source: str
    created_at: int
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """A user's money, free tokens left today, and what running requests hold.

    ``units`` is the ledger sum in µ★ (negative after a refund of spent credit); ``held`` is
    the part of it that open holds have taken, already subtracted.
    """

    units: int
    free_tokens_left: int
    held: int = 0


_INSERT = (
    "INSERT INTO ledger (user_id, kind, amount, source, created_at, note) VALUES (?, ?, ?, ?, ?, ?)"
)


def balance(db: Database, user_id: int) -> int:
    """The user's balance: the sum of their ledger rows."""
    (total,) = db.execute(
        "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE user_id = ?", [user_id]
    ).fetchone()
    return int(total)


def grants(db: Database) -> tuple[int, int]:
    """(rows, µ★) of ``grant`` rows: credit no payment stands behind (no code path writes one)."""
    count, total = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'grant'"
    ).fetchone()
    return int(count), int(total)


def record(db: Database, entry: LedgerEntry) -> bool:
    """Append a row unless its ``source`` is recorded already; False (nothing written) then."""
    cursor = db.execute(f"{_INSERT} ON CONFLICT (source) DO NOTHING", _values(entry))
    return bool(cursor.rowcount)


def append(db: Database, entry: LedgerEntry) -> None:
    """Append a row whose ``source`` must be new: a recorded one fails the whole write."""
    db.execute(_INSERT, _values(entry))


def entries(db: Database, user_id: int, kinds: Iterable[Kind], limit: int) -> list[LedgerEntry]:
    """The user's newest ledger rows of the given kinds, newest first."""
    rows = db.execute(
        "SELECT user_id, kind, amount, source, created_at, note FROM ledger"
        " WHERE user_id = ? AND kind IN (SELECT value FROM json_each(?))"
        " ORDER BY id DESC LIMIT ?",
        [user_id, json.dumps(list(kinds)), limit],
    ).fetchall()
    return [
        LedgerEntry(
            user_id=int(row[0]),
            kind=_kind(str(row[1])),
            amount=int(row[2]),
            source=str(row[3]),
            created_at=int(row[4]),
            note=None if row[5] is None else str(row[5]),
        )
        for row in rows
    ]


def _values(entry: LedgerEntry) -> list[object]:
    return [entry.user_id, entry.kind, entry.amount, entry.source, entry.created_at, entry.note]


def _kind(value: str) -> Kind:
    if value not in get_args(Kind):
        raise ValueError("unknown ledger kind")
    return cast("Kind", value)
