"""A ledger written by the code before issue 10 opens, upgrades and keeps every figure."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from models import MasterKey, Store
from services.audit import Auditor
from services.billing import Billing, Prices
from tests.harness import REPO

if TYPE_CHECKING:
    from pathlib import Path

DUMP = REPO / "tests" / "fixtures" / "ledger_m0003.sql"
ALICE = 1001


def _old_database(tmp_path: Path) -> Path:
    path = tmp_path / "veil.db"
    with sqlite3.connect(path) as db:
        db.executescript(DUMP.read_text(encoding="utf-8"))
    return path


def _figures(path: Path) -> tuple[list[tuple[object, ...]], ...]:
    with sqlite3.connect(path) as db:
        return tuple(
            [tuple(row) for row in db.execute(query).fetchall()]
            for query in (
                "SELECT * FROM ledger ORDER BY id",
                "SELECT * FROM payments ORDER BY charge_id",
                (
                    "SELECT request_id, outcome, prompt_used, completion_used, cost, charged"
                    " FROM holds ORDER BY request_id"
                ),
            )
        )


async def test_a_database_made_before_receipts_were_kept_upgrades_and_audits(
    tmp_path: Path,
) -> None:
    path = _old_database(tmp_path)
    before = _figures(path)

    store = await Store.open(path, MasterKey.generate())
    try:
        billing = Billing(store, Prices.parse("*=20/60"), 500)
        assert await billing.check_invariant() == []
        report = await Auditor(store, []).run()
        # Its four old charges cannot be proven and are said to be from before proofs.
        assert (report.legacy, report.charges, report.problems) == (4, 0, [])
        assert (report.payments, report.stars_received) == (2, 100)
        # The upgraded ledger takes new requests; the hold the old bot left open is still open.
        assert await billing.recover(0) == 1
        hold = await billing.hold(ALICE, "9" * 32, "veil-test", 100, 100)
        await billing.settle(hold, 50, 50, receipt_valid=False)
        assert await billing.check_invariant() == []
        applied = await store.run(
            lambda db: [name for (name,) in db.execute("SELECT name FROM _migrations")]
        )
    finally:
        await store.close()

    assert "m0004_usage_proofs" in applied
    after = _figures(path)
    assert after[0][: len(before[0])] == before[0]  # every old ledger row, unchanged
    assert after[1] == before[1]
    old_holds = {row[0]: row for row in before[2]}
    for row in after[2]:
        if row[0] in old_holds and row[1] != "recovered":
            assert row == old_holds[row[0]]
