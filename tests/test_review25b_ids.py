"""Two processes on one database start conversations at the same time: each gets its own id.

A new conversation was written in a deferred transaction that read (the user's row) before it
wrote: with the bot and another process (a replica, a CLI) starting conversations at once, the
one whose snapshot another's commit had overtaken could not take the write lock and failed at
once ("database is locked", without waiting the busy timeout): the user's message was answered
with a storage error. The write lock is taken first now, so it waits its turn, and the next id
is read under it: never a duplicate, never an error.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.store_helpers import bot_and_replica

if TYPE_CHECKING:
    from pathlib import Path

    from models import Store

USERS = 4
EACH = 100


async def test_two_processes_start_conversations_at_once(tmp_path: Path) -> None:
    async with bot_and_replica(tmp_path / "veil.db", USERS) as (bot, replica):

        async def start(store: Store, user: int) -> list[int]:
            return [await store.new_conversation(user) for _ in range(EACH)]

        made = await asyncio.gather(
            *(start(store, user) for store in (bot, replica) for user in range(1, USERS + 1))
        )
        ids = [conversation for batch in made for conversation in batch]
        assert len(ids) == 2 * USERS * EACH
        assert len(set(ids)) == len(ids)
        # /forget of everyone, then a new conversation: a new id, none of the old ones.
        for user in range(1, USERS + 1):
            await replica.forget(user)
        await bot.ensure_user(1, "en")
        assert await bot.new_conversation(1) == max(ids) + 1
