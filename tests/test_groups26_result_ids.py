"""A ``chosen_inline_result`` whose ``result_id`` cannot be a stop button's tag is refused.

Telegram echoes only the ids the bot gave its results (16 characters, ``new_tag``), but a
hostile or buggy client or server may send any: an id over ~58 bytes (or with a ``:``) made
the stop button's callback data fail to pack (Telegram's 64 bytes), and the handler raised,
its apology told into a message Veil never offered. Now such a result is refused with one log
line (``inline.result_refused``), nothing asked of the model, held or sent; the bot goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import structlog

from tests.botstack import running_stack
from tests.test_bot_inline import FAST_EDITS, QUESTION, USER, ask_inline, final_edit

if TYPE_CHECKING:
    from pathlib import Path

BAD_IDS = ["x" * 60, "ab:cd", "é" * 32]  # over 58 bytes; a separator; 64 bytes of 2 each


@pytest.mark.parametrize("result_id", BAD_IDS)
async def test_a_chosen_result_whose_id_cannot_be_a_stop_tag_is_refused(
    tmp_path: Path, result_id: str
) -> None:
    async with running_stack(tmp_path, answer="A short answer.", **FAST_EDITS) as stack:
        with structlog.testing.capture_logs() as logs:
            stack.telegram.choose_inline_result(
                USER, result_id, QUESTION, inline_message_id="inline-forged"
            )
            _, inline_id = await ask_inline(stack, USER, QUESTION)  # sent after it
            answered = await final_edit(stack, inline_id)
            assert await stack.veil.chat.wait_idle(10)
        assert answered["text"].endswith("A short answer.")  # the bot goes on
        touched = [
            call
            for call in stack.telegram.calls
            if call.params.get("inline_message_id") == "inline-forged"
        ]
        assert touched == []  # nothing told into a message Veil never offered
        assert len(stack.vllm.requests) == 1  # the real question's alone
    events = [e["event"] for e in logs]
    assert events.count("inline.result_refused") == 1
    assert "handler_failed" not in events
