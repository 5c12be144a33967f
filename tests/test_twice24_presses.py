"""One user, two hands: buttons pressed twice, from a phone and a laptop at once.

Telegram shows a message's buttons on every device the user has open; a press on one device
does not take the button off the other until the bot redraws the message, and a double tap
sends two presses before it can. Each button here must do what it says once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.botstack import running_stack
from tests.fakes.vllm import split_tokens
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 2424
ANSWER = " ".join(f"wren{i}" for i in range(30))
CUT_AT = 16
CUT = "".join(split_tokens(ANSWER)[:CUT_AT])


def buttons(message: dict[str, Any]) -> list[dict[str, str]]:
    return [button for row in message["reply_markup"]["inline_keyboard"] for button in row]


async def test_the_active_conversation_chosen_in_history_keeps_its_continue(
    tmp_path: Path,
) -> None:
    # The laptop's /history list still offers the conversation the phone is writing in (it is
    # the active one, marked): pressing it switches nothing, so the cut answer there must go on.
    async with running_stack(
        tmp_path, answer=ANSWER, max_answer_tokens=CUT_AT, min_answer_tokens=8
    ) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "a question")
        answer, note = await stack.final_messages(USER, 2)
        assert await stack.veil.chat.wait_idle(30)
        assert answer["text"] == CUT
        assert note["text"] == texts("answer_cut")
        (go_on,) = buttons(note)
        stack.telegram.send_text(USER, "/history")
        listing = (await stack.final_messages(USER, 3))[-1]
        (active,) = buttons(listing)
        assert active["text"].startswith("✅")
        for _device in range(2):  # the phone's tap and the laptop's
            stack.telegram.press_button(
                USER, active["callback_data"], message_id=listing["message_id"]
            )
        await stack.answered_presses(2)
        asked, before = len(stack.vllm.requests), len(stack.telegram.sent_messages(USER))
        stack.telegram.press_button(USER, go_on["callback_data"], message_id=note["message_id"])
        await stack.final_messages(USER, before + 1)  # the answer going on, or "expired"
        assert await stack.veil.chat.wait_idle(30)
    said = [m.get("text") for m in stack.telegram.sent_messages(USER)]
    assert texts("continue_expired") not in said
    assert len(stack.vllm.requests) == asked + 1  # the model went on, once


async def test_the_active_conversation_chosen_while_its_answer_streams_keeps_its_continue(
    tmp_path: Path,
) -> None:
    # The phone's answer streams; the laptop presses the marked conversation in an old list.
    async with running_stack(
        tmp_path, answer=ANSWER, max_answer_tokens=CUT_AT, min_answer_tokens=8
    ) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "first words")
        await stack.final_messages(USER, 2)
        assert await stack.veil.chat.wait_idle(30)
        stack.telegram.send_text(USER, "/history")
        listing = (await stack.final_messages(USER, 3))[-1]
        (active,) = buttons(listing)
        stack.vllm.pauses = {CUT_AT // 2}
        stack.telegram.send_text(USER, "a question")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.press_button(USER, active["callback_data"], message_id=listing["message_id"])
        await stack.answered_presses(1)
        stack.vllm.pauses = set()
        stack.vllm.resume()
        sent = await stack.final_messages(USER, 5)
        assert await stack.veil.chat.wait_idle(30)
        note = sent[-1]
        assert note["text"] == texts("answer_cut")
        (go_on,) = buttons(note)
        asked = len(stack.vllm.requests)
        stack.telegram.press_button(USER, go_on["callback_data"], message_id=note["message_id"])
        await stack.final_messages(USER, 6)  # the answer going on, or "expired"
        assert await stack.veil.chat.wait_idle(30)
    said = [m.get("text") for m in stack.telegram.sent_messages(USER)]
    assert texts("continue_expired") not in said
    assert len(stack.vllm.requests) == asked + 1  # the model went on, once
