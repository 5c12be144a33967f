"""Two processes on one database: a conversation switched to as its user forgets elsewhere.

``switch_conversation`` looked at the conversation (the user's, not in a topic) and then made it
active in a transaction of its own. Where another process (a webhook replica) let the user
forget between the two, and the user wrote there again (a new row), the switch made a deleted
conversation active: SQLite refused it ("FOREIGN KEY constraint failed"), a storage failure
for the operator's alarms and a "could not save" for the user, where the conversation is
simply gone. The look is made again under the write lock now, and the user hears that.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from models.errors import ConversationNotFound
from tests.store_helpers import bot_and_replica
from tests.test_store26_locked import _Traced

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path
    from typing import Any

USER = 1


class BeforeTheLock:
    """A trace that runs ``rival`` once, as the connection is about to take the write lock.

    Before the fix that was after its look at the conversation (the switch's own transaction);
    now the look is made under the lock, after the rival's commit.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, rival: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        self._loop = loop
        self._rival = rival
        self.ran = False
        self.errors: list[BaseException] = []

    def __call__(self, sql: str) -> None:
        """Follow one statement of the connection's (SQLite's trace, before it runs)."""
        if sql.upper().startswith("BEGIN IMMEDIATE") and not self.ran:
            self.ran = True
            try:
                asyncio.run_coroutine_threadsafe(self._rival(), self._loop).result(timeout=60)
            except BaseException as exc:  # noqa: BLE001 -- said by the test
                self.errors.append(exc)


async def test_a_switch_to_a_conversation_forgotten_meanwhile_is_not_found(
    tmp_path: Path,
) -> None:
    async with bot_and_replica(tmp_path / "veil.db", users=1) as (bot, replica):
        older = await bot.active_conversation(USER)
        await bot.new_conversation(USER)

        async def rival() -> None:  # the user forgets, and writes again, through the replica
            await replica.forget(USER)
            await replica.open_conversation(USER, "en")

        between = BeforeTheLock(asyncio.get_running_loop(), rival)
        async with _Traced(bot, between):
            with pytest.raises(ConversationNotFound):
                await bot.switch_conversation(USER, older)
        assert between.ran, "the replica's calls never ran before the switch took the lock"
        assert between.errors == []
        now = await bot.open_conversation(USER, "en")
        assert now.conversation_id != older
        assert now.turns == []
