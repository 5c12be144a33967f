"""Online backups of the bot's SQLite files with SQLite's own backup API.

The backup copies the database page by page while the bot keeps writing (WAL mode lets readers
and the one writer go on); SQLite restarts the copy of any step a write overtakes, so the result
is one consistent snapshot. Nothing here reads or decrypts history: the copy is as sealed as the
original, and it is useless without the master key, which is backed up separately. The copy
is written under a name of its own and takes the backup's name only once whole.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

from models.database import DB_FILE_MODE

if TYPE_CHECKING:
    from pathlib import Path

PAGES_PER_STEP = 256  # small steps: the bot's writer waits at most one step for the copy
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
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)  # of a copy cut short before
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
    except OSError as exc:
        raise BackupError(f"cannot write {partial}: {exc.strerror}") from exc
    try:
        pages = _copy(source, partial)
        os.link(partial, target)  # fails, rather than overwrite, if a backup appeared meanwhile
    except FileExistsError as exc:
        raise BackupError(f"{target} already exists; not overwriting a backup") from exc
    except OSError as exc:
        raise BackupError(f"backup of {source} failed: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return pages


def _copy(source: Path, copy_path: Path) -> int:
    """Copy ``source`` into the empty file ``copy_path``, check it and sync it; its page count."""
    try:
        with (
            closing(sqlite3.connect(source)) as origin,
            closing(sqlite3.connect(copy_path)) as copy,
        ):
            origin.backup(copy, pages=PAGES_PER_STEP)
            (pages,) = copy.execute("PRAGMA page_count").fetchone()
            (check,) = copy.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    if check != "ok":
        raise BackupError(f"the copy of {source} does not pass SQLite's quick_check")
    fd = os.open(copy_path, os.O_RDONLY)
    try:
        os.fsync(fd)  # on the disk before it takes the backup's name
    finally:
        os.close(fd)
    return int(pages)
