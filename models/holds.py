"""Holds: credit reserved for one request before the model is asked, and how each one ended.

A hold writes its ``hold:<request id>`` ledger row (minus the held units) when it opens; when
it closes, its ``release:<id>`` row gives the units back and, for an answer that is charged,
the ``usage:<id>`` row takes the gross price of its tokens and a ``free:<id>`` row credits back
what the day's free allowance covered. The ``holds`` row keeps the prices the hold was made at,
so a price change never reprices a running request, and how it ended.

A hold of an answer in a private chat also has a ``hold_chats`` row, its chat and topic, while
the hold is open. When a restart (or the sweep) recovers the hold instead, the row stays until
the user is told that answer was cut off (``interrupted``); it is deleted before the notice is
sent (``forget_interrupted``, so two tellers never both send it) and restored only if Telegram
could not take it for now. Any other close deletes it, and so does the end of an answer that
ran on after another replica's sweep recovered its hold: its charge (``close_hold``'s
``released``), or its release with nothing delivered (the user was told how it ended).

The functions here take the ``Database`` of a store call and run inside its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from models.ledger import LedgerEntry, append, utc_day

if TYPE_CHECKING:
    from sqlite_utils import Database

Outcome = Literal["settled", "unverified", "estimated", "released", "recovered"]
# Outcomes that charge: each has a usage row (and a free row when the allowance covered some).
CHARGED: frozenset[Outcome] = frozenset({"settled", "unverified", "estimated"})
ReceiptStatusValue = Literal["complete", "stopped", "error"]


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
class AnswerChat:
    """The private chat an answer is written in (the user's id), and its topic if any."""

    chat_id: int
    thread_id: int | None = None


@dataclass(frozen=True, slots=True)
class Interrupted:
    """An answer whose hold was recovered: a restart cut it off before it was finished."""

    request_id: str
    user_id: int
    chat: AnswerChat
    language: str | None


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
class HoldState:
    """A hold with the prices it was made at and, once closed, how it ended."""

    hold: Hold
    price_in: int
    price_out: int
    charge: Charge | None


_HOLD_COLUMNS = (
    "request_id, user_id, model, prompt_tokens, max_completion_tokens, free_tokens, units,"
    " created_at"
)


def insert_hold(
    db: Database, hold: Hold, *, price_in: int, price_out: int, chat: AnswerChat | None = None
) -> None:
    """Record an open hold and its ledger row (``hold:<request id>``, minus the held units).

    ``chat``: the private chat its answer is written in (a ``hold_chats`` row).
    """
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
    append(
        db,
        LedgerEntry(hold.user_id, "hold", -hold.units, f"hold:{hold.request_id}", hold.created_at),
    )
    if chat is not None:
        db.execute(
            "INSERT INTO hold_chats (request_id, chat_id, thread_id) VALUES (?, ?, ?)",
            [hold.request_id, chat.chat_id, chat.thread_id],
        )


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


def close_hold(
    db: Database, charge: Charge, held_units: int, closed_at: int, *, released: bool = False
) -> None:
    """Close a hold: write its release row, the usage and free rows, and the outcome.

    The caller has checked, in the same transaction, that the hold is still open, or, with
    ``released``, that it was ``recovered`` (its release row written then) while its answer ran
    on: the answer is charged now, and its user is not told it was cut off.
    """
    request_id, user_id = charge.request_id, charge.user_id
    if not released:
        append(db, LedgerEntry(user_id, "release", held_units, f"release:{request_id}", closed_at))
    if charge.outcome in CHARGED:
        note = (
            f"{charge.model}: {charge.prompt_tokens}+{charge.completion_tokens} tokens,"
            f" {charge.free_tokens} free"
        )
        if charge.outcome == "estimated":
            note += ", estimated"
        elif charge.receipt_status not in {None, "complete"}:
            note += f", {charge.receipt_status}"
        append(
            db, LedgerEntry(user_id, "usage", -charge.cost, f"usage:{request_id}", closed_at, note)
        )
        if charge.cost > charge.units:
            free = charge.cost - charge.units
            append(db, LedgerEntry(user_id, "free", free, f"free:{request_id}", closed_at))
    if charge.outcome != "recovered":  # a recovered one's row says whom to tell
        db.execute("DELETE FROM hold_chats WHERE request_id = ?", [request_id])
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


def interrupted(db: Database) -> list[Interrupted]:
    """Answers in private chats whose holds were recovered and whose users are not yet told."""
    rows = db.execute(
        "SELECT c.request_id, h.user_id, c.chat_id, c.thread_id, u.language"
        " FROM hold_chats c JOIN holds h USING (request_id)"
        " LEFT JOIN users u ON u.user_id = h.user_id"
        " WHERE h.outcome = 'recovered' ORDER BY h.closed_at, c.request_id"
    ).fetchall()
    return [
        Interrupted(
            request_id=str(row[0]),
            user_id=int(row[1]),
            chat=AnswerChat(int(row[2]), None if row[3] is None else int(row[3])),
            language=None if row[4] is None else str(row[4]),
        )
        for row in rows
    ]


def forget_interrupted(db: Database, request_id: str) -> bool:
    """Keep nothing of where that answer was; whether it was still kept (not yet claimed).

    Done before the user is told, so of two tellers (two bot processes) only one tells.
    """
    return bool(db.execute("DELETE FROM hold_chats WHERE request_id = ?", [request_id]).rowcount)


def restore_interrupted(db: Database, cut: Interrupted) -> None:
    """Keep where the answer was again: telling the user failed for now (a later try tells)."""
    db.execute(
        "INSERT OR IGNORE INTO hold_chats (request_id, chat_id, thread_id)"
        " SELECT request_id, ?, ? FROM holds WHERE request_id = ? AND outcome = 'recovered'",
        [cut.chat.chat_id, cut.chat.thread_id, cut.request_id],
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
    if value not in get_args(Outcome):
        raise ValueError("unknown hold outcome")
    return cast("Outcome", value)


def _receipt_status(value: object) -> ReceiptStatusValue | None:
    if value is None:
        return None
    if value not in get_args(ReceiptStatusValue):
        raise ValueError("unknown receipt status")
    return cast("ReceiptStatusValue", value)
