"""What the bot keeps: nothing readable on disk, in logs or on the wire; /forget erases it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from typing import TYPE_CHECKING

import structlog

from services.chat import CONTINUE_PROMPT
from services.titles import TITLE_PROMPT
from tests.botstack import running_stack
from tests.test_bot_stop import behind_proxy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import pytest

    from tests.botstack import Stack
    from tests.fakes.relay import RecordingProxy

USER = 7001
GROUP = -1_001_234_567
PROMPT = "My private worry: tangerine-hippogriff-93"
ANSWER = "A private reply about **obsidian-kettledrum-58** for you."
MARKERS = ("tangerine", "hippogriff", "obsidian", "kettledrum")


def disk_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("veil.db*")))


def every_file(data_dir: Path) -> bytes:
    """The bytes of every file in ``data_dir``: the databases, the payment journal, the keys."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file())


def assert_absent(haystack: bytes, markers: tuple[str, ...] = MARKERS) -> None:
    for marker in markers:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert marker.encode(encoding) not in haystack, marker


@contextlib.asynccontextmanager
async def recording(stack: Stack) -> AsyncIterator[RecordingProxy]:
    """A recording proxy between the bot and its gateway, for the block (``behind_proxy``)."""
    proxy = await behind_proxy(stack)
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_nothing_readable_on_disk_in_logs_or_on_the_wire(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        async with recording(stack) as proxy:  # the bot's inference through the proxy
            with structlog.testing.capture_logs() as logs:
                stack.telegram.send_text(USER, PROMPT)
                (message,) = await stack.final_messages(USER)
                await stack.stored_turns(USER, 2)
                stack.telegram.send_text(USER, "And a follow-up question")
                await stack.final_messages(USER, 2)
        assert "obsidian-kettledrum-58" in message["text"]  # the user did get the answer
        assert stack.vllm.requests[0]["messages"][-1]["content"] == PROMPT  # it reached vLLM
        assert len(proxy.captured) > 2000
        assert_absent(proxy.captured)
        assert_absent(disk_bytes(tmp_path))  # while open: the WAL is live
        rendered_logs = json.dumps(logs, default=str)
        assert "chat.answered" in rendered_logs
        assert_absent(rendered_logs.encode())
    assert_absent(disk_bytes(tmp_path))  # after close and checkpoint
    master_key = (tmp_path / "master.key").stat()
    assert master_key.st_mode & 0o077 == 0


# Written after the tests above: each part of a question that came later, with its markers.
FILE_TEXT = "Meeting notes: saffron-trebuchet-41"
FILE_NAME = "quokka-lantern.txt"
CAPTION = "Summarise: vermilion-bassoon?"
FOLLOW_UP = "Tell me more about marmalade-wombat"
EDITED = "My private worry: periwinkle-gazebo"
GROUP_CAPTION = "@veil_test_bot what is cobalt-narwhal?"
LATER = ("saffron", "trebuchet", "quokka", "vermilion", "marmalade", "periwinkle", "narwhal")


async def test_files_quotes_edits_and_captions_stay_off_disk_logs_and_wire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A text file read as a question (its text, name and caption), a reply quoting the answer,
    # an edited question (told it was answered as sent) and a group's question in a photo's
    # caption (refused): as the first question, nothing of them readable anywhere.
    async with running_stack(tmp_path, answer=ANSWER) as stack, recording(stack) as proxy:
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(USER, PROMPT)
            (answer,) = await stack.final_messages(USER)
            stack.telegram.send_text(
                USER, FOLLOW_UP, reply_to=answer["message_id"], quote="obsidian-kettledrum-58"
            )
            await stack.final_messages(USER, 2)
            asked = stack.telegram.state.chat_messages(USER)[0]["message_id"]
            stack.telegram.edit_text(USER, asked, EDITED)
            stack.telegram.send_document(
                USER, FILE_TEXT.encode(), file_name=FILE_NAME, caption=CAPTION
            )
            await stack.final_messages(USER, 4)
            await stack.stored_turns(USER, 6)
            stack.telegram.send_message_of(
                USER,
                "photo",
                chat_id=GROUP,
                caption=GROUP_CAPTION,
                caption_entities=[{"type": "mention", "offset": 0, "length": 14}],
            )
            async with asyncio.timeout(10):
                while not stack.telegram.ephemeral_messages(GROUP, USER):  # noqa: ASYNC110 -- polls the fake's record
                    await asyncio.sleep(0.02)
    asked_of_model = [r["messages"][-1]["content"] for r in stack.vllm.requests]
    assert "> obsidian-kettledrum-58" in asked_of_model[1]  # the quote reached the model
    assert asked_of_model[2].startswith(f"{FILE_NAME}:")  # and so did the file
    assert len(asked_of_model) == 3  # not the edit, not the caption
    rendered = (json.dumps(logs, default=str) + caplog.text).encode()
    for haystack in (proxy.captured, rendered, every_file(tmp_path)):
        assert_absent(haystack, MARKERS + LATER)


# An answer cut at its length limit, so it has a Continue button; the fake model writes it
# for every request, the title request too (whose title is then its first words).
ESSAY = " ".join(f"obsidian-kettledrum-{n}" for n in range(40))


async def test_titles_continue_and_rich_answers_stay_off_disk_logs_and_wire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The paths that came after the tests above, as production runs them (rich messages,
    # titles on): the title request and the title kept, a cut answer and its Continue.
    async with (
        running_stack(
            tmp_path,
            answer=ESSAY,
            max_answer_tokens=16,
            min_answer_tokens=8,
            rich_messages=True,
            conversation_titles=True,
        ) as stack,
        recording(stack) as proxy,
    ):
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(USER, PROMPT)
            _, note = await stack.final_messages(USER, 2)
            await stack.stored_turns(USER, 2)
            async with asyncio.timeout(10):
                while not any(c.title for c in await stack.veil.store.conversations(USER)):  # noqa: ASYNC110 -- polls the store
                    await asyncio.sleep(0.02)
            (button,) = note["reply_markup"]["inline_keyboard"][0]
            stack.telegram.press_button(
                USER, button["callback_data"], message_id=note["message_id"]
            )
            await stack.final_messages(USER, 4)
            await stack.stored_turns(USER, 4)
        (conversation,) = await stack.veil.store.conversations(USER)
    assert conversation.title is not None
    assert conversation.title.startswith("obsidian-kettledrum")  # named from the answer
    asked = [r["messages"][-1]["content"] for r in stack.vllm.requests]
    assert len(asked) == 3  # the question, its title, the Continue
    assert any(text.startswith(TITLE_PROMPT) and PROMPT in text for text in asked)
    assert asked[-1] == CONTINUE_PROMPT
    rendered = (json.dumps(logs, default=str) + caplog.text).encode()
    for haystack in (proxy.captured, rendered, every_file(tmp_path)):
        assert_absent(haystack)


async def test_forget_erases_history_so_it_cannot_be_found_or_decrypted(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        stack.telegram.send_text(USER, PROMPT)
        await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        with sqlite3.connect(tmp_path / "veil.db") as db:
            sealed = [
                row[0] for row in db.execute("SELECT body FROM turns WHERE user_id = ?", [USER])
            ]
        assert len(sealed) == 2
        stack.telegram.send_text(USER, "/forget")
        confirm = (await stack.final_messages(USER, 2))[1]
        buttons = confirm["reply_markup"]["inline_keyboard"][0]
        assert [b["text"] for b in buttons] == ["Erase everything", "Keep"]
        # What is kept, and why: money records, never text.
        assert "Kept: your money records" in confirm["text"]
        assert "(never any text)" in confirm["text"]
        stack.telegram.press_button(
            USER, buttons[0]["callback_data"], message_id=confirm["message_id"]
        )
        await stack.telegram.wait_for("editMessageText")
        assert stack.telegram.sent_messages(USER)[1]["text"] == (
            "Done: your key and 2 stored messages are gone. Your money records (amounts and"
            " times, no text) are kept for refunds and audits."
        )
        assert await stack.veil.store.get_user(USER) is None
        with sqlite3.connect(tmp_path / "veil.db") as db:
            left = db.execute("SELECT COUNT(*) FROM turns WHERE user_id = ?", [USER]).fetchone()
        assert left == (0,)
        # A new message starts from nothing: the old history is not sent as context.
        stack.telegram.send_text(USER, "Do you remember me?")
        await stack.final_messages(USER, 3)
        assert [m["content"] for m in stack.vllm.requests[-1]["messages"]] == [
            "Do you remember me?"
        ]
    disk = disk_bytes(tmp_path)
    for blob in sealed:
        assert blob not in disk


async def test_forget_can_be_declined(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(USER, "Hello")
        await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        stack.telegram.send_text(USER, "/forget")
        confirm = (await stack.final_messages(USER, 2))[1]
        keep = confirm["reply_markup"]["inline_keyboard"][0][1]
        stack.telegram.press_button(USER, keep["callback_data"], message_id=confirm["message_id"])
        await stack.telegram.wait_for("editMessageText")
        assert stack.telegram.sent_messages(USER)[1]["text"] == "Nothing was erased."
        conversation = await stack.veil.store.active_conversation(USER)
        assert len(await stack.veil.store.history(USER, conversation)) == 2


async def test_privacy_command_shows_verified_worker_key(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(USER, "/privacy", language_code="ru")
        text = await stack.reply_text(USER)
        await stack.veil.chat.inference.refresh()
        (trust,) = stack.veil.chat.inference.trust()
    assert text.startswith("Кто что видит:")
    assert "Telegram: да" in text
    assert trust.fingerprint is not None
    assert f"✅ Сервер 1: {trust.fingerprint}" in text
    assert "подписан оператором" in text


async def test_privacy_names_workers_by_position_and_fingerprint_never_by_address(
    tmp_path: Path,
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    async with running_stack(tmp_path, extra_gateways=(dead,)) as stack:
        stack.telegram.send_text(USER, "/privacy")
        text = await stack.reply_text(USER)
        live, down = stack.veil.chat.inference.trust()
        stack.telegram.send_text(USER + 1, "/privacy", language_code="kk")
        kazakh = await stack.reply_text(USER + 1)
    assert live.fingerprint is not None
    assert f"✅ Worker 1: {live.fingerprint}" in text
    assert "⚠️ Worker 2: unreachable" in text
    assert (down.index, down.verified, down.problem) == (2, False, "unreachable")
    assert "⚠️ 2-сервер: қолжетімсіз" in kazakh
    for reply in (text, kazakh):
        for address in (stack.gateway.url, dead, "127.0.0.1", "http", "localhost"):
            assert address not in reply
