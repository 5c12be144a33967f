"""A getChat refused while the bot was out of a group is not held against it once it is back.

``GroupKit.members_only`` does not ask getChat again for 10 minutes after Telegram refused it
(400 "chat not found", 403): its considered answer about the chat, that the bot is not in it.
Readded meanwhile (the group's admins took the bot out and put it back), the bot is in the
group again, and posts there: yet the refusal stood its 10 minutes, and each question was
looked up as where Telegram does not say what the group is. An asker who left a
members-only group, whose answer then failed, was taken for a commenter who might never have
joined: the failure notice went up as a reply in the group, naming one no longer there, for
everyone who stayed to read (what ``groups.notice_dropped`` exists to prevent). A post Telegram
takes in the group (a placeholder) now ends such a refusal: the next question asks again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import ANN, ANSWER, BOB, FAST, GROUP, QUESTION, replies
from tests.test_groups23_notice import FAILED, public_notices
from tests.test_hostile22a_gone import BOBS

if TYPE_CHECKING:
    from pathlib import Path

DAVE = 9204
DAVES = "@veil_test_bot what does the lighthouse keeper eat?"
KICKED = "Forbidden: bot was kicked from the supergroup chat"


async def test_a_get_chat_refused_while_the_bot_was_out_does_not_outlast_its_return(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        for member in (ANN, BOB, DAVE):
            stack.telegram.state.set_member(GROUP, member, "member")
        held = asyncio.Event()
        stack.vllm.chat_hold = held
        kit = stack.veil.dispatcher["kit"]
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            await wait_until(lambda: len(stack.vllm.requests) == 1)
            # Dave asks behind Ann; as he waits, the bot is out of the group a moment: getChat
            # about it is refused. It is back before his turn, and answers him there.
            stack.telegram.fail_next("getChat", status=403, description=KICKED)
            stack.telegram.send_text(DAVE, DAVES, chat_id=GROUP)
            await stack.telegram.wait_for("getChat", lambda call: call.answered == KICKED)
            stack.vllm.chat_hold = None
            held.set()
            await wait_until(lambda: len(stack.vllm.requests) == 2)  # Dave's, in its turn
            await wait_until(lambda: not kit.asking, 20)  # both answered
            # Bob asks; he leaves the members-only group as his answer fails.
            hold = asyncio.Event()
            stack.vllm.chat_hold = hold
            stack.telegram.send_text(BOB, BOBS, chat_id=GROUP)
            await wait_until(lambda: len(stack.vllm.requests) == 3)  # his placeholder is up
            stack.telegram.state.set_member(GROUP, BOB, "left")
            stack.vllm.fail_before_stream = (400, "The model refused the request.")
            hold.set()
            await wait_until(
                lambda: (
                    "groups.notice_dropped" in [e["event"] for e in logs]
                    or bool(public_notices(stack))
                ),
                20,
            )
        notices = public_notices(stack)
        left = [m for m in replies(stack) if m.get("text") == FAILED]
    assert notices == []
    assert left == []
    assert "groups.notice_dropped" in [e["event"] for e in logs]
