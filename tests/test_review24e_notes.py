"""The two notes under an answer sent again, with Telegram refusing the second for now.

A cut answer about a file read in part has two notes: Continue (its length limit), then how
much of the file was read. Each is counted in the answer's row as Telegram takes it
(``notes_taken``): a flood wait on the second (longer than the bot waits) leaves the row to
the next pass, which sends that note only (not the answer, not Continue again); a /forget
before that pass sends nothing more.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from bot.app import deliver_again
from tests.botstack import QUICK_RETRY, running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import rows

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USER = 9272
WINDOW, ROOM = 1024, 256
CUT = " ".join(["shoal"] * 600)  # longer than ROOM: cut at its length limit
FILE = " ".join(f"w{n % 10}" for n in range(1500))  # over the window: read in part


async def left_with_two_notes(stack: Stack, db: Path) -> None:
    """Ask about the file with Telegram down: the cut answer waits in its row, notes untaken."""
    telegram = stack.telegram
    telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
    telegram.send_document(USER, FILE.encode(), file_name="long.txt", caption="Sum up")
    await stack.stored_turns(USER, 2, within=30)
    assert await stack.veil.chat.wait_idle(90)
    assert rows(db, "SELECT ending, notes_taken FROM undelivered") == [("cut", 0)]
    telegram.clear_failures()
    # Of the resend's messages, the answer's and Continue's go out; the file's note is refused.
    # A flood wait longer than the bot waits (``bot.telegram.RetryMiddleware``): not now.
    telegram.fail_every(["sendMessage"], nth=3, status=429, retry_after=3600)
    await stack.veil.chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
    telegram.clear_failures()


async def test_the_second_note_refused_for_now_goes_out_alone_at_the_next_pass(
    tmp_path: Path,
) -> None:
    db = tmp_path / "veil.db"
    server = FakeVLLM(answer=CUT, max_model_len=WINDOW)
    async with running_stack(
        tmp_path,
        model_server=server,
        sweep_every=3600,
        context_tokens=WINDOW,
        max_answer_tokens=ROOM,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        await left_with_two_notes(stack, db)
        first = [str(m.get("text")) for m in stack.telegram.sent_messages(USER)]
        left = rows(db, "SELECT notes_taken, claimed_until > 0 FROM undelivered")
        await stack.veil.chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
        sent = [str(m.get("text")) for m in stack.telegram.sent_messages(USER)]
    assert len(first) == 2, first
    assert first[1] == "✂️ The answer reached its length limit."
    assert left == [(1, 1)]  # Continue counted; the row given back to the next pass
    assert sent[:2] == first
    assert len(sent) == 3, sent
    assert sent[2].startswith("📄 The file was too long"), sent
    assert rows(db, "SELECT 1 FROM undelivered") == []


async def test_no_note_goes_out_after_the_user_forgot_between_the_two(tmp_path: Path) -> None:
    db = tmp_path / "veil.db"
    server = FakeVLLM(answer=CUT, max_model_len=WINDOW)
    async with running_stack(
        tmp_path,
        model_server=server,
        sweep_every=3600,
        context_tokens=WINDOW,
        max_answer_tokens=ROOM,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        await left_with_two_notes(stack, db)
        first = len(stack.telegram.sent_messages(USER))
        await stack.veil.chat.forget(USER)
        await stack.veil.chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
        sent = len(stack.telegram.sent_messages(USER))
    assert first == 2
    assert sent == first
    assert rows(db, "SELECT 1 FROM undelivered") == []
