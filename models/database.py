"""One SQLite connection on one worker thread: the write path, which owns every transaction.

Like datasette's ``execute_write_fn``, callers hand over a function of the ``Database``; it
runs on the connection's own thread (a single-thread executor), in submission order, so writes
never race and the event loop never blocks on disk. The transaction is this module's business,
never the caller's:

- ``write(fn)`` runs ``fn`` in one transaction that takes SQLite's write lock first
  (``BEGIN IMMEDIATE``), commits when ``fn`` returns and rolls back when it raises. A deferred
  transaction that reads and then writes fails at once when another process (``reconcile
  --fix``, a backup, a webhook replica) holds the lock or has committed since the read: SQLite
  does not wait for a lock it would have to upgrade to. Taking it first makes the write wait
  the busy timeout instead.
- ``read(fn)`` runs ``fn`` in a read-only transaction, so several reads see one snapshot; a
  write inside it fails.
- ``call(fn)`` runs ``fn`` outside any transaction, for what may not run inside one (a WAL
  checkpoint) or opens its own (migrations; a read that writes only when it finds nothing).

Every other transaction on a writable connection takes the lock first too: its ``Database``
(a ``LockingDatabase``) begins ``atomic()`` with ``BEGIN IMMEDIATE`` (nested, a savepoint of
the one open), and the connection's own implicit transaction around a lone write statement is
``BEGIN IMMEDIATE`` (``isolation_level``). No write transaction on it is deferred, whoever
opens it: a ``call`` that writes on what it read takes ``atomic()`` and reads again under it.

Every SQLite error becomes ``StorageError`` (``models.errors.storage_errors``); anything else
``fn`` raises (a service's ``InsufficientCredit``) rolls back and reaches the caller unchanged.

Whether the file takes writes (``Connection.write_failure``): reading tells nothing of it (a
full disk, a file or mount made read-only, a lock another process holds all leave reads
working, in WAL mode), so the connection keeps what its own writes met: the latest ``write`` or
``call`` that failed because the file would not take it (``_UNWRITABLE``: SQLite's code names
the disk, the file or a lock, not the statement), and when. The bot's ``/health`` reports it
(``bot.metrics``). A failure by a lock alone (``SQLITE_BUSY``, ``SQLITE_LOCKED``) is cleared by
a change committed since, or by ``probe_lock`` (the lock taken and let go at once), so a quiet
bot recovers when the other process lets go. Another failure is not cleared by a later success:
on a full disk a write that fits in the pages there succeeds between ones that grow the file
and fail; it stays, with its time, for the reader to judge how recent it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import structlog
from sqlite_utils import Database

from models.errors import (
    DataFolderError,
    StorageError,
    io_error,
    limit_met,
    storage_errors,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = [
    "DB_FILE_MODE",
    "Connection",
    "DataInUse",
    "Database",
    "LockingDatabase",
    "WriteFailure",
    "claim_database",
    "log_failure",
    "on_read_only_disk",
    "open_for_reading",
    "open_private_database",
    "unchanged_while_read",
]

T = TypeVar("T")

log = structlog.get_logger("veil.storage")

DB_FILE_MODE = 0o600
# SQLite's primary codes that say the file cannot be written now, whatever the statement:
# permission, locks, a read-only file or mount, I/O, damage, a full disk, no file, no large files.
_LOCKED = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_UNWRITABLE = _LOCKED | {
    sqlite3.SQLITE_PERM,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
    sqlite3.SQLITE_NOLFS,
    sqlite3.SQLITE_NOTADB,
}


@dataclasses.dataclass(frozen=True, slots=True)
class WriteFailure:
    """The latest failed write: SQLite's code name, whether a lock alone, when (monotonic)."""

    code: str  # SQLITE_FULL, SQLITE_BUSY, SQLITE_READONLY…
    locked: bool
    at: float


class LockingDatabase(Database):
    """sqlite-utils' ``Database``, whose transactions take SQLite's write lock first.

    Its ``atomic()`` began a deferred transaction (``BEGIN``), which failed at once ("database
    is locked", no busy wait) where it read and then wrote while another process committed in
    between: the bot and a webhook replica, ``reconcile --fix``, a migration beside a writer.
    Here the outermost ``atomic()`` begins ``BEGIN IMMEDIATE``, waiting the busy timeout for the
    lock, and what it reads under it is the latest; nested, it is a savepoint, as before.
    """

    @contextlib.contextmanager
    def atomic(self) -> Iterator[LockingDatabase]:
        """One transaction holding the write lock from its start (a savepoint inside one)."""
        inside = self.conn.in_transaction  # a local: mypy reads the later check as dead code
        if inside:
            with super().atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.rollback()  # a no-op where the failure ended the transaction already
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise


