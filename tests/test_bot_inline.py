"""Inline mode end to end: @veilbot question → one article → chosen → paced edits, stop, credit.

Everything runs over real sockets: the fake Telegram (the playground's emulator), the gateway
and the fake vLLM, with the real bot long-polling.
"""

from __future__ import annotations

import asyncio
import json
import time
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import structlog

from tests.botstack import Stack, running_stack
from tests.test_bot_privacy import assert_absent, disk_bytes

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

    from tests.fakes.telegram import Call

USER = 9101
OTHER = 9102
QUESTION = "Tell me about the tangerine-hippogriff-93"
ANSWER = " ".join(f"obsidian-kettledrum-{n}" for n in range(60)) + "."
FAST_EDITS: dict[str, Any] = {
    "edit_interval": 0.3,
    "group_messages_per_minute": 600,
}  # 0.1 s between calls


async def ask_inline(stack: Stack, user: int, question: str) -> tuple[str, str]:
    """Type the question, take the one article, send it; return (result id, message id).

    Each send is a new message (a new ``inline_message_id``), as in Telegram: the article is
    taken from the answer to this query, not an earlier one.
    """
    earlier = len(stack.telegram.calls_of("answerInlineQuery"))
    stack.telegram.inline_query(user, question)
    answered = await stack.telegram.wait_for(
        "answerInlineQuery",
        lambda call: call in stack.telegram.calls_of("answerInlineQuery")[earlier:],
    )
    results = answered.params["results"]
    assert len(results) == 1
    result_id = results[0]["id"]
    inline_message_id = f"inline-{result_id}"
    stack.telegram.choose_inline_result(
        user, result_id, question, inline_message_id=inline_message_id
    )
    return result_id, inline_message_id


def edits_of(stack: Stack, inline_message_id: str) -> list[Call]:
    return [
        call
        for call in stack.telegram.calls_of("editMessageText")
        if call.params.get("inline_message_id") == inline_message_id
    ]


async def final_edit(stack: Stack, inline_message_id: str, within: float = 20) -> dict[str, Any]:
    """Wait until the inline message has no stop button (the answer is final); return it."""
    async with asyncio.timeout(within):
        while True:
            message: dict[str, Any] = stack.telegram.state.inline_messages[inline_message_id]
            markup = message.get("reply_markup") or {}
            buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
            if not any("callback_data" in b for b in buttons) and edits_of(
                stack, inline_message_id
            ):
                return message
            await asyncio.sleep(0.02)


