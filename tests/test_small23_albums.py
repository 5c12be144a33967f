"""The text a user sent with an album that is then refused is told unasked, not dropped unsaid.

A question typed right after the files joins their album (``handlers.documents.Albums``);
where one of the files is not read, none of the album is asked, and the user was told so of
the files only: their question vanished without a word. Asked alone it would be answered
blind to the files it is about, and charged: it is told unasked, to send again with them.
Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 2324
NOT_TEXT = "I can only read text files (plain text, such as .txt, .md, .csv or .py) as a question"
ALBUM_REFUSED = (
    "So I did not read the files sent with it either: send again the ones I can read, without it."
)
TEXT_UNASKED = "Nor did I ask what you wrote with them: send it again with the files I can read."
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"


async def test_the_text_sent_with_a_refused_album_is_told_unasked(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="Hello.") as stack:
        for name, data, mime in (
            ("notes.txt", b"alpha\n", "text/plain"),
            ("scan.pdf", PDF, "application/pdf"),
        ):
            document = stack.telegram.media.receive(data, file_name=name, mime_type=mime)
            stack.telegram.user.send_message_of(
                USER, "document", document=document, media_group_id="album-23"
            )
        stack.telegram.send_text(USER, "Which of these is older?")
        await stack.final_messages(USER, 2)  # the file's note and the album's
        stack.telegram.send_text(USER, "Hi")  # after the album: asked as ever
        assert await stack.stored_turns(USER, 2) == ["Hi", "Hello."]
        await stack.veil.chat.wait_idle(10)
        sent = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    assert sent[0].startswith(NOT_TEXT)
    assert sent[1] == ALBUM_REFUSED
    assert sorted(sent[2:]) == sorted([TEXT_UNASKED, "Hello."])
    assert len(stack.vllm.requests) == 1
