"""An answer's turns that SQLite itself refuses never take its charge with them (review21f).

``Writer`` rolled back to its savepoint only on ``StorageError``; SQLite's own errors
reach it raw (they become ``StorageError`` at the connection, above the whole transaction),
so a turn the file had no room for undid the charge it was written with: the answer delivered,
the hold left open, and the books a charge short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import MasterKey, StorageError, Store
from services.credit import Credit
from services.prices import Prices
from tests.books import inconsistent_users

if TYPE_CHECKING:
    from pathlib import Path

USER = 9611
LONG = "".join(f"{i:07d}" for i in range(60_000))  # far more pages than the file may grow by


async def test_turns_the_file_has_no_room_for_never_undo_their_charge(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        credit = Credit(store, Prices.parse("*=20/60"), 1000)
        await store.ensure_user(USER, "en")
        kept = await store.active_conversation(USER)
        hold = await credit.hold(USER, "full-1", "veil-test", 10, 50)
        # The file may grow a few pages (the charge's rows), not by the turns' many.
        await store._connection.call(
            lambda db: db.execute(
                "PRAGMA max_page_count = " + str(db.execute("PRAGMA page_count").fetchone()[0] + 8)
            )
        )
        turns = store.turns_writer(USER, kept, [("user", "q"), ("assistant", LONG)])
        charge = await credit.settle(hold, 10, 5, receipt_valid=True, also=turns)
        assert (charge.outcome, charge.completion_tokens) == ("settled", 5)
        balance_after = await credit.balance(USER)
        assert isinstance(turns.error, StorageError)
        assert turns.stored is None
        assert await store.history(USER, kept) == []
        usage = await store.read(
            lambda db: db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'usage'").fetchone()
        )
        assert usage == (1,)  # charged once
        again = await credit.settle(hold, 10, 5, receipt_valid=True)  # a settlement repeated
        assert (again.outcome, again.units) == (charge.outcome, charge.units)
        assert (await credit.balance(USER)) == balance_after
        assert await inconsistent_users(store) == []
    finally:
        await store.close()
