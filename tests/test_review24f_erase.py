"""A /history switch pressed while the user's erasure waits for their answer to end.

"Erase everything" pressed on the phone mid-answer, then a conversation tapped in /history on
the laptop: the switch was made and said ("Continuing …"), then the erasure, once the answer had
ended, erased that conversation with the rest. The tap came after the erasure, so it is carried
out after it, as a /settings or /model choice is (chat24): the conversation is gone, and the
list says so. So for the conversation marked active, which is not switched to but said.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.botstack import running_stack
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 2445
ANSWER = " ".join(f"moss{i}" for i in range(30))
PAUSE_AT = 10  # the fake model waits after this many tokens


@pytest.mark.parametrize("active", [False, True])  # an earlier one, or the one marked ✅
async def test_a_switch_pressed_while_an_erasure_waits_says_the_conversation_is_gone(
    tmp_path: Path, *, active: bool
) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "first")
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        stack.telegram.send_text(USER, "/new")
        stack.telegram.send_text(USER, "/history")
        stack.telegram.send_text(USER, "/forget")
        *_, listing, confirmation = await stack.final_messages(USER, 4)
        (older,) = [
            row[0]
            for row in listing["reply_markup"]["inline_keyboard"]
            if row[0]["text"].startswith("✅") is active
        ]
        stack.vllm.pauses = {PAUSE_AT}
        stack.telegram.send_text(USER, "a question")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        erase = confirmation["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        stack.telegram.press_button(USER, erase, message_id=confirmation["message_id"])
        stack.telegram.press_button(USER, older["callback_data"], message_id=listing["message_id"])
        await stack.answered_presses(2)

        def listing_now() -> str:
            (now,) = [
                m
                for m in stack.telegram.sent_messages(USER)
                if m["message_id"] == listing["message_id"]
            ]
            return str(now["text"])

        await wait_until(lambda: listing_now() != texts("history"), within=30)
        stack.vllm.pauses = set()
        stack.vllm.resume()
        assert await stack.veil.chat.wait_idle(30)
        told = listing_now()
        erased = await stack.veil.store.conversations(USER)
    assert erased == []
    assert told == texts("history_gone")  # not "Continuing …" of a conversation then erased
