"""A backup of a database larger than one step finishes while another process keeps writing.

SQLite's backup copies ``PAGES_PER_STEP`` pages a step, and a step after another connection
(the bot, a webhook replica) committed starts the copy over: each step began a read
transaction of its own, on the newest snapshot. A bot committing more often than the whole
copy takes (every millisecond or so, on a database of some megabytes) kept ``python -m bot
backup`` copying from the start for as long as it wrote: it finished only once the bot was
quiet. Now the copy reads one snapshot from its first step to its last (WAL mode lets the
others write meanwhile), and finishes as it would on an idle database.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

from models import MasterKey, Store
from models.backup import PAGES_PER_STEP, backup_database

if TYPE_CHECKING:
    from pathlib import Path

FILLER_PAGES = 20 * PAGES_PER_STEP  # twenty steps of the copy
MOST_WRITES = 200_000  # the writer stops here at the latest: the backup waited for that


async def a_bot_database(path: Path) -> None:
    """The bot's database (its schema, WAL mode), with twenty steps' worth of pages more."""
    store = await Store.open(path, MasterKey.generate())
    await store.close()
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE filler (body BLOB)")
        raw.executemany("INSERT INTO filler (body) VALUES (randomblob(4000))", [()] * FILLER_PAGES)
        raw.execute("CREATE TABLE beats (n INTEGER)")
    raw.close()


async def test_a_backup_of_many_steps_finishes_while_another_process_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "veil.db"
    await a_bot_database(path)
    copied = threading.Event()
    written: list[int] = []

    def write() -> None:  # another process's commits, one after another
        with sqlite3.connect(path, isolation_level=None) as writer:
            writer.execute("PRAGMA synchronous = OFF")  # commits as fast as they come
            count = 0
            while not copied.is_set() and count < MOST_WRITES:
                count += 1
                writer.execute("INSERT INTO beats (n) VALUES (?)", [count])
        writer.close()
        written.append(count)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        pages = backup_database(path, tmp_path / "backup.db")
    finally:
        copied.set()
        thread.join()
    assert pages > FILLER_PAGES
    assert written[0] < MOST_WRITES, "the backup finished only once the writer stopped"
    with sqlite3.connect(tmp_path / "backup.db") as copy:
        (beats,) = copy.execute("SELECT COUNT(*) FROM beats").fetchone()
        assert copy.execute("SELECT MAX(n) FROM beats").fetchone() == (beats or None,)
    copy.close()
    assert beats <= written[0]
