"""The storage layer's errors, and the one place SQLite's own become them.

Messages never hold message text or keys::

    StorageError                 the database or a key file cannot be used as it is
    ├── MasterKeyFileError       the master key file cannot be read or made, or is not one
    ├── HistoryCorrupted         a sealed turn does not open under its user, conversation,
    │                            position and role: tampered, moved, or its key is gone
    ├── DataKeyCorrupted         a user's wrapped data key does not open under the master key:
    │                            the wrong master key, or a row moved to another user
    ├── UserNotFound             no user row for that id (call ``Store.ensure_user`` first)
    └── ConversationNotFound     no such conversation for that user

``storage_errors`` is the translation point, as httpx's ``map_httpcore_exceptions`` is for
httpcore: every call that reaches SQLite runs inside it (``models.database``), so no layer
above ever sees ``sqlite3``'s exceptions. The original stays attached as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import resource
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "ConversationNotFound",
    "DataFolderError",
    "DataKeyCorrupted",
    "HistoryCorrupted",
    "MasterKeyFileError",
    "StorageError",
    "UserNotFound",
    "storage_errors",
]


class StorageError(Exception):
    """Root of the storage layer's errors."""


class MasterKeyFileError(StorageError):
    """The master key file cannot be read or made, or does not hold a master key (its path only)."""


class DataFolderError(StorageError):
    """The folder a database is in, or a file there, cannot be made or opened (its path only)."""


class HistoryCorrupted(StorageError):
    """A stored turn fails to authenticate where it stands, so its text cannot be trusted."""


class DataKeyCorrupted(StorageError):
    """A wrapped data key fails to open under the master key in use."""


class UserNotFound(StorageError):
    """The user has no row; ``Store.ensure_user`` creates one."""


class ConversationNotFound(StorageError):
    """The conversation does not exist or belongs to another user."""


@contextlib.contextmanager
def storage_errors(what: str, path: Path | None = None) -> Iterator[None]:
    """Turn an ``sqlite3.Error`` raised inside the block into ``StorageError`` naming ``what``.

    SQLite's message is kept (``UNIQUE constraint failed: …``, a trigger's ``the ledger is
    append-only``); it names tables and columns, never the data. So is the ``OverflowError``
    of a number too large for an SQLite integer (2**63 and up), which no row can hold either.
    An I/O error of the database at ``path`` names this process's file size limit where that
    can be its cause (``limit_met``).
    """
    try:
        yield
    except sqlite3.Error as exc:
        limit = limit_met(path) if io_error(exc) else None
        if limit is not None:  # SQLite's "disk I/O error" names no cause: the likely one
            message = f"{what}: {exc} (this process's file size limit, ulimit -f, is {limit} bytes)"
            raise StorageError(message) from exc
        raise StorageError(f"{what}: {exc}") from exc
    except OverflowError as exc:
        raise StorageError(f"{what}: a number too large for SQLite") from exc


def io_error(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error is an I/O error (``SQLITE_IOERR`` or one of its extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_IOERR


def file_size_limit() -> int | None:
    """This process's file size limit in bytes (``ulimit -f``); None where it has none.

    A write past it fails (EFBIG: Python ignores SIGXFSZ), which SQLite reports only as
    "disk I/O error".
    """
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if limit == resource.RLIM_INFINITY else limit


def limit_met(path: Path | None) -> int | None:
    """This process's file size limit where the database at ``path`` has met it, else None.

    Met: the database, or its -wal or -journal file, is at or past the limit (a write stops
    there), as the backup's own check compares (``models.backup``). A limit far above the
    files is no cause of their I/O error, and is not named.
    """
    limit = file_size_limit()
    if limit is None or path is None:
        return None
    return limit if database_size(path) >= limit else None


def database_size(path: Path) -> int:
    """The largest of the database at ``path`` and its -wal and -journal files, in bytes.

    A file that is not there, or cannot be looked at, counts as empty.
    """
    sizes = [0]
    for name in (path.name, path.name + "-wal", path.name + "-journal"):
        with contextlib.suppress(OSError):
            sizes.append(path.with_name(name).stat().st_size)
    return max(sizes)
