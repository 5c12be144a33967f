"""``/stop@veil`` in a group stops the sender's inline answer posted there, as its button does.

A member who asks inline in a group (``@veil question``, the result picked) posts Veil's
answer there; it streams by edits of the inline message, which names no chat. Their
``/stop@veil`` in that group found only questions asked of the group (``GroupKit.asking``):
nothing stopped, and they were told they had no answer being written there, under the one
being written. The group's copy of the posted message, which Telegram sends the bot, now
tells the group router whose answer it is; another member's ``/stop``, or theirs in another
group, still stops nothing, and one of theirs in reply to another member's inline answer is
meant for that answer: it stops nothing of the sender's, who is told so alone. The private
``/cancel`` stops the member's one answer wherever it is written (the "busy" notice sends them
there to stop it): pinned here too.

The real bot long-polls the fake Telegram, through a real gateway to the fake vLLM, which holds
each stream at a token so that a stop lands while the answer is being written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.group_stop_helpers import LONG, asked, closed_holds, held_stack, statuses, told
from tests.harness import wait_until
from tests.test_bot_groups import ANN, BOB, GROUP, QUESTION, final_reply, replies, told_last

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

INLINE_ID = "inline-in-the-group"
OTHER_GROUP = -1_001_234_999
NOTHING = "You have no answer being written here right now."
NOT_YOURS = "Only the person who asked can stop this answer, while it is being written."


async def posted_inline(stack: Stack, user_id: int) -> None:
    """``user_id`` asks inline in the group and posts the answer; wait until it is held, shown."""
    stack.telegram.inline_query(user_id, QUESTION, chat_type="supergroup")
    offered = await stack.telegram.wait_for("answerInlineQuery")
    (result,) = offered.params["results"]
    stack.telegram.choose_inline_result(
        user_id, result["id"], QUESTION, inline_message_id=INLINE_ID, chat_id=GROUP
    )
    await wait_until(lambda: stack.vllm.paused >= 1, within=10)
    await stack.telegram.wait_for(
        "editMessageText",
        lambda c: (
            c.params.get("inline_message_id") == INLINE_ID and "word0" in str(c.params.get("text"))
        ),
    )


def told_alone(stack: Stack, user_id: int) -> list[str]:
    """What ``user_id`` was told alone in the group so far."""
    return [m["text"] for m in stack.telegram.ephemeral_messages(GROUP, user_id)]


def stop_shown(stack: Stack) -> bool:
    """Whether a message of the bot's in the group still shows its stop button."""
    return any(
        str(button.get("callback_data", "")).startswith("stop:")
        for message in replies(stack)
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
        for button in row
    )


def inline_text(stack: Stack) -> str:
    """The inline answer's text, as it stands now."""
    message: dict[str, Any] = stack.telegram.state.inline_messages[INLINE_ID]
    return str(message.get("text"))


async def test_the_askers_stop_in_the_group_ends_their_inline_answer_posted_there(
    tmp_path: Path,
) -> None:
    async with held_stack(tmp_path) as stack:
        await posted_inline(stack, ANN)
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        # Stopped, the answer ends at the gateway's stopped receipt though the model is held;
        # not found, Ann is told she has nothing being written there.
        await wait_until(
            lambda: bool(told_alone(stack, ANN)) or stack.veil.chat.running == 0, within=10
        )
        assert told_alone(stack, ANN) == []
        stack.vllm.resume()
        assert await statuses(stack, ANN) == ["stopped"]  # settled from the stopped receipt
        text = inline_text(stack)
        await told_last(stack)
        assert told_alone(stack, ANN) == []  # the answer shows it stopped
    assert "word0" in text
    assert "word59" not in text  # stopped where it was held, not written whole


async def test_another_members_stop_or_one_in_another_group_leaves_it_alone(
    tmp_path: Path,
) -> None:
    async with held_stack(tmp_path) as stack:
        await posted_inline(stack, ANN)
        stack.telegram.send_text(BOB, "/stop@veil_test_bot", chat_id=GROUP)
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=OTHER_GROUP)
        assert await told(stack, GROUP, BOB) == [NOTHING]
        assert await told(stack, OTHER_GROUP, ANN) == [NOTHING]
        stack.vllm.resume()
        await wait_until(lambda: inline_text(stack).endswith(LONG), within=20)  # written whole
        assert await stack.veil.chat.wait_idle(10)
        ((_, status, _, _),) = await closed_holds(stack, ANN)
    assert status != "stopped"


async def test_a_private_cancel_stops_the_members_answer_in_a_group(tmp_path: Path) -> None:
    # One answer a member at a time, wherever: a question in the private chat while their group
    # answer streams is told to stop that answer with /cancel ("busy"), which stops it there.
    async with held_stack(tmp_path) as stack:
        await asked(stack, ANN)
        stack.telegram.send_text(ANN, "/cancel")
        (final,) = await final_reply(stack)
        assert await statuses(stack, ANN) == ["stopped"]
        said_in_private = stack.telegram.sent_messages(ANN)
    assert "word59" not in final["text"]
    # The private chat says where the stop went: it had said nothing, as if /cancel was unheard.
    assert [m["text"] for m in said_in_private] == [
        stack.veil.catalogs.for_language("en")("cancelled_elsewhere")
    ]


async def test_a_stop_replying_to_anothers_inline_answer_stops_nothing_of_the_senders(
    tmp_path: Path,
) -> None:
    # Bob's /stop in reply to Ann's inline answer, still being written, is meant for it, as its
    # button pressed by him: it stopped his own answer in the group instead, and said nothing.
    async with held_stack(tmp_path) as stack:
        await posted_inline(stack, ANN)
        (posted,) = [m for m in stack.telegram.state.chat_messages(GROUP) if "via_bot" in m]
        await asked(stack, BOB)
        stack.telegram.send_text(
            BOB, "/stop@veil_test_bot", chat_id=GROUP, reply_to=posted["message_id"]
        )
        # Told, or his own answer stopped (its stop button gone) and nothing said.
        await wait_until(lambda: bool(told_alone(stack, BOB)) or not stop_shown(stack), within=10)
        assert told_alone(stack, BOB) == [NOT_YOURS]
        stack.vllm.resume()
        await wait_until(lambda: inline_text(stack).endswith(LONG), within=20)  # Ann's, whole
        (bobs,) = await final_reply(stack)
        assert await stack.veil.chat.wait_idle(10)
    assert bobs["text"] == LONG  # Bob's, whole too
