"""/history's list from yesterday, pressed today after more conversations than it shows.

The list shows the ten conversations most recently continued. A conversation pressed in an old
list may since have fallen off them (ten newer ones since): the switch to it was made, but the
redraw looked for the active one among the ten, found none and said "That conversation is no
longer there (erased?)", while the next message went on in it. Pressed again (a double tap, the
same list on the other device) it was not found active among the ten either, so it was switched
to anew, the very thing twice24 stopped for the active one: a switch leaves the conversation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers.history import ACTIVE_MARK, HISTORY_SIZE
from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 2427


def buttons(message: dict[str, Any]) -> list[dict[str, str]]:
    return [button for row in message["reply_markup"]["inline_keyboard"] for button in row]


async def test_a_conversation_off_the_list_pressed_in_an_old_one_is_continued(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "yesterday's question")
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        yesterday = await stack.veil.store.active_conversation(USER)
        stack.telegram.send_text(USER, "/history")
        listing = (await stack.final_messages(USER, 2))[-1]
        (old,) = buttons(listing)
        # Today: more conversations than the list shows, each newer than yesterday's.
        for n in range(HISTORY_SIZE):
            newer = await stack.veil.store.new_conversation(USER)
            await stack.veil.store.add_turns(USER, newer, [("user", f"q{n}"), ("assistant", "a")])
        for press in (1, 2):  # the tap, and the same list's tap on the other device
            stack.telegram.press_button(
                USER, old["callback_data"], message_id=listing["message_id"]
            )
            await stack.answered_presses(press)
            assert await stack.veil.store.active_conversation(USER) == yesterday
            redrawn = next(
                m
                for m in stack.telegram.sent_messages(USER)
                if m["message_id"] == listing["message_id"]
            )
            assert redrawn["text"] != texts("history_gone")
            assert redrawn["text"].startswith("Continuing")
            marked = [b for b in buttons(redrawn) if b["text"].startswith(ACTIVE_MARK)]
            assert [b["callback_data"] for b in marked] == [old["callback_data"]]
