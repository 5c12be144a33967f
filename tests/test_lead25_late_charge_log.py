"""A late charge is logged once, though its write ran twice (the lead, session 25).

A hold another replica's sweep recovered under its answer is charged when the answer settles
(``billing.charged_after_recovery``, clock24). The line was written inside the charge's
transaction; when that transaction failed with the answer's turns in it (its COMMIT could not
grow the WAL), the charge was written again alone and the line came twice for one charge.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.harness import run_python

if TYPE_CHECKING:
    from pathlib import Path

_LATE_COMMIT_FAILS = """
import asyncio, json, resource, sys, time
from pathlib import Path
from structlog.testing import capture_logs
from models import MasterKey, Store
from services.credit import Credit
from services.prices import Prices
from tests.books import grant

USER = 9621
LIFETIME = 600

async def main() -> None:
    store = await Store.open(Path(sys.argv[1]), MasterKey.generate())
    prices = Prices.parse("*=20/60")
    credit = Credit(store, prices, 0)
    ahead = Credit(store, prices, 0, clock=lambda: time.time() + LIFETIME + 60)
    await store.ensure_user(USER, "en")
    assert await grant(store, USER, 10_000, "grant", "test:late")
    kept = await store.active_conversation(USER)
    hold = await credit.hold(USER, "late-1", "veil-test", 10, 50)
    recovered = await ahead.recover(LIFETIME)
    wal = Path(sys.argv[1] + "-wal").stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # The WAL may grow by the charge's few pages, not by the answer's many.
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal + 12 * 4120, hard))
    turns = store.turns_writer(USER, kept, [("user", "q"), ("assistant", "x" * 200_000)])
    with capture_logs() as logs:
        charge = await credit.settle(hold, 10, 5, receipt_valid=True, also=turns)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    print(json.dumps({
        "recovered": recovered,
        "outcome": charge.outcome,
        "charged": charge.units,
        "history_failed": turns.stored is None,
        "late": [e for e in logs if e["event"] == "billing.charged_after_recovery"],
        "usage": await store.read(
            lambda db: db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'usage'").fetchone()[0]
        ),
    }))
    await store.close()

asyncio.run(main())
"""


def test_a_late_charge_written_again_alone_is_logged_once(tmp_path: Path) -> None:
    done = run_python("-c", _LATE_COMMIT_FAILS, str(tmp_path / "veil.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["recovered"] == 1
    assert result["outcome"] == "settled"
    assert result["history_failed"]  # the first transaction did fail with the turns in it
    assert result["usage"] == 1  # charged once
    assert result["charged"] > 0
    assert [(e["request_id"], e["charged"]) for e in result["late"]] == [
        ("late-1", result["charged"])
    ]
