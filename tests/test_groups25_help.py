"""``/help`` and ``/start@veil`` in a group: how to use Veil there, told to the sender alone.

They went unanswered in a group (its router took no such command, and the private chat's
handlers read private chats alone), as if Veil were broken. ``/help`` is in the group's menu,
which sends it bare where Veil is the only bot: a bare one is told too (to its sender alone). A
bare ``/start`` may be another bot's: silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.groups import Groups
from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import ANN, BOB, FAST, GROUP, replies, told_last

if TYPE_CHECKING:
    from pathlib import Path

HELP = (
    "In a group, ask me with /ask your question, by mentioning me, or by replying to one of my"
    " answers; each answer is charged to whoever asked. /stop stops your answer being written."
    " Credit, settings and your private conversations are in our private chat."
)
QUIET_GROUP = -1_001_234_777


async def test_help_and_start_naming_veil_are_told_alone_and_a_bare_start_is_silent(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **FAST) as stack:
        await Groups(stack.veil.store).set(QUIET_GROUP, "answers", on=False)
        stack.telegram.send_text(BOB, "/start", chat_id=GROUP)
        stack.telegram.send_text(BOB, "/help@veil_test_bot", chat_id=QUIET_GROUP)
        stack.telegram.send_text(ANN, "/help@veil_test_bot", chat_id=GROUP)
        await wait_until(lambda: len(stack.telegram.ephemeral_messages(GROUP, ANN)) == 1, 10)
        # (one after the other: the same notice is not queued twice while it waits its turn)
        stack.telegram.send_text(ANN, "/START@Veil_Test_Bot", chat_id=GROUP)
        await wait_until(lambda: len(stack.telegram.ephemeral_messages(GROUP, ANN)) == 2, 10)
        assert [m["text"] for m in stack.telegram.ephemeral_messages(GROUP, ANN)] == [HELP] * 2
        await told_last(stack)
        await told_last(stack, QUIET_GROUP)
        assert stack.telegram.ephemeral_messages(GROUP, BOB) == []
        assert stack.telegram.ephemeral_messages(QUIET_GROUP, BOB) == []
        assert replies(stack) == []  # nothing public
        assert stack.vllm.requests == []


async def test_a_bare_help_as_the_group_menu_sends_it_is_told_alone(tmp_path: Path) -> None:
    """The menu's tap sends ``/help`` without ``@veil`` where Veil is the group's only bot."""
    async with running_stack(tmp_path, **FAST) as stack:
        await Groups(stack.veil.store).set(QUIET_GROUP, "answers", on=False)
        stack.telegram.send_text(BOB, "/help", chat_id=QUIET_GROUP)
        stack.telegram.send_text(BOB, "/Help", chat_id=GROUP)
        await wait_until(lambda: len(stack.telegram.ephemeral_messages(GROUP, BOB)) == 1, 10)
        assert [m["text"] for m in stack.telegram.ephemeral_messages(GROUP, BOB)] == [HELP]
        await told_last(stack, QUIET_GROUP)
        assert stack.telegram.ephemeral_messages(QUIET_GROUP, BOB) == []
        assert replies(stack) == []
        assert stack.vllm.requests == []
