"""``audit`` and ``reconcile`` on a database with no users yet make no master key.

Both opened the store with ``MasterKey.load_or_create``: on a data folder whose database holds
no user yet (a bot set up, never written to; a database put back before its key), a check that
reads made the at-rest key as a side effect, a key file an operator never asked for, which the
next bot start then took for the key of that data. Neither unwraps a user's data key, so they
now read with the key file there, or, with none there, with a key kept in memory only: what
they print is the same, and the folder is left as it was.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import pytest

from models import MasterKey, Store
from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.harness import run_python

if TYPE_CHECKING:
    from pathlib import Path

BOT_SETTINGS = {"VEIL_BOT_TOKEN": TOKEN, "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32)}
USER = {"id": 777, "is_bot": False, "first_name": "Bo"}
RECONCILE_STOPPED = "run it again; what --fix booked stays booked, each payment once"


async def no_users_no_key(data: Path) -> None:
    """A migrated database with no user in it, and no master key file beside it."""
    store = await Store.open(data / "veil.db", MasterKey.generate())
    await store.close()


def key_files(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if "master" in p.name)


def test_an_audit_of_a_database_with_no_users_makes_no_master_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(no_users_no_key(data))

    audit = run_python("-m", "bot", "audit", env={**BOT_SETTINGS, "VEIL_DATA_DIR": str(data)})

    assert audit.returncode == 0, audit.stderr
    assert audit.stdout.splitlines()[0].startswith("charges: 0 (none);")
    assert key_files(data) == []


async def test_a_reconcile_of_a_database_with_no_users_makes_no_master_key(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    await no_users_no_key(data)
    async with FakeTelegram(token=TOKEN) as telegram:
        telegram.payments.record_payment(
            USER, "stxLOST", {"invoice_payload": "x", "total_amount": 50, "currency": "XTR"}
        )
        env = {**BOT_SETTINGS, "VEIL_DATA_DIR": str(data), "VEIL_TELEGRAM_API": telegram.url}
        differ = await asyncio.to_thread(run_python, "-m", "bot", "reconcile", env=env)
        assert key_files(data) == []
        fixed = await asyncio.to_thread(run_python, "-m", "bot", "reconcile", "--fix", env=env)
    assert differ.returncode == 1, differ.stderr
    assert "stxLOST" in differ.stdout
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.splitlines()[-1] == "ledger and Telegram agree on 1 transaction(s)"
    assert key_files(data) == []


# ``python -m bot ARGS…`` that signals itself as it opens the store in the command's event loop
# (the second ``sqlite3.connect``: the first looks for users' keys before the loop starts).
STOPPED_OPENING_THE_STORE = """
import os, runpy, sys
signum = int(sys.argv[1])
connects = []
def hook(event, args):
    if event == "sqlite3.connect":
        connects.append(event)
        if len(connects) == 2:
            os.kill(os.getpid(), signum)
sys.addaudithook(hook)
sys.argv = ["bot", *sys.argv[2:]]
runpy.run_module("bot", run_name="__main__")
"""


@pytest.mark.parametrize(
    ("args", "after"),
    [
        (["audit"], "it wrote nothing; run it again"),
        (["reconcile", "--fix"], RECONCILE_STOPPED),
    ],
)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_audit_or_reconcile_ends_in_one_line_and_leaves_no_key(
    tmp_path: Path, args: list[str], after: str, signum: signal.Signals
) -> None:
    # In place of tests/test_bot_main_stops.py's test that stopped them while they made the
    # master key, which they make no more: stopped as they open the store instead.
    data = tmp_path / "data"
    asyncio.run(no_users_no_key(data))
    env = {**BOT_SETTINGS, "VEIL_DATA_DIR": str(data), "VEIL_TELEGRAM_API": "http://127.0.0.1:9"}

    stopped = run_python("-c", STOPPED_OPENING_THE_STORE, str(int(signum)), *args, env=env)

    assert stopped.stderr.splitlines() == [f"veil: {args[0]} stopped by {signum.name}: {after}"]
    assert stopped.returncode == 128 + signum
    assert key_files(data) == []
