"""Shutdown begun: an answer that finishes in the grace is not followed by a title request.

A title asked then was stopped by ``close`` and settled (the user billed for a title they never
saw), or ended with the process before it was stored. The drain runs in-process here, as
``python -m bot`` runs it on SIGTERM.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from structlog.testing import capture_logs

from bot.shutdown import drain
from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_stop import closed_holds

if TYPE_CHECKING:
    from pathlib import Path

USER = 8001  # closed_holds reads this user's holds
ANSWER = " ".join(f"ibis{i}" for i in range(8))


async def test_an_answer_ending_in_the_shutdown_grace_asks_no_title(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, conversation_titles=True) as stack:
        stack.vllm.pauses = {4}  # the answer waits there until the shutdown has begun
        stack.telegram.send_text(USER, "Tell me about ibises")
        await wait_until(lambda: stack.vllm.paused == 1, within=10)
        veil = stack.veil
        with capture_logs() as logs:
            draining = asyncio.create_task(
                drain(veil.operations.in_flight, veil.chat, 30.0, veil.relay)
            )
            await wait_until(lambda: any(e["event"] == "bot.draining" for e in logs), within=10)
            stack.vllm.resume()
            await draining  # the answer finished within the grace, its followup too
        holds = await closed_holds(stack)
        turns = await stack.stored_turns(USER, 2)
        conversations = await veil.store.conversations(USER)
    assert turns[1] == ANSWER
    assert len(stack.vllm.requests) == 1  # the answer's; no title request
    assert len(holds) == 1
    assert [c.title for c in conversations] == [None]
    assert "chat.title_skipped" in [entry["event"] for entry in logs]
