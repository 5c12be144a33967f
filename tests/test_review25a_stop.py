"""Hostile review of ``/stop`` in a group: who it stops, and who hears of it.

The real bot long-polls the fake Telegram, through a real gateway to the fake vLLM, which holds
each stream at a token (``tests.group_stop_helpers.held_model``) so a stop lands while the
answer is being written; the books are checked as ``audit`` checks them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.books import inconsistent_users
from tests.botstack import running_stack
from tests.group_stop_helpers import (
    LONG,
    WITHDRAWN,
    asked,
    behind_bob,
    charged,
    closed_holds,
    flood_next_edit,
    held_model,
    held_stack,
    statuses,
    told,
    waiting,
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
    message_id_of,
    replies,
    told_last,
)

if TYPE_CHECKING:
    from pathlib import Path

NOT_YOURS = "Only the person who asked can stop this answer, while it is being written."
CHANNEL = -1_009_876_543


async def test_a_stop_replying_to_another_members_answer_keeps_the_senders_question(
    tmp_path: Path,
) -> None:
    # Ann replies /stop to Bob's answer as it streams, as she would press its button: it was
    # her own question, waiting for its turn, that was withdrawn, and Bob's went on.
    async with held_stack(tmp_path) as stack:
        bobs = await behind_bob(stack)
        stack.telegram.send_text(
            ANN, "/stop@veil_test_bot", chat_id=GROUP, reply_to=bobs["message_id"]
        )
        assert await told(stack, GROUP, ANN) == [NOT_YOURS]
        stack.vllm.pauses = set()
        stack.vllm.resume()
        finals = await final_reply(stack, count=2)
        assert [m["text"] for m in finals] == [LONG, LONG]  # Bob's whole, then Ann's
        assert finals[1]["reply_to_message"]["text"] == "@veil_test_bot and mine?"
        assert await statuses(stack, ANN) == ["complete"]
        assert await inconsistent_users(stack.veil.store) == []


async def test_a_stop_replying_to_ones_own_answer_stops_it(tmp_path: Path) -> None:
    async with held_stack(tmp_path) as stack:
        await asked(stack, ANN)
        (anns,) = replies(stack)
        stack.telegram.send_text(ANN, "/stop", chat_id=GROUP, reply_to=anns["message_id"])
        (final,) = await final_reply(stack)
        assert "word59" not in final["text"]
        assert await statuses(stack, ANN) == ["stopped"]
        assert await inconsistent_users(stack.veil.store) == []
        assert stack.telegram.ephemeral_messages(GROUP, ANN) == []


async def test_a_stop_sent_as_a_chat_gets_no_public_reply(tmp_path: Path) -> None:
    # A chat (an anonymous admin, a channel) never has an answer to stop, and cannot be told
    # alone: "You have no answer being written here" went up as a public reply to each.
    async with running_stack(tmp_path, **FAST) as stack:
        stack.telegram.send_as_chat("/stop@veil_test_bot", chat_id=GROUP)
        stack.telegram.send_as_chat("/cancel@veil_test_bot", chat_id=GROUP, channel_id=CHANNEL)
        carols = await answered_last(stack)  # after anything they were sent
        assert replies(stack) == [carols]


async def test_a_withdrawn_question_leaves_the_books_square_and_the_next_asked_in_order(
    tmp_path: Path,
) -> None:
    async with held_stack(tmp_path) as stack:
        await behind_bob(stack, "first?")
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        assert await told(stack, GROUP, ANN) == [WITHDRAWN]
        await waiting(stack, ANN, "second?")  # asked at once
        stack.vllm.pauses = set()
        stack.vllm.resume()
        finals = await final_reply(stack, count=2)
        assert [m["reply_to_message"]["text"] for m in finals] == [
            f"@veil_test_bot {QUESTION}",
            "@veil_test_bot second?",
        ]
        assert await statuses(stack, ANN) == ["complete"]
        assert (await stack.veil.credit.balance(ANN)).held == 0
        assert await inconsistent_users(stack.veil.store) == []
        assert stack.telegram.ephemeral_messages(GROUP, ANN)[1:] == []  # told once


async def test_help_sent_as_a_chat_gets_no_public_reply(tmp_path: Path) -> None:
    # Each /help@veil a channel posted got Veil's help as a public reply, kept: a channel (or an
    # anonymous admin) could fill the group with it, at the group's pace.
    async with running_stack(tmp_path, **FAST) as stack:
        stack.telegram.send_as_chat("/help@veil_test_bot", chat_id=GROUP, channel_id=CHANNEL)
        stack.telegram.send_as_chat("/start@veil_test_bot", chat_id=GROUP)
        carols = await answered_last(stack)  # after anything they were sent
        assert replies(stack) == [carols]


async def test_no_forwarded_edited_or_other_bots_stop_stops_an_answer(tmp_path: Path) -> None:
    # Telegram sends every message when privacy mode is off: "/stop@other_bot" reaches Veil too.
    async with held_stack(tmp_path) as stack:
        stack.telegram.state.privacy_mode = False
        assert stack.telegram.send_text(ANN, "hello all", chat_id=GROUP)
        said = message_id_of(stack, "hello all")
        await asked(stack, ANN)
        stack.telegram.send_text(ANN, "/stop@other_bot", chat_id=GROUP)
        stack.telegram.forward_text(ANN, "/stop@veil_test_bot", author=BOB, chat_id=GROUP)
        stack.telegram.edit_text(ANN, said, "/stop@veil_test_bot", chat_id=GROUP)
        await told_last(stack)  # all three handled: the answer still streams
        stack.vllm.resume()
        (final,) = await final_reply(stack)
        assert final["text"] == LONG
        assert await statuses(stack, ANN) == ["complete"]
        assert stack.telegram.ephemeral_messages(GROUP, ANN) == []


async def test_a_stop_as_the_final_edit_waits_out_a_flood_leaves_the_answer_whole(
    tmp_path: Path,
) -> None:
    async with held_stack(tmp_path) as stack:
        await asked(stack, ANN)
        flood_next_edit(stack, 2)
        stack.vllm.resume()
        await charged(stack, ANN)  # the stream ended: the final edit waits out the flood
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        (final,) = await final_reply(stack)
        assert final["text"] == LONG  # not "Stopped.", nor cut
        assert await statuses(stack, ANN) == ["complete"]
        assert await inconsistent_users(stack.veil.store) == []


async def test_a_stop_while_a_flood_holds_the_answers_edit_is_charged_as_stopped(
    tmp_path: Path,
) -> None:
    model = held_model()
    model.pauses = {12, 30}
    async with held_stack(tmp_path, model) as stack:
        await asked(stack, ANN)
        flood_next_edit(stack, 3)
        stack.vllm.resume()  # to token 30: the edit that shows it waits out the flood
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        (final,) = await final_reply(stack)
        assert final["text"].startswith("word0")
        assert "word59" not in final["text"]
        assert await stack.veil.chat.wait_idle(10)
        ((_, status, completion, _),) = await closed_holds(stack, ANN)
        assert status == "stopped"
        assert 0 < completion < len(LONG.split())
        assert (await stack.veil.credit.balance(ANN)).held == 0
        assert await inconsistent_users(stack.veil.store) == []
        assert stack.telegram.ephemeral_messages(GROUP, ANN) == []


async def test_a_stop_replying_to_another_members_whole_answer_held_by_a_flood_is_theirs(
    tmp_path: Path,
) -> None:
    # Bob's answer stands whole, but its last edit waits out a flood: the group still sees it
    # with its stop button. Ann's /stop replying to it was taken as hers: her question went.
    async with held_stack(tmp_path) as stack:
        bobs = await behind_bob(stack)
        flood_next_edit(stack, 5)
        stack.vllm.pauses = set()
        stack.vllm.resume()
        await charged(stack, BOB)  # Bob's stream ended: his last edit waits out the flood
        assert stack.veil.dispatcher["kit"].asking[GROUP, BOB].written
        stack.telegram.send_text(
            ANN, "/stop@veil_test_bot", chat_id=GROUP, reply_to=bobs["message_id"]
        )
        assert await told(stack, GROUP, ANN) == [NOT_YOURS]
        finals = await final_reply(stack, count=2)
        assert [m["text"] for m in finals] == [LONG, LONG]  # Bob's, then Ann's
        assert await statuses(stack, ANN) == ["complete"]
