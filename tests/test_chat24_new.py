"""/new sent right after a question that waits for the previous answer to be stored.

The question (sent once the previous answer's stream had ended, its final message still going
out) opened the user's active conversation only when that answer was stored: /new sent after
it made it the fresh conversation's first question, asked without the answer it followed on
from. It is asked where it was sent, and /new then starts the fresh conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from tests.botstack import TOKEN, running_stack
from tests.harness import wait_until
from tests.test_bot_topics import echo
from tests.test_twice24_history import HeldAnswer

if TYPE_CHECKING:
    from pathlib import Path

USER = 2429
SETTLE = 1.0  # seconds /new is given to be handled before the held answer goes out


async def test_a_question_sent_before_new_is_asked_where_it_was_sent(tmp_path: Path) -> None:
    telegram = HeldAnswer("re: second", token=TOKEN)
    async with running_stack(tmp_path, answer=echo, telegram_server=telegram) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "first")
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        stack.telegram.send_text(USER, "second")
        async with asyncio.timeout(10):
            await telegram.holding.wait()  # its stream ended, its final message going out
        stack.telegram.send_text(USER, "third")  # waits for "second" to be stored
        new = stack.telegram.send_text(USER, "/new")
        await wait_until(
            lambda: all(u["update_id"] != new for u in telegram.updates.pending), within=10
        )
        # Before the fix /new was done at once and said so; now it waits for "third" to open.
        with contextlib.suppress(TimeoutError):
            await wait_until(
                lambda: any(
                    m["text"] == texts("new_conversation")
                    for m in stack.telegram.sent_messages(USER)
                ),
                within=SETTLE,
            )
        telegram.gate.set()
        await stack.final_messages(USER, 4)
        assert await stack.veil.chat.wait_idle(30)
        asked = [m["content"] for m in stack.vllm.requests[-1]["messages"]]
        active = await stack.veil.store.active_conversation(USER)
        fresh = await stack.veil.store.history(USER, active)
        conversations = await stack.veil.store.conversations(USER)
        stored = {
            c.conversation_id: [
                t.text for t in await stack.veil.store.history(USER, c.conversation_id)
            ]
            for c in conversations
        }
    assert asked[-3:] == ["second", "re: second and a few more words to stream", "third"]
    assert fresh == []  # /new came after "third": the fresh conversation is empty
    assert stored[min(stored)] == [
        "first",
        "re: first and a few more words to stream",
        "second",
        "re: second and a few more words to stream",
        "third",
        "re: third and a few more words to stream",
    ]
