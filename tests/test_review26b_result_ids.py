"""A chosen inline result whose id just fits a stop button's callback data is answered.

``stop_tag_fits`` (groups26) refuses an id that cannot be packed as ``stop:<id>`` within
Telegram's 64 bytes. Its boundary is in UTF-8 bytes, not in characters nor in the UTF-16 units
Telegram counts text in: an id of 59 bytes made of 2- and 4-byte characters packs to exactly
64 and is answered, the stop button under its answer carrying it whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import structlog

from handlers.callbacks import StopAnswer
from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_inline import FAST_EDITS, QUESTION, USER, final_edit

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

# 59 bytes each: with ``stop:`` 64, the most a button's callback data holds.
EDGE_IDS = ["é" * 29 + "a", "😀" * 14 + "abc"]
ANSWER = " ".join(f"word{n}" for n in range(40)) + "."


@pytest.mark.parametrize("result_id", EDGE_IDS)
async def test_a_chosen_result_whose_id_just_fits_is_answered(
    tmp_path: Path, result_id: str
) -> None:
    assert len(StopAnswer(tag=result_id).pack().encode()) == 64  # Telegram's cap
    async with running_stack(tmp_path, answer=ANSWER, token_delay=0.02, **FAST_EDITS) as stack:
        with structlog.testing.capture_logs() as logs:
            stack.telegram.choose_inline_result(
                USER, result_id, QUESTION, inline_message_id="inline-edge"
            )
            await wait_until(lambda: _stop_tags(stack) != [], within=10)
            answered = await final_edit(stack, "inline-edge")
            assert await stack.veil.chat.wait_idle(10)
        assert answered["text"].endswith(ANSWER)
        assert set(_stop_tags(stack)) == {StopAnswer(tag=result_id).pack()}
        assert len(stack.vllm.requests) == 1
    events = [e["event"] for e in logs]
    assert "inline.result_refused" not in events
    assert "handler_failed" not in events


def _stop_tags(stack: Stack) -> list[str]:
    """The callback data of every button the edits of ``inline-edge`` carried."""
    return [
        button["callback_data"]
        for call in stack.telegram.calls_of("editMessageText")
        if call.params.get("inline_message_id") == "inline-edge"
        for row in (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
        for button in row
        if "callback_data" in button
    ]
