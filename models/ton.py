"""Gram (TON) and USDT-on-TON payments: orders, the chain cursors, and the payments seen.

The tables (made by the migrations ``m0006_ton_payments`` and ``m0010_ton_late_transfers``):

- ``ton_orders``: one per invoice. Its id is the short comment the payer sends with the
  transfer; ``amount`` is what was asked (nanotons for Gram, µUSDT for USDT: 6 decimals),
  ``units`` the µ★ the whole amount buys, so any amount received is credited at that rate.
  Whether an order is paid is not stored: it is the sum of the payments credited to it.
- ``ton_cursors``: per stream (``gram``, ``usdt``) the logical time, hash and chain time
  (``utime``) of the last transaction the watcher processed, and ``since``, when the watcher
  first ran (history before that is not Veil's), with ``chain_since`` (``m0022``), that time
  by toncenter's clock when the bot's clock was ahead of it.
- ``ton_payments``: every incoming transfer the watcher recorded, keyed by its transaction hash
  (hex; the PRIMARY KEY is the UNIQUE guard), whether it was ``credited``, kept ``unmatched``
  for the admins, or ``dust``. A credited one has its ledger row ``ton:<hash>`` and keeps the
  rate it was credited at (``rate_units`` µ★ for ``rate_amount``), for the audit.
- ``ton_skipped``: the transfers the watcher read and skipped (no money of ours: another
  jetton, a forged wallet, aborted...), by hash, so that one read again is passed over
  quietly; kept a day, and a day past the USDT cursor's transaction (``purge_skipped``). Those
  set aside ``unproven`` (a USDT transfer whose sender the master's get-method fails for) are
  kept for good, and so is the Gram that came with a jetton message and was worth a look
  (``jetton_gram``): the audit lists both, with their amount and sender.

The functions here take the ``Database`` of a store call and run inside its transaction
(``Store.write`` and ``Store.read`` own it; see ``models.database``), so a payment and its
ledger row commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from models.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlite_utils import Database

Asset = Literal["gram", "usdt"]
ASSETS: tuple[Asset, ...] = ("gram", "usdt")
PaymentStatus = Literal["credited", "unmatched", "dust"]
LEDGER_PREFIX = "ton:"  # a credited payment's ledger source is ton:<transaction hash>
_HASHES_A_QUERY = 400  # hashes asked in one query (twice: SQLite allows 32 766 parameters)
COMMENT_MAX = 120  # characters of a payer's comment kept (it is public on the chain anyway)


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TonOrder:
    """An invoice in Gram or USDT; ``id`` is the comment the payer sends."""

    id: str
    user_id: int
    language: str | None
    asset: Asset
    pack_id: str
    amount: int
    units: int
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class TonCursor:
    """Where a stream's watcher is: the last transaction processed (None before the first).

    ``utime`` is that transaction's chain time (Unix seconds). ``chain_since`` is where the
    first read begins by toncenter's clock when the bot's lead on it moved it before ``since``
    (None: at ``since``), kept so that a restart reads from the same place (``get_chain_since``).
    """

    stream: Asset
    since: int
    lt: int | None
    hash: str | None
    utime: int | None = None
    chain_since: int | None = None

    @property
    def start(self) -> int:
        """The chain time the first read begins at: ``since``, or earlier as kept."""
        return self.since if self.chain_since is None else min(self.since, self.chain_since)


@dataclass(frozen=True, slots=True)
class TonPayment:
    """An incoming transfer as recorded.

    ``reason`` says more: ``underpaid``/``overpaid``/``already_paid``/``wrong_asset`` for a
    credited one, ``no_comment``, ``body_too_large``, ``unknown_comment`` or ``two_orders`` for
    an unmatched one (``already_paid`` too, booked before review29a; ``wrong_asset`` before
    review30a, or while none of its asset was sold), ``dust``.
    ``late`` marks a payment that arrived after its order expired (credited all the same).
    ``named`` holds the ids of the orders its comment named, in the comment's order (the
    comment itself is kept to ``COMMENT_MAX`` characters, and an id may come later).
    ``rate_amount``/``rate_units`` is the rate a credited payment was credited at.
    """

    hash: str
    asset: Asset
    lt: int
    utime: int
    sender: str | None
    amount: int
    comment: str | None
    order_id: str | None
    status: PaymentStatus
    reason: str | None
    late: bool
    user_id: int | None
    units: int
    created_at: int
    rate_amount: int | None = None
    rate_units: int | None = None
    credited_at: int | None = None
    assigned_by: int | None = None
    notified: bool = False
    named: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TonTotals:
    """Figures for ``/stats`` and the audit: per asset, amounts received and µ★ credited."""

    credited: int
    unmatched: int
    dust: int
    nanotons: int
    usdt: int
    units: int


# -- orders ----------------------------------------------------------------------------------

_ORDER_COLUMNS = "id, user_id, language, asset, pack_id, amount, units, created_at, expires_at"


def open_orders(db: Database, user_id: int, now: int) -> int:
    """How many of the user's orders have not expired at ``now`` nor been paid in full.

    Paid in full as the books judge it (``received``): one paid in part still counts.
    """
    row = db.execute(
        "SELECT COUNT(*) FROM ton_orders o WHERE o.user_id = ? AND o.expires_at >= ?"
        " AND o.amount > (SELECT COALESCE(SUM(p.amount), 0) FROM ton_payments p"
        " WHERE p.order_id = o.id AND p.asset = o.asset AND p.status = 'credited'"
        " AND p.assigned_by IS NULL)",
        [user_id, now],
    ).fetchone()
    return int(row[0])


def insert_order(db: Database, order: TonOrder) -> bool:
    """Store a new order; False (nothing written) if its id is taken."""
    cursor = db.execute(
        f"INSERT INTO ton_orders ({_ORDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 -- a constant column list
        " ON CONFLICT (id) DO NOTHING",
        [
            order.id,
            order.user_id,
            order.language,
            order.asset,
            order.pack_id,
            order.amount,
            order.units,
            order.created_at,
            order.expires_at,
        ],
    )
    return bool(cursor.rowcount)


def get_order(db: Database, order_id: str) -> TonOrder | None:
    """The order with this id (comment), or None."""
    row = db.execute(
        f"SELECT {_ORDER_COLUMNS} FROM ton_orders WHERE id = ?",  # noqa: S608 -- a constant column list
        [order_id],
    ).fetchone()
    if row is None:
        return None
    return TonOrder(
        id=str(row[0]),
        user_id=int(row[1]),
        language=None if row[2] is None else str(row[2]),
        asset=_asset(row[3]),
        pack_id=str(row[4]),
        amount=int(row[5]),
        units=int(row[6]),
        created_at=int(row[7]),
        expires_at=int(row[8]),
    )


def received(db: Database, order_id: str) -> int:
    """What the payments credited to the order brought (admins' assignments not counted).

    In its own asset: one credited in the other (``wrong_asset``) pays no part of it.
    """
    return _credited(db, order_id)[0]


def credited_units(db: Database, order_id: str) -> int:
    """The µ★ those payments credited (as ``received``: by the order's comment)."""
    return _credited(db, order_id)[1]


def _credited(db: Database, order_id: str) -> tuple[int, int]:
    amount, units = db.execute(
        "SELECT COALESCE(SUM(p.amount), 0), COALESCE(SUM(p.units), 0) FROM ton_payments p"
        " JOIN ton_orders o ON o.id = p.order_id AND o.asset = p.asset"
        " WHERE p.order_id = ? AND p.status = 'credited' AND p.assigned_by IS NULL",
        [order_id],
    ).fetchone()
    return int(amount), int(units)


def purge_orders(db: Database, expired_before: int) -> int:
    """Delete orders that expired before ``expired_before`` and no payment names; how many.

    An order an unmatched payment's comment named among others (``named``, ``two_orders``) is
    kept too: an admin's assignment of that payment takes its rate from it.
    """
    cursor = db.execute(
        "DELETE FROM ton_orders WHERE expires_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM ton_payments p WHERE p.order_id = ton_orders.id)"
        " AND NOT EXISTS (SELECT 1 FROM ton_payments p WHERE p.status = 'unmatched'"
        " AND instr(',' || p.named || ',', ',' || ton_orders.id || ',') > 0)",
        [expired_before],
    )
    return int(cursor.rowcount)


def latest_language(db: Database, user_id: int) -> str | None:
    """The language of the user's newest order (to speak to them later), or None."""
    row = db.execute(
        "SELECT language FROM ton_orders WHERE user_id = ? ORDER BY created_at DESC LIMIT 1",
        [user_id],
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


# -- cursors ---------------------------------------------------------------------------------


def get_cursor(db: Database, stream: Asset, since: int) -> TonCursor:
    """The stream's cursor; the first call starts it at ``since`` (earlier history is not ours)."""
    db.execute(
        "INSERT INTO ton_cursors (stream, since, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (stream) DO NOTHING",
        [stream, since, since],
    )
    since, lt, tx_hash, utime = db.execute(
        "SELECT since, lt, hash, utime FROM ton_cursors WHERE stream = ?", [stream]
    ).fetchone()
    return TonCursor(
        stream=stream,
        since=int(since),
        lt=None if lt is None else int(lt),
        hash=None if tx_hash is None else str(tx_hash),
        utime=None if utime is None else int(utime),
    )


def get_chain_since(db: Database, stream: Asset) -> int | None:
    """Where the stream's first read began by toncenter's clock, if a lead moved it (``m0022``).

    Apart from ``get_cursor``, which reads what every schema since ``m0010`` has.
    """
    row = db.execute("SELECT chain_since FROM ton_cursors WHERE stream = ?", [stream]).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def save_chain_since(db: Database, stream: Asset, chain_since: int, now: int) -> None:
    """Keep where the stream's first read began by toncenter's clock (only ever earlier).

    Only before the stream's first transaction: after it, reads go on from the cursor.
    """
    db.execute(
        "UPDATE ton_cursors SET chain_since = ?, updated_at = ?"
        " WHERE stream = ? AND lt IS NULL AND ? < COALESCE(chain_since, since)",
        [chain_since, now, stream, chain_since],
    )


def save_cursor(  # noqa: PLR0913 -- the transaction's three facts, and when
    db: Database, stream: Asset, lt: int, tx_hash: str, *, utime: int, now: int
) -> None:
    """Move the stream's cursor to the transaction ``lt``/``tx_hash`` (never backwards)."""
    db.execute(
        "UPDATE ton_cursors SET lt = ?, hash = ?, utime = ?, updated_at = ?"
        " WHERE stream = ? AND (lt IS NULL OR lt <= ?)",
        [lt, tx_hash, utime, now, stream, lt],
    )


# -- transfers read before -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkippedTransfer:
    """A transfer the watcher skipped, as the audit lists it.

    ``amount`` (in the asset's smallest unit) and ``sender`` (raw form) are None for one
    remembered before they were kept (``m0015_ton_skipped_facts``) or that named no sender.
    """

    hash: str
    asset: Asset
    reason: str
    amount: int | None
    sender: str | None
    created_at: int


def insert_skipped(  # noqa: PLR0913 -- the transfer's facts, and when
    db: Database,
    tx_hash: str,
    asset: Asset,
    *,
    lt: int,
    reason: str,
    now: int,
    amount: int | None = None,
    sender: str | None = None,
) -> None:
    """Remember a transfer the watcher skipped (once per hash), with what it brought and whose.

    The amount is kept as text: a forged jetton's can be any number up to 2**120, past what
    an SQLite integer holds.
    """
    db.execute(
        "INSERT INTO ton_skipped (hash, asset, lt, reason, created_at, amount, sender)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
        [tx_hash, asset, lt, reason, now, None if amount is None else str(amount), sender],
    )


def forget_skipped(db: Database, tx_hash: str) -> None:
    """Forget one transfer remembered skipped (Gram kept that proved to be our own change)."""
    db.execute("DELETE FROM ton_skipped WHERE hash = ?", [tx_hash])


def known(db: Database, hashes: Sequence[str]) -> set[str]:
    """Those of ``hashes`` the watcher dealt with already: recorded as payments or skipped."""
    found: set[str] = set()
    for start in range(0, len(hashes), _HASHES_A_QUERY):
        part = list(hashes[start : start + _HASHES_A_QUERY])
        marks = ", ".join("?" * len(part))
        rows = db.execute(
            f"SELECT hash FROM ton_payments WHERE hash IN ({marks})"  # noqa: S608 -- placeholders only
            f" UNION SELECT hash FROM ton_skipped WHERE hash IN ({marks})",
            part + part,
        ).fetchall()
        found.update(str(row[0]) for row in rows)
    return found


def unproven(db: Database) -> list[SkippedTransfer]:
    """The transfers set aside ``unproven``, oldest first: never forgotten.

    Less those booked since (``reconcile --fix``, once the master proved the sender's wallet).
    """
    return _kept(db, "reason = 'unproven'")


def jetton_gram(db: Database) -> list[SkippedTransfer]:
    """The Gram that came with a jetton message (never a payment), oldest first: kept for good.

    Only those the watcher found worth a look are here (``TonBooks.skipped``): a hand-built
    ``transfer_notification`` or ``excesses`` body can carry any amount, from anyone.
    """
    return _kept(db, "asset = 'gram'")


def _kept(db: Database, where: str) -> list[SkippedTransfer]:
    rows = db.execute(
        "SELECT hash, asset, reason, amount, sender, created_at FROM ton_skipped"  # noqa: S608 -- a constant condition
        f" WHERE {where} AND hash NOT IN (SELECT hash FROM ton_payments)"
        " ORDER BY created_at, lt, hash"
    ).fetchall()
    return [
        SkippedTransfer(
            hash=str(tx_hash),
            asset=asset,
            reason=str(reason),
            amount=None if amount is None else int(amount),
            sender=None if sender is None else str(sender),
            created_at=int(created_at),
        )
        for tx_hash, asset, reason, amount, sender, created_at in rows
    ]


def purge_skipped(db: Database, now: int, kept: int) -> int:
    """Forget the skipped transfers remembered ``kept`` seconds before now; how many.

    And as long before the USDT cursor's transaction (its chain time): the watcher reads the
    stream again a little behind that transaction, and the cursor stays on it while no transfer
    comes, so one skipped near it is read again however old it is (forgotten, it would be
    checked, and logged as indexed late, all over again). Those set aside ``unproven`` stay, and
    the Gram kept from jetton messages (``jetton_gram``).
    """
    return int(
        db.execute(
            "DELETE FROM ton_skipped WHERE reason != 'unproven' AND asset != 'gram'"
            " AND created_at < ?"
            " AND created_at < COALESCE((SELECT utime FROM ton_cursors WHERE stream = 'usdt'), ?)"
            " - ?",
            [now - kept, now, kept],
        ).rowcount
    )


# -- payments --------------------------------------------------------------------------------

_PAYMENT_COLUMNS = (
    "hash, asset, lt, utime, sender, amount, comment, order_id, status, reason, late, user_id,"
    " units, rate_amount, rate_units, created_at, credited_at, assigned_by, notified, named"
)


def insert_payment(db: Database, payment: TonPayment) -> bool:
    """Record a payment; False (nothing written) if its hash is already recorded."""
    cursor = db.execute(
        f"INSERT INTO ton_payments ({_PAYMENT_COLUMNS})"  # noqa: S608 -- a constant column list
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (hash) DO NOTHING",
        [
            payment.hash,
            payment.asset,
            payment.lt,
            payment.utime,
            payment.sender,
            payment.amount,
            None if payment.comment is None else payment.comment[:COMMENT_MAX],
            payment.order_id,
            payment.status,
            payment.reason,
            int(payment.late),
            payment.user_id,
            payment.units,
            payment.rate_amount,
            payment.rate_units,
            payment.created_at,
            payment.credited_at,
            payment.assigned_by,
            int(payment.notified),
            ",".join(payment.named) or None,
        ],
    )
    return bool(cursor.rowcount)


def get_payment(db: Database, tx_hash: str) -> TonPayment | None:
    """The payment recorded for this transaction hash, or None."""
    row = db.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM ton_payments WHERE hash = ?",  # noqa: S608 -- a constant column list
        [tx_hash],
    ).fetchone()
    return None if row is None else _payment(row)


def find_payments(db: Database, hash_prefix: str, limit: int = 2) -> list[TonPayment]:
    """Payments whose hash starts with ``hash_prefix`` (lowercase hex), at most ``limit``."""
    rows = db.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM ton_payments"  # noqa: S608 -- a constant column list
        " WHERE substr(hash, 1, ?) = ? ORDER BY hash LIMIT ?",
        [len(hash_prefix), hash_prefix, limit],
    ).fetchall()
    return [_payment(row) for row in rows]


def assign_payment(  # noqa: PLR0913 -- the columns an assignment sets
    db: Database,
    tx_hash: str,
    *,
    user_id: int,
    units: int,
    rate: tuple[int, int],
    admin: int,
    now: int,
) -> None:
    """Credit an unmatched payment to ``user_id``: ``units`` µ★ at ``rate`` (amount, µ★)."""
    db.execute(
        "UPDATE ton_payments SET status = 'credited', user_id = ?, units = ?, rate_amount = ?,"
        " rate_units = ?, credited_at = ?, assigned_by = ?, notified = 0"
        " WHERE hash = ? AND status = 'unmatched'",
        [user_id, units, rate[0], rate[1], now, admin, tx_hash],
    )


def mark_notified(db: Database, tx_hash: str) -> None:
    """The payment's user was told it is credited (the claim to tell goes with it)."""
    db.execute(
        "UPDATE ton_payments SET notified = 1, notice_claimed_until = NULL WHERE hash = ?",
        [tx_hash],
    )


def claim_notice(db: Database, tx_hash: str, now: int, until: int) -> bool:
    """Take the right to tell the payment's user until ``until``; False if told or held.

    A claim another watcher holds counts until its time is up (a replica that died with it).
    """
    cursor = db.execute(
        "UPDATE ton_payments SET notice_claimed_until = ?"
        " WHERE hash = ? AND status = 'credited' AND notified = 0"
        " AND (notice_claimed_until IS NULL OR notice_claimed_until <= ?)",
        [until, tx_hash, now],
    )
    return cursor.rowcount == 1


def renew_notice(db: Database, tx_hash: str, held: int, until: int) -> bool:
    """Move the claim taken until ``held`` on to ``until``; False if it is not held so now."""
    cursor = db.execute(
        "UPDATE ton_payments SET notice_claimed_until = ?"
        " WHERE hash = ? AND notified = 0 AND notice_claimed_until = ?",
        [until, tx_hash, held],
    )
    return cursor.rowcount == 1


def release_notice(db: Database, tx_hash: str, until: int) -> None:
    """Let go of the claim taken until ``until`` (the user could not be told now)."""
    db.execute(
        "UPDATE ton_payments SET notice_claimed_until = NULL"
        " WHERE hash = ? AND notice_claimed_until = ?",
        [tx_hash, until],
    )


def release_notices(db: Database) -> int:
    """Let go of every claim to tell (a process alone on its data, starting); how many."""
    cursor = db.execute(
        "UPDATE ton_payments SET notice_claimed_until = NULL WHERE notice_claimed_until IS NOT NULL"
    )
    return int(cursor.rowcount)


def payments(
    db: Database, status: PaymentStatus | None = None, *, limit: int = -1
) -> list[TonPayment]:
    """Recorded payments (of one status, if given), newest first; ``limit`` -1 for all."""
    rows = db.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM ton_payments"  # noqa: S608 -- a constant column list
        " WHERE ? IS NULL OR status = ? ORDER BY created_at DESC, lt DESC LIMIT ?",
        [status, status, limit],
    ).fetchall()
    return [_payment(row) for row in rows]


