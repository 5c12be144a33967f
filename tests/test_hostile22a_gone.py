"""A member who leaves, or is banned, while their question waits for the group's turn.

Answers in a group go one at a time: a question asked while another is written waits. Its
asker, banned by the admins meanwhile (or gone of their own accord), still had the answer
posted in the group, as a reply to them, and was charged for it: the admins saw a banned
member's question answered after they banned them, and the asker paid for an answer in a group
they could no longer read. Such a question is now let go when its turn comes: nothing posted,
nothing asked of the model, nothing charged.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
import structlog

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import (
    ANN,
    ANSWER,
    BOB,
    FAST,
    GROUP,
    QUESTION,
    answered_last,
    final_reply,
    replies,
)

if TYPE_CHECKING:
    from pathlib import Path

BOBS = "@veil_test_bot and what about mine?"


@pytest.mark.parametrize("status", ["kicked", "left"])
async def test_a_member_gone_before_their_turn_gets_no_answer_and_pays_nothing(
    tmp_path: Path, status: str
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        held = asyncio.Event()
        stack.vllm.chat_hold = held  # Ann's answer is being written
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await wait_until(lambda: len(stack.vllm.requests) == 1)
        kit = stack.veil.dispatcher["kit"]
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(BOB, BOBS, chat_id=GROUP)
            await wait_until(lambda: (GROUP, BOB) in kit.asking)  # waiting for its turn
            stack.telegram.state.set_member(GROUP, BOB, status)  # banned, or gone
            stack.vllm.chat_hold = None
            held.set()
            await final_reply(stack)
            await answered_last(stack)  # Carol asks after Bob: answered, so Bob's turn is over
        asked = [m["content"] for r in stack.vllm.requests for m in r["messages"]]
        to_bob = [
            m for m in replies(stack) if (m.get("reply_to_message") or {}).get("text") == BOBS
        ]
        bobs_charges = [e for e in await stack.veil.credit.history(BOB) if e.kind == "usage"]
    assert to_bob == []
    assert "and what about mine?" not in asked
    assert len(stack.vllm.requests) == 2  # Ann's and Carol's
    assert bobs_charges == []
    assert "groups.asker_gone" in [e["event"] for e in logs]


async def test_a_flood_wait_on_asking_whether_the_asker_stayed_does_not_hold_the_group(
    tmp_path: Path,
) -> None:
    # Whether the asker is still a member is asked of Telegram in the group's turn: a flood
    # wait on that call was waited out (up to the retries' minute) with the turn held, every
    # answer queued behind it waiting too. Not known soon, the question is answered.
    flood = "Too Many Requests: retry after 50"
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        held = asyncio.Event()
        stack.vllm.chat_hold = held  # Ann's answer is being written
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await wait_until(lambda: len(stack.vllm.requests) == 1)
        kit = stack.veil.dispatcher["kit"]
        stack.telegram.send_text(BOB, BOBS, chat_id=GROUP)
        await wait_until(lambda: (GROUP, BOB) in kit.asking)  # waiting for its turn
        stack.telegram.fail_next("getChatMember", status=429, description=flood, retry_after=50)
        with structlog.testing.capture_logs() as logs:
            stack.vllm.chat_hold = None
            held.set()
            await final_reply(stack, 2, within=30)  # a bound, not a measure: the wait is 50 s
        to_bob = [
            m for m in replies(stack) if (m.get("reply_to_message") or {}).get("text") == BOBS
        ]
    assert [m["text"] for m in to_bob] == [ANSWER]
    assert "groups.asker_unknown" in [e["event"] for e in logs]
