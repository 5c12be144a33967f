"""Databases written by older code open, upgrade and keep every row and every figure.

Two generations are kept as SQL dumps in ``tests/fixtures/``: a ledger from before issue 10
(migrations m0001-m0003), and a database plus payment journal from just before issue 9 split
the money storage and moved the record of migrations to sqlite-utils' ``Migrations`` (every
money table filled, sealed history under a known master key, real signed receipts).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from structlog.testing import capture_logs

from models import MasterKey, StorageError, Store
from models import migrations as schema
from models.journal import JOURNAL_MIGRATION_SET, JOURNAL_MIGRATIONS, Journal, JournalEntry
from services.audit import Auditor
from services.credit import Credit
from services.errors import LedgerUnavailable
from services.journal import PaymentJournal
from services.prices import Prices
from services.shop import Pack, Shop
from services.ton.memory import ChainMemory
from tests.books import inconsistent_users
from tests.harness import REPO

if TYPE_CHECKING:
    from pathlib import Path

FIXTURES = REPO / "tests" / "fixtures"
DUMP = FIXTURES / "ledger_m0003.sql"
ALICE, BOB = 1001, 2002

# What tests/fixtures/veil_m0004.sql and journal_j0001.sql were made with.
FIXTURE_KEY = MasterKey(bytes(range(32)))
OPERATOR_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x11" * 32).public_key()
FIXTURE_PRICES = Prices.parse("big=100/300,*=20/60")
SHIPPED = ["m0001_history", "m0002_money", "m0003_estimated_charges", "m0004_usage_proofs"]


def _load(dump: Path, path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(dump.read_text(encoding="utf-8"))
    return path


def _old_database(tmp_path: Path) -> Path:
    return _load(DUMP, tmp_path / "veil.db")


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [tuple(row) for row in db.execute(sql).fetchall()]


def _figures(path: Path) -> tuple[list[tuple[object, ...]], ...]:
    return tuple(
        _query(path, query)
        for query in (
            "SELECT * FROM ledger ORDER BY id",
            "SELECT * FROM payments ORDER BY charge_id",
            (
                "SELECT request_id, outcome, prompt_used, completion_used, cost, charged"
                " FROM holds ORDER BY request_id"
            ),
        )
    )


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table but the record of migrations, in rowid order."""
    names = [
        str(name)
        for (name,) in _query(
            path,
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%migrations'",
        )
    ]
    return {name: _query(path, f'SELECT * FROM "{name}" ORDER BY rowid') for name in names}  # noqa: S608 -- names from sqlite_master


async def test_a_database_made_before_receipts_were_kept_upgrades_and_audits(
    tmp_path: Path,
) -> None:
    path = _old_database(tmp_path)
    before = _figures(path)

    store = await Store.open(path, MasterKey.generate())
    try:
        credit = Credit(store, Prices.parse("*=20/60"), 500)
        assert await inconsistent_users(store) == []
        report = await Auditor(store, []).run()
        # Its four old charges cannot be proven and are said to be from before proofs.
        assert (report.legacy, report.charges, report.problems) == (4, 0, [])
        assert (report.payments, report.stars_received) == (2, 100)
        # The upgraded ledger takes new requests; the hold the old bot left open is still open.
        assert await credit.recover(0) == 1
        hold = await credit.hold(ALICE, "9" * 32, "veil-test", 100, 100)
        await credit.settle(hold, 50, 50, receipt_valid=False)
        assert await inconsistent_users(store) == []
        applied = await store.read(schema.applied)
    finally:
        await store.close()

    assert applied == [migration.__name__ for migration in schema.MIGRATIONS]
    after = _figures(path)
    assert after[0][: len(before[0])] == before[0]  # every old ledger row, unchanged
    assert after[1] == before[1]
    old_holds = {row[0]: row for row in before[2]}
    for row in after[2]:
        if row[0] in old_holds and row[1] != "recovered":
            assert row == old_holds[row[0]]


