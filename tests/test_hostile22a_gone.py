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

    from tests.botstack import Stack

BOBS = "@veil_test_bot and what about mine?"


async def bob_asks_while_ann_is_answered(stack: Stack) -> asyncio.Event:
    """Ann's answer held while being written, Bob's question waiting for its turn.

    Set the returned event (with ``stack.vllm.chat_hold = None``) to let Ann's answer end.
    """
    held = asyncio.Event()
    stack.vllm.chat_hold = held
    stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
    await wait_until(lambda: len(stack.vllm.requests) == 1)
    kit = stack.veil.dispatcher["kit"]
    stack.telegram.send_text(BOB, BOBS, chat_id=GROUP)
    await wait_until(lambda: (GROUP, BOB) in kit.asking)  # waiting for its turn
    # What Bob was as he asked, learnt beside his wait: done before a test changes it or
    # makes Telegram refuse the next look-up (under load it came after, and took that). Where
    # only members write, the group's kind (getChat) says it; in a channel's discussion group
    # open to comments, his membership then.
    if GROUP in stack.telegram.state.linked:
        await stack.telegram.wait_for(
            "getChatMember", lambda call: str(call.params.get("user_id")) == str(BOB)
        )
    else:
        await stack.telegram.wait_for("getChat")
    return held


async def let_ann_and_carol_be_answered(stack: Stack, held: asyncio.Event) -> None:
    """Let Ann's answer end, then wait until Bob's turn is over (Carol, after him, answered)."""
    stack.vllm.chat_hold = None
    held.set()
    await final_reply(stack)
    await answered_last(stack)  # Carol asks after Bob: answered, so Bob's turn is over


def to_bob(stack: Stack) -> list[str]:
    """The texts the bot posted in reply to Bob's question."""
    return [
        m["text"] for m in replies(stack) if (m.get("reply_to_message") or {}).get("text") == BOBS
    ]


@pytest.mark.parametrize("status", ["kicked", "left"])
async def test_a_member_gone_before_their_turn_gets_no_answer_and_pays_nothing(
    tmp_path: Path, status: str
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        with structlog.testing.capture_logs() as logs:
            held = await bob_asks_while_ann_is_answered(stack)
            stack.telegram.state.set_member(GROUP, BOB, status)  # banned, or gone
            await let_ann_and_carol_be_answered(stack, held)
        asked = [m["content"] for r in stack.vllm.requests for m in r["messages"]]
        answers = to_bob(stack)
        bobs_charges = [e for e in await stack.veil.credit.history(BOB) if e.kind == "usage"]
    assert answers == []
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
        held = await bob_asks_while_ann_is_answered(stack)
        stack.telegram.fail_next("getChatMember", status=429, description=flood, retry_after=50)
        with structlog.testing.capture_logs() as logs:
            stack.vllm.chat_hold = None
            held.set()
            await final_reply(stack, 2, within=30)  # a bound, not a measure: the wait is 50 s
        answers = to_bob(stack)
    assert answers == [ANSWER]
    assert "groups.asker_unknown" in [e["event"] for e in logs]
