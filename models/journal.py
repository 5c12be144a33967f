"""The payment journal: every payment update, written durably before Telegram hears it arrived.

A separate SQLite file (``journal.db`` beside the bot's database) with ``synchronous=FULL``, so
an entry survives a crash or power cut the moment ``record`` returns, and so a locked, full or
failing main database cannot stop a payment from being written down. Each entry keeps only
what booking needs (user, payload, amount, charge id: no names, no message text) and how far
it got: ``booked_at`` once the ledger has it, ``notified_at`` once everyone was told (the user,
and the admins for a flagged payment); a refund booked before its payment was in the ledger is
``unmatched`` (its payment's booking takes the credit back, and tells it). A flagged payment's
entry also keeps ``thanked`` (the user was thanked) and ``admins_told`` (the admins who got its
notice), so a notice Telegram could not take is sent again, to those who lack it only; and
``admins_credited`` (the admins told "credited as N ★") and ``admins_corrected`` (those of them
told since that the payment was refunded meanwhile), so a restart owes each that correction
still, once.

One connection on one worker thread, like the main store (``models.database``): every call runs
there in order, in a transaction of its own.

Webhook replicas share the file, and each runs a payment desk: an entry is booked and told by
the one desk that holds its claim (``claimed_by``, an owner that names the process, and
``claimed_until``, the end of its lease), taken in one write transaction. A claim left by a
process that died lapses at the end of its lease, and another takes the entry then; a
long-polling bot, the only process on its data, lets go of every claim when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog

from models import migrations
from models.database import Connection, WriteFailure
from models.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from sqlite_utils import Database

T = TypeVar("T")
log = structlog.get_logger("veil.journal")

EntryKind = Literal["payment", "refund"]
_COLUMNS = (
    "key, kind, update_id, user_id, language, payload, currency, total_amount, charge_id,"
    " is_recurring, subscription_expires_at, received_at, booked_at, notified_at, attempts, told,"
    " thanked, admins_told, unmatched, admins_credited, admins_corrected"
)


def j0001_payment_journal(db: Database) -> None:
    """Payment and refund updates, by ``kind:charge id``, in the order they arrived."""
    db.execute(
        """
        CREATE TABLE payment_journal (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
            update_id INTEGER,
            user_id INTEGER NOT NULL,
            language TEXT,
            payload TEXT NOT NULL,
            currency TEXT NOT NULL,
            total_amount INTEGER NOT NULL,
            charge_id TEXT NOT NULL,
            is_recurring INTEGER NOT NULL DEFAULT 0,
            subscription_expires_at INTEGER,
            received_at INTEGER NOT NULL,
            booked_at INTEGER,
            notified_at INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            told INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute(
        "CREATE INDEX payment_journal_open ON payment_journal(seq) WHERE notified_at IS NULL"
    )


def j0002_admin_notices(db: Database) -> None:
    """Whether the user was thanked, and which admins got a flagged payment's notice."""
    db.execute("ALTER TABLE payment_journal ADD COLUMN thanked INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE payment_journal ADD COLUMN admins_told TEXT NOT NULL DEFAULT ''")


def j0003_claims(db: Database) -> None:
    """Who is booking and telling an entry now, and until when (webhook replicas share it)."""
    db.execute("ALTER TABLE payment_journal ADD COLUMN claimed_by TEXT")
    db.execute("ALTER TABLE payment_journal ADD COLUMN claimed_until REAL")


def j0004_unmatched_refunds(db: Database) -> None:
    """Whether a refund was booked while the ledger had no payment of its user to take back.

    A refund booked already was booked by code that kept no such mark: NULL, not known (its
    payment's booking decides by the ledger's times, as that code did).
    """
    db.execute("ALTER TABLE payment_journal ADD COLUMN unmatched INTEGER DEFAULT 0")
    db.execute(
        "UPDATE payment_journal SET unmatched = NULL"
        " WHERE kind = 'refund' AND booked_at IS NOT NULL"
    )


def j0005_unknown_marks(db: Database) -> None:
    """A journal the first ``j0004`` upgraded: its refunds booked before it not known either.

    That ``j0004`` made the mark NOT NULL and read every refund booked already as found by its
    payment (0), and the mended one never runs again where it ran: the table is rebuilt with
    the mark nullable, and those refunds' marks are NULL, as the mended ``j0004`` leaves them.
    A journal the mended ``j0004`` upgraded is left as it is.
    """
    notnull = {row[1]: row[3] for row in db.execute("PRAGMA table_info(payment_journal)")}
    if not notnull["unmatched"]:
        return
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'payment_journal'"
    ).fetchone()
    mended = sql.replace("unmatched INTEGER NOT NULL DEFAULT 0", "unmatched INTEGER DEFAULT 0")
    if mended == sql:
        raise StorageError("the payment journal's unmatched mark is not j0004's; refusing")
    indexes = [
        row[0]
        for row in db.execute(
            "SELECT sql FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = 'payment_journal' AND sql IS NOT NULL"
        )
    ]
    sequence = db.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'payment_journal'"
    ).fetchone()
    db.execute("ALTER TABLE payment_journal RENAME TO payment_journal_j0004")
    db.execute(mended)
    db.execute("INSERT INTO payment_journal SELECT * FROM payment_journal_j0004")
    db.execute("DROP TABLE payment_journal_j0004")
    for index in indexes:
        db.execute(index)
    if sequence is not None:  # AUTOINCREMENT: no purged entry's seq is given out again
        db.execute("DELETE FROM sqlite_sequence WHERE name = 'payment_journal'")
        db.execute("INSERT INTO sqlite_sequence VALUES ('payment_journal', ?)", [sequence[0]])
    upgraded = migrations.applied_at(db, "j0004_unmatched_refunds", JOURNAL_MIGRATION_SET)
    db.execute(
        "UPDATE payment_journal SET unmatched = NULL"
        " WHERE kind = 'refund' AND booked_at IS NOT NULL AND booked_at < ?",
        [upgraded],
    )


