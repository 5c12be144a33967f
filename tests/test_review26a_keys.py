"""Two processes on one database: a user who forgot and came back has one data key in both.

Each store keeps the data keys it unwrapped in memory (``DATA_KEYS_KEPT``). A webhook
replica's store kept the key of a user whom the other replica then let forget (row and key
deleted) and who wrote again there (a new row, a new key): the first went on sealing and
opening that user's history with the key no longer stored. What it sealed, the other could
not open ("turn 1 … does not open where it is stored", the conversation lost to both), and
what the other sealed, it could not open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.store_helpers import bot_and_replica

if TYPE_CHECKING:
    from pathlib import Path

USER = 1


async def test_a_user_back_after_forget_elsewhere_is_sealed_with_the_stored_key(
    tmp_path: Path,
) -> None:
    async with bot_and_replica(tmp_path / "veil.db", users=1) as (bot, replica):
        before = await bot.open_conversation(USER, "en")
        await bot.add_turns(USER, before.conversation_id, [("user", "old q"), ("assistant", "a")])
        await replica.forget(USER)
        back = await replica.open_conversation(USER, "en")  # a new row, with a new key
        await replica.add_turns(USER, back.conversation_id, [("user", "q1"), ("assistant", "a1")])

        # The bot reads what the replica sealed, and what it seals the replica reads.
        again = await bot.open_conversation(USER, "en")
        assert again.conversation_id == back.conversation_id
        assert [turn.text for turn in again.turns] == ["q1", "a1"]
        await bot.add_turns(USER, again.conversation_id, [("user", "q2"), ("assistant", "a2")])
        await bot.set_title(USER, again.conversation_id, "titled")
        turns = await replica.history(USER, again.conversation_id)
        assert [turn.text for turn in turns] == ["q1", "a1", "q2", "a2"]
        (listed,) = await replica.conversations(USER)
        assert listed.title == "titled"
