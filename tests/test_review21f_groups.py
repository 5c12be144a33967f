"""A member let go once their group answer is written, whose last edit Telegram then refuses."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from tests.botstack import TOKEN, running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import wait_until
from tests.test_bot_groups import ANN, GROUP, final_reply
from tests.test_bot_rich_edits import FAST, SHORT, HeldFinal

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_question_asked_again_survives_the_first_answers_refused_last_edit(
    tmp_path: Path,
) -> None:
    telegram = HeldFinal("Bad Request: message to edit not found", token=TOKEN)
    server = FakeVLLM(answer=SHORT, token_delay=0.01)
    async with running_stack(
        tmp_path, model_server=server, telegram_server=telegram, **FAST
    ) as stack:
        stack.telegram.state.rich_messages = False
        kit = stack.veil.dispatcher["kit"]
        stack.telegram.send_text(ANN, "/ask first", chat_id=GROUP)
        await asyncio.wait_for(telegram.holding.wait(), 10)
        stack.telegram.send_text(ANN, "/ask second", chat_id=GROUP)
        await wait_until(lambda: telegram.updates.pending == [])  # the bot has it
        await wait_until(lambda: len(server.requests) == 1)
        telegram.release.set()
        (second,) = await final_reply(stack)
        await wait_until(lambda: kit.asking == {})  # each let go, none left behind
        told = stack.telegram.ephemeral_messages(GROUP, ANN)
        await wait_until(lambda: stack.veil.chat.running == 0)
    assert second["text"] == "Tangerine is orange."
    assert [m["messages"][-1]["content"] for m in server.requests] == ["first", "second"]
    assert told == []
    with sqlite3.connect(stack.veil.store.path) as db:
        outcomes = db.execute("SELECT outcome FROM holds ORDER BY created_at").fetchall()
        usage = db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'usage'").fetchone()
    assert outcomes == [("settled",), ("settled",)]
    assert usage == (2,)  # each answer charged once
