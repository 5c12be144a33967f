"""A basic group upgraded to a supergroup while Veil is in it: a new chat id, the old one dead.

Telegram deactivates the group and makes a supergroup with a new id (when it grows, goes
public, or an admin changes a setting only supergroups have), posts ``migrate_to_chat_id`` in
the group and ``migrate_from_chat_id`` in the supergroup, and refuses every later call naming
the group with 400 "group chat was upgraded to a supergroup chat" and the supergroup's id. The
real bot long-polls the fake Telegram (the playground's emulator), through a real gateway to the
fake vLLM.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from services.groups import Groups
from tests.botstack import running_stack
from tests.test_bot_groups import ANN, ANSWER, BOB, FAST, QUESTION, answered_once_on
from tests.test_bot_outside_hostile import settled

if TYPE_CHECKING:
    from pathlib import Path

OLD = -4_001_234_567  # a basic group's id
NEW = -1_004_001_234_567  # the supergroup it becomes


async def test_a_group_s_settings_follow_it_into_its_supergroup(tmp_path: Path) -> None:
    # The settings were kept by the group's old id: the supergroup had none, and Veil, which the
    # admins had turned off, answered (and charged) every mention again.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        groups = Groups(stack.veil.store)
        await groups.set(OLD, "answers", on=False)
        await groups.set(OLD, "reply_context", on=False)
        stack.telegram.send_text(ANN, "hello", chat_id=OLD, chat_type="group")
        stack.telegram.upgrade_group(ANN, OLD, NEW)
        async with asyncio.timeout(10):
            while await stack.veil.store.group_settings(NEW) is None:  # noqa: ASYNC110 -- the store has no event
                await asyncio.sleep(0.02)
        assert await stack.veil.store.group_settings(NEW) == (False, False)
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=NEW)
        last = await answered_once_on(stack, NEW)
        assert stack.telegram.sent_messages(NEW) == [last]
        assert len(stack.vllm.requests) == 1  # Carol's alone


async def test_an_answer_streaming_when_its_group_is_upgraded_stops_and_the_next_is_no_bug(
    tmp_path: Path,
) -> None:
    # Telegram's refusal (TelegramMigrateToChat, no TelegramBadRequest) was no "message gone":
    # the answer streamed to its end into a group nobody can write in, and was charged whole;
    # the question waiting for its turn met it posting its placeholder, and was logged as a bug
    # with its traceback (and an apology sent to the dead group).
    long_answer = " ".join(f"word{n}" for n in range(400))
    async with running_stack(tmp_path, answer=long_answer, token_delay=0.01, **FAST) as stack:
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(
                BOB, f"@veil_test_bot {QUESTION}", chat_id=OLD, chat_type="group"
            )
            stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=OLD)
            await stack.telegram.wait_for("editMessageText", lambda c: c.params["chat_id"] == OLD)
            stack.telegram.upgrade_group(ANN, OLD, NEW)
            await settled(stack, ANN, BOB)
        (usage,) = [e for e in await stack.veil.credit.history(BOB) if e.kind == "usage"]
        assert str(usage.note).endswith("stopped"), usage
        assert int(str(usage.note).split("+")[1].split()[0]) < 300, usage  # of 400 tokens
        assert len(stack.vllm.requests) == 1  # Ann's question was never asked: nobody to answer
        assert [e for e in await stack.veil.credit.history(ANN) if e.kind == "usage"] == []
        assert [e["event"] for e in logs if e["log_level"] == "error"] == []
        assert stack.telegram.sent_messages(NEW) == []