def j0006_admin_corrections(db: Database) -> None:
    """Which admins were told a flagged payment was credited, and which were told otherwise since.

    A refund booked while that notice went out is told to each such admin afterwards; kept in
    the desk's memory alone, that correction was lost at a restart in between.
    """
    db.execute("ALTER TABLE payment_journal ADD COLUMN admins_credited TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE payment_journal ADD COLUMN admins_corrected TEXT NOT NULL DEFAULT ''")


JOURNAL_MIGRATIONS: list[migrations.Migration] = [
    j0001_payment_journal,
    j0002_admin_notices,
    j0003_claims,
    j0004_unmatched_refunds,
    j0005_unknown_marks,
    j0006_admin_corrections,
]
JOURNAL_MIGRATION_SET = "journal"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One payment update: what booking needs, and how far it got.

    ``key`` is ``payment:<charge id>`` or ``refund:<charge id>``, so a redelivered update is the
    same entry. ``attempts`` counts failed bookings; ``told`` is whether the user was told the
    credit is delayed; ``thanked`` whether the user was thanked (kept while a flagged payment's
    admin notices are still owed); ``admins_told`` the admins who got that notice; ``unmatched``
    whether a refund, when booked, found no payment of its user in the ledger (booked before
    its payment: that payment's booking takes the credit back and tells the user); None for a
    refund booked by code that kept no such mark (before ``j0004``). ``admins_credited`` the
    admins whose notice said "credited as N ★", ``admins_corrected`` those of them told since
    that a refund booked meanwhile took that credit back.
    """

    kind: EntryKind
    user_id: int
    payload: str
    currency: str
    total_amount: int
    charge_id: str
    received_at: int
    update_id: int | None = None
    language: str | None = None
    is_recurring: bool = False
    subscription_expires_at: int | None = None
    booked_at: int | None = None
    notified_at: int | None = None
    attempts: int = 0
    told: bool = False
    thanked: bool = False
    admins_told: frozenset[int] = frozenset()
    unmatched: bool | None = False
    admins_credited: frozenset[int] = frozenset()
    admins_corrected: frozenset[int] = frozenset()

    @property
    def key(self) -> str:
        """``kind:charge id``: one entry per money event, however often Telegram sends it."""
        return f"{self.kind}:{self.charge_id}"


class JournalOutdated(StorageError):
    """Newer code has migrated the journal this process opened: it can journal nothing more.

    A process of the older code still running then (a rolling upgrade) must stop: what it would
    write follows rules the schema has outgrown, and a payment it cannot journal must not be
    acknowledged (see ``bot.payments.PaymentDesk.record``).
    """


class Journal:
    """Async access to the journal file; ``Journal.open`` it, ``close`` it at the end."""

    def __init__(self, path: Path, connection: Connection) -> None:
        self._path = path
        self._connection = connection
        self._outdated = False  # newer code migrated the journal: said once (``_write``)

    def __repr__(self) -> str:
        return f"Journal({str(self._path)!r})"

    @classmethod
    async def open(cls, path: Path, *, busy_timeout: float = 5.0) -> Journal:
        """Open (or create) the journal at ``path``; raise ``StorageError`` if it is unusable.

        ``JournalOutdated`` for one newer code has migrated (an older version started during a
        rolling upgrade), not the list mismatch ``migrations.apply`` reads as a damaged file.
        """

        def setup(db: Database) -> None:
            db.enable_wal()
            db.execute("PRAGMA synchronous = FULL")  # an entry is on disk when record returns
            version = migrations.newer_than_code(db, JOURNAL_MIGRATIONS)
            if version is not None:
                raise _outdated(version)
            migrations.apply(db, JOURNAL_MIGRATIONS, JOURNAL_MIGRATION_SET)

        connection = await Connection.open(
            path, setup, busy_timeout=busy_timeout, name="payment journal"
        )
        return cls(path, connection)

    @property
    def write_failure(self) -> WriteFailure | None:
        """Why the latest write failed, while the file takes none (``models.database``)."""
        return self._connection.write_failure

    async def probe_lock(self, wait: float) -> bool:
        """Whether writes work as far as taking the lock tells (``Connection.probe_lock``)."""
        return await self._connection.probe_lock(wait)

    async def close(self) -> None:
        """Close the connection and stop the worker thread (calls already made finish first)."""
        await self._connection.close()

    async def record(self, entries: Sequence[JournalEntry]) -> int:
        """Write entries durably (known keys are left as they are); how many were new."""
        return await self._write(lambda db: _record(db, entries))

    async def get(self, key: str) -> JournalEntry | None:
        """The entry with this key, or None."""
        return await self._connection.read(lambda db: _get(db, key))

    async def pending(self) -> list[JournalEntry]:
        """Entries whose user has not been told yet (booked or not), in arrival order."""
        return await self._connection.read(_pending)

    async def mark_booked(self, key: str, at: int, *, unmatched: bool = False) -> None:
        """The ledger has the entry's money event (``unmatched``: a refund that found no payment).

        The first booking's say counts: booked again, the entry keeps when and how it was booked.
        """
        await self._write(
            lambda db: db.execute(
                "UPDATE payment_journal SET booked_at = COALESCE(booked_at, ?),"
                " unmatched = CASE WHEN booked_at IS NULL THEN ? ELSE unmatched END"
                " WHERE key = ?",
                [at, int(unmatched), key],
            )
        )

    async def mark_failed(self, key: str) -> None:
        """Booking the entry failed once more."""
        await self._update(key, "attempts = attempts + ?", 1)

    async def mark_told(self, key: str, owner: str | None = None) -> bool:
        """The user was told the credit is delayed; False if ``owner`` no longer holds the claim."""
        return await self._update(key, "told = ?", 1, owner)

    async def mark_thanked(self, key: str, owner: str | None = None) -> bool:
        """The user was thanked (admins may still be owed the payment's notice).

        False, and nothing written, if ``owner`` (when given) no longer holds the entry's claim.
        """
        return await self._update(key, "thanked = ?", 1, owner)

    async def mark_admin_told(
        self, key: str, admin: int, owner: str | None = None, *, credited: bool = False
    ) -> bool:
        """The admin got the flagged payment's notice (or refused it for good).

        ``credited``: the notice said "credited as N ★" (kept in ``admins_credited`` too, in
        the same write). False, and nothing written, if ``owner`` (when given) no longer holds
        the entry's claim.
        """
        columns = ("admins_told", "admins_credited") if credited else ("admins_told",)
        return await self._write(lambda db: _add_admin(db, key, columns, admin, owner))

    async def mark_admin_corrected(self, key: str, admin: int, owner: str | None = None) -> bool:
        """The admin told "credited as N ★" got the notice that its credit was taken back.

        False, and nothing written, if ``owner`` (when given) no longer holds the entry's claim.
        """
        return await self._write(
            lambda db: _add_admin(db, key, ("admins_corrected",), admin, owner)
        )

    async def mark_notified(self, key: str, at: int, owner: str | None = None) -> bool:
        """The user was told the money event is done; the entry is finished.

        False, and nothing written, if ``owner`` (when given) no longer holds the entry's claim:
        a desk that lost its claim leaves the entry to the desk that holds it now.
        """
        return await self._update(key, "notified_at = COALESCE(notified_at, ?)", at, owner)

    async def claim(self, key: str, owner: str, *, now: float, lease: float) -> bool:
        """Hold the open entry ``key`` for ``owner`` until ``now + lease``; False if another does.

        The owner's own claim is renewed; another's counts until its lease ends. An entry that
        is finished or unknown holds nothing to claim: True (the caller then finds it so).
        """
        return await self._write(lambda db: _claim(db, key, owner, now, now + lease))

    async def release(self, key: str, owner: str) -> None:
        """Let go of ``owner``'s claim on ``key`` (another owner's claim stays)."""
        await self._write(
            lambda db: db.execute(
                "UPDATE payment_journal SET claimed_by = NULL, claimed_until = NULL"
                " WHERE key = ? AND claimed_by = ?",
                [key, owner],
            )
        )

    async def release_all(self) -> int:
        """Let go of every claim (for the one process on the journal, at start); how many."""

        def release_all(db: Database) -> int:
            cursor = db.execute(
                "UPDATE payment_journal SET claimed_by = NULL, claimed_until = NULL"
                " WHERE claimed_by IS NOT NULL"
            )
            return int(cursor.rowcount)

        return await self._write(release_all)

    async def purge(self, notified_before: int) -> int:
        """Delete finished entries told before ``notified_before``; how many went."""

        def purge(db: Database) -> int:
            cursor = db.execute(
                "DELETE FROM payment_journal WHERE notified_at IS NOT NULL AND notified_at < ?",
                [notified_before],
            )
            return int(cursor.rowcount)

        return await self._write(purge)

    async def _write(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn`` in one write transaction, unless newer code has migrated the journal.

        As the main store's ``write``: a process of older code still running beside newer code
        that has migrated the journal file since this one opened it (a rolling upgrade) writes
        nothing by rules the schema has outgrown: ``JournalOutdated``, and one
        ``journal.schema_newer`` line.
        """

        def guarded(db: Database) -> T:
            version = migrations.newer_than_code(db, JOURNAL_MIGRATIONS)
            if version is not None:
                if not self._outdated:
                    self._outdated = True
                    log.error(
                        "journal.schema_newer", applied=version, known=len(JOURNAL_MIGRATIONS)
                    )
                raise _outdated(version)
            return fn(db)

        return await self._connection.write(guarded)

    async def _update(
        self, key: str, assignment: str, value: int, owner: str | None = None
    ) -> bool:
        """Set one field of the entry; with ``owner``, only while that owner holds its claim."""
        sql = (
            f"UPDATE payment_journal SET {assignment}"  # noqa: S608 -- constants
            " WHERE key = ? AND (? IS NULL OR claimed_by = ?)"
        )
        return await self._write(
            lambda db: bool(db.execute(sql, [value, key, owner, owner]).rowcount)
        )


def _outdated(version: int) -> JournalOutdated:
    """The error for a journal newer code has migrated (``version``: its migrations applied)."""
    return JournalOutdated(
        f"newer code has migrated the payment journal ({version} migrations; this code knows"
        f" {len(JOURNAL_MIGRATIONS)}): stop this process"
    )


def _record(db: Database, entries: Sequence[JournalEntry]) -> int:
    new = 0
    for entry in entries:
        cursor = db.execute(
            f"INSERT INTO payment_journal ({_COLUMNS})"  # noqa: S608 -- a constant column list
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO NOTHING",
            [
                entry.key,
                entry.kind,
                entry.update_id,
                entry.user_id,
                entry.language,
                entry.payload,
                entry.currency,
                entry.total_amount,
                entry.charge_id,
                int(entry.is_recurring),
                entry.subscription_expires_at,
                entry.received_at,
                entry.booked_at,
                entry.notified_at,
                entry.attempts,
                int(entry.told),
                int(entry.thanked),
                ",".join(str(admin) for admin in sorted(entry.admins_told)),
                None if entry.unmatched is None else int(entry.unmatched),
                ",".join(str(admin) for admin in sorted(entry.admins_credited)),
                ",".join(str(admin) for admin in sorted(entry.admins_corrected)),
            ],
        )
        new += cursor.rowcount
    return new


def _add_admin(
    db: Database, key: str, columns: Sequence[str], admin: int, owner: str | None
) -> bool:
    """Add ``admin`` to the entry's admin lists ``columns`` (constants), if ``owner`` may."""
    assignments = ", ".join(
        f"{column} = CASE {column} WHEN '' THEN :admin ELSE {column} || ',' || :admin END"
        for column in columns
    )
    cursor = db.execute(
        f"UPDATE payment_journal SET {assignments}"  # noqa: S608 -- constant column names
        " WHERE key = :key AND (:owner IS NULL OR claimed_by = :owner)",
        {"admin": str(admin), "key": key, "owner": owner},
    )
    return bool(cursor.rowcount)


def _admins(value: object) -> frozenset[int]:
    """An admin list as the journal keeps it (ids joined by commas)."""
    return frozenset(int(admin) for admin in str(value).split(",") if admin)


def _claim(db: Database, key: str, owner: str, now: float, until: float) -> bool:
    row = db.execute(
        "SELECT claimed_by, claimed_until FROM payment_journal"
        " WHERE key = ? AND notified_at IS NULL",
        [key],
    ).fetchone()
    if row is None:
        return True
    holder, held_until = row
    if holder is not None and holder != owner and held_until is not None and held_until > now:
        return False
    db.execute(
        "UPDATE payment_journal SET claimed_by = ?, claimed_until = ? WHERE key = ?",
        [owner, until, key],
    )
    return True


def _get(db: Database, key: str) -> JournalEntry | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM payment_journal WHERE key = ?",  # noqa: S608 -- a constant column list
        [key],
    ).fetchone()
    return None if row is None else _entry(row)


