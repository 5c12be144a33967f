"""A row's counts altered in the file: the answer still goes out whole, in order, with its notes.

``rich_taken``, ``parts_taken`` and ``notes_taken`` are plain columns (the text and its
``Finish`` are sealed, the counts are not: each is rewritten as Telegram takes a message).
The bot never writes one below zero. One read below zero (whoever can write the file set it)
was used as a Python index: ``parts_taken`` -1 sent the answer's last message first, then the
whole answer (its last message twice, out of order); ``notes_taken`` -1 sent only the last of
its notes (a cut answer about a file lost its Continue). A count below zero is read as none
taken: the answer goes out whole, as if it had never been sent (at least once, never garbled).
"""

from __future__ import annotations

import contextlib
import sqlite3
from functools import partial
from typing import TYPE_CHECKING

from bot.app import deliver_again
from bot.formatting import render_parts
from tests.botstack import QUICK_RETRY, running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import rows

if TYPE_CHECKING:
    from pathlib import Path

USER = 9271
LONG = " ".join(f"sanderling{i}" for i in range(450))  # two messages of at most 4096
WINDOW, ROOM = 1024, 256
CUT = " ".join(["shoal"] * 600)  # longer than ROOM: cut at its length limit


def alter(db: Path, sql: str) -> None:
    """Change the bot's file beside it, as whoever can write it does."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        connection.execute(sql)


async def test_a_row_whose_message_count_is_below_zero_sends_its_answer_whole_in_order(
    tmp_path: Path,
) -> None:
    db = tmp_path / "veil.db"
    first, second = (part.text for part in render_parts(LONG))
    async with running_stack(
        tmp_path, answer=LONG, sweep_every=3600, final_retry_wait=QUICK_RETRY
    ) as stack:
        telegram = stack.telegram
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_text(USER, "a long question")
        await stack.stored_turns(USER, 2, within=30)
        assert await stack.veil.chat.wait_idle(60)
        assert rows(db, "SELECT parts_taken, claimed_until FROM undelivered") == [(0, 0)]
        alter(db, "UPDATE undelivered SET parts_taken = -1")
        telegram.clear_failures()
        await stack.veil.chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
        sent = [str(m.get("text")) for m in telegram.sent_messages(USER)]
    assert sent == [first, second]
    assert rows(db, "SELECT 1 FROM undelivered") == []


async def test_a_row_whose_note_count_is_below_zero_sends_every_note_under_its_answer(
    tmp_path: Path,
) -> None:
    # A cut answer about a file read in part has two notes: Continue, then how much was read.
    db = tmp_path / "veil.db"
    server = FakeVLLM(answer=CUT, max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(1500))
    async with running_stack(
        tmp_path,
        model_server=server,
        sweep_every=3600,
        context_tokens=WINDOW,
        max_answer_tokens=ROOM,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        telegram = stack.telegram
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        await stack.stored_turns(USER, 2, within=30)
        assert await stack.veil.chat.wait_idle(90)
        assert rows(db, "SELECT ending, notes_taken FROM undelivered") == [("cut", 0)]
        alter(db, "UPDATE undelivered SET notes_taken = -1")
        telegram.clear_failures()
        await stack.veil.chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
        sent = telegram.sent_messages(USER)
    notes = [str(m.get("text")) for m in sent[1:]]
    assert len(sent) == 3, notes
    assert notes[0] == "✂️ The answer reached its length limit."
    assert sent[1].get("reply_markup")  # its Continue
    assert notes[1].startswith("📄 The file was too long"), notes
    assert rows(db, "SELECT 1 FROM undelivered") == []
