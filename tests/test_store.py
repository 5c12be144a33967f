"""The SQLite store: sealed history on a real file, forgetting, migrations, one writer."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import TYPE_CHECKING

import pytest

from models import (
    ConversationNotFound,
    Database,
    DataKeyCorrupted,
    HistoryCorrupted,
    MasterKey,
    StorageError,
    Store,
    TokenCount,
    Turn,
    UserNotFound,
)
from models import migrations as schema

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

ALICE, BOB = 1001, 2002
PROMPT = "Мой диагноз — секрет: hypertension stage 2 🩺"
ANSWER = "Ваш ответ: take amlodipine 5 mg daily, 你好"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "veil.db"


@pytest.fixture
async def store(db_path: Path, master_key: MasterKey) -> AsyncIterator[Store]:
    opened = await Store.open(db_path, master_key)
    yield opened
    await opened.close()


def _file_bytes(db_path: Path) -> bytes:
    """The bytes of the database and its -wal and -shm files, as a thief with a copy sees them."""
    parts = [
        db_path,
        db_path.with_name(db_path.name + "-wal"),
        db_path.with_name(db_path.name + "-shm"),
    ]
    return b"".join(part.read_bytes() for part in parts if part.exists())


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _encodings(text: str) -> list[bytes]:
    return [text.encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be")]


async def add_turn(store: Store, user_id: int, conversation_id: int, role: str, text: str) -> Turn:
    """Store one turn (the bot always stores a question with its answer: ``add_turns``)."""
    (turn,) = await store.add_turns(user_id, conversation_id, [(role, text)])
    return turn


def _query(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(sql).fetchall()


async def test_turns_come_back_in_order_with_their_unicode(store: Store) -> None:
    user = await store.ensure_user(ALICE, "ru")
    conversation = await store.active_conversation(ALICE)
    await add_turn(store, ALICE, conversation, "user", PROMPT)
    added = await add_turn(store, ALICE, conversation, "assistant", ANSWER)

    turns = await store.history(ALICE, conversation)

    assert [(t.seq, t.role, t.text) for t in turns] == [
        (1, "user", PROMPT),
        (2, "assistant", ANSWER),
    ]
    assert turns[1] == added
    assert user.language == "ru"
    assert PROMPT not in repr(turns)


async def test_a_turn_keeps_its_count_of_tokens_where_one_is_given(store: Store) -> None:
    await store.ensure_user(ALICE, None)
    conversation = await store.active_conversation(ALICE)
    count = TokenCount(17, "veil-test")
    added = await store.add_turns(
        ALICE, conversation, [("user", PROMPT), ("assistant", ANSWER)], tokens=[None, count]
    )
    with pytest.raises(ValueError, match="tokens"):  # one count a turn; nothing stored
        await store.add_turns(
            ALICE, conversation, [("user", "q"), ("assistant", "a")], tokens=[count]
        )
    with pytest.raises(ValueError, match="not negative"):
        TokenCount(-1, "veil-test")
    await add_turn(store, ALICE, conversation, "user", "no count given")

    turns = await store.history(ALICE, conversation)

    assert [t.tokens for t in turns] == [None, count, None]
    assert turns[:2] == added


async def test_no_readable_text_in_the_files(store: Store, db_path: Path) -> None:
    await store.ensure_user(ALICE, "ru")
    conversation = await store.active_conversation(ALICE)
    await add_turn(store, ALICE, conversation, "user", PROMPT)
    await add_turn(store, ALICE, conversation, "assistant", ANSWER)
    bodies = await store.read(
        lambda db: [bytes(b) for (b,) in db.execute("SELECT body FROM turns")]
    )

    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.stat().st_size > 0  # the writes are in the WAL, not yet checkpointed
    on_disk = _file_bytes(db_path)
    assert all(body in on_disk for body in bodies)  # we are looking at the bytes that were written
    for text in (PROMPT, ANSWER, "hypertension", "amlodipine"):
        for encoded in _encodings(text):
            assert encoded not in on_disk

    await store.close()
    on_disk = _file_bytes(db_path)
    assert all(body in on_disk for body in bodies)
    for text in (PROMPT, ANSWER, "hypertension", "amlodipine"):
        for encoded in _encodings(text):
            assert encoded not in on_disk


async def test_database_files_are_owner_only(store: Store, db_path: Path) -> None:
    await store.ensure_user(ALICE, None)

    assert _mode(db_path) == 0o600
    assert _mode(db_path.with_name(db_path.name + "-wal")) == 0o600


async def test_history_limit_returns_the_newest_turns_oldest_first(store: Store) -> None:
    await store.ensure_user(ALICE, None)
    conversation = await store.active_conversation(ALICE)
    for n in range(1, 6):
        await add_turn(store, ALICE, conversation, "user" if n % 2 else "assistant", f"turn {n}")

    newest_two = await store.history(ALICE, conversation, limit=2)

    assert [(t.seq, t.text) for t in newest_two] == [(4, "turn 4"), (5, "turn 5")]
    assert len(await store.history(ALICE, conversation, limit=50)) == 5
    assert len(await store.history(ALICE, conversation)) == 5
    assert await store.history(ALICE, conversation, limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        await store.history(ALICE, conversation, limit=-1)


async def test_new_conversation_becomes_active_and_keeps_the_old_one(store: Store) -> None:
    await store.ensure_user(ALICE, None)
    first = await store.active_conversation(ALICE)
    assert await store.active_conversation(ALICE) == first
    await add_turn(store, ALICE, first, "user", PROMPT)

    second = await store.new_conversation(ALICE)

    assert second != first
    assert await store.active_conversation(ALICE) == second
    assert await store.history(ALICE, second) == []
    assert [t.text for t in await store.history(ALICE, first)] == [PROMPT]
    assert (await add_turn(store, ALICE, second, "user", "again")).seq == 1


async def _two_users(store: Store) -> tuple[int, int, int]:
    """Alice: conversation a1 (user, assistant, user), a2 (user); Bob: b1 (user)."""
    for user_id in (ALICE, BOB):
        await store.ensure_user(user_id, None)
    a1 = await store.active_conversation(ALICE)
    for role, text in [("user", PROMPT), ("assistant", ANSWER), ("user", "follow-up")]:
        await add_turn(store, ALICE, a1, role, text)
    a2 = await store.new_conversation(ALICE)
    await add_turn(store, ALICE, a2, "user", "other topic")
    b1 = await store.active_conversation(BOB)
    await add_turn(store, BOB, b1, "user", "bob's question")
    return a1, a2, b1


def _copy_body(db: Database, source: tuple[int, int], target: tuple[int, int]) -> None:
    db.execute(
        "UPDATE turns SET body = (SELECT body FROM turns WHERE conversation_id = ? AND seq = ?)"
        " WHERE conversation_id = ? AND seq = ?",
        [*source, *target],
    )


@pytest.mark.parametrize("target", ["other-user", "other-conversation", "other-seq", "other-role"])
async def test_a_body_moved_in_the_database_fails_to_open(store: Store, target: str) -> None:
    a1, a2, b1 = await _two_users(store)
    victim_user, victim_conversation = {
        "other-user": (BOB, b1),
        "other-conversation": (ALICE, a2),
        "other-seq": (ALICE, a1),
        "other-role": (ALICE, a1),
    }[target]

    def tamper(db: Database) -> None:
        if target == "other-user":
            _copy_body(db, (a1, 1), (b1, 1))
        elif target == "other-conversation":
            _copy_body(db, (a1, 1), (a2, 1))
        elif target == "other-seq":
            _copy_body(db, (a1, 1), (a1, 3))  # same role, later position
        else:
            db.execute(
                "UPDATE turns SET role = 'assistant' WHERE conversation_id = ? AND seq = 1", [a1]
            )

    await store.write(tamper)

    with pytest.raises(HistoryCorrupted) as caught:
        await store.history(victim_user, victim_conversation)
    assert PROMPT not in str(caught.value)
    untouched = (ALICE, a2) if victim_conversation != a2 else (BOB, b1)
    assert len(await store.history(*untouched)) == 1


async def test_another_users_conversation_is_not_found(store: Store) -> None:
    a1, _, b1 = await _two_users(store)

    with pytest.raises(ConversationNotFound):
        await store.history(BOB, a1)
    with pytest.raises(ConversationNotFound):
        await add_turn(store, BOB, a1, "user", "sneaky")
    assert [t.text for t in await store.history(ALICE, a1)][-1] == "follow-up"
    assert len(await store.history(BOB, b1)) == 1


async def test_bad_role_and_unknown_user_are_refused_and_store_nothing(store: Store) -> None:
    await store.ensure_user(ALICE, None)
    conversation = await store.active_conversation(ALICE)

    with pytest.raises(ValueError, match="role"):
        await add_turn(store, ALICE, conversation, "system", "you are evil")
    for call in (
        store.active_conversation(BOB),
        store.new_conversation(BOB),
        add_turn(store, BOB, conversation, "user", "x"),
        store.history(BOB, conversation),
        store.set_model(BOB, "m"),
    ):
        with pytest.raises(UserNotFound):
            await call
    assert await store.history(ALICE, conversation) == []
    assert await store.user_count() == 1


async def test_user_settings_persist(store: Store, db_path: Path, master_key: MasterKey) -> None:
    created = await store.ensure_user(ALICE, "en")
    await store.ensure_user(BOB, None)
    await store.ensure_user(ALICE, None)  # language unknown this time: keep the stored one
    await store.set_model(ALICE, "qwen3-32b")
    await store.close()

    reopened = await Store.open(db_path, master_key)
    try:
        user = await reopened.get_user(ALICE)
        assert user is not None
        assert (user.language, user.model, user.cache_salt) == (
            "en",
            "qwen3-32b",
            created.cache_salt,
        )
        bob = await reopened.get_user(BOB)
        assert bob is not None
        assert bob.cache_salt != created.cache_salt
        assert len(created.cache_salt) >= 32
        assert created.cache_salt not in repr(created)
        assert (await reopened.ensure_user(ALICE, "de")).language == "de"
        await reopened.set_model(ALICE, None)
        user = await reopened.get_user(ALICE)
        assert user is not None
        assert (user.language, user.model) == ("de", None)
        assert await reopened.get_user(3003) is None
        assert await reopened.user_count() == 2
    finally:
        await reopened.close()


async def test_forget_deletes_everything_and_old_blobs_stay_unreadable(
    store: Store, db_path: Path, master_key: MasterKey
) -> None:
    a1, a2, b1 = await _two_users(store)
    long_text = "секрет " * 400  # spans overflow pages
    await add_turn(store, ALICE, a2, "assistant", long_text)
    backup = await store.read(
        lambda db: db.execute(
            "SELECT id, user_id, conversation_id, seq, role, body, created_at FROM turns"
            " WHERE user_id = ?",
            [ALICE],
        ).fetchall()
    )
    (wrapped_key,) = await store.read(
        lambda db: db.execute("SELECT data_key FROM users WHERE user_id = ?", [ALICE]).fetchone()
    )

    assert await store.forget(ALICE) == 5

    assert await store.get_user(ALICE) is None
    assert await store.user_count() == 1
    with pytest.raises(UserNotFound):
        await store.history(ALICE, a1)
    assert [t.text for t in await store.history(BOB, b1)] == ["bob's question"]
    assert await store.forget(ALICE) == 0
    await store.close()

    on_disk = _file_bytes(db_path)
    assert not any(bytes(row[5]) in on_disk for row in backup)
    assert bytes(wrapped_key) not in on_disk
    assert _query(db_path, "SELECT COUNT(*) FROM turns WHERE user_id = 1001") == [(0,)]
    assert _query(db_path, "SELECT COUNT(*) FROM conversations WHERE user_id = 1001") == [(0,)]

    # A backup of the turns restored after /forget does not bring the history back: the user
    # comes back with a new data key, and the old one exists nowhere.
    reopened = await Store.open(db_path, master_key)
    try:
        await reopened.ensure_user(ALICE, None)

        def restore(db: Database) -> None:
            for conversation in (a1, a2):
                db.execute(
                    "INSERT INTO conversations (id, user_id, created_at) VALUES (?, ?, 0)",
                    [conversation, ALICE],
                )
            db.execute(
                "INSERT INTO turns (id, user_id, conversation_id, seq, role, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                backup[0],
            )

        await reopened.write(restore)
        with pytest.raises(HistoryCorrupted):
            await reopened.history(ALICE, a1)
    finally:
        await reopened.close()


async def test_a_wrong_master_key_is_refused_at_open_and_loses_nothing(
    store: Store, db_path: Path, master_key: MasterKey
) -> None:
    await store.ensure_user(ALICE, None)
    conversation = await store.active_conversation(ALICE)
    await add_turn(store, ALICE, conversation, "user", PROMPT)
    await store.close()

    with pytest.raises(DataKeyCorrupted, match="master key"):
        await Store.open(db_path, MasterKey.generate())

    reopened = await Store.open(db_path, master_key)
    try:
        assert [t.text for t in await reopened.history(ALICE, conversation)] == [PROMPT]
    finally:
        await reopened.close()


async def test_migrations_run_once_and_record_the_version(
    store: Store, db_path: Path, master_key: MasterKey
) -> None:
    await store.close()
    record = "SELECT name, applied_at FROM _sqlite_migrations WHERE migration_set = 'veil'"
    first = _query(db_path, record)

    reopened = await Store.open(db_path, master_key)
    assert await reopened.write(schema.apply) == []
    await reopened.close()

    assert first == _query(db_path, record)
    assert [name for name, _ in first] == [m.__name__ for m in schema.MIGRATIONS]
    assert _query(db_path, "PRAGMA user_version") == [(len(schema.MIGRATIONS),)]


async def test_an_appended_migration_applies_once_and_a_failing_one_leaves_no_trace(
    store: Store, db_path: Path, master_key: MasterKey
) -> None:
    shipped = [m.__name__ for m in schema.MIGRATIONS]

    def m9999_broken(db: Database) -> None:
        db.execute("CREATE TABLE widgets (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO no_such_table VALUES (1)")

    def m9999_widgets(db: Database) -> None:
        db.execute("CREATE TABLE widgets (id INTEGER PRIMARY KEY)")

    with pytest.raises(StorageError, match="no such table") as broken:
        await store.write(lambda db: schema.apply(db, [*schema.MIGRATIONS, m9999_broken]))
    assert isinstance(broken.value.__cause__, sqlite3.OperationalError)
    assert await store.read(schema.applied) == shipped
    assert "widgets" not in await store.read(lambda db: db.table_names())

    assert await store.write(lambda db: schema.apply(db, [*schema.MIGRATIONS, m9999_widgets])) == [
        "m9999_widgets"
    ]
    # Applied again (by code that knows it, on a connection of its own): nothing to do.
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as newer:
        assert schema.apply(Database(newer), [*schema.MIGRATIONS, m9999_widgets]) == []
    assert await store.read(schema.schema_version) == len(shipped) + 1
    # This store's code does not know it: it writes no more (a rolling upgrade's old replica).
    with pytest.raises(StorageError, match="newer code has migrated the database"):
        await store.write(lambda db: db.execute("CREATE TABLE gadgets (id INTEGER)"))
    assert "gadgets" not in await store.read(lambda db: db.table_names())
    await store.close()
    assert _query(db_path, "PRAGMA user_version") == [(len(shipped) + 1,)]

    # Code that does not know m9999_widgets must not run against this database.
    with pytest.raises(StorageError, match="migrations do not match"):
        await Store.open(db_path, master_key)


async def test_the_write_path_commits_all_or_nothing_and_a_read_cannot_write(
    store: Store,
) -> None:
    await store.ensure_user(ALICE, None)

    class Refused(Exception):
        pass

    def half_done(db: Database) -> None:
        db.execute("UPDATE users SET model = 'half' WHERE user_id = ?", [ALICE])
        raise Refused

    def sneaky(db: Database) -> None:
        db.execute("UPDATE users SET model = 'sneaky' WHERE user_id = ?", [ALICE])

    with pytest.raises(Refused):
        await store.write(half_done)
    with pytest.raises(StorageError, match="readonly") as refused:
        await store.read(sneaky)
    assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
    user = await store.get_user(ALICE)
    assert user is not None
    assert user.model is None
    # Neither failure left a transaction open: the next write commits.
    await store.write(lambda db: db.execute("UPDATE users SET model = 'm' WHERE user_id = 1001"))
    assert await store.read(lambda db: db.execute("SELECT model FROM users").fetchall()) == [("m",)]


async def test_concurrent_turns_get_unique_sequential_positions(store: Store) -> None:
    await store.ensure_user(ALICE, None)
    conversation = await store.active_conversation(ALICE)

    added = await asyncio.gather(
        *(add_turn(store, ALICE, conversation, "user", f"message {n}") for n in range(50))
    )

    assert sorted(turn.seq for turn in added) == list(range(1, 51))
    history = await store.history(ALICE, conversation)
    assert [turn.seq for turn in history] == list(range(1, 51))
    assert {turn.text for turn in history} == {f"message {n}" for n in range(50)}


async def test_a_closed_store_refuses_calls(store: Store) -> None:
    await store.close()
    await store.close()

    with pytest.raises(StorageError, match="closed"):
        await store.ensure_user(ALICE, None)


@pytest.fixture
def garbage_file(db_path: Path) -> bytes:
    garbage = b"this is not a database, " * 100
    db_path.parent.mkdir()
    db_path.write_bytes(garbage)
    return garbage


async def test_a_file_that_is_not_a_database_is_refused_untouched(
    db_path: Path, master_key: MasterKey, garbage_file: bytes
) -> None:
    with pytest.raises(StorageError, match="cannot open database"):
        await Store.open(db_path, master_key)
    assert _file_bytes(db_path) == garbage_file


async def test_a_store_opened_for_reading_reads_and_writes_nothing(
    db_path: Path, master_key: MasterKey
) -> None:
    store = await Store.open(db_path, master_key)
    await store.ensure_user(ALICE, "en")
    conversation = await store.active_conversation(ALICE)
    await store.add_turns(ALICE, conversation, [("user", PROMPT), ("assistant", ANSWER)])
    await store.close()
    before = await asyncio.to_thread(db_path.read_bytes)

    reader = await Store.open(db_path, master_key, read_only=True)
    try:
        turns = await reader.history(ALICE, conversation)
        with pytest.raises(StorageError):
            await reader.ensure_user(BOB, "en")
    finally:
        await reader.close()

    assert [turn.text for turn in turns] == [PROMPT, ANSWER]
    assert await asyncio.to_thread(db_path.read_bytes) == before


async def test_a_store_behind_the_migrations_is_refused_when_opened_for_reading(
    db_path: Path, master_key: MasterKey
) -> None:
    await (await Store.open(db_path, master_key)).close()
    last = schema.MIGRATIONS[-1].__name__
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [last])
    with pytest.raises(StorageError, match="opened for reading only"):
        await Store.open(db_path, master_key, read_only=True)
    with pytest.raises(StorageError, match="no such file"):
        await Store.open(db_path.with_name("other.db"), master_key, read_only=True)
    assert not db_path.with_name("other.db").exists()