def unnotified(db: Database, now: int) -> list[TonPayment]:
    """Credited payments whose user has not been told yet and no watcher tells, oldest first."""
    rows = db.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM ton_payments"  # noqa: S608 -- a constant column list
        " WHERE status = 'credited' AND notified = 0"
        " AND (notice_claimed_until IS NULL OR notice_claimed_until <= ?)"
        " ORDER BY credited_at, lt",
        [now],
    ).fetchall()
    return [_payment(row) for row in rows]


def totals(db: Database) -> TonTotals:
    """Counts by status, amounts credited per asset, and the µ★ they bought."""
    row = db.execute(
        "SELECT COALESCE(SUM(status = 'credited'), 0), COALESCE(SUM(status = 'unmatched'), 0),"
        " COALESCE(SUM(status = 'dust'), 0),"
        " COALESCE(SUM(CASE WHEN status = 'credited' AND asset = 'gram' THEN amount END), 0),"
        " COALESCE(SUM(CASE WHEN status = 'credited' AND asset = 'usdt' THEN amount END), 0),"
        " COALESCE(SUM(CASE WHEN status = 'credited' THEN units END), 0) FROM ton_payments"
    ).fetchone()
    return TonTotals(*(int(value) for value in row))


def credited_with_orders(db: Database) -> list[tuple[TonPayment, TonOrder | None]]:
    """Every credited payment with the order it names (None if none), oldest first."""
    found = []
    for payment in reversed(payments(db, "credited")):
        order = None if payment.order_id is None else get_order(db, payment.order_id)
        found.append((payment, order))
    return found


