"""An answer's turns that SQLite itself refuses never take its charge with them (review21f).

``Writer`` rolled back to its savepoint only on ``StorageError``; SQLite's own errors
reach it raw (they become ``StorageError`` at the connection, above the whole transaction),
so a turn the file had no room for undid the charge it was written with: the answer delivered,
the hold left open, and the books a charge short.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from models import MasterKey, StorageError, Store
from services.credit import Credit
from services.prices import Prices
from tests.books import inconsistent_users
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import run_python, wait_until

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


# The charge's transaction fails at its COMMIT (the WAL cannot grow: a file size limit, a full
# disk), after its turns were written in it: they are rolled back with it, not the charge.
_COMMIT_FAILS = """
import asyncio, json, resource, sys
from pathlib import Path
from models import MasterKey, Store
from services.credit import Credit
from services.errors import LedgerUnavailable
from services.prices import Prices

async def main() -> None:
    store = await Store.open(Path(sys.argv[1]), MasterKey.generate())
    credit = Credit(store, Prices.parse("*=20/60"), 1000)
    await store.ensure_user(9612, "en")
    kept = await store.active_conversation(9612)
    hold = await credit.hold(9612, "commit-1", "veil-test", 10, 50)
    wal = Path(sys.argv[1] + "-wal").stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # The WAL may grow by the charge's few pages, not by the answer's many.
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal + 12 * 4120, hard))
    turns = store.turns_writer(9612, kept, [("user", "q"), ("assistant", "x" * 200_000)])
    try:
        await credit.settle(hold, 10, 5, receipt_valid=True, also=turns)
    except LedgerUnavailable:
        charged = False
    else:
        charged = True
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    history = await store.history(9612, kept)
    print(json.dumps({
        "charged": charged,
        "said_stored": turns.stored is not None,
        "history": [turn.text for turn in history],
        "usage": await store.read(
            lambda db: db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'usage'").fetchone()[0]
        ),
    }))
    await store.close()

asyncio.run(main())
"""


def test_a_charge_whose_commit_failed_with_its_turns_is_written_alone(tmp_path: Path) -> None:
    # The charge was lost with them (the answer free, its hold released later), and the turns
    # taken as stored: never tried on their own, and the user not told that the answer they
    # had is missing from their conversation.
    done = run_python("-c", _COMMIT_FAILS, str(tmp_path / "veil.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"charged": True, "said_stored": False, "history": [], "usage": 1}


PRIVATE = 9613
HERONS = " ".join(
    f"heron{i}" + "e" * 100 for i in range(1_000)
)  # many more pages than the file may grow


def _answer(request: dict[str, Any]) -> str:
    return HERONS if request["messages"][-1]["content"] == "herons?" else "Hello."


async def test_an_answer_its_conversation_had_no_room_for_is_charged_once_and_the_user_told(
    tmp_path: Path,
) -> None:
    server = FakeVLLM(answer=_answer, token_delay=0.001)
    async with running_stack(tmp_path, model_server=server) as stack:
        stack.telegram.send_text(PRIVATE, "hello")
        await stack.stored_turns(PRIVATE, 2)
        store = stack.veil.store
        stack.telegram.send_text(PRIVATE, "herons?")
        await wait_until(lambda: len(server.requests) == 2)  # held: the file may grow no more
        await store._connection.call(
            lambda db: db.execute(
                "PRAGMA max_page_count = " + str(db.execute("PRAGMA page_count").fetchone()[0] + 4)
            )
        )
        await wait_until(
            lambda: any(
                m.get("text", "").startswith("Your history could not be read or saved")
                for m in stack.telegram.sent_messages(PRIVATE)
            )
        )
        conversation = await store.active_conversation(PRIVATE)
        texts = [turn.text for turn in await store.history(PRIVATE, conversation)]
        outcomes = await store.read(
            lambda db: db.execute("SELECT outcome FROM holds ORDER BY created_at").fetchall()
        )
        assert await inconsistent_users(store) == []
    assert texts == ["hello", "Hello."]  # the second exchange not stored
    assert outcomes == [("settled",), ("settled",)]  # and charged all the same, once
