"""A text sent right after an album of files: the question about them, asked with them.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USER = 2201


def send_album(stack: Stack, files: list[tuple[str, bytes]], caption: str | None = None) -> None:
    """Files sent at once, as the apps send them: a message each, one ``media_group_id``."""
    for index, (name, data) in enumerate(files):
        document = stack.telegram.media.receive(data, file_name=name, mime_type="text/plain")
        more = {"caption": caption} if index == 0 and caption is not None else {}
        stack.telegram.user.send_message_of(
            USER, "document", document=document, media_group_id="album-22", **more
        )


async def album_then_text(
    stack: Stack, files: list[tuple[str, bytes]], text: str, caption: str | None = None
) -> tuple[str, list[str]]:
    """Send the album and at once ``text``; the question stored, and what the user was sent."""
    send_album(stack, files, caption)
    stack.telegram.send_text(USER, text)
    turns = await stack.stored_turns(USER, 2)
    await stack.veil.chat.wait_idle(10)
    return turns[0], [message["text"] for message in stack.telegram.sent_messages(USER)]


async def test_a_text_sent_right_after_an_album_is_its_question(tmp_path: Path) -> None:
    # The text was asked on its own at once while the album waited for its other files, and
    # the album, asked after, was refused "still writing the previous answer"; or the other
    # way round: either way one of the two was refused, and the model never saw the
    # question with the files.
    async with running_stack(tmp_path) as stack:
        files = [("old.py", b"x = 1\n"), ("new.py", b"x = 2\n")]
        question, sent = await album_then_text(stack, files, "Which one is right?")
    assert question == (
        "old.py:\n```\nx = 1\n```\n\nnew.py:\n```\nx = 2\n```\n\nWhich one is right?"
    )
    assert sent == ["Hello from the fake model."]
    assert len(stack.vllm.requests) == 1


async def test_a_text_after_a_captioned_album_follows_its_caption(tmp_path: Path) -> None:
    # A caption longer than a caption may be (1024 characters) or a thought added at once:
    # the text came as a question of its own, the album as another, one of them refused.
    async with running_stack(tmp_path) as stack:
        files = [("a.txt", b"alpha\n"), ("b.txt", b"beta\n")]
        question, sent = await album_then_text(stack, files, "Mind the case.", caption="Compare")
    assert question == (
        "a.txt:\n```\nalpha\n```\n\nb.txt:\n```\nbeta\n```\n\nCompare\n\nMind the case."
    )
    assert sent == ["Hello from the fake model."]


async def test_a_text_after_an_album_refused_is_not_asked_blind(tmp_path: Path) -> None:
    # The text about the files was asked on its own, answered without them (and charged),
    # while the album was refused: the question is the album's, and goes unasked with it,
    # and the user is told so (it vanished without a word before).
    async with running_stack(tmp_path) as stack:
        send_album(stack, [("a.txt", b"alpha\n"), ("b.pdf", b"%PDF-1.7\n\xe2\xe3")])
        stack.telegram.send_text(USER, "Which is longer?")
        told = [str(m["text"]) for m in await stack.final_messages(USER, 3)]
        await stack.veil.chat.wait_idle(10)
        sent = stack.telegram.sent_messages(USER)
    assert told[0].startswith("I can only read text files (plain text")
    assert told[1] == (
        "So I did not read the files sent with it either: send again the ones I can read,"
        " without it."
    )
    assert told[2] == (
        "Nor did I ask what you wrote with them: send it again with the files I can read."
    )
    assert len(sent) == 3
    assert stack.vllm.requests == []


async def test_a_text_after_the_album_was_asked_is_a_question_of_its_own(tmp_path: Path) -> None:
    # Once the album is asked, the next text is the next question, answered after it.
    async with running_stack(tmp_path) as stack:
        send_album(stack, [("a.txt", b"alpha\n"), ("b.txt", b"beta\n")], caption="Compare")
        await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        stack.telegram.send_text(USER, "And now?")
        turns = await stack.stored_turns(USER, 4)
    assert turns[0].endswith("\n\nCompare")
    assert turns[2] == "And now?"