def _payment(row: Any) -> TonPayment:  # noqa: ANN401 -- a sqlite3 row is untyped
    return TonPayment(
        hash=str(row[0]),
        asset=_asset(row[1]),
        lt=int(row[2]),
        utime=int(row[3]),
        sender=None if row[4] is None else str(row[4]),
        amount=int(row[5]),
        comment=None if row[6] is None else str(row[6]),
        order_id=None if row[7] is None else str(row[7]),
        status=_status(row[8]),
        reason=None if row[9] is None else str(row[9]),
        late=bool(row[10]),
        user_id=None if row[11] is None else int(row[11]),
        units=int(row[12]),
        rate_amount=None if row[13] is None else int(row[13]),
        rate_units=None if row[14] is None else int(row[14]),
        created_at=int(row[15]),
        credited_at=None if row[16] is None else int(row[16]),
        assigned_by=None if row[17] is None else int(row[17]),
        notified=bool(row[18]),
        named=tuple(str(row[19]).split(",")) if row[19] else (),
    )


def _asset(value: object) -> Asset:
    for asset in ASSETS:
        if value == asset:
            return asset
    raise StorageError("unknown asset in the TON tables")


def _status(value: object) -> PaymentStatus:
    for status in ("credited", "unmatched", "dust"):
        if value == status:
            return status
    raise StorageError("unknown TON payment status")