async def _check_old_figures(store: Store, plan_until: tuple[object, ...]) -> None:
    """Every money figure is what the old code computed from the fixture's rows."""
    credit = Credit(store, FIXTURE_PRICES, 500)
    alice, bob_balance = await credit.balance(ALICE), await credit.balance(BOB)
    assert (alice.units, alice.held) == (54_993_560, 6440)
    assert (bob_balance.units, bob_balance.held) == (399_981_000, 0)
    assert [(e.kind, e.amount) for e in await credit.history(ALICE, limit=3)] == [
        ("free", 2520),
        ("usage", -2520),
        ("free", 12_200),
    ]
    assert await inconsistent_users(store) == []
    report = await Auditor(store, [OPERATOR_KEY.public_bytes_raw()]).run()
    assert (report.charges, report.by_outcome, report.legacy) == (
        4,
        {"settled": 2, "unverified": 1, "estimated": 1},
        0,
    )
    assert (report.prompt_tokens, report.completion_tokens) == (540, 562)
    assert (report.gross, report.charged) == (163_720, 19_000)
    assert (report.payments, report.stars_received) == (3, 400)
    assert report.problems == [
        "charge b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1 (user 2002): charged without a valid receipt"
    ]
    shop = Shop(store, Pack.parse_list("50:50000000,250:275000000"))
    assert (await shop.plan_until(BOB),) == plan_until
    odd = await shop.payment("charge-bob-odd")
    assert odd is not None
    assert (odd.flagged, odd.flag_reason, odd.refunded) == (True, "unknown_order", True)


async def test_a_database_made_before_the_money_split_opens_with_every_row_and_figure(
    tmp_path: Path,
) -> None:
    path = _load(FIXTURES / "veil_m0004.sql", tmp_path / "veil.db")
    before = _tables(path)
    legacy_times = {
        str(name): int(str(when))
        for name, when in _query(path, "SELECT name, applied_at FROM _migrations")
    }
    (plan_until,) = _query(
        path, "SELECT subscription_expires_at FROM payments WHERE charge_id = 'sub-bob-1'"
    )
    assert list(legacy_times) == SHIPPED

    store = await Store.open(path, FIXTURE_KEY)
    try:
        # The record of migrations moved to sqlite-utils' table, times kept, nothing re-run.
        applied = await store.read(schema.applied)
        assert applied[: len(SHIPPED)] == SHIPPED  # the shipped ones, then only newer ones
        assert applied == [migration.__name__ for migration in schema.MIGRATIONS]
        times = await store.read(lambda db: {name: schema.applied_at(db, name) for name in SHIPPED})
        assert times == legacy_times
        # Sealed history opens under the same master key, settings kept.
        history = {
            (user, conversation): [(t.seq, t.role, t.text) for t in turns]
            for user, conversation in ((ALICE, 1), (BOB, 2), (ALICE, 3))
            if (turns := await store.history(user, conversation))
        }
        assert history == {
            (ALICE, 1): [(1, "user", "question of 1001"), (2, "assistant", "answer to 1001")],
            (BOB, 2): [(1, "user", "question of 2002"), (2, "assistant", "answer to 2002")],
            (ALICE, 3): [(1, "user", "second topic, ünïcødé ✓")],
        }
        bob = await store.get_user(BOB)
        assert bob is not None
        assert (bob.language, bob.model) == ("ru", "big")
        assert await store.active_conversation(ALICE) == 3
        await _check_old_figures(store, plan_until)
        credit = Credit(store, FIXTURE_PRICES, 500)
        # And it takes new money: the hold a crash left open is released, a new one settles.
        assert await credit.recover(0) == 1
        hold = await credit.hold(ALICE, "c0" * 16, "veil-test", 100, 100)
        await credit.settle(hold, 40, 10, receipt_valid=False)
        assert await inconsistent_users(store) == []
    finally:
        await store.close()

    after = _tables(path)
    assert set(after) >= set(before)  # later migrations may add tables (and columns at the end)
    for table, rows in before.items():
        if table == "holds":
            continue
        kept = [row[: len(old)] for row, old in zip(after[table], rows, strict=False)]
        assert kept == rows, table  # old rows unchanged, new ones after
    old_holds = {row[0]: row for row in before["holds"]}
    new_holds = {row[0]: row for row in after["holds"]}
    changed = {request_id for request_id, row in old_holds.items() if new_holds[request_id] != row}
    assert changed == {"a3" * 16}  # only the hold the crash left open: now released
    assert new_holds["a3" * 16][11] == "recovered"
    assert _query(path, "PRAGMA user_version") == [(len(schema.MIGRATIONS),)]
    assert "_migrations" not in {name for (name,) in _query(path, "SELECT name FROM sqlite_master")}


