"""What README.md says of a reply to one of the files of an album still gathering, checked.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.test_review22a_albums import USER, send_files

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_reply_to_the_file_sent_alone_after_an_album_is_its_question(
    tmp_path: Path,
) -> None:
    # README: files sent as an album and a file sent right after it (the apps send more than
    # ten files as albums of ten and the rest, the last file alone) are one question, and "a
    # reply to one of its files too, after that file's name quoted". The file sent alone
    # joins the album, but a reply to it is asked on its own at once, blind to the files,
    # and the album (a, b, e) asked after it with no question: two answers, two charges.
    async with running_stack(tmp_path) as stack:
        send_files(stack, "first-ten", ("a.txt", "b.txt"), "")
        send_files(stack, None, ("e.txt",), "")
        alone = stack.telegram.state.chat_messages(USER)[-1]["message_id"]
        stack.telegram.send_text(USER, "What does this one hold?", reply_to=alone)
        turns = await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        sent = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    blocks = [f"{name}.txt:\n```\n{name} text\n```" for name in "abe"]
    assert turns[0] == "\n\n".join([*blocks, "> e.txt\n\nWhat does this one hold?"])
    assert sent == ["Hello from the fake model."]
    assert len(stack.vllm.requests) == 1
