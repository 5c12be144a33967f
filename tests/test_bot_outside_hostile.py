"""Inline, guest and group answers when the model or Telegram fails them mid-answer.

The real bot long-polls the fake Telegram, through a real gateway to the fake vLLM (its
planned failures: a connection cut, an SSE error, an empty answer). What each checks: the user
sees either the part of the answer that arrived (paid for, by the receipt) with a note that it
broke off there, or a notice where the answer would have been, never a placeholder left with its
stop button; and the books agree afterwards (no hold left open).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import TYPE_CHECKING, Any

import structlog

from tests.books import inconsistent_users
from tests.botstack import Stack, running_stack
from tests.test_bot_groups import GROUP, final_reply, photo_asking, replies
from tests.test_bot_inline import ANSWER, QUESTION, ask_inline, edits_of, final_edit

if TYPE_CHECKING:
    from pathlib import Path

ANN, BOB, CAT = 9401, 9402, 9403
FAST: dict[str, Any] = {"edit_interval": 0.2, "group_messages_per_minute": 900}
BROKE_OFF = (
    "⚠️ The answer broke off here: the model failed while writing it. "
    "Ask again for the whole answer."
)
NO_ANSWER = "The model could not answer this time. Please try again."
HEADER = f"❓ {QUESTION}\n\n"


async def settled(stack: Stack, *users: int) -> None:
    """Wait until every answer has ended; then no credit is held and the books agree."""
    assert await stack.veil.chat.wait_idle(10)
    for user in users:
        assert (await stack.veil.credit.balance(user)).held == 0
    assert await inconsistent_users(stack.veil.store) == []


async def charged(stack: Stack, user: int) -> int:
    """Tokens the user's answers were charged for (free tokens count too), from the ledger."""
    entries = await stack.veil.credit.history(user, limit=50)
    return -sum(entry.amount for entry in entries if entry.kind == "usage")


