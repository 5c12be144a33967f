"""A model served without a reasoning parser writes ``<think>…</think>`` into its answer.

The bot shows that thinking as it shows a parser's (``reasoning_content``): folded above the
answer, never stored, never read back to the model. A tag the answer merely mentions stays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 8401
THOUGHT = "They greet me, so greet them warmly."
ANSWER = "Hello there, friend."


async def test_thinking_in_the_answer_s_text_is_folded_above_it_and_not_stored(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}") as stack:
        stack.telegram.send_text(USER, "Hi")
        stored = await stack.stored_turns(USER, 2)
        assert await stack.veil.chat.wait_idle(10)  # stored with its charge, sent meanwhile
        (message,) = stack.telegram.sent_messages(USER)
        stack.telegram.send_text(USER, "And again")
        await stack.stored_turns(USER, 4)
    assert stored == ["Hi", ANSWER]
    assert message["text"] == f"💭 {THOUGHT}\n{ANSWER}"
    assert message["entities"][0]["type"] == "expandable_blockquote"
    assert "<think>" not in str(message)
    # The next question's context holds the answer alone, as it was shown.
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == ["Hi", ANSWER, "And again"]


async def test_a_think_tag_the_answer_mentions_is_shown_and_kept(tmp_path: Path) -> None:
    answer = "Qwen3 opens its reasoning with <think> and closes it with </think>."
    async with running_stack(tmp_path, answer=answer) as stack:
        stack.telegram.send_text(USER, "How does Qwen3 mark its thinking?")
        stored = await stack.stored_turns(USER, 2)
        assert await stack.veil.chat.wait_idle(10)
        (message,) = stack.telegram.sent_messages(USER)
    assert message["text"] == answer
    assert stored[1] == answer


async def test_thinking_never_closed_is_no_answer(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=f"<think>{THOUGHT} Still thinking") as stack:
        stack.telegram.send_text(USER, "Hi")
        (message,) = await stack.final_messages(USER)
        texts = stack.veil.catalogs.for_language("en")
    assert message["text"] == texts("error_backend")  # not charged; Retry may get one
