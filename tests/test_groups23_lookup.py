"""Whether a queued question's asker is still in the group: asked of Telegram once, never waited.

A question that waited for the group's turn had its asker looked up twice (getChatMember as it
was asked, and again in its turn), though Telegram limits the calls a bot makes about a chat:
the first reading only tells one who left from one who never joined, and only a channel's
discussion group that lets anyone comment takes questions from one who never joined. Where only
members write (Telegram's getChat says so, asked once a group), the turn's look-up alone serves.
A flood wait on that look-up was waited out (up to 3 s) with the group's turn held, every answer
behind it waiting too: a 429 is now an answer like any refusal, and the question answered at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import structlog

from tests.botstack import running_stack
from tests.test_bot_groups import ANSWER, BOB, FAST, GROUP, final_reply
from tests.test_hostile22a_gone import (
    bob_asks_while_ann_is_answered,
    let_ann_and_carol_be_answered,
    to_bob,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

CHANNEL = -1_009_876_543


def about_bob(stack: Stack) -> int:
    """How many times the bot asked Telegram what Bob is in the group."""
    return sum(
        str(call.params.get("user_id")) == str(BOB)
        for call in stack.telegram.calls_of("getChatMember")
    )


@pytest.mark.parametrize(("status", "answered"), [("member", True), ("left", False)])
async def test_a_queued_question_in_a_members_only_group_looks_its_asker_up_once(
    tmp_path: Path, status: str, *, answered: bool
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.set_member(GROUP, BOB, "member")
        with structlog.testing.capture_logs() as logs:
            held = await bob_asks_while_ann_is_answered(stack)
            stack.telegram.state.set_member(GROUP, BOB, status)  # stayed, or left meanwhile
            await let_ann_and_carol_be_answered(stack, held)
        answers = to_bob(stack)
        chats_asked = len(stack.telegram.calls_of("getChat"))
    assert about_bob(stack) == 1
    assert chats_asked == (1 if answered else 2)  # out of it: is the group still closed?
    assert answers == ([ANSWER] if answered else [])
    assert ("groups.asker_gone" in [e["event"] for e in logs]) is not answered


@pytest.mark.parametrize(("status", "answered"), [("left", True), ("kicked", False)])
async def test_a_discussion_group_open_to_comments_still_learns_what_the_asker_was(
    tmp_path: Path, status: str, *, answered: bool
) -> None:
    # Bob comments without joining (Telegram lists him as left): answered, unless banned.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.linked[GROUP] = (CHANNEL, False)
        stack.telegram.state.set_member(GROUP, BOB, "left")
        held = await bob_asks_while_ann_is_answered(stack)
        stack.telegram.state.set_member(GROUP, BOB, status)
        await let_ann_and_carol_be_answered(stack, held)
        answers = to_bob(stack)
    assert about_bob(stack) == 2  # as he asked (left, or never joined?) and in his turn
    assert answers == ([ANSWER] if answered else [])


async def test_a_group_opened_to_comments_since_it_was_asked_about_is_asked_again(
    tmp_path: Path,
) -> None:
    # Taken for members-only, then linked to a channel: Bob, out of it, may never have joined.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.set_member(GROUP, BOB, "left")
        held = await bob_asks_while_ann_is_answered(stack)
        stack.telegram.state.linked[GROUP] = (CHANNEL, False)
        await let_ann_and_carol_be_answered(stack, held)
        answers = to_bob(stack)
        chats_asked = len(stack.telegram.calls_of("getChat"))
    assert answers == [ANSWER]
    assert chats_asked == 2  # as he asked, and again once he read as out of it


async def test_a_flood_wait_on_the_turns_look_up_is_not_waited_out(tmp_path: Path) -> None:
    flood = "Too Many Requests: retry after 50"
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        with structlog.testing.capture_logs() as logs:
            held = await bob_asks_while_ann_is_answered(stack)
            stack.telegram.fail_next(
                "getChatMember", status=429, description=flood, retry_after=50
            )  # the turn's look-up: the only one, the group taking members' messages alone
            stack.vllm.chat_hold = None
            held.set()
            await final_reply(stack, 2, within=30)
        answers = to_bob(stack)
    unknown = [e for e in logs if e["event"] == "groups.asker_unknown"]
    waited = [e for e in logs if e["event"] == "telegram.retry_after"]
    assert answers == [ANSWER]
    assert [e["error"] for e in unknown] == ["TelegramRetryAfter"]  # not cut off at 3 s
    assert waited == []
    assert about_bob(stack) == 1