async def test_a_payment_journal_made_before_the_money_split_keeps_its_open_entries(
    tmp_path: Path,
) -> None:
    path = _load(FIXTURES / "journal_j0001.sql", tmp_path / "journal.db")
    before = _tables(path)

    journal = await Journal.open(path)
    try:
        pending = await journal.pending()
        done = await journal.get("payment:charge-alice-1")
    finally:
        await journal.close()

    assert [(e.key, e.booked_at is not None, e.attempts, e.told) for e in pending] == [
        ("refund:charge-bob-odd", True, 0, False),
        ("payment:charge-bob-late", False, 1, True),
    ]
    assert pending[1].language == "ru"
    assert done is not None
    assert done.notified_at is not None
    assert (done.thanked, done.admins_told) == (False, frozenset())  # j0002's defaults
    after = _tables(path)
    assert set(after) == set(before)
    for table, rows in before.items():  # every row kept, later migrations' columns at the end
        assert [row[: len(old)] for row, old in zip(after[table], rows, strict=True)] == rows
    assert {row[-5:-3] for row in after["payment_journal"]} == {(None, None)}  # j0003: no claims
    # j0006: no admin was told "credited" nor corrected
    assert {row[-2:] for row in after["payment_journal"]} == {("", "")}
    # j0004: the refund booked already was booked by code that kept no mark (not known)
    assert {row[1]: row[-3] for row in after["payment_journal"]} == {
        "payment:charge-alice-1": 0,
        "refund:charge-bob-odd": None,
        "payment:charge-bob-late": 0,
    }
    with contextlib.closing(sqlite3.connect(path)) as db:
        record = db.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [JOURNAL_MIGRATION_SET]
        ).fetchall()
    assert record == [
        ("j0001_payment_journal",),
        ("j0002_admin_notices",),
        ("j0003_claims",),
        ("j0004_unmatched_refunds",),
        ("j0005_unknown_marks",),
        ("j0006_admin_corrections",),
    ]


def _first_j0004(db: schema.Database) -> None:
    """j0004 as it first shipped: a NOT NULL mark, every refund booked before it "matched"."""
    db.execute("ALTER TABLE payment_journal ADD COLUMN unmatched INTEGER NOT NULL DEFAULT 0")


_first_j0004.__name__ = "j0004_unmatched_refunds"


@pytest.mark.parametrize("upgraded", ["now", "by the first j0004"])
async def test_a_refund_older_code_booked_before_its_payment_is_still_taken_back(
    tmp_path: Path, upgraded: str
) -> None:
    # Code from before j0004 booked this refund (its payment not in the ledger yet: nothing to
    # take back) and marked nothing; its payment comes after the upgrade. The journal said no
    # refund was unmatched, so the payment's booking took nothing back: the user kept the
    # refunded credit. A journal the first j0004 upgraded (NOT NULL, the refund's mark 0) had
    # that still: the mended j0004 never ran on it.
    path = _load(FIXTURES / "journal_j0001.sql", tmp_path / "journal.db")
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # entries 4 to 9 purged since
        db.execute("UPDATE sqlite_sequence SET seq = 9 WHERE name = 'payment_journal'")
    if upgraded == "by the first j0004":
        first = schema.Database(path)
        schema.apply(first, [*JOURNAL_MIGRATIONS[:3], _first_j0004], JOURNAL_MIGRATION_SET)
        first.close()
    store = await Store.open(tmp_path / "veil.db", FIXTURE_KEY)
    journal = await Journal.open(path)
    try:
        shop = Shop(store, Pack.parse_list("50:50000000,250:275000000"))
        credit = Credit(store, FIXTURE_PRICES, 500)
        books = PaymentJournal(journal, shop, credit)
        paid = JournalEntry(
            kind="payment",
            user_id=BOB,
            payload="order-never-made",
            currency="XTR",
            total_amount=50,
            charge_id="charge-bob-odd",
            received_at=1795931100,
        )
        await journal.record([paid])
        booking = await books.book(paid)
        booked = await shop.payment("charge-bob-odd")
        balance = await credit.balance(BOB)
        assert await inconsistent_users(store) == []
        # The refund's entry, still open (not told), booked again: its payment told it already.
        refund = await journal.get("refund:charge-bob-odd")
        assert refund is not None
        again = await books.book(refund)
    finally:
        await journal.close()
        await store.close()
    assert booking.refunded
    assert not again.applies
    assert booked is not None
    assert booked.refunded
    assert balance.units == 0
    # Rebuilt or not, the journal keeps its index of open entries and its sequence.
    indexes = "SELECT name FROM sqlite_master WHERE tbl_name = 'payment_journal' ORDER BY name"
    assert _query(path, indexes) == [
        ("payment_journal",),
        ("payment_journal_open",),
        ("sqlite_autoindex_payment_journal_1",),
    ]
    assert _query(path, "SELECT seq FROM sqlite_sequence") == [(10,)]


