"""A group opened to comments since its kind was learnt: a commenter's failure is still told.

Since groups23 a failed answer's notice is dropped for an asker gone from the group, and one out
of it now counts as gone where only members write (``GroupKit.members_only``, remembered once a
supergroup). A question that waited in its turn asks Telegram again before believing a kind
remembered as members-only, since its admins may have linked it to a channel open to comments
since; the failure path did not: a commenter who never joined, in a group taken for members-only
by an earlier question, had their "could not answer" dropped as if they had left
(``groups.notice_dropped``), and was told nothing. It now asks again too, as the turn does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import ANSWER, FAST, GROUP
from tests.test_groups23_notice import CHANNEL, public_notices
from tests.test_hostile22a_gone import bob_asks_while_ann_is_answered, let_ann_and_carol_be_answered

if TYPE_CHECKING:
    from pathlib import Path

DAVE = 9204
DAVES = "@veil_test_bot what does the lighthouse keeper eat?"


async def test_a_commenter_in_a_group_opened_since_it_was_asked_about_is_told(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        held = await bob_asks_while_ann_is_answered(stack)  # learns: members only
        await let_ann_and_carol_be_answered(stack, held)
        stack.telegram.state.linked[GROUP] = (CHANNEL, False)  # now anyone may comment
        stack.telegram.state.set_member(GROUP, DAVE, "left")  # Dave never joined
        stack.vllm.fail_before_stream = (400, "The model refused the request.")
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(DAVE, DAVES, chat_id=GROUP)
            await wait_until(
                lambda: (
                    "groups.notice_dropped" in [e["event"] for e in logs]
                    or bool(public_notices(stack))
                ),
                20,
            )
        told = public_notices(stack)
    assert "groups.notice_dropped" not in [e["event"] for e in logs]
    assert len(told) == 1
