"""Hostile files in the private chat: a GIF, which Telegram also sends as a document.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USER = 9811
UNSUPPORTED = (
    "I can only read text and text files for now. Photos, voice and video messages, stickers"
    " and the like are not supported: please describe it in words."
)


def send_gif(stack: Stack, data: bytes, caption: str | None = None) -> None:
    """A GIF as Telegram delivers it: an ``animation`` with the same file as ``document`` too.

    The Bot API: "For backward compatibility, when this field is set, the document field will
    also be set" (core.telegram.org/bots/api#message, ``animation``).
    """
    document = stack.telegram.media.receive(data, file_name="cat.gif.mp4", mime_type="video/mp4")
    animation: dict[str, Any] = {key: document[key] for key in ("file_id", "file_unique_id")}
    animation |= {"width": 320, "height": 240, "duration": 3, "file_size": len(data)}
    more = {} if caption is None else {"caption": caption}
    stack.telegram.user.send_message_of(
        USER, "document", document=document, animation=animation, **more
    )


async def test_a_gif_is_told_unsupported_not_a_file_too_big_or_not_text(tmp_path: Path) -> None:
    # A GIF was read as a file sent to be read: a large one was told "I can only read text
    # files of up to 32 KB: this one is larger, paste the part you need", a small one was
    # fetched from Telegram and told it is no UTF-8 text file; the user sent an animation.
    async with running_stack(tmp_path) as stack:
        send_gif(stack, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100_000)
        send_gif(stack, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, caption="what is it?")
        messages = await stack.final_messages(USER, 2)
    assert [message["text"] for message in messages] == [UNSUPPORTED, UNSUPPORTED]
    assert stack.telegram.calls_of("getFile") == []  # not fetched: it is no file to read
    assert stack.vllm.requests == []