class Connection:
    """A database file's one connection and the thread it lives on; ``open`` it, then ``close``.

    ``name`` says which file it is in errors ("the database is closed", "journal error: …").
    """

    def __init__(
        self,
        name: str,
        executor: ThreadPoolExecutor,
        db: Database,
        *,
        read_only: bool = False,
        path: Path | None = None,
    ) -> None:
        self._name = name
        self._path = path  # the file, for what an I/O error may say of it (``limit_met``)
        self._executor = executor
        self._db = db
        self._closed = False
        self._read_only = read_only  # only ``read`` is taken
        # Set and cleared on the connection's thread, read on the loop's (one reference).
        self._write_failure: WriteFailure | None = None

    def __repr__(self) -> str:
        return f"Connection({self._name!r})"

    @classmethod
    async def open(
        cls,
        path: Path,
        setup: Callable[[Database], None],
        *,
        busy_timeout: float,
        name: str,
        read_only: bool = False,
    ) -> Connection:
        """Open (creating owner-only) the file at ``path`` on a new thread and run ``setup``.

        ``read_only``: open the file that is there for reading only (``open_read_only``);
        ``write`` and ``call`` then raise ``StorageError``.
        Raises ``StorageError`` if the file cannot be opened or ``setup`` fails in SQLite.
        """
        thread = "veil-" + name.replace(" ", "-")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread)
        loop = asyncio.get_running_loop()
        opener = open_read_only if read_only else open_private_database
        try:
            db = await loop.run_in_executor(executor, opener, path, busy_timeout, setup, name)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(name, executor, db, read_only=read_only, path=path)

    async def read(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn`` in a read-only transaction (one snapshot) and return its result."""
        return await self._submit(_reading, fn)

    async def write(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn`` in one write transaction (lock taken first) and return its result."""
        return await self._submit(_writing, fn)

    async def call(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn`` outside any transaction (``fn`` may open its own)."""
        return await self._submit(_calling, fn)

    @property
    def write_failure(self) -> WriteFailure | None:
        """The latest write the file would not take; None for none (or a lock's, gone since)."""
        return self._write_failure

    async def probe_lock(self, wait: float) -> bool:
        """Clear a lock's ``write_failure`` if the write lock can be had within ``wait`` seconds.

        The lock is taken (``BEGIN IMMEDIATE``) and let go at once: nothing is written. True
        when the failure is cleared (or there was none); a failure of another kind is left as
        it is: False. Nothing is logged: a lock still held is the failure already known.
        """
        failure = self._write_failure
        if failure is None:
            return True
        if not failure.locked or self._closed:
            return False

        def probe() -> bool:
            db = self._db
            if db.conn.in_transaction:  # a call's own, left open: not the moment to ask
                return False
            (waits,) = db.execute("PRAGMA busy_timeout").fetchone()
            db.execute(f"PRAGMA busy_timeout = {int(wait * 1000):d}")
            try:
                db.conn.execute("BEGIN IMMEDIATE")
                db.conn.execute("ROLLBACK")
            except sqlite3.Error:
                return False
            finally:
                db.execute(f"PRAGMA busy_timeout = {int(waits):d}")
            if self._write_failure == failure:  # no write failed meanwhile for another cause
                self._write_failure = None
            return True

        return await asyncio.get_running_loop().run_in_executor(self._executor, probe)

    async def close(self, last: Callable[[Database], None] | None = None) -> None:
        """Run ``last`` (if given), close the connection and stop the thread.

        Calls already submitted finish first; calls made afterwards raise ``StorageError``.
        """
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close, last)
        finally:
            self._executor.shutdown(wait=True)

    async def _submit(
        self,
        how: Callable[[Database, Callable[[Database], T]], T],
        fn: Callable[[Database], T],
    ) -> T:
        if self._closed:
            raise StorageError(f"the {self._name} is closed")
        if self._read_only and how is not _reading:
            raise StorageError(f"the {self._name} is open for reading only")

        writes = how is not _reading

        def run() -> T:
            changes = self._db.conn.total_changes
            try:
                with storage_errors(f"{self._name} error", self._path):
                    result = how(self._db, fn)
            except StorageError as exc:
                log_failure(self._name, exc, self._path)
                if writes:
                    self._note_failure(exc)
                raise
            failure = self._write_failure
            if (
                failure is not None
                and failure.locked
                and self._db.conn.total_changes > changes
                and not self._db.conn.in_transaction
            ):
                self._write_failure = None  # a change committed: the lock is had again
            return result

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    def _note_failure(self, exc: StorageError) -> None:
        """Mark writes failing when SQLite's code says the file, not the statement, refused."""
        cause = exc.__cause__
        code = getattr(cause, "sqlite_errorcode", None)
        if (
            isinstance(cause, sqlite3.Error)
            and isinstance(code, int)
            and code & 0xFF in _UNWRITABLE
        ):
            name = getattr(cause, "sqlite_errorname", None) or type(cause).__name__
            self._write_failure = WriteFailure(
                name, locked=code & 0xFF in _LOCKED, at=time.monotonic()
            )

    def _close(self, last: Callable[[Database], None] | None) -> None:
        try:
            if last is not None:
                with storage_errors(f"{self._name} error", self._path):
                    last(self._db)
        finally:
            self._db.close()


def log_failure(name: str, exc: StorageError, path: Path | None) -> None:
    """One line for the operator when SQLite itself failed: which file, and SQLite's code.

    The code (``SQLITE_FULL``: the disk is full; ``SQLITE_READONLY``, ``SQLITE_CORRUPT``,
    ``SQLITE_BUSY``, ``SQLITE_IOERR_…``) says what to fix; the users above only hear that
    their history or balance could not be saved. Nothing of the data is in it.
    """
    cause = exc.__cause__
    if isinstance(cause, sqlite3.Error):
        code = getattr(cause, "sqlite_errorname", None) or type(cause).__name__
        limit = limit_met(path) if io_error(cause) else None
        if limit is not None:  # the likely cause an I/O error's code does not name
            log.error("storage.failed", database=name, code=code, file_size_limit=limit)
        else:
            log.error("storage.failed", database=name, code=code)


def _writing(db: Database, fn: Callable[[Database], T]) -> T:
    db.conn.execute("BEGIN IMMEDIATE")
    return _ending(db, fn)


def _reading(db: Database, fn: Callable[[Database], T]) -> T:
    db.conn.execute("PRAGMA query_only = ON")
    try:
        db.conn.execute("BEGIN")
        return _ending(db, fn)
    finally:
        db.conn.execute("PRAGMA query_only = OFF")


def _ending(db: Database, fn: Callable[[Database], T]) -> T:
    """Run ``fn`` in the open transaction; commit, or roll back if anything failed."""
    try:
        result = fn(db)
        db.conn.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:  # a failed check may have ended it already
            db.conn.execute("ROLLBACK")
        raise
    return result


def _calling(db: Database, fn: Callable[[Database], T]) -> T:
    return fn(db)


def open_private_database(
    path: Path, busy_timeout: float, setup: Callable[[Database], None], name: str
) -> Database:
    """Open (creating owner-only) the SQLite file at ``path`` and run ``setup`` on it.

    The file is made mode 0600 before SQLite opens it, and SQLite gives its -wal and -shm files
    the same mode. Any failure closes the connection and becomes ``StorageError`` naming
    ``name`` and the path (never the data).
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, DB_FILE_MODE))
        # A lone write statement's implicit transaction takes the lock first too (``Database``).
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level="IMMEDIATE")
    except (OSError, sqlite3.Error) as exc:
        raise DataFolderError(f"cannot open {name} {path}: {exc}") from exc
    try:
        with _taking_turns(path.parent), storage_errors(f"cannot open {name} {path}", path):
            db = LockingDatabase(conn, execute_plugins=False)
            setup(db)
    except BaseException:
        conn.close()
        raise
    return db


def open_read_only(
    path: Path, busy_timeout: float, setup: Callable[[Database], None], name: str
) -> Database:
    """Open the SQLite file at ``path`` for reading only (``open_for_reading``); run ``setup``.

    Nothing is made: no folder, no file (a missing one is ``DataFolderError``), and every
    statement that would write fails (``PRAGMA query_only``).
    """
    if not path.is_file():
        raise DataFolderError(f"cannot open {name} {path}: no such file")
    try:
        conn = open_for_reading(path, busy_timeout)
    except (sqlite3.Error, DataFolderError) as exc:
        raise DataFolderError(f"cannot open {name} {path}: {exc}") from exc
    try:
        with storage_errors(f"cannot open {name} {path}", path):
            db = Database(conn, execute_plugins=False)
            db.execute("PRAGMA query_only = ON")
            setup(db)
    except BaseException:
        conn.close()
        raise
    return db


def open_for_reading(path: Path, busy_timeout: float = 5.0) -> sqlite3.Connection:
    """A connection that reads the database at ``path``, also on a disk mounted read-only.

    SQLite opens a WAL database only where it can make the ``-shm`` file beside it, so on a
    disk gone read-only (ext4 remounts so on errors) it failed with "unable to open database
    file". There, with no ``-wal`` file beside it, the database file holds every write and
    nothing can change it: it is opened as immutable, read as it stands. A ``-wal`` file there
    holds writes not yet in the database file, and SQLite reads it as usual, with its ``-shm``:
    one without it cannot be read there (SQLite would make the ``-shm``), and is refused with
    what to do (``DataFolderError``) rather than SQLite's "unable to open database file".
    """
    if not on_read_only_disk(path.parent):
        return sqlite3.connect(path, timeout=busy_timeout)
    wal = path.with_name(path.name + "-wal")
    if not wal.exists():
        uri = f"file:{quote(str(path))}?immutable=1"
        return sqlite3.connect(uri, uri=True, timeout=busy_timeout)
    if not path.with_name(path.name + "-shm").exists():
        message = (
            f"{wal} is there without its -shm on a read-only disk, and SQLite cannot read it"
            " so; copy the data folder to a writable disk and run there (its writes then join"
            " the database), or make this disk writable again"
        )
        raise DataFolderError(message)
    return sqlite3.connect(path, timeout=busy_timeout)


@contextlib.contextmanager
def unchanged_while_read(path: Path) -> Iterator[None]:
    """Around a read through ``open_for_reading``: ``DataFolderError`` if ``path`` changed.

    Only where it is read as immutable (a read-only disk, no ``-wal``): SQLite then takes no
    lock and trusts the file not to change, but a bot writing the same folder through another,
    writable mount changes it all the same, and what was read may not be one consistent state.
    Told after the read, with what to do; the caller drops its result.
    """
    wal = path.with_name(path.name + "-wal")
    before = _stamp(path) if on_read_only_disk(path.parent) and not wal.exists() else None
    yield
    if before is not None and (_stamp(path) != before or wal.exists()):
        message = (
            f"{path} changed while it was read as it stands on a read-only disk: a bot writes"
            " to it through another mount, so what was read may not be consistent; stop that"
            " bot, or run this where it writes, and try again"
        )
        raise DataFolderError(message)


def _stamp(path: Path) -> tuple[int, int, int]:
    """The file's identity, size and time of its last write; (0, 0, 0) where it is gone."""
    try:
        stat = path.stat()
    except OSError:
        return (0, 0, 0)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def on_read_only_disk(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@contextlib.contextmanager
def _taking_turns(folder: Path) -> Iterator[None]:
    """Hold a lock on ``folder`` while a database in it is set up: processes take turns.

    Webhook replicas started together (or ``audit`` beside a bot starting) would each apply
    the pending migrations over the others' work and refuse to start. ``flock`` on the folder
    itself, so no file is added; SQLite's own locks are on the files and never touched here.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise DataFolderError(f"cannot open {folder}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without flock: no turns, as before
            log.warning("storage.no_folder_lock", folder=str(folder), errno=exc.errno)
        yield
    finally:
        os.close(fd)


class DataInUse(StorageError):
    """Another process serves from the database already (``claim_database``)."""


@contextlib.contextmanager
def claim_database(path: Path, *, shared: bool = False) -> Iterator[Path]:
    """Hold the claim of one serving process on the database at ``path``; yield the lock file.

    A lock (``flock``) on ``<path>.lock`` beside it, made owner-only: ``shared`` for one of
    several processes that may serve from the file together, else the only one. A claim that
    conflicts raises ``DataInUse`` at once, never waits. The kernel drops the lock when the
    process ends, however it ends, so a crash leaves nothing to clean up. SQLite's own locks
    are on the database file and never touched here.
    """
    lock = path.with_name(path.name + ".lock")
    try:
        lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, DB_FILE_MODE)
    except OSError as exc:
        raise DataFolderError(f"cannot open {lock}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DataInUse(f"another process holds {lock}") from exc
        except OSError as exc:  # a file system without flock: serve unclaimed, as before
            log.warning("storage.unclaimed", lock=str(lock), errno=exc.errno)
        yield lock
    finally:
        os.close(fd)
