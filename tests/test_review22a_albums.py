"""An album of files gathering while the user keeps sending: what joins it, what does not.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USER = 2232
FILES = "a.txt:\n```\nalpha\n```\n\nb.txt:\n```\nbeta\n```"
STREAM = 100  # texts sent 0.3 s apart: half a minute of them


def send_album(stack: Stack) -> None:
    """Two files sent at once, as the apps send them: a message each, one ``media_group_id``."""
    for name, data in (("a.txt", b"alpha\n"), ("b.txt", b"beta\n")):
        document = stack.telegram.media.receive(data, file_name=name, mime_type="text/plain")
        stack.telegram.user.send_message_of(
            USER, "document", document=document, media_group_id="album-22a"
        )


async def test_a_stream_of_texts_does_not_keep_an_album_unasked(tmp_path: Path) -> None:
    # Each text joined to a gathering album made it wait a second more: texts sent under a
    # second apart (a user typing on, a script) kept the album open, its answer unasked and
    # the texts piling into its question, for as long as they came.
    async with running_stack(tmp_path) as stack:
        send_album(stack)
        sent = 0
        while not stack.vllm.requests and sent < STREAM:
            stack.telegram.send_text(USER, f"Point {sent}.")
            sent += 1
            await asyncio.sleep(0.3)  # the user's pace, not a wait for the bot
        turns = await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
    assert sent < STREAM  # asked while the texts still came
    assert turns[0].startswith(f"{FILES}\n\nPoint 0.\n\nPoint 1.")


async def test_commands_sent_while_an_album_gathers_are_run_not_asked(tmp_path: Path) -> None:
    # A command is no question about the files: /forget and /new sent while the album
    # gathers are run as commands, and the album is asked without them (/cancel drops it:
    # ``test_cancel_sent_while_an_album_gathers_drops_it``).
    async with running_stack(tmp_path) as stack:
        send_album(stack)
        for command in ("/forget", "/new"):
            stack.telegram.send_text(USER, command)
        turns = await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        sent = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    assert turns[0] == FILES
    assert len(stack.vllm.requests) == 1
    assert sent[0].startswith("Erase your whole history and settings?")
    assert (
        sent[1] == "Started a new conversation. The previous one will no longer be used as context."
    )
    assert sent[2:] == ["Hello from the fake model."]


async def test_files_too_long_for_the_window_are_cut_not_the_text_joined_to_them(
    tmp_path: Path,
) -> None:
    # The joined text is the question: the files are what a window too small for all of it
    # cuts (to their start, the user told how much was read), never the question after them.
    server = FakeVLLM(answer="Short.", max_model_len=1024)
    question = " ".join(f"q{n % 10}" for n in range(40))
    async with running_stack(
        tmp_path, model_server=server, context_tokens=1024, max_answer_tokens=256
    ) as stack:
        for name in ("a.txt", "b.txt"):
            data = " ".join(f"{name[0]}{n % 10}" for n in range(800)).encode()
            document = stack.telegram.media.receive(data, file_name=name, mime_type="text/plain")
            stack.telegram.user.send_message_of(
                USER, "document", document=document, media_group_id="album-long"
            )
        stack.telegram.send_text(USER, question)
        turns = await stack.stored_turns(USER, 2)
        answer, note = await stack.final_messages(USER, 2)
        await stack.veil.chat.wait_idle(10)
    assert turns[0].startswith("a.txt (only its first ")
    assert turns[0].endswith(f"\n```\n\n{question}")
    assert answer["text"] == "Short."
    assert "it read the first" in note["text"]


async def test_a_reply_to_a_file_of_the_gathering_album_is_its_question(tmp_path: Path) -> None:
    # "And this one?" replying to one of the files just sent was asked on its own at once,
    # answered blind to the files, and the album, asked once gathered, was refused as "still
    # writing the previous answer": the same two answers files22 fixed for a plain text.
    async with running_stack(tmp_path) as stack:
        send_album(stack)
        second = stack.telegram.state.chat_messages(USER)[-1]["message_id"]
        stack.telegram.send_text(USER, "What does this one hold?", reply_to=second)
        turns = await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        sent = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    assert turns[0] == f"{FILES}\n\n> b.txt\n\nWhat does this one hold?"
    assert sent == ["Hello from the fake model."]
    assert len(stack.vllm.requests) == 1


def send_files(stack: Stack, group: str | None, names: tuple[str, ...], caption: str) -> None:
    """Files sent as the apps send them: in album ``group`` (None: alone), the last captioned."""
    for name in names:
        data = f"{name[0]} text\n".encode()
        document = stack.telegram.media.receive(data, file_name=name, mime_type="text/plain")
        more = {} if group is None else {"media_group_id": group}
        if name == names[-1] and caption:
            more["caption"] = caption
        stack.telegram.user.send_message_of(USER, "document", document=document, **more)


async def test_albums_sent_back_to_back_are_one_question(tmp_path: Path) -> None:
    # The apps send more than ten files as albums of ten and the rest, one right after the
    # other, the caption (the question) on the last file: the first album was asked without
    # it, and the second, with the question, refused as "still writing the previous answer".
    # Eleven files: the eleventh is sent alone, no album of its own, and was refused so too.
    async with running_stack(tmp_path) as stack:
        send_files(stack, "first-ten", ("a.txt", "b.txt"), "")
        send_files(stack, "the-rest", ("c.txt", "d.txt"), "")
        send_files(stack, None, ("e.txt",), "Which is longest?")
        turns = await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        sent = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    blocks = [f"{name}.txt:\n```\n{name} text\n```" for name in "abcde"]
    assert turns[0] == "\n\n".join([*blocks, "Which is longest?"])
    assert sent == ["Hello from the fake model."]
    assert len(stack.vllm.requests) == 1


async def test_cancel_sent_while_an_album_gathers_drops_it(tmp_path: Path) -> None:
    # /cancel sent right after the files: "Nothing is being written right now.", and a second
    # later the files were asked, and charged, all the same (with the next text, which joined
    # them). Now they are dropped; the next text is a question of its own.
    async with running_stack(tmp_path) as stack:
        send_album(stack)
        stack.telegram.send_text(USER, "/cancel")
        await stack.final_messages(USER, 1)
        stack.telegram.send_text(USER, "Something else, then.")
        turns = await stack.stored_turns(USER, 2)
        await stack.veil.chat.wait_idle(10)
        sent = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    assert sent == ["Stopped.", "Hello from the fake model."]
    assert turns == ["Something else, then.", "Hello from the fake model."]
    assert len(stack.vllm.requests) == 1
