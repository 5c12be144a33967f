"""A database from before conversations had topics and titles (m0006) upgrades keeping every row.

``tests/fixtures/veil_m0006.sql`` was written by the code just before m0007 (two users, three
conversations of sealed turns, a setting or two, a settled charge) under a known master key.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

from models import MasterKey, Store
from models import migrations as schema
from tests.harness import REPO

if TYPE_CHECKING:
    from pathlib import Path

DUMP = REPO / "tests" / "fixtures" / "veil_m0006.sql"
FIXTURE_KEY = MasterKey(bytes(range(32)))
ALICE, BOB = 1001, 2002
NEW_COLUMNS = {"conversations": 3}  # thread_id, title, updated_at, appended


def _load(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(DUMP.read_text(encoding="utf-8"))
    return path


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table but the record of migrations, in rowid order."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        names = [
            str(name)
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%migrations'"
            )
        ]
        return {
            name: [tuple(row) for row in db.execute(f'SELECT * FROM "{name}" ORDER BY rowid')]  # noqa: S608 -- names from sqlite_master
            for name in names
        }


def _disk(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("veil.db*")))


async def test_a_database_from_before_topics_upgrades_with_every_row(tmp_path: Path) -> None:
    path = _load(tmp_path / "veil.db")
    before = _tables(path)
    assert len(before["turns"]) == 6
    assert len(before["conversations"]) == 3

    store = await Store.open(path, FIXTURE_KEY)
    try:
        applied = await store.read(schema.applied)
        alice = await store.conversations(ALICE)
        alice_first = await store.history(ALICE, alice[-1].conversation_id)
        bob = await store.conversations(BOB)
        # The upgraded store takes titles and topics.
        await store.set_title(ALICE, alice[0].conversation_id, "Almaty trip")
        topic = await store.new_conversation(ALICE, thread_id=77)
        opened = await store.open_conversation(ALICE, None)
        in_topic = await store.open_conversation(ALICE, None, thread_id=77)
        user = await store.get_user(BOB)
    finally:
        await store.close()

    assert applied == [migration.__name__ for migration in schema.MIGRATIONS]
    assert "m0007_conversation_topics" in applied
    after = _tables(path)
    for table, rows in before.items():
        if table == "conversations":
            continue
        if table == "turns":  # every old column kept; no count of tokens nor its model (m0011)
            assert [row[:-2] for row in after[table][: len(rows)]] == rows
            assert {row[-2:] for row in after[table][: len(rows)]} == {(None, None)}
            continue
        assert after[table][: len(rows)] == rows, table
    old = {row[0]: row for row in before["conversations"]}
    for row in after["conversations"]:
        if row[0] in old:  # every old column kept; no topic, no title (but the one set)
            assert row[:3] == old[row[0]]
            assert row[3] is None
            assert (row[4] is None) == (row[0] != alice[0].conversation_id)
    # Newest first (by the last turn, then by id), the active one marked, none named yet.
    assert [(c.conversation_id, c.active, c.title, c.thread_id) for c in alice] == [
        (2, True, None, None),
        (1, False, None, None),
    ]
    assert all(c.updated_at >= c.created_at for c in alice)
    assert [t.text for t in alice_first] == [
        "What is HPKE?",
        "Hybrid public key encryption, RFC 9180.",
    ]
    assert [t.tokens for t in alice_first] == [None, None]  # counted by their bytes
    assert [(c.conversation_id, c.active) for c in bob] == [(3, True)]
    assert user is not None
    assert (user.language, user.inline_history) == ("kk", True)
    assert opened.conversation_id == 2  # a topic never takes over the chat's conversation
    assert opened.titled
    assert [t.text for t in opened.turns][-1] == "Day one: Medeu and Shymbulak."
    assert (in_topic.conversation_id, in_topic.turns, in_topic.fresh) == (topic, [], False)
    assert b"Almaty trip" not in _disk(tmp_path)
