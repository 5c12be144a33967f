"""A question from someone who never joined the group: answered in its turn, as any.

A channel's discussion group lets anyone comment under the channel's posts without joining
it (Telegram's "join to send messages" is off there by default), and Telegram lists such a
commenter as ``left`` (getChatMember answers ChatMemberLeft for anyone not in the group). A
question that waited its turn was let go when its asker's status read ``left``, as if they
had left while it waited: a commenter who asked while another answer was written got nothing,
not even a word why. Only one who was in the group when they asked and is out of it in their
turn (left, or banned), or one banned meanwhile whatever they were, is let go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import (
    ANSWER,
    BOB,
    FAST,
    GROUP,
)
from tests.test_hostile22a_gone import (
    bob_asks_while_ann_is_answered,
    let_ann_and_carol_be_answered,
    to_bob,
)

if TYPE_CHECKING:
    from pathlib import Path

CHANNEL = -1_009_876_543  # the channel whose discussion group GROUP is


async def test_a_commenter_who_never_joined_is_answered_after_waiting_their_turn(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.linked[GROUP] = (CHANNEL, False)  # a channel's, open to comments
        stack.telegram.state.set_member(GROUP, BOB, "left")  # comments without joining
        with structlog.testing.capture_logs() as logs:
            held = await bob_asks_while_ann_is_answered(stack)
            await let_ann_and_carol_be_answered(stack, held)
        answers = to_bob(stack)
        bobs_charges = [e for e in await stack.veil.credit.history(BOB) if e.kind == "usage"]
    assert answers == [ANSWER]
    assert len(bobs_charges) == 1
    assert "groups.asker_gone" not in [e["event"] for e in logs]


async def test_a_commenter_banned_while_waiting_gets_no_answer(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.linked[GROUP] = (CHANNEL, False)  # a channel's, open to comments
        stack.telegram.state.set_member(GROUP, BOB, "left")  # comments without joining
        with structlog.testing.capture_logs() as logs:
            held = await bob_asks_while_ann_is_answered(stack)
            # Banned once the bot has learnt what he was when he asked.
            await wait_until(lambda: len(stack.telegram.calls_of("getChatMember")) >= 1)
            stack.telegram.state.set_member(GROUP, BOB, "kicked")
            await let_ann_and_carol_be_answered(stack, held)
        answers = to_bob(stack)
        bobs_charges = [e for e in await stack.veil.credit.history(BOB) if e.kind == "usage"]
    assert answers == []
    assert bobs_charges == []
    assert "groups.asker_gone" in [e["event"] for e in logs]
