"""Two processes on one database store answers at the same time: every exchange is kept.

``Store.add_turns`` (an answer's turns stored on their own, as when its charge was written
without them) read the conversation's last place and then wrote, in a deferred transaction:
with the bot and a replica storing at once, the one whose snapshot another's commit had
overtaken could not take the write lock and failed at once ("database is locked", without
waiting the busy timeout), and the answer went unsaved (review25b measured 35 of 400). The
write lock is taken first now (as ``new_conversation`` does since review25b).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.store_helpers import bot_and_replica

if TYPE_CHECKING:
    from pathlib import Path

    from models import Store

USERS = 4
EACH = 50


async def test_two_processes_store_answers_at_once_and_lose_none(tmp_path: Path) -> None:
    async with bot_and_replica(tmp_path / "veil.db", USERS) as (bot, replica):
        kept = {user: await bot.active_conversation(user) for user in range(1, USERS + 1)}

        async def store(where: Store, user: int, name: str) -> None:
            for n in range(EACH):
                await where.add_turns(
                    user, kept[user], [("user", f"{name} q{n}"), ("assistant", f"{name} a{n}")]
                )

        await asyncio.gather(
            *(
                store(where, user, name)
                for where, name in ((bot, "bot"), (replica, "replica"))
                for user in range(1, USERS + 1)
            )
        )
        for user in range(1, USERS + 1):
            texts = [turn.text for turn in await bot.history(user, kept[user])]
            assert len(texts) == 2 * 2 * EACH
            # Each exchange whole and in place: a question followed by its own answer.
            assert all(
                answer == question.replace(" q", " a")
                for question, answer in zip(texts[::2], texts[1::2], strict=True)
            )