async def test_an_old_database_from_code_that_knew_more_migrations_is_refused_untouched(
    tmp_path: Path,
) -> None:
    path = _load(FIXTURES / "veil_m0004.sql", tmp_path / "veil.db")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO _migrations VALUES ('m0005_from_the_future', 1800000000)")
    before = _query(path, "SELECT name, sql FROM sqlite_master ORDER BY name")

    with pytest.raises(StorageError, match="migrations do not match"):
        await Store.open(path, FIXTURE_KEY)

    assert _query(path, "SELECT name, sql FROM sqlite_master ORDER BY name") == before
    assert len(_query(path, "SELECT * FROM _migrations")) == len(SHIPPED) + 1


def test_applied_at_reads_the_time_sqlite_utils_writes() -> None:
    when = dt.datetime(2026, 7, 4, 12, 0, 0, 999_999, tzinfo=dt.UTC)
    db = schema.Database(memory=True)
    schema.apply(db, schema.MIGRATIONS[:1])
    db.execute(
        f"UPDATE {schema.RECORD_TABLE} SET applied_at = ? WHERE name = 'm0001_history'",  # noqa: S608 -- a constant table name
        [str(when)],
    )
    assert schema.applied_at(db, "m0001_history") == int(when.timestamp())
    assert schema.applied_at(db, "m0002_money") is None
    db.close()


async def test_a_running_bot_stops_writing_once_newer_code_migrated_its_database(
    tmp_path: Path,
) -> None:
    # A rolling upgrade: a replica of the older code kept running while the new version
    # migrated the database. It went on writing by its own rules (purging rows the new code
    # keeps for good, booking what the new code skips): now it writes nothing, and says why.
    path = tmp_path / "veil.db"
    store = await Store.open(path, FIXTURE_KEY)
    try:
        memory = ChainMemory(store, {"gram": 1})
        await memory.cursor("gram")  # the stream's first pass makes its cursor
        await memory.save_cursor("gram", 41, "aa" * 32, 1_750_000_000)
        # The new version's migration, applied by another process on the same file.
        with contextlib.closing(sqlite3.connect(path)) as newer:
            newer.execute("CREATE TABLE made_by_newer_code (id INTEGER)")
            newer.execute(f"PRAGMA user_version = {len(schema.MIGRATIONS) + 1:d}")
            newer.commit()
        with capture_logs() as logs:
            with pytest.raises(LedgerUnavailable):
                await memory.save_cursor("gram", 48, "bb" * 32, 1_750_000_009)
            with pytest.raises(LedgerUnavailable):
                await memory.purge_skipped(kept=0)
    finally:
        await store.close()
    assert _query(path, "SELECT lt FROM ton_cursors WHERE stream = 'gram'") == [(41,)]
    (said,) = [e for e in logs if e["event"] == "storage.schema_newer"]
    assert (said["applied"], said["known"], said["log_level"]) == (
        len(schema.MIGRATIONS) + 1,
        len(schema.MIGRATIONS),
        "error",
    )
