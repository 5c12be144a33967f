"""``/stop`` and ``/cancel`` in a group: the sender's own answer there stops, as its button does.

They were silent in a group (its router took no command but ``/ask``, ``/groupsettings``,
``/terms`` and ``/paysupport``): a member could stop their answer with its button alone. The
real bot long-polls the fake Telegram, through a real gateway to the fake vLLM, which holds
each stream at a token (``pauses``) so a stop lands while the answer is being written.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from tests.botstack import TOKEN, running_stack
from tests.fakes.gated import GatedTelegram
from tests.group_stop_helpers import (
    LONG,
    WITHDRAWN,
    asked,
    behind_bob,
    closed_holds,
    held_stack,
    statuses,
    told,
)
from tests.harness import wait_until
from tests.test_bot_groups import (
    ANN,
    BOB,
    FAST,
    GROUP,
    QUESTION,
    answered_last,
    final_reply,
    replies,
    told_last,
)

if TYPE_CHECKING:
    from pathlib import Path

OTHER_GROUP = -1_001_234_999
TOPIC = 7
NOTHING = "You have no answer being written here right now."


@pytest.mark.parametrize("command", ["/stop@veil_test_bot", "/CANCEL@Veil_Test_Bot now please"])
async def test_the_askers_stop_command_ends_their_answer_as_the_button_does(
    tmp_path: Path, command: str
) -> None:
    async with held_stack(tmp_path) as stack:
        await asked(stack, ANN)
        stack.telegram.send_text(ANN, command, chat_id=GROUP)
        (final,) = await final_reply(stack)
        assert await stack.veil.chat.wait_idle(10)
        assert final["text"].startswith("word0")
        assert "word59" not in final["text"]  # stopped where it was held, not written whole
        (hold,) = await closed_holds(stack, ANN)
        assert hold[1] == "stopped"  # settled from the gateway's stopped receipt
        assert 0 < hold[2] < len(LONG.split())  # charged for the part written
        assert (await stack.veil.credit.balance(ANN)).held == 0
        assert stack.telegram.ephemeral_messages(GROUP, ANN) == []  # the answer shows it


async def test_a_stop_elsewhere_or_by_another_member_leaves_the_answer_alone(
    tmp_path: Path,
) -> None:
    async with held_stack(tmp_path) as stack:
        await asked(stack, ANN)
        stack.telegram.send_text(BOB, "/stop@veil_test_bot", chat_id=GROUP)
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=OTHER_GROUP)
        stack.telegram.send_text(ANN, "/cancel@veil_test_bot", chat_id=GROUP, thread_id=TOPIC)
        assert await told(stack, GROUP, BOB) == [NOTHING]
        assert await told(stack, OTHER_GROUP, ANN) == [NOTHING]
        assert await told(stack, GROUP, ANN) == [NOTHING]  # in the topic, not where she asked
        assert stack.veil.chat.cancel(BOB) is False  # nothing of Bob's runs either
        stack.vllm.resume()
        (final,) = await final_reply(stack)
        assert final["text"] == LONG  # written whole
        assert await stack.veil.chat.wait_idle(10)
        ((_, status, _, _),) = await closed_holds(stack, ANN)
        assert status != "stopped"


async def test_a_stop_in_a_group_leaves_the_members_private_answer_alone(tmp_path: Path) -> None:
    async with held_stack(tmp_path) as stack:
        stack.telegram.send_text(ANN, QUESTION)
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        assert await told(stack, GROUP, ANN) == [NOTHING]
        stack.vllm.resume()
        (final,) = await stack.final_messages(ANN)
        assert final["text"] == LONG


async def test_a_bare_stop_stops_the_senders_answer_and_tells_them_alone_with_none(
    tmp_path: Path,
) -> None:
    # The group's command menu holds /stop, and Telegram's apps send a command tapped there
    # bare where Veil is the group's only bot: with nothing of the sender's to stop, they are
    # told so alone, as /stop@veil is. A bare /cancel, in no menu of Veil's there and many
    # bots' own command, may be another bot's: Veil says nothing to it.
    async with held_stack(tmp_path) as stack:
        stack.telegram.send_text(BOB, "/stop", chat_id=GROUP)
        assert await told(stack, GROUP, BOB) == [NOTHING]
        stack.telegram.send_text(BOB, "/cancel", chat_id=GROUP)
        await asked(stack, ANN)
        stack.telegram.send_text(ANN, "/stop", chat_id=GROUP)
        (final,) = await final_reply(stack)
        assert "word59" not in final["text"]
        assert await statuses(stack, ANN) == ["stopped"]
        await told_last(stack)  # everything sent before it was handled
        assert [m["text"] for m in stack.telegram.ephemeral_messages(GROUP, BOB)] == [NOTHING]
        assert stack.telegram.ephemeral_messages(GROUP, ANN) == []


async def test_a_stop_while_the_question_waits_withdraws_it_unasked(tmp_path: Path) -> None:
    async with held_stack(tmp_path) as stack:
        await behind_bob(stack)
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        assert await told(stack, GROUP, ANN) == [WITHDRAWN]
        stack.vllm.pauses = set()
        stack.vllm.resume()
        (bobs,) = await final_reply(stack)
        assert bobs["text"] == LONG  # Bob's answer goes on
        carols = await answered_last(stack)  # her turn came after Ann's
        assert replies(stack) == [bobs, carols]  # nothing posted for Ann's
        assert len(stack.vllm.requests) == 2  # Bob's and Carol's
        assert await closed_holds(stack, ANN) == []  # nothing held, nothing charged


async def test_a_stop_as_the_placeholder_goes_up_ends_it_before_a_word(tmp_path: Path) -> None:
    telegram = GatedTelegram(token=TOKEN)
    telegram.hold_messages_to(GROUP)
    async with running_stack(tmp_path, telegram_server=telegram, **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        async with asyncio.timeout(10):
            await telegram.holding.wait()  # the placeholder is being posted
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        await wait_until(
            lambda: stack.veil.dispatcher["kit"].asking[GROUP, ANN].withdrawn, within=10
        )
        telegram.release_messages()
        (final,) = await final_reply(stack)
        assert final["text"] == "Stopped."  # as a stop button pressed before a word says
        assert stack.vllm.requests == []
        assert stack.telegram.ephemeral_messages(GROUP, ANN) == []
