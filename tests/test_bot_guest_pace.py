"""Guest answers in one group share that group's pace, as Telegram counts their edits there.

A guest answer is a message the bot posts into a group it is not a member of
(``answerGuestQuery``), then edits as the answer streams. Telegram counts those posts and edits
against the group's ~20 messages a minute like any other; the bot paced each guest answer by
its own inline message instead, so several members summoning it at once in one group went
past the group's limit together and met flood waits (up to minutes, in production).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

GROUP = -1_009_111_222  # a group the bot is not a member of: only guest queries reach it
MEMBERS = range(9401, 9405)
ANSWER = " ".join(f"word{n}" for n in range(120))
NO_CREDIT = "Not enough credit for an answer. Top up in the private chat with Veil."


async def test_guest_answers_summoned_at_once_in_one_group_keep_within_its_limit(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path,
        answer=ANSWER,
        token_delay=0.01,
        edit_interval=0.2,
        group_messages_per_minute=180,  # 3 a second
    ) as stack:
        stack.telegram.limit_groups(5, window=1.0)  # the group's limit: 5 a second
        for member in MEMBERS:
            stack.telegram.guest_message(member, f"@veil_test_bot question {member}", chat_id=GROUP)

        def answered() -> int:
            messages = stack.telegram.state.sent_messages(GROUP)
            return sum(1 for m in messages if str(m.get("text", "")).endswith(ANSWER))

        await wait_until(lambda: answered() == len(MEMBERS), within=60)
        assert stack.telegram.floods == []


async def test_guest_answers_refused_at_once_in_one_group_tell_it_within_its_limit(
    tmp_path: Path,
) -> None:
    # Members without credit summon the bot at once: each guest answer is posted, then its
    # placeholder replaced by the refusal. The refusals were paced by their own inline
    # messages, not by the group, so they all went out at once on top of the posts, past the
    # group's limit, into flood waits.
    async with running_stack(
        tmp_path,
        free_tokens_per_day=0,
        group_messages_per_minute=180,  # 3 a second
    ) as stack:
        stack.telegram.limit_groups(5, window=1.0)  # the group's limit: 5 a second
        for member in MEMBERS:
            stack.telegram.guest_message(member, f"@veil_test_bot question {member}", chat_id=GROUP)

        def refused() -> int:
            messages = stack.telegram.state.sent_messages(GROUP)
            return sum(1 for m in messages if str(m.get("text", "")) == NO_CREDIT)

        await wait_until(lambda: refused() == len(MEMBERS), within=60)
        assert stack.telegram.floods == []
