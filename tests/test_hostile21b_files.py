"""Hostile files in the private chat: a GIF, which Telegram also sends as a document.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.documents import TextFile
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


def send_album(stack: Stack, files: list[tuple[str, bytes]], caption: str) -> None:
    """Files sent at once, as the apps send them: a message each, one ``media_group_id``.

    The caption, the question, rides on the first of them.
    """
    for index, (name, data) in enumerate(files):
        document = stack.telegram.media.receive(data, file_name=name, mime_type="text/plain")
        more = {"caption": caption} if index == 0 else {}
        stack.telegram.user.send_message_of(
            USER, "document", document=document, media_group_id="album-1", **more
        )


async def test_two_files_sent_at_once_are_asked_as_one_question(tmp_path: Path) -> None:
    # Each file of an album was a question of its own: the model was asked "compare these"
    # with the first file alone, then, in a second answer charged as any, the second file with
    # no question at all; it never saw the two together.
    async with running_stack(tmp_path) as stack:
        files = [("old.py", b"x = 1\n"), ("new.py", b"x = 2\n")]
        send_album(stack, files, "Compare these")
        turns = await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        sent = [message["text"] for message in stack.telegram.sent_messages(USER)]
    assert turns[0] == ("old.py:\n```\nx = 1\n```\n\nnew.py:\n```\nx = 2\n```\n\nCompare these")
    assert len(stack.vllm.requests) == 1
    assert sent == ["Hello from the fake model."]


async def test_a_file_refused_in_an_album_asks_none_of_it(tmp_path: Path) -> None:
    # Asked without the file it could not read, the question would be answered blind to it.
    async with running_stack(tmp_path) as stack:
        send_album(stack, [("a.txt", b"alpha"), ("b.pdf", b"%PDF-1.7\n\xe2\xe3")], "Compare")
        first, second = await stack.final_messages(USER, 2)
        await stack.veil.chat.wait_idle(10)
        sent = stack.telegram.sent_messages(USER)
    assert first["text"].startswith("I can only read text files (plain text")
    assert second["text"] == (
        "So I did not read the files sent with it either: send again the ones I can read,"
        " without it."
    )
    assert len(sent) == 2
    assert stack.vllm.requests == []


def test_an_album_too_long_for_the_window_is_read_in_order_as_far_as_it_fits() -> None:
    # A cut reads the files in the order sent: the first whole, the next its start, the last
    # none, each heading saying how much of it the model read.
    album = TextFile.together([("a.txt", "12345"), ("b.txt", "6789"), ("c.txt", "xy")], "Why?")
    assert album.question(7) == (
        "a.txt:\n```\n12345\n```\n\n"
        "b.txt (only its first 2 of 4 characters: the rest did not fit):\n```\n67\n```\n\n"
        "c.txt (only its first 0 of 2 characters: the rest did not fit):\n```\n\n```\n\nWhy?"
    )
    assert album.question() == TextFile("x", "12345").question().replace("x:", "a.txt:") + (
        "\n\nb.txt:\n```\n6789\n```\n\nc.txt:\n```\nxy\n```\n\nWhy?"
    )
    assert album.percent(7) == 63  # of the 11 characters of all three