async def test_an_answer_that_breaks_off_keeps_the_part_shown_with_a_note(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, token_delay=0.01, **FAST) as stack:
        stack.vllm.error_mid_stream_after = 12
        _, inline_id = await ask_inline(stack, ANN, QUESTION)
        stack.telegram.send_text(BOB, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        final = await final_edit(stack, inline_id)
        (reply,) = await final_reply(stack)
        async with asyncio.timeout(10):
            while not stack.telegram.state.inline_messages[inline_id]["text"].endswith(BROKE_OFF):  # noqa: ASYNC110 -- polls the fake
                await asyncio.sleep(0.02)
            while not replies(stack)[0]["text"].endswith(BROKE_OFF):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await settled(stack, ANN, BOB)
        shown = " ".join(ANSWER.split()[:12])
        # Inline: the part that arrived stays, under the question, with the note.
        inline = stack.telegram.state.inline_messages[inline_id]
        assert inline["text"] == f"{HEADER}{shown}\n\n{BROKE_OFF}"
        assert final["text"].startswith(f"{HEADER}{shown}")
        assert inline["reply_markup"] is None  # no stop button left
        texts = [str(call.params["text"]) for call in edits_of(stack, inline_id)]
        assert all(text.startswith(f"{HEADER}obsidian-kettledrum-0") for text in texts)
        # Group: the reply keeps its part too; nothing deleted, no notice elsewhere.
        (group,) = replies(stack)
        assert group["text"] == f"{shown}\n\n{BROKE_OFF}"
        assert group["message_id"] == reply["message_id"]
        assert stack.telegram.calls_of("deleteMessage") == []
        assert stack.telegram.ephemeral_messages(GROUP, BOB) == []
        # What was shown is what was charged for (the error receipt counts it): not nothing.
        assert await charged(stack, ANN) > 0
        assert await charged(stack, BOB) > 0


async def test_an_answer_that_fails_before_a_word_is_a_notice_and_free(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.vllm.drop_after = 0
        _, inline_id = await ask_inline(stack, ANN, QUESTION)
        stack.telegram.send_text(BOB, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        final = await final_edit(stack, inline_id)
        async with asyncio.timeout(10):
            while not stack.telegram.ephemeral_messages(GROUP, BOB):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await settled(stack, ANN, BOB)
        assert final["text"] == NO_ANSWER
        assert [call.params["text"] for call in edits_of(stack, inline_id)] == [NO_ANSWER]
        (notice,) = stack.telegram.ephemeral_messages(GROUP, BOB)
        assert notice["text"] == NO_ANSWER
        assert replies(stack) == []  # the placeholder was taken back
        assert await charged(stack, ANN) == 0
        assert await charged(stack, BOB) == 0


async def test_an_empty_or_blank_answer_is_told_never_left_as_a_placeholder(
    tmp_path: Path,
) -> None:
    for answer in ("", "  \n\n "):
        async with running_stack(tmp_path / str(len(answer)), answer=answer, **FAST) as stack:
            _, inline_id = await ask_inline(stack, ANN, QUESTION)
            stack.telegram.send_text(BOB, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            friends = -1_009_876_543
            stack.telegram.guest_message(CAT, "@veil_test_bot hello?", chat_id=friends)
            guest = await stack.telegram.wait_for("answerGuestQuery")
            guest_id = guest.answered == "ok" and _guest_message_id(stack, exclude=inline_id)
            assert guest_id
            inline = await final_edit(stack, inline_id)
            guest_final = await final_edit(stack, guest_id)
            (reply,) = await final_reply(stack)
            await settled(stack, ANN, BOB, CAT)
            assert inline["text"] == NO_ANSWER, answer
            assert guest_final["text"] == NO_ANSWER, answer
            assert reply["text"] == NO_ANSWER, answer


def _guest_message_id(stack: Stack, *, exclude: str) -> str:
    (found,) = [key for key in stack.telegram.state.inline_messages if key != exclude]
    return str(found)


def record_updates(stack: Stack) -> list[dict[str, Any]]:
    """Keep a copy of every update the fake queues, so a test can deliver one again."""
    pushed: list[dict[str, Any]] = []
    push = stack.telegram.updates.push

    def recording(update: dict[str, Any]) -> dict[str, Any]:
        queued = push(update)
        pushed.append(copy.deepcopy(queued))
        return queued

    stack.telegram.updates.push = recording  # type: ignore[method-assign]
    return pushed


def again(stack: Stack, pushed: list[dict[str, Any]], kind: str) -> None:
    """Deliver the last update of ``kind`` again, as Telegram does: the same update_id."""
    update = next(u for u in reversed(pushed) if kind in u)
    stack.telegram.updates.push(copy.deepcopy(update))


async def test_an_update_delivered_again_is_answered_and_charged_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, token_delay=0.005, **FAST) as stack:
        pushed = record_updates(stack)
        stack.vllm.pauses = {5}
        _, inline_id = await ask_inline(stack, ANN, QUESTION)
        async with asyncio.timeout(10):
            while not stack.vllm.paused:  # noqa: ASYNC110 -- polls the fake
                await asyncio.sleep(0.01)
        # While the first answer streams (held), the chosen result comes again: not "busy".
        again(stack, pushed, "chosen_inline_result")
        stack.telegram.send_text(BOB, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        friends = -1_009_876_543
        stack.telegram.guest_message(CAT, "@veil_test_bot hello?", chat_id=friends)
        await stack.telegram.wait_for("answerGuestQuery")
        async with asyncio.timeout(10):
            while stack.vllm.paused < 3:  # noqa: ASYNC110 -- all three streams held
                await asyncio.sleep(0.01)
        stack.vllm.pauses = set()
        stack.vllm.resume()
        await final_edit(stack, inline_id)
        await final_reply(stack)
        await settled(stack, ANN, BOB, CAT)
        # Each done; now each comes again.
        for kind in ("chosen_inline_result", "message", "guest_message"):
            again(stack, pushed, kind)
        # A later question, answered once the repeats were handled (or not).
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await final_reply(stack, 2)
        await settled(stack, ANN, BOB, CAT)
        assert len(stack.vllm.requests) == 4  # inline, group, guest, the later question
        assert len(stack.telegram.calls_of("answerGuestQuery")) == 1
        assert len(replies(stack)) == 2
        busy = "I'm still writing the previous answer"
        assert not [c for c in stack.telegram.calls_of("editMessageText") if busy in str(c.params)]
        assert stack.telegram.ephemeral_messages(GROUP, BOB) == []
        for user in (ANN, BOB, CAT):
            usage = [
                e for e in await stack.veil.credit.history(user, limit=50) if e.kind == "usage"
            ]
            assert len(usage) == (2 if user == ANN else 1), user


async def test_a_media_caption_delivered_again_is_told_once(tmp_path: Path) -> None:
    # The refusal of a question in a photo's caption came before the check for an update
    # delivered again: the asker was told twice.
    mention = "@veil_test_bot"
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        pushed = record_updates(stack)
        photo_asking(stack, ANN)
        async with asyncio.timeout(10):
            while not stack.telegram.ephemeral_messages(GROUP, ANN):  # noqa: ASYNC110 -- the fake
                await asyncio.sleep(0.02)
        again(stack, pushed, "message")
        stack.telegram.send_text(BOB, f"{mention} {QUESTION}", chat_id=GROUP)  # after the repeat
        await final_reply(stack)
        assert len(stack.telegram.ephemeral_messages(GROUP, ANN)) == 1


async def test_a_message_deleted_or_a_group_left_mid_answer_stops_it(tmp_path: Path) -> None:
    long_answer = " ".join(f"word{n}" for n in range(400))
    async with running_stack(tmp_path, answer=long_answer, token_delay=0.01, **FAST) as stack:
        _, inline_id = await ask_inline(stack, ANN, QUESTION)
        stack.telegram.send_text(BOB, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await stack.telegram.wait_for(
            "editMessageText", lambda c: c.params.get("inline_message_id") == inline_id
        )
        await stack.telegram.wait_for("editMessageText", lambda c: c.params.get("chat_id") == GROUP)
        # The asker deletes the inline message; the bot is removed from the group.
        del stack.telegram.state.inline_messages[inline_id]
        stack.telegram.state.chats_without_bot.add(GROUP)
        await settled(stack, ANN, BOB)
        # Stopped as by the stop button: charged for what streamed before, not the whole.
        for user in (ANN, BOB):
            (usage,) = [e for e in await stack.veil.credit.history(user) if e.kind == "usage"]
            assert str(usage.note).endswith("stopped"), usage
            completion = int(str(usage.note).split("+")[1].split()[0])
            assert completion < 300, usage  # the answer has 400 tokens
        # One refused edit each found the message gone; nothing more was sent to it.
        refused_inline = [c for c in edits_of(stack, inline_id) if c.answered != "ok"]
        assert len(refused_inline) == 1
        to_group = [
            c
            for c in stack.telegram.calls
            if c.params.get("chat_id") == GROUP and c.answered != "ok"
        ]
        assert [c.method for c in to_group] == ["editMessageText"]


async def test_a_query_answered_too_late_is_a_log_line_not_a_bug(tmp_path: Path) -> None:
    too_old = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    quoting = f"{too_old}: {QUESTION}"  # some descriptions quote what was sent: never logged
    async with running_stack(tmp_path, **FAST) as stack:
        stack.telegram.fail_next("answerInlineQuery", status=400, description=too_old)
        stack.telegram.fail_next("answerGuestQuery", status=400, description=quoting)
        with structlog.testing.capture_logs() as logs:
            stack.telegram.inline_query(ANN, QUESTION)
            stack.telegram.guest_message(CAT, "@veil_test_bot hello?", chat_id=-1_009_876_543)
            await stack.telegram.wait_for("answerGuestQuery")
            await stack.telegram.wait_for("answerInlineQuery")
            await settled(stack, ANN, CAT)
            # The next query is answered as ever.
            _, inline_id = await ask_inline(stack, ANN, QUESTION)
            await final_edit(stack, inline_id)
        assert [e for e in logs if e["log_level"] == "error"] == []
        refused = [e["event"] for e in logs if e["event"].endswith("query_refused")]
        assert sorted(refused) == ["inline.guest_query_refused", "inline.query_refused"]
        assert QUESTION not in repr(logs)
        assert len(stack.vllm.requests) == 1  # the refused summons asked nothing of the model


async def test_a_flood_wait_on_the_final_edit_does_not_hold_up_the_next_question(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer="Short answer.", **FAST) as stack:
        editors = stack.veil.dispatcher["editors"]
        editors.pace = dataclasses.replace(editors.pace, final_hold=0.2)
        # Telegram holds the inline answer's final edit back for 3 s (honoured, then taken).
        flood = "Too Many Requests: retry after 3"
        stack.telegram.fail_next("editMessageText", status=429, description=flood, retry_after=3)
        _, inline_id = await ask_inline(stack, ANN, QUESTION)
        refused = await stack.telegram.wait_for("editMessageText")
        assert refused.answered == flood
        # Meanwhile the asker asks in the private chat: answered at once, not after the wait.
        stack.telegram.send_text(ANN, "and in private?")
        (private,) = await stack.final_messages(ANN, 1)
        answered_at = stack.telegram.calls_of("sendMessage")[-1].at
        assert private["text"] == "Short answer."
        final = await final_edit(stack, inline_id)
        taken = [c for c in edits_of(stack, inline_id) if c.answered == "ok"]
        assert final["text"] == f"{HEADER}Short answer."
        assert answered_at - refused.at < 2
        assert taken[-1].at - refused.at >= 2.9
        await settled(stack, ANN)


async def test_a_question_gone_before_its_turn_is_not_answered_nor_apologised_for(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, **FAST) as stack:
        # The mention deleted before the bot replied to it; then the bot removed from the group.
        stack.telegram.fail_next(
            "sendMessage", status=400, description="Bad Request: message to be replied not found"
        )
        stack.telegram.fail_next(
            "sendMessage", status=403, description="Forbidden: bot was kicked from the supergroup"
        )
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            await stack.telegram.wait_for("sendMessage")
            stack.telegram.send_text(BOB, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            await stack.telegram.wait_for("sendMessage", lambda c: "Forbidden" in c.answered)
            await settled(stack, ANN, BOB)
        assert [e for e in logs if e["log_level"] == "error"] == []
        assert [e["event"] for e in logs if e["event"] == "groups.not_answered"] == [
            "groups.not_answered"
        ] * 2
        assert [c.answered for c in stack.telegram.calls_of("sendMessage")] == [
            "Bad Request: message to be replied not found",
            "Forbidden: bot was kicked from the supergroup",
        ]  # no apology posted in the group
        assert stack.vllm.requests == []


async def test_a_guest_question_near_telegrams_limit_is_answered_in_full_under_its_start(
    tmp_path: Path,
) -> None:
    question = "why " * 1020  # with the mention, 4095 characters: a message as long as they come
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.guest_message(CAT, f"@veil_test_bot {question}", chat_id=-1_009_876_543)
        summoned = await stack.telegram.wait_for("answerGuestQuery")
        assert summoned.answered == "ok"
        final = await final_edit(stack, _guest_message_id(stack, exclude=""))
        await settled(stack, CAT)
    shown = question.strip()[:499] + "…"
    assert final["text"] == f"❓ {shown}\n\n{ANSWER}"  # the whole answer, no link to the rest
    assert stack.vllm.requests[0]["messages"][-1]["content"] == question.strip()  # all of it


async def test_busy_is_told_outside_without_the_private_chats_command(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.vllm.pauses = {3}
        stack.telegram.send_text(ANN, "a private question first")
        async with asyncio.timeout(10):
            while not stack.vllm.paused:  # noqa: ASYNC110 -- polls the fake
                await asyncio.sleep(0.01)
        # While it streams, the same user asks in a group and inline.
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        _, inline_id = await ask_inline(stack, ANN, QUESTION)
        inline = await final_edit(stack, inline_id)
        async with asyncio.timeout(10):
            while not stack.telegram.ephemeral_messages(GROUP, ANN):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        stack.vllm.pauses = set()
        stack.vllm.resume()
        await settled(stack, ANN)
        (notice,) = stack.telegram.ephemeral_messages(GROUP, ANN)
    told = stack.veil.catalogs.for_language("en")("short_busy")
    assert inline["text"] == told
    assert notice["text"] == told
    assert "/cancel" not in told
    assert replies(stack) == []  # the placeholder was taken back
    assert len(stack.vllm.requests) == 1  # only the private question was asked
