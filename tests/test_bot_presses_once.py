"""A Retry or Continue button pressed twice at once (a double tap) asks one answer.

The app sends both presses before the bot redraws the message without its button; the second
is handled once the first's answer has started, and by then that answer may have failed again
and left a newer question for Retry. The second press of the same button is expired all the
same: one press, one answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_continue import USER, cut_essay, essay_stack

if TYPE_CHECKING:
    from pathlib import Path

BOOM = (500, "boom")


async def test_a_retry_pressed_again_after_its_answer_failed_asks_nothing_more(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.vllm.fail_before_stream = BOOM
        stack.telegram.send_text(USER, "hi")
        (note,) = await stack.final_messages(USER, 1)
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        press = {"message_id": note["message_id"]}
        stack.telegram.press_button(USER, button["callback_data"], **press)
        await stack.final_messages(USER, 2)  # the retry failed too: a newer Retry under it
        stack.telegram.press_button(USER, button["callback_data"], **press)  # the double tap
        messages = await stack.final_messages(USER, 3)
        await stack.answered_presses(2)
    assert messages[2]["text"] == texts("retry_expired")
    assert len(stack.vllm.requests) == 2  # the question, and one retry


async def test_a_continue_pressed_twice_at_once_continues_once(tmp_path: Path) -> None:
    async with essay_stack(tmp_path) as stack:
        texts = stack.veil.catalogs.for_language("en")
        _answer, note, button = await cut_essay(stack)
        for _ in range(2):
            stack.telegram.press_button(
                USER, button["callback_data"], message_id=note["message_id"]
            )
        await stack.answered_presses(2)
        await wait_until(lambda: stack.veil.chat.running == 0, within=10)
        said = [m["text"] for m in stack.telegram.sent_messages(USER)]
    assert len(stack.vllm.requests) == 2  # the essay, and one continuation
    assert said.count(texts("continue_expired")) == 1
