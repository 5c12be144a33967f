"""Online backups of the bot's SQLite files with SQLite's own backup API.

The backup copies the database page by page while the bot keeps writing (WAL mode lets readers
and the one writer go on); SQLite restarts the copy of any step a write overtakes, so the result
is one consistent snapshot. Nothing here reads or decrypts history: the copy is as sealed as the
original, and it is useless without the master key, which is backed up separately.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

PAGES_PER_STEP = 256  # small steps: the bot's writer waits at most one step for the copy


class BackupError(Exception):
    """A backup could not be made (missing source, target exists, I/O error)."""


def backup_database(source: Path, target: Path) -> int:
    """Copy the database at ``source`` to the new file ``target``; return its page count."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if target.exists():
        raise BackupError(f"{target} already exists; not overwriting a backup")
    try:
        with (
            closing(sqlite3.connect(source)) as origin,
            closing(sqlite3.connect(target)) as copy,
        ):
            origin.backup(copy, pages=PAGES_PER_STEP)
            (pages,) = copy.execute("PRAGMA page_count").fetchone()
            (check,) = copy.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    if check != "ok":
        target.unlink(missing_ok=True)
        raise BackupError(f"the copy of {source} does not pass SQLite's quick_check")
    target.chmod(0o600)
    return int(pages)
