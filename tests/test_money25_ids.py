"""Conversation ids are never given out twice, also after /forget and across the upgrade (m0021).

``conversations.id`` was an INTEGER PRIMARY KEY without AUTOINCREMENT: SQLite gives the largest
id again once its row is deleted, so a /history button from before /forget opened whichever
conversation took its id since.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

import pytest
from sqlite_utils import Database

from models import MasterKey, Store
from models import migrations as schema
from models.errors import ConversationNotFound
from tests.test_conversations_migration import ALICE, BOB, FIXTURE_KEY, _load, _tables

if TYPE_CHECKING:
    from pathlib import Path


async def test_an_erased_users_conversation_ids_are_not_given_to_their_next_ones(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        await store.ensure_user(ALICE, "en")
        first = (await store.open_conversation(ALICE, "en")).conversation_id
        second = await store.new_conversation(ALICE)
        await store.forget(ALICE)
        # Back after /forget: a conversation, then /new; the /history button of ``second``
        # from before the erasure is pressed.
        await store.ensure_user(ALICE, "en")
        again = (await store.open_conversation(ALICE, "en")).conversation_id
        newer = await store.new_conversation(ALICE)
        assert {again, newer}.isdisjoint({first, second})
        assert again > second
        with pytest.raises(ConversationNotFound):
            await store.switch_conversation(ALICE, second)
        assert [c.conversation_id for c in await store.conversations(ALICE)] == [newer, again]
    finally:
        await store.close()


def _at_m0020(path: Path) -> Path:
    """The m0006 fixture (rows written by that release) brought to m0020, the release before."""
    _load(path)
    previous = schema.MIGRATIONS[: schema.MIGRATIONS.index(schema.m0021_ids_not_reused)]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        db = Database(conn)
        db.execute("PRAGMA foreign_keys = ON")
        schema.apply(db, previous)
        # A plan order approved twice under m0020 (one column kept the first approval).
        db.execute(
            "INSERT INTO orders (id, user_id, kind, pack_id, stars, units, status, created_at,"
            " expires_at, approved_at) VALUES ('ord1', ?, 'plan', NULL, 300, 400, 'pending',"
            " 1795940000, 1795943600, 1795940100)",
            [ALICE],
        )
        conn.commit()
    return path


async def test_the_upgrade_keeps_every_row_and_key_and_ids_are_not_reused_after(
    tmp_path: Path,
) -> None:
    path = _at_m0020(tmp_path / "veil.db")
    before = _tables(path)
    assert [row[0] for row in before["conversations"]] == [1, 2, 3]

    store = await Store.open(path, FIXTURE_KEY)
    try:
        applied = await store.read(schema.applied)
        after = _tables(path)
        fk_problems = await store.read(lambda db: db.execute("PRAGMA foreign_key_check").fetchall())
        alice = await store.conversations(ALICE)
        texts = [t.text for t in await store.history(ALICE, alice[-1].conversation_id)]
        # Bob holds the largest id (3) and erases everything; Alice starts a conversation.
        await store.forget(BOB)
        newest = await store.new_conversation(ALICE)
        cascaded = await store.read(
            lambda db: db.execute("SELECT COUNT(*) FROM turns WHERE user_id = ?", [BOB]).fetchone()
        )
    finally:
        await store.close()

    assert applied[-1] == schema.MIGRATIONS[-1].__name__
    assert "m0021_ids_not_reused" in applied
    for table, rows in before.items():
        if table == "orders":  # one column appended: the latest approval, the first's copy
            assert after[table] == [(*row, row[-1]) for row in rows]
            continue
        assert after[table] == rows, table
    assert after["id_marks"] == [("conversations", 3)]
    assert fk_problems == []
    assert [c.conversation_id for c in alice] == [2, 1]
    assert texts == ["What is HPKE?", "Hybrid public key encryption, RFC 9180."]
    assert tuple(cascaded) == (0,)  # the foreign keys still cascade
    assert newest == 4  # not Bob's 3, which his old buttons name
