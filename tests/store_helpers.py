"""One database file opened by two processes at once: the bot's store and a replica's."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from models import MasterKey, Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@contextlib.asynccontextmanager
async def bot_and_replica(path: Path, users: int) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on the database at ``path``, users 1 to ``users`` known; closed afterwards.

    The first is the bot's, the second a replica's (or a CLI's): separate connections, each
    with its own snapshot, as two processes have.
    """
    key = MasterKey.generate()
    bot = await Store.open(path, key)
    replica = await Store.open(path, key)
    try:
        for user in range(1, users + 1):
            await bot.ensure_user(user, "en")
        yield bot, replica
    finally:
        await replica.close()
        await bot.close()
