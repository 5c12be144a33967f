"""/new sent while the files just sent still gather (an album waits a second for more).

The files were sent before /new, so they are asked in the conversation they were sent in, as a
text sent before /new is (chat24): /new then starts the fresh one, empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.test_bot_topics import echo

if TYPE_CHECKING:
    from pathlib import Path

USER = 2444


async def test_files_sent_before_new_are_asked_where_they_were_sent(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=echo) as stack:
        stack.telegram.send_text(USER, "first")
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        stack.telegram.send_document(USER, b"moss grows north", caption="what grows?")
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 3)
        assert await stack.veil.chat.wait_idle(30)
        active = await stack.veil.store.active_conversation(USER)
        fresh = [t.text for t in await stack.veil.store.history(USER, active)]
        conversations = await stack.veil.store.conversations(USER)
        older = min(c.conversation_id for c in conversations)
        stored = [t.text for t in await stack.veil.store.history(USER, older)]
    assert fresh == []
    assert len(stored) == 4
    assert "moss grows north" in stored[2]
