"""A month of users: the store keeps a bounded number of unwrapped data keys in memory.

``Store`` unwrapped a user's data key once and kept it for the life of the process: after a
million users a million keys (and every one of them readable in a memory dump). It keeps the
most recently used ``DATA_KEYS_KEPT`` now; a user let go of is unwrapped again from their row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import MasterKey, Store

if TYPE_CHECKING:
    from pathlib import Path

USERS = 1_500  # past the store's 1,000 kept keys
BOUND = 1_000


async def test_data_keys_are_bounded_and_a_forgotten_key_is_unwrapped_again(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        first = await store.open_conversation(1, "en")
        await store.add_turns(1, first.conversation_id, [("user", "hi"), ("assistant", "hello")])
        for user_id in range(2, USERS + 2):
            await store.open_conversation(user_id, "en")
        held = len(store._data_keys)  # the structure itself (not its keys)
        assert held <= BOUND
        # The first user's key was let go of long ago: it is unwrapped again, and opens.
        assert 1 not in store._data_keys
        turns = await store.history(1, first.conversation_id)
        assert [turn.text for turn in turns] == ["hi", "hello"]
        again = await store.open_conversation(1, "en")
        await store.add_turns(1, again.conversation_id, [("user", "more"), ("assistant", "ok")])
        turns = await store.history(1, again.conversation_id)
        assert [turn.text for turn in turns] == ["hi", "hello", "more", "ok"]
        held = len(store._data_keys)
        assert held <= BOUND
    finally:
        await store.close()
