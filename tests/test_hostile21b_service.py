"""Service messages in the private chat: what the user did to the chat, not a message to read.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USER = 9821
UNSUPPORTED = (
    "I can only read text and text files for now. Photos, voice and video messages, stickers"
    " and the like are not supported: please describe it in words."
)


def service(stack: Stack, message_id: int, **content: Any) -> None:  # noqa: ANN401
    """A service message in the user's private chat, as Telegram sends the bot one."""
    user = {"id": USER, "is_bot": False, "first_name": "Ann", "language_code": "en"}
    chat = {"id": USER, "type": "private", "first_name": "Ann"}
    message = {"message_id": message_id, "date": 1_700_000_000, "chat": chat, "from": user}
    stack.telegram.updates.push({"message": message | content})


async def test_pinning_an_answer_or_changing_the_chat_is_not_told_it_is_unsupported(
    tmp_path: Path,
) -> None:
    # Each of these was answered "I can only read text and text files... please describe it
    # in words": the user pinned Veil's answer, set the chat's auto-delete timer, changed its
    # wallpaper, or let Veil write to them, and was asked to describe it.
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(USER, "Where is the tide table?")
        (answer,) = await stack.final_messages(USER)
        pinned = {"message_id": answer["message_id"], "date": 0, "chat": answer["chat"]}
        service(stack, 9001, pinned_message=pinned)
        service(stack, 9002, message_auto_delete_timer_changed={"message_auto_delete_time": 86400})
        fill = {"type": "solid", "color": 0}
        background = {"type": {"type": "fill", "fill": fill, "dark_theme_dimming": 0}}
        service(stack, 9003, chat_background_set=background)
        service(stack, 9004, write_access_allowed={"from_request": True})
        stack.telegram.send_message_of(USER, "sticker")  # after them: its note tells they are done
        sent = await stack.final_messages(USER, 2)
    assert [message["text"] for message in sent] == ["Hello from the fake model.", UNSUPPORTED]
    assert len(stack.vllm.requests) == 1