def _pending(db: Database) -> list[JournalEntry]:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM payment_journal WHERE notified_at IS NULL ORDER BY seq"  # noqa: S608 -- a constant column list
    ).fetchall()
    return [_entry(row) for row in rows]


def _entry(row: Any) -> JournalEntry:  # noqa: ANN401 -- a sqlite3 row is untyped
    kind: EntryKind = "refund" if row[1] == "refund" else "payment"
    return JournalEntry(
        kind=kind,
        update_id=None if row[2] is None else int(row[2]),
        user_id=int(row[3]),
        language=None if row[4] is None else str(row[4]),
        payload=str(row[5]),
        currency=str(row[6]),
        total_amount=int(row[7]),
        charge_id=str(row[8]),
        is_recurring=bool(row[9]),
        subscription_expires_at=None if row[10] is None else int(row[10]),
        received_at=int(row[11]),
        booked_at=None if row[12] is None else int(row[12]),
        notified_at=None if row[13] is None else int(row[13]),
        attempts=int(row[14]),
        told=bool(row[15]),
        thanked=bool(row[16]),
        admins_told=_admins(row[17]),
        unmatched=None if row[18] is None else bool(row[18]),
        admins_credited=_admins(row[19]),
        admins_corrected=_admins(row[20]),
    )