# -- checks ----------------------------------------------------------------------------------

# Each query names users whose TON rows and ledger rows disagree.
_INVARIANT_QUERIES = (
    # A credited payment has its ledger row: a purchase, for its user, of exactly its units.
    """SELECT COALESCE(p.user_id, 0) FROM ton_payments p
       LEFT JOIN ledger l ON l.source = 'ton:' || p.hash
       WHERE p.status = 'credited'
         AND (p.user_id IS NULL OR l.id IS NULL OR l.kind != 'purchase'
              OR l.user_id != p.user_id OR l.amount != p.units)""",
    # An unmatched or dust payment has no ledger row and credits nothing.
    """SELECT COALESCE(p.user_id, 0) FROM ton_payments p
       JOIN ledger l ON l.source = 'ton:' || p.hash
       WHERE p.status != 'credited'""",
    """SELECT COALESCE(user_id, 0) FROM ton_payments WHERE status != 'credited' AND units != 0""",
    # Every ton: ledger row belongs to a credited payment.
    """SELECT l.user_id FROM ledger l
       LEFT JOIN ton_payments p ON 'ton:' || p.hash = l.source AND p.status = 'credited'
       WHERE l.source LIKE 'ton:%' AND p.hash IS NULL""",
)


def inconsistent_users(db: Database) -> list[int]:
    """Users (0: none named) whose TON payments and ledger rows disagree; empty when all is well."""
    users: set[int] = set()
    for query in _INVARIANT_QUERIES:
        users.update(int(user_id) for (user_id,) in db.execute(query).fetchall())
    return sorted(users)