async def test_an_inline_query_is_answered_at_once_without_the_model(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        started = time.monotonic()
        stack.telegram.inline_query(USER, QUESTION)
        answered = await stack.telegram.wait_for("answerInlineQuery")
        assert answered.answered == "ok"
        took = time.monotonic() - started
        (result,) = answered.params["results"]
        assert result["type"] == "article"
        assert QUESTION in result["title"]
        assert result["reply_markup"]["inline_keyboard"][0][0]["callback_data"].startswith("stop:")
        assert answered.params["is_personal"] in ("true", True)
        assert str(answered.params["cache_time"]) == "0"
        # An empty query: how to use it, and a button to the bot.
        stack.telegram.inline_query(USER, "")
        help_call = await stack.telegram.wait_for(
            "answerInlineQuery", lambda c: c.params["results"][0]["id"] == "help"
        )
        (help_result,) = help_call.params["results"]
        assert help_result["reply_markup"]["inline_keyboard"][0][0]["url"].startswith(
            "https://t.me/"
        )
        await asyncio.sleep(0.3)
        assert stack.vllm.requests == []  # nothing was asked of the model, nothing charged
        assert (await stack.veil.credit.balance(USER)).held == 0
    print(f"inline query answered in {took * 1000:.0f} ms")  # noqa: T201 -- a figure, not a check


async def test_a_chosen_result_streams_by_paced_edits_and_ends_complete(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, token_delay=0.01, **FAST_EDITS) as stack:
        with structlog.testing.capture_logs() as logs:
            _, inline_id = await ask_inline(stack, USER, QUESTION)
            final = await final_edit(stack, inline_id)
        edits = edits_of(stack, inline_id)
        assert final["text"] == f"❓ {QUESTION}\n\n{ANSWER}"
        assert len(edits) >= 2  # it grew while streaming, then the final edit
        assert all(call.answered == "ok" for call in edits)  # never an unchanged edit
        texts = [str(call.params["text"]) for call in edits]
        assert all(len(a) <= len(b) for a, b in pairwise(texts))
        gaps = [b.at - a.at for a, b in pairwise(edits)]
        assert min(gaps) >= 0.09  # never closer than the chat's pace allows
        # A one-off question: the model saw only it, and nothing was stored.
        assert [m["content"] for m in stack.vllm.requests[0]["messages"]] == [QUESTION]
        user = await stack.veil.store.get_user(USER)
        assert user is not None
        conversation = await stack.veil.store.active_conversation(USER)
        assert await stack.veil.store.history(USER, conversation) == []
        assert_absent_markers(logs, tmp_path)


def assert_absent_markers(logs: list[MutableMapping[str, Any]], data_dir: Path) -> None:
    assert_absent(json.dumps(logs, default=str).encode())
    assert_absent(disk_bytes(data_dir))


async def test_retry_after_on_the_final_edit_is_honoured(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="Short answer.", **FAST_EDITS) as stack:
        stack.telegram.fail_next(
            "editMessageText",
            status=429,
            description="Too Many Requests: retry after 1",
            retry_after=1,
        )
        _, inline_id = await ask_inline(stack, USER, QUESTION)
        final = await final_edit(stack, inline_id)
        edits = edits_of(stack, inline_id)
    assert final["text"].endswith("Short answer.")
    refused = [call for call in edits if call.answered != "ok"]
    assert len(refused) == 1
    after = edits[edits.index(refused[0]) + 1]
    assert after.at - refused[0].at >= 0.95


async def test_only_the_asker_can_stop_and_the_stop_is_charged(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, token_delay=0.05, **FAST_EDITS) as stack:
        result_id, inline_id = await ask_inline(stack, USER, QUESTION)
        await stack.telegram.wait_for(
            "editMessageText", lambda c: c.params.get("inline_message_id") == inline_id
        )
        stop = f"stop:{result_id}"
        stack.telegram.press_inline_button(OTHER, stop, inline_id)
        refused = await stack.telegram.wait_for("answerCallbackQuery")
        assert "Only the person who asked" in str(refused.params.get("text"))
        stack.telegram.press_inline_button(USER, stop, inline_id)
        await stack.telegram.wait_for(
            "answerCallbackQuery", lambda c: str(c.params.get("text")) == "Stopping…"
        )
        final = await final_edit(stack, inline_id)
        assert final["text"].startswith(f"❓ {QUESTION}\n\nobsidian")
        assert final["text"] != f"❓ {QUESTION}\n\n{ANSWER}"  # stopped early
        await asyncio.sleep(0.2)
        entries = await stack.veil.credit.history(USER, limit=5)
        assert any(entry.kind in {"usage", "free"} for entry in entries)
        assert (await stack.veil.credit.balance(USER)).held == 0


async def test_an_answer_too_long_for_one_message_links_to_the_whole_in_private(
    tmp_path: Path,
) -> None:
    long_answer = "\n\n".join(f"Paragraph {n}: " + "word " * 60 for n in range(30))
    async with running_stack(
        tmp_path, answer=long_answer, max_answer_tokens=4000, context_tokens=8192, **FAST_EDITS
    ) as stack:
        _, inline_id = await ask_inline(stack, USER, QUESTION)
        final = await final_edit(stack, inline_id)
        assert final["text"].endswith("…")
        (button,) = [b for row in final["reply_markup"]["inline_keyboard"] for b in row]
        link = button["url"]
        assert link.startswith("https://t.me/")
        payload = link.split("?start=", 1)[1]
        stack.telegram.send_text(USER, f"/start {payload}")
        wanted = long_answer.replace("\n", "").replace(" ", "")
        async with asyncio.timeout(10):
            while True:
                messages = stack.telegram.sent_messages(USER)
                whole = "".join(m["text"] for m in messages[1:])
                if len(whole.replace("\n", "").replace(" ", "")) >= len(wanted):
                    break
                await asyncio.sleep(0.05)
        assert messages[0]["text"] == "The whole answer:"
        assert whole.replace("\n", "").replace(" ", "") == wanted
        # An unknown (or expired) link says so.
        stack.telegram.send_text(USER, "/start a_not-a-kept-answer")
        gone = await stack.final_messages(USER, len(messages) + 1)
        assert gone[-1]["text"].startswith("That answer is no longer kept")


async def test_without_credit_the_inline_message_says_so_with_a_top_up_link(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, free_tokens_per_day=0, **FAST_EDITS) as stack:
        _, inline_id = await ask_inline(stack, USER, QUESTION)
        final = await final_edit(stack, inline_id)
    assert final["text"] == "Not enough credit for an answer. Top up in the private chat with Veil."
    (button,) = [b for row in final["reply_markup"]["inline_keyboard"] for b in row]
    assert button["url"].endswith("?start=buy")
    assert stack.vllm.requests == []


async def test_an_answer_cut_at_its_length_limit_says_so(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, max_answer_tokens=16, min_answer_tokens=8, **FAST_EDITS
    ) as stack:
        _, inline_id = await ask_inline(stack, USER, QUESTION)
        await final_edit(stack, inline_id)
        note = "✂️ The answer reached its length limit; ask for more in the private chat with Veil."
        async with asyncio.timeout(10):
            while not stack.telegram.state.inline_messages[inline_id]["text"].endswith(note):  # noqa: ASYNC110 -- polls the fake
                await asyncio.sleep(0.02)
        text = stack.telegram.state.inline_messages[inline_id]["text"]
    assert text.startswith(f"❓ {QUESTION}\n\nobsidian-kettledrum-0")
    assert ANSWER not in text  # cut


async def test_half_an_emoji_in_an_inline_question_is_read_as_a_replacement_character(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST_EDITS) as stack:
        _, inline_id = await ask_inline(stack, USER, "what is \ud83d here?")
        final = await final_edit(stack, inline_id)
    assert final["text"] == f"❓ what is \ufffd here?\n\n{ANSWER}"
    assert [m["content"] for m in stack.vllm.requests[0]["messages"]] == ["what is \ufffd here?"]


async def test_an_inline_answer_kept_in_history_reads_none_of_it(tmp_path: Path) -> None:
    # With "Keep inline answers in my history" on, an inline question was asked in the private
    # conversation, its turns read before it: what the user told Veil in private reached the
    # model for an answer posted in another chat, where the model could repeat it. It is stored
    # there (the setting's promise) but reads none of it.
    secret = "my private diagnosis: walrus-cobalt-17"
    async with running_stack(tmp_path, **FAST_EDITS) as stack:
        await stack.veil.chat.keep_inline_history(USER, "en", keep=True)
        stack.telegram.send_text(USER, secret)
        await stack.stored_turns(USER, 2)
        _, inline_message_id = await ask_inline(stack, USER, "what did I tell you?")
        await final_edit(stack, inline_message_id)
        turns = await stack.stored_turns(USER, 4)
        asked = [[m["content"] for m in r["messages"]] for r in stack.vllm.requests]
    assert secret in asked[0]
    assert asked[1] == ["what did I tell you?"]
    assert turns[0] == secret
    assert turns[2] == "what did I tell you?"
