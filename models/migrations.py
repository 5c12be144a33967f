"""Schema changes, applied in order, each once, each in its own transaction.

A migration is a function that takes the ``Database`` and changes the schema; its name is the
function's name, recorded in ``_migrations`` when it commits. To change the schema, write a new
function and append it to ``MIGRATIONS``; never edit or reorder one that has shipped. ``PRAGMA
user_version`` mirrors the number applied, for tools that only look there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlite_utils import Database

from models.records import StorageError

__all__ = ["MIGRATIONS", "Database", "Migration", "applied", "apply", "schema_version"]

Migration = Callable[[Database], None]


def m0001_history(db: Database) -> None:
    """Users with their wrapped data key, conversations, and sealed turns."""
    db.execute(
        """
        CREATE TABLE users (
            user_id INTEGER PRIMARY KEY,
            language TEXT,
            model TEXT,
            cache_salt TEXT NOT NULL,
            data_key BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            active_conversation INTEGER REFERENCES conversations(id) ON DELETE SET NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
            created_at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX conversations_user_id ON conversations(user_id)")
    db.execute(
        """
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            body BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (conversation_id, seq)
        )
        """
    )
    db.execute("CREATE INDEX turns_user_id ON turns(user_id)")


MIGRATIONS: list[Migration] = [m0001_history]


def _ensure_table(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        "name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )


def applied(db: Database) -> list[str]:
    """Return the names of the migrations applied to ``db``, oldest first."""
    if "_migrations" not in db.table_names():
        return []
    rows = db.execute("SELECT name FROM _migrations ORDER BY rowid").fetchall()
    return [str(name) for (name,) in rows]


def schema_version(db: Database) -> int:
    """Return how many migrations ``db`` has had applied."""
    return len(applied(db))


def apply(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply the pending ``migrations`` in order and return the names newly applied.

    Each runs in a transaction with the record of it, so a migration that raises leaves no
    trace and stays pending. A database whose applied migrations are not a prefix of
    ``migrations`` (written by newer code, or a list that was reordered) is refused with
    ``StorageError`` before anything changes.
    """
    names = [migration.__name__ for migration in migrations]
    if len(set(names)) != len(names):
        raise ValueError("migration names must be unique")
    _ensure_table(db)
    done = applied(db)
    if done != names[: len(done)]:
        raise StorageError(
            "the database's applied migrations do not match this code's list "
            f"({len(done)} applied); refusing to guess"
        )
    newly: list[str] = []
    for position, migration in enumerate(migrations[len(done) :], start=len(done) + 1):
        with db.atomic():
            migration(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                [migration.__name__, int(time.time())],
            )
            db.execute(f"PRAGMA user_version = {position:d}")
        newly.append(migration.__name__)
    return newly
