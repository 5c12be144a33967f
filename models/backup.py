"""Online backups of the bot's SQLite files with SQLite's own backup API.

The backup copies the database page by page while the bot keeps writing (WAL mode lets readers
and the one writer go on), every step from the one snapshot it began with, so the result is
consistent and the bot's commits never start the copy over (on a disk gone read-only too:
``models.database.open_for_reading``).
Nothing here reads or decrypts history: the copy is as sealed as the original, and it is
useless without the master key, which is backed up separately. The copy is written under a
name of its own and takes the backup's name only once whole.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

from common.durable import sync_folder
from models.database import DB_FILE_MODE, open_for_reading, unchanged_while_read
from models.errors import DataFolderError, database_size, io_error, limit_met

if TYPE_CHECKING:
    from pathlib import Path

PAGES_PER_STEP = 256  # small steps: a stop (SIGTERM, Ctrl-C) is heard between two of them
PARTIAL_SUFFIX = ".partial"  # the copy's name until it is whole


class BackupError(Exception):
    """A backup could not be made (missing source, target exists, I/O error)."""


def backup_database(source: Path, target: Path) -> int:
    """Copy the database at ``source`` to the new file ``target``; return its page count.

    The copy is made as ``target.partial`` (owner-only from the start) and takes its name only
    once whole and checked: a copy cut short (the machine down, the command killed) never sits
    under the backup's name, where SQLite would open it as an empty database.
    """
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if target.exists():
        raise BackupError(f"{target} already exists; not overwriting a backup")
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    try:
        claim = _claim(partial, target)
    except OSError as exc:
        raise BackupError(f"cannot write {partial}: {exc.strerror}") from exc
    try:
        # A backup to this name may have taken it between our look and our claim. No other
        # links it while we hold the claim (flock), so from here a copy under it is ours alone
        # (a stop removes it: ``bot.__main__.copy_together``), never another backup's.
        if target.exists():
            raise BackupError(f"{target} already exists; not overwriting a backup")
        pages = _copy(source, partial)
        os.link(partial, target)  # fails, rather than overwrite, if a backup appeared meanwhile
        sync_folder(target.parent)  # its name on the disk, as its pages are
    except FileExistsError as exc:
        raise BackupError(f"{target} already exists; not overwriting a backup") from exc
    except OSError as exc:
        raise BackupError(f"backup of {source} failed: {exc.strerror}") from exc
    finally:
        _let_go(claim, partial)  # the name is this backup's while it holds the claim
    return pages


def _claim(partial: Path, target: Path) -> int:
    """Take ``partial`` for this backup (emptied, owner-only); the descriptor holding the claim.

    A lock (``flock``) on the file itself while the copy is made: a second backup to the same
    name (a cron job overlapping one run by hand) is refused, where it removed the first one's
    copy and made its own under the same name, which the first then took as the backup half
    made. A leftover of a copy cut short (its process gone, and the lock with it) is reused.
    A stop (SIGTERM, Ctrl-C) anywhere in the claim takes the file away again: it left an empty
    ``.partial`` beside the backups, though the command said no backup was kept.
    """
    while True:
        try:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT, DB_FILE_MODE)
        except BaseException:
            _let_go_of(partial)  # a stop as the file was made: its descriptor never came back
            raise
        try:
            if _held(fd, partial, target):
                os.fchmod(fd, DB_FILE_MODE)
                os.ftruncate(fd, 0)  # a copy cut short before: the copy starts from nothing
                partial.with_name(partial.name + "-journal").unlink(missing_ok=True)
                return fd
        except BaseException:
            _let_go(fd, partial)
            raise
        os.close(fd)  # a backup finishing between the open and the lock took the file away


def _held(fd: int, partial: Path, target: Path) -> bool:
    """Lock the file open at ``fd``; whether it is still the one ``partial`` names.

    Refused (``BackupError``) where another backup holds it.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BackupError(f"another backup is writing {target} now ({partial})") from None
    except OSError:  # a file system without flock: unclaimed, as before
        pass
    return _names(partial, fd)


def _let_go(fd: int, partial: Path) -> None:
    """Close ``fd``; the file ``partial`` names goes with it unless another backup holds it.

    Ours (locked), or no one's (a stop between making it and locking it; a copy cut short),
    it is no backup: a later backup or a restore must not find it there.
    """
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already, or no one's
        except BlockingIOError:
            return  # another backup's claim, and its copy
        except OSError:  # a file system without flock: as before, the name is ours
            pass
        if _names(partial, fd):
            partial.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _names(partial: Path, fd: int) -> bool:
    """Whether ``partial`` names the file open at ``fd`` (not taken away, nor made anew)."""
    try:
        return os.path.samestat(os.fstat(fd), partial.stat())
    except FileNotFoundError:
        return False


def _let_go_of(partial: Path) -> None:
    """``_let_go`` for a file made by a call whose descriptor was lost to a stop."""
    try:
        fd = os.open(partial, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # not made, or not ours to open: nothing of ours there
        return
    _let_go(fd, partial)


def _copy(source: Path, copy_path: Path) -> int:
    """Copy ``source`` into the empty file ``copy_path``, check it and sync it; its page count."""
    try:
        with (
            unchanged_while_read(source),
            closing(open_for_reading(source)) as origin,
            closing(sqlite3.connect(copy_path)) as copy,
        ):
            # One snapshot for every step: begun by each step alone, a step after another
            # process's commit began the copy again, and a bot that committed more often than
            # the copy took kept it copying as long as it wrote. WAL lets it write meanwhile.
            origin.execute("BEGIN")
            origin.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()
            origin.backup(copy, pages=PAGES_PER_STEP, progress=_between_steps)
            origin.rollback()
            (pages,) = copy.execute("PRAGMA page_count").fetchone()
            (check,) = copy.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {_why(source, exc)}") from exc
    except DataFolderError as exc:  # one it cannot be read from (open_for_reading says why)
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    if check != "ok":
        raise BackupError(f"the copy of {source} does not pass SQLite's quick_check")
    fd = os.open(copy_path, os.O_RDONLY)
    try:
        os.fsync(fd)  # on the disk before it takes the backup's name
    finally:
        os.close(fd)
    return int(pages)


def _between_steps(_status: int, _remaining: int, _total: int) -> None:
    """Python code between two steps of the copy, so a stop's handler runs there.

    SQLite's copy loop never returns to Python until it is done: a SIGTERM or Ctrl-C waited
    for the whole copy (``python -m bot backup`` stops at once now, its copy removed).
    """


def _why(source: Path, exc: sqlite3.Error) -> str:
    """What stopped the copy, and what to do, where SQLite says only "disk I/O error".

    A write past the process's file size limit (``ulimit -f``; Python ignores SIGXFSZ, so the
    write fails with EFBIG) is such an error to SQLite, and the copy is rolled back to nothing
    before it can be looked at: a database at or past the limit tells it apart (``limit_met``).
    """
    limit = limit_met(source) if io_error(exc) else None
    if limit is None:
        return str(exc)
    return (
        f"the copy cannot grow past this process's file size limit ({limit} bytes,"
        f" ulimit -f) and the database is {database_size(source)} bytes; raise the limit and"
        " run the backup again"
    )
