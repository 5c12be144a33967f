"""A member whose group answer is written may ask again at once, before its last edit returns."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.botstack import TOKEN, running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import wait_until
from tests.test_bot_groups import ANN, GROUP, final_reply
from tests.test_bot_rich_edits import FAST, SHORT, HeldFinal

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_member_asking_again_once_the_answer_is_written_is_answered_in_turn(
    tmp_path: Path,
) -> None:
    # The answer stood final in the group while the bot waited for Telegram's reply to its
    # last edit (up to a flood wait, or the pace of a cut answer's note): a member who read it
    # and asked again was told "your previous question is still to be answered" and dropped.
    telegram = HeldFinal(token=TOKEN)
    server = FakeVLLM(answer=SHORT, token_delay=0.01)
    async with running_stack(
        tmp_path, model_server=server, telegram_server=telegram, **FAST
    ) as stack:
        stack.telegram.state.rich_messages = False
        stack.telegram.send_text(ANN, "/ask first", chat_id=GROUP)
        await asyncio.wait_for(telegram.holding.wait(), 10)
        stack.telegram.send_text(ANN, "/ask second", chat_id=GROUP)
        await wait_until(lambda: telegram.updates.pending == [])  # the bot has it
        await wait_until(lambda: len(server.requests) == 1)
        telegram.release.set()
        first, second = await final_reply(stack, 2)
        told = stack.telegram.ephemeral_messages(GROUP, ANN)
    assert [first["text"], second["text"]] == ["Tangerine is orange.", "Tangerine is orange."]
    assert [m["messages"][-1]["content"] for m in server.requests] == ["first", "second"]
    assert told == []


async def test_a_member_asking_again_while_the_answer_is_written_waits_their_turn(
    tmp_path: Path,
) -> None:
    # One question a member at a time, while it is still being written: a burst would be
    # queued ahead of everyone who asks after it.
    server = FakeVLLM(answer=SHORT * 20, token_delay=0.05)
    async with running_stack(tmp_path, model_server=server, **FAST) as stack:
        stack.telegram.state.rich_messages = False
        stack.telegram.send_text(ANN, "/ask first", chat_id=GROUP)
        await wait_until(lambda: len(server.requests) == 1)
        stack.telegram.send_text(ANN, "/ask second", chat_id=GROUP)
        await wait_until(lambda: stack.telegram.ephemeral_messages(GROUP, ANN) != [])
        (told,) = stack.telegram.ephemeral_messages(GROUP, ANN)
        (final,) = await final_reply(stack)
    assert told["text"].startswith("Your previous question here is still to be answered")
    assert len(server.requests) == 1
    assert final["text"].startswith("Tangerine is orange.")
