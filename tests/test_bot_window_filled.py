"""A model server that refuses an answer as too long after its text began: the text stays.

vLLM ends an answer that fills the window with ``finish_reason`` ``length``; a gateway or a
model server in front may instead end the stream with an SSE ``error`` in vLLM's "maximum
context length" words once some text has gone out. The user keeps what they watched arrive,
is told why it stopped, and pays what the gateway's signed receipt says.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.test_bot_inline import ANSWER as INLINE_ANSWER
from tests.test_bot_inline import QUESTION, ask_inline, final_edit
from tests.test_bot_outside_hostile import ANN, FAST, HEADER, settled
from tests.test_bot_stop import ANSWER, PRICE_IN, PRICE_OUT, PROMPT, USER, closed_holds, fund
from tests.test_reasoning import THOUGHT

if TYPE_CHECKING:
    from pathlib import Path

WINDOW_FULL_SAYS = (
    "This model's maximum context length is 4096 tokens. However, your request has 4100 "
    "input tokens. Please reduce the length of the input messages."
)
WINDOW_FULL = (400, WINDOW_FULL_SAYS)


async def test_a_window_refusal_after_text_keeps_the_text_says_why_and_bills_the_receipt(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, free_tokens_per_day=0) as stack:
        await fund(stack)
        stack.vllm.error_mid_stream_after = 3
        stack.vllm.mid_stream_error = WINDOW_FULL
        stack.telegram.send_text(USER, PROMPT)
        partial, reply = await stack.final_messages(USER, 2, within=20)
        (hold,) = await closed_holds(stack)
        conversation = await stack.veil.store.active_conversation(USER)
        assert await stack.veil.store.history(USER, conversation) == []
        texts = stack.veil.catalogs.for_language("en")
    assert partial["text"] == "".join(split_tokens(ANSWER)[:3])
    assert reply["text"] == texts("answer_window_full")
    assert not reply.get("reply_markup")  # Retry would fill the same window again
    assert len(stack.vllm.requests) == 1  # not asked again with less history
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "error")
    assert hold["completion"] == 3  # what the receipt counts
    assert hold["charged"] == PRICE_IN * hold["prompt"] + PRICE_OUT * 3


async def test_an_inline_answer_whose_window_filled_keeps_its_part_with_the_reason(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=INLINE_ANSWER, token_delay=0.01, **FAST) as stack:
        stack.vllm.error_mid_stream_after = 12
        stack.vllm.mid_stream_error = WINDOW_FULL
        _, inline_id = await ask_inline(stack, ANN, QUESTION)
        await final_edit(stack, inline_id)
        note = stack.veil.catalogs.for_language("en")("answer_window_full_here")
        async with asyncio.timeout(10):
            while not stack.telegram.state.inline_messages[inline_id]["text"].endswith(note):  # noqa: ASYNC110 -- polls the fake
                await asyncio.sleep(0.02)
        await settled(stack, ANN)
        shown = " ".join(INLINE_ANSWER.split()[:12])
        inline = stack.telegram.state.inline_messages[inline_id]
    assert inline["text"] == f"{HEADER}{shown}\n\n{note}"


@pytest.mark.parametrize("served", ["reasoning parser", "think tags"])
async def test_a_window_refusal_after_thinking_only_is_the_answer_failing_not_the_question(
    tmp_path: Path, served: str
) -> None:
    # The window filled while the model thought (shown folded, no text yet): the question fit.
    # Not "your message is too long", not cut and asked again (a second charge): the answer
    # failed there, billed by its receipt, and the conversation is what is too long.
    fake = FakeVLLM(answer=ANSWER)
    if served == "reasoning parser":
        fake.reasoning, thought_tokens, fake.error_mid_stream_after = THOUGHT, None, 0
    else:
        fake.answer = f"<think>{THOUGHT} {ANSWER}"
        thought_tokens = fake.error_mid_stream_after = 6
    async with running_stack(tmp_path, model_server=fake, free_tokens_per_day=0) as stack:
        await fund(stack)
        stack.vllm.mid_stream_error = WINDOW_FULL
        stack.telegram.send_text(USER, PROMPT)
        (reply,) = await stack.final_messages(USER, 1, within=20)
        (hold,) = await closed_holds(stack)
        texts = stack.veil.catalogs.for_language("en")
    assert reply["text"] == texts("error_context")
    assert [m["content"] for m in stack.vllm.requests[0]["messages"]] == [PROMPT]
    assert len(stack.vllm.requests) == 1  # not cut and asked again
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "error")
    assert hold["completion"] == (thought_tokens or len(split_tokens(THOUGHT)))


async def test_a_window_refusal_after_thinking_is_not_asked_again_with_less_history(
    tmp_path: Path,
) -> None:
    # With history to drop, the refusal was taken for one before the answer: trimmed and asked
    # again, the second thinking appended to the first the user watched, both billed.
    async with running_stack(tmp_path, answer=ANSWER, free_tokens_per_day=0) as stack:
        await fund(stack)
        stack.telegram.send_text(USER, "Hi")
        await stack.stored_turns(USER, 2)
        stack.vllm.reasoning, stack.vllm.error_mid_stream_after = THOUGHT, 0
        stack.vllm.mid_stream_error = WINDOW_FULL
        stack.telegram.send_text(USER, PROMPT)
        _, reply = await stack.final_messages(USER, 2, within=20)
        holds = await closed_holds(stack)
        texts = stack.veil.catalogs.for_language("en")
    assert reply["text"] == texts("error_context")
    assert len(stack.vllm.requests) == 2  # the first question, and this one once
    assert len(holds) == 2
    assert holds[-1]["completion"] == len(split_tokens(THOUGHT))  # the thinking, billed once
