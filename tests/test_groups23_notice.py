"""A failed answer's notice for an asker who is gone from the group: not posted to the group.

A notice for one member goes to them alone (an ephemeral message); Telegram takes none for one
out of the group, and the notice fell back to a reply in the group: "The model could not answer
this time" under the question of a member who had left, or been banned, for everyone who stayed
to read. Such a notice is now dropped (``groups.notice_dropped``), the placeholder taken back.
A commenter who never joined a channel's discussion group is still told (the reply is the one
way to reach them, and they read the thread they wrote in).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
import structlog

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import ANSWER, BOB, FAST, GROUP, replies
from tests.test_hostile22a_gone import BOBS

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

CHANNEL = -1_009_876_543
FAILED = "The model could not answer this time. Please try again."


def public_notices(stack: Stack) -> list[str]:
    """The texts of the failure notice the bot sent into the group for everyone to see."""
    return [
        str(call.params.get("text"))
        for call in stack.telegram.calls_of("sendMessage")
        if call.answered == "ok"
        and "ephemeral_message_parameters" not in call.params
        and call.params.get("text") == FAILED
    ]


@pytest.mark.parametrize(
    ("kind", "status"),
    [("members_only", "left"), ("members_only", "kicked"), ("unknown", "kicked")],
)
async def test_a_failure_is_not_told_in_the_group_to_an_asker_gone_from_it(
    tmp_path: Path, kind: str, status: str
) -> None:
    # "unknown": Telegram does not say what the group is (getChat fails): a ban still tells.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        if kind == "unknown":
            stack.telegram.fail_next(
                "getChat", status=500, description="Internal Server Error", count=99
            )
        stack.telegram.state.set_member(GROUP, BOB, "member")
        held = asyncio.Event()
        stack.vllm.chat_hold = held
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(BOB, BOBS, chat_id=GROUP)
            await wait_until(lambda: len(stack.vllm.requests) == 1)  # his placeholder is up
            stack.telegram.state.set_member(GROUP, BOB, status)  # left, or banned, meanwhile
            stack.vllm.fail_before_stream = (400, "The model refused the request.")
            held.set()
            await wait_until(
                lambda: (
                    "groups.notice_dropped" in [e["event"] for e in logs]
                    or bool(public_notices(stack))
                ),
                20,
            )
            await stack.telegram.wait_for("deleteMessage")  # the placeholder taken back
        notices = public_notices(stack)
        ephemeral = stack.telegram.ephemeral_messages(GROUP, BOB)
        left = [m for m in replies(stack) if m.get("text") == FAILED]
    assert notices == []
    assert ephemeral == []
    assert left == []
    assert [e for e in logs if e["event"] == "groups.notice_dropped"]


async def test_a_commenter_who_never_joined_is_still_told_their_answer_failed(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.linked[GROUP] = (CHANNEL, False)  # anyone may comment unjoined
        stack.telegram.state.set_member(GROUP, BOB, "left")  # never joined
        stack.vllm.fail_before_stream = (400, "The model refused the request.")
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(BOB, BOBS, chat_id=GROUP)
            await wait_until(lambda: bool(public_notices(stack)), 20)
    assert "groups.notice_dropped" not in [e["event"] for e in logs]


async def test_no_credit_is_told_without_asking_telegram_whether_the_asker_stayed(
    tmp_path: Path,
) -> None:
    # Refused as the answer begins: Bob asked a moment before; no getChatMember is spent.
    async with running_stack(tmp_path, free_tokens_per_day=0, **FAST) as stack:
        stack.telegram.send_text(BOB, BOBS, chat_id=GROUP)
        await wait_until(lambda: bool(stack.telegram.ephemeral_messages(GROUP, BOB)), 20)
        looked_up = stack.telegram.calls_of("getChatMember")
    assert looked_up == []
