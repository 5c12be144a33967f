"""Two processes on one database: what one read and then wrote, the other's commit between.

The bot and a webhook replica (or a CLI such as ``reconcile --fix``) share the SQLite file. A
write that depends on a read made without the write lock went wrong when the other process
committed in between:

- ``ensure_user``: both found a new user missing, the second insert failed ("UNIQUE constraint
  failed: users.user_id") and that message went unanswered;
- ``open_conversation`` / ``active_conversation``: both found no active conversation and each
  started one, the later replacing the earlier, whose answer then sat in a conversation no
  longer the active one;
- ``topic_conversation``: the same for a topic, the earlier conversation moved out of it;
- ``atomic()`` (migrations, savepoint-less writers) began deferred: a read then a write failed
  at once, "database is locked", without the busy wait.

Each test runs the other process's call exactly there: a trace of the first store's own
statements (SQLite's, on its connection) runs it once the first has read and before it takes
the write lock, and waits for it to commit. The last tests guard the whole class: every
transaction the store's (and the payment journal's) connection writes in began ``BEGIN
IMMEDIATE``, and every call that reaches the connection other than by ``read`` (query only) or
``write`` (``BEGIN IMMEDIATE``) is among those traced, so a new one cannot escape the trace.

What the trace cannot tell: a call that reads outside any transaction and then writes on what
it read in a transaction of its own (the lone write's implicit ``BEGIN IMMEDIATE``) shows
locked; such a read must be made again under the lock (``atomic()``), as the tests above check
for each call that does so.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import sqlite3
import textwrap
from typing import TYPE_CHECKING, Any

from models import MasterKey, Store, migrations
from models.database import open_private_database
from models.journal import Journal, JournalEntry

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path

    from sqlite_utils import Database

USER = 7001
TOPIC = 42
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


class Between:
    """A trace of one connection's statements that runs ``rival`` once between a read and a write.

    Where the connection has read and is about to write without holding the write lock (a
    write statement outside a ``BEGIN IMMEDIATE`` transaction, or ``BEGIN IMMEDIATE`` itself,
    before it takes the lock), ``rival`` (another store's call) runs on the test's loop and is
    waited for, so its commit lands exactly between the two.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, rival: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        self._loop = loop
        self._rival = rival
        self._read = False
        self._locked = False
        self.ran = False
        self.errors: list[BaseException] = []

    def __call__(self, sql: str) -> None:
        """Follow one statement of the connection's (SQLite's trace, before it runs)."""
        words = sql.split()
        word = words[0].upper() if words else ""
        if word in {"COMMIT", "ROLLBACK", "END"}:
            self._locked = False
        elif word in {"SELECT", "WITH"}:
            self._read = True
        elif word == "BEGIN":
            immediate = len(words) > 1 and words[1].upper() == "IMMEDIATE"
            if immediate:
                self._run()
            self._locked = immediate
        elif word in WRITES:
            if not self._locked:
                self._run()
            self._locked = True  # a write holds the lock until its transaction ends

    def _run(self) -> None:
        if self.ran or not self._read:
            return
        self.ran = True
        try:
            asyncio.run_coroutine_threadsafe(self._rival(), self._loop).result(timeout=60)
        except BaseException as exc:  # noqa: BLE001 -- said by the test, not lost in SQLite
            self.errors.append(exc)


class _Traced:
    def __init__(self, store: Store, trace: Callable[[str], None]) -> None:
        self._store = store
        self._trace = trace

    async def __aenter__(self) -> None:
        await self._store.read(lambda db: db.conn.set_trace_callback(self._trace))

    async def __aexit__(self, *_: object) -> None:
        await self._store.read(lambda db: db.conn.set_trace_callback(None))


async def _two(tmp_path: Path) -> tuple[Store, Store]:
    key = MasterKey.generate()
    bot = await Store.open(tmp_path / "veil.db", key)
    replica = await Store.open(tmp_path / "veil.db", key)
    return bot, replica


async def test_a_new_user_seen_by_two_processes_at_once_is_added_once(tmp_path: Path) -> None:
    bot, replica = await _two(tmp_path)
    try:
        theirs = []

        async def rival() -> None:
            theirs.append(await replica.ensure_user(USER, "en"))

        between = Between(asyncio.get_running_loop(), rival)
        async with _Traced(bot, between):
            mine = await bot.ensure_user(USER, "en")
        assert between.ran, "the replica's call never ran between the read and the write"
        assert between.errors == []
        assert mine == theirs[0]  # one row, the replica's: no second insert
        # One data key: what the bot seals, the replica opens.
        conversation = await bot.active_conversation(USER)
        await bot.add_turns(USER, conversation, [("user", "ptarmigan?"), ("assistant", "yes")])
        turns = await replica.history(USER, conversation)
        assert [turn.text for turn in turns] == ["ptarmigan?", "yes"]
    finally:
        await replica.close()
        await bot.close()


async def test_two_processes_opening_a_new_users_chat_share_one_conversation(
    tmp_path: Path,
) -> None:
    bot, replica = await _two(tmp_path)
    try:
        await bot.ensure_user(USER, "en")
        theirs = []

        async def rival() -> None:
            theirs.append(await replica.open_conversation(USER, "en"))

        between = Between(asyncio.get_running_loop(), rival)
        async with _Traced(bot, between):
            mine = await bot.open_conversation(USER, "en")
        assert between.ran, "the replica's call never ran between the read and the write"
        assert between.errors == []
        assert mine.conversation_id == theirs[0].conversation_id
        # The answer the bot stores there is in the conversation the next message continues.
        await bot.add_turns(USER, mine.conversation_id, [("user", "q"), ("assistant", "a")])
        later = await replica.open_conversation(USER, "en")
        assert later.conversation_id == mine.conversation_id
        assert [turn.text for turn in later.turns] == ["q", "a"]
    finally:
        await replica.close()
        await bot.close()


async def test_two_processes_opening_a_new_topic_share_one_conversation(tmp_path: Path) -> None:
    bot, replica = await _two(tmp_path)
    try:
        await bot.ensure_user(USER, "en")
        theirs = []

        async def rival() -> None:
            theirs.append(await replica.topic_conversation(USER, "en", TOPIC))

        between = Between(asyncio.get_running_loop(), rival)
        async with _Traced(bot, between):
            mine = await bot.topic_conversation(USER, "en", TOPIC)
        assert between.ran, "the replica's call never ran between the read and the write"
        assert between.errors == []
        assert theirs[0] == (mine[0], True)  # the replica started it
        assert mine == (theirs[0][0], False)  # the bot found it, and started none of its own
        await bot.add_turns(USER, mine[0], [("user", "q"), ("assistant", "a")])
        later = await replica.open_conversation(USER, "en", thread_id=TOPIC)
        assert later.conversation_id == mine[0]
        assert [turn.text for turn in later.turns] == ["q", "a"]
    finally:
        await replica.close()
        await bot.close()


def m9999_count_users(db: Database) -> None:
    """A migration that reads and then writes (as m0021 read the highest conversation id)."""
    (count,) = db.execute("SELECT COUNT(*) FROM users").fetchone()
    db.execute("CREATE TABLE m9999_users (seen INTEGER)")
    db.execute("INSERT INTO m9999_users (seen) VALUES (?)", [count])


async def test_a_migration_beside_a_writing_process_waits_for_the_lock(tmp_path: Path) -> None:
    bot, replica = await _two(tmp_path)
    await bot.close()
    try:

        async def rival() -> None:
            await replica.ensure_user(USER, "en")

        loop = asyncio.get_running_loop()
        between = Between(loop, rival)

        def migrate() -> list[str]:
            db = open_private_database(tmp_path / "veil.db", 5.0, lambda _: None, "database")
            try:
                db.conn.set_trace_callback(between)
                return migrations.apply(db, [*migrations.MIGRATIONS, m9999_count_users])
            finally:
                db.close()

        applied = await asyncio.to_thread(migrate)
        assert between.ran, "the replica's call never ran between the read and the write"
        assert between.errors == []
        assert applied == ["m9999_count_users"]
        with sqlite3.connect(tmp_path / "veil.db") as conn:
            # Counted under the lock: the user the replica added before it is counted.
            assert conn.execute("SELECT seen FROM m9999_users").fetchall() == [(1,)]
    finally:
        await replica.close()


class _Statements:
    """Every statement a connection ran, in order (a trace)."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, sql: str) -> None:
        self.sql.append(sql)


def _unlocked_writes(statements: list[str]) -> list[str]:
    """The write statements run in a transaction that did not take the write lock first."""
    found = []
    begun: str | None = None
    for sql in statements:
        words = sql.split()
        word = words[0].upper() if words else ""
        if word == "BEGIN":
            begun = " ".join(words).upper()
        elif word in {"COMMIT", "ROLLBACK", "END"}:
            begun = None
        elif word in WRITES and begun != "BEGIN IMMEDIATE":
            found.append(f"{begun or 'no transaction'}: {' '.join(words[:4])}")
    return found


async def _every_write(store: Store) -> None:
    """Each of the store's calls that write, once (and the seam the money tables use)."""
    await store.ensure_user(USER, "en")
    await store.ensure_user(USER, "ru")  # the language changed
    await store.ensure_user(USER + 1, None)
    await store.set_model(USER, "m")
    await store.set_inline_history(USER, keep=True)
    await store.set_group_settings(-1, answers=True, reply_context=False)
    await store.move_group_settings(-1, -2)
    opened = await store.open_conversation(USER, "ru")
    await store.topic_conversation(USER, "ru", TOPIC)
    await store.open_conversation(USER + 1, None, thread_id=TOPIC)
    await store.active_conversation(USER + 1)  # none in the chat yet: started
    newer = await store.new_conversation(USER)
    await store.switch_conversation(USER, opened.conversation_id)
    await store.set_title(USER, newer, "title")
    await store.add_turns(USER, opened.conversation_id, [("user", "q"), ("assistant", "a")])
    turns = store.turns_writer(USER, newer, [("user", "q"), ("assistant", "a")])
    title = store.title_writer(USER, opened.conversation_id, "another")

    def charge(db: Database) -> None:  # as an answer's charge writes its turns and title
        turns(db)
        title(db)

    await store.write(charge)
    assert turns.error is None
    assert title.error is None
    await store.claim_undelivered(now=3, until=9, created_after=0)
    await store.release_undelivered()
    await store.forget(USER + 1)


async def test_every_write_transaction_takes_the_lock_first(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        statements = _Statements()
        async with _Traced(store, statements):
            await _every_write(store)
        assert any(sql.split()[0].upper() in WRITES for sql in statements.sql)
        assert _unlocked_writes(statements.sql) == []
    finally:
        await store.close()


def _traced_calls() -> set[str]:
    """The store's calls ``_every_write`` makes (its ``store.<call>(`` expressions)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(_every_write)))
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "store"
    }


def _calling_methods(cls: type) -> tuple[set[str], int]:
    """(public methods of ``cls`` using ``_connection.call``, its uses in the whole class)."""
    found = {
        name
        for name, method in vars(cls).items()
        if not name.startswith("_")
        and inspect.isfunction(method)
        and "_connection.call(" in inspect.getsource(method)
    }
    return found, inspect.getsource(cls).count("_connection.call(")


def test_every_call_outside_read_and_write_is_traced() -> None:
    store_calls, store_uses = _calling_methods(Store)
    # Each use sits in a public call of its own, and each such call is in the trace above.
    assert store_uses == len(store_calls)
    assert store_calls - _traced_calls() == set(), "trace these in _every_write"
    journal_calls, journal_uses = _calling_methods(Journal)
    assert (journal_calls, journal_uses) == (set(), 0), "the journal writes only by _write"


async def _every_journal_write(journal: Journal) -> None:
    """Each of the journal's calls that write, once."""
    entry = JournalEntry("payment", USER, "pack:s", "XTR", 50, "charge-1", received_at=1)
    await journal.record([entry])
    await journal.claim(entry.key, "bot", now=2, lease=30)
    await journal.mark_booked(entry.key, 3)
    await journal.mark_failed(entry.key)
    await journal.mark_told(entry.key, "bot")
    await journal.mark_thanked(entry.key, "bot")
    await journal.mark_admin_told(entry.key, 9, "bot", credited=True)
    await journal.mark_admin_corrected(entry.key, 9, "bot")
    await journal.mark_notified(entry.key, 4, "bot")
    await journal.release(entry.key, "bot")
    await journal.release_all()
    assert await journal.purge(5) == 1


async def test_every_journal_write_transaction_takes_the_lock_first(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    connection = journal._connection  # its statements, traced by SQLite
    try:
        statements = _Statements()
        await connection.read(lambda db: db.conn.set_trace_callback(statements))
        await _every_journal_write(journal)
        await connection.read(lambda db: db.conn.set_trace_callback(None))
        assert sum(sql.split()[0].upper() in WRITES for sql in statements.sql) >= 12
        assert _unlocked_writes(statements.sql) == []
    finally:
        await journal.close()
