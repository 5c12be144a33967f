"""``/stop`` while the answer's placeholder waits for its slot: withdrawn, nothing posted.

In its turn, the placeholder may wait for the group's pace (another call took the slot) or for
a flood wait Telegram told after refusing a first try. A stop then marked the question withdrawn,
yet the placeholder still went up and was edited to "Stopped.": two of the group's slots for
nothing, and the asker heard nothing until then. Now the post looks again once its slot has
come, right before it goes out: nothing is posted, the asker alone is told as for a question
still waiting for its turn, nothing is asked of the model or charged, and the slot goes on to
the next call (here, that notice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.group_stop_helpers import WITHDRAWN, closed_holds, told
from tests.harness import wait_until
from tests.test_bot_groups import ANN, FAST, GROUP, QUESTION, answered_last, replies

if TYPE_CHECKING:
    from pathlib import Path

    from handlers.groups.kit import GroupKit
    from tests.botstack import Stack

FLOOD_WAIT = 3  # seconds Telegram asks the bot to wait, told with its refusal
HELD_FOR = 4.0  # seconds the group's next slot is away as Ann's turn comes


def placeholders_sent(stack: Stack) -> list[str]:
    """What the sendMessage calls into the group that Telegram took were, but notices."""
    return [
        str(call.params.get("text"))
        for call in stack.telegram.calls_of("sendMessage")
        if call.params.get("chat_id") == GROUP
        and call.answered == "ok"
        and "ephemeral_message_parameters" not in call.params
    ]


def in_turn(kit: GroupKit) -> bool:
    """Whether Ann's question has its turn (its stop button's tag made, before the post)."""
    answer = kit.asking.get((GROUP, ANN))
    return answer is not None and answer.stop_tag is not None


async def withdrawn_unposted(stack: Stack) -> None:
    """Ann is told alone; nothing of hers went up, was asked or charged; the group goes on."""
    assert await told(stack, GROUP, ANN) == [WITHDRAWN]
    carols = await answered_last(stack)  # her turn came after Ann's ended
    assert replies(stack) == [carols]  # no placeholder of Ann's, nor "Stopped."
    assert len(placeholders_sent(stack)) == 1  # Carol's alone
    assert len(stack.vllm.requests) == 1  # Carol's
    assert await closed_holds(stack, ANN) == []
    assert (await stack.veil.credit.balance(ANN)).held == 0


async def test_a_stop_as_the_placeholder_waits_out_a_flood_wait_posts_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **FAST) as stack:
        stack.telegram.fail_next(
            "sendMessage",
            status=429,
            description=f"Too Many Requests: retry after {FLOOD_WAIT}",
            retry_after=FLOOD_WAIT,
        )
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await stack.telegram.wait_for(
            "sendMessage", lambda c: c.params.get("chat_id") == GROUP
        )  # the placeholder's first try, refused: the next waits out the flood
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        await withdrawn_unposted(stack)


async def test_a_stop_as_the_placeholder_waits_for_the_groups_pace_posts_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **FAST) as stack:
        kit = stack.veil.dispatcher["kit"]
        kit.editors.group_pacers(GROUP).back_off(HELD_FOR)  # the group's next slot is away
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await wait_until(lambda: in_turn(kit), within=10)  # its placeholder waits for its slot
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        await withdrawn_unposted(stack)
