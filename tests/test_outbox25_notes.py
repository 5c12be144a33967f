"""The notes under an answer sent again: each gets its chance, whatever Telegram answered one.

A cut answer about a file read in part has two notes under it: Continue (its length limit),
then how much of the file was read. Telegram took the first, but its reply did not validate
(``"ok": true`` with a ``Message`` that does not: a proxy mangling replies). That note went out
(``UnreadableReply.taken``); the delivery took it for the end of the answer, deleted the row and
never sent the second note. Now a note Telegram took is a note taken, however its reply reads,
and the next one goes out before the row is deleted. So it does after a note Telegram refused
for good (a 400 for that note alone): the delivery was taken for refused, and the note after
it never sent.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from bot.app import deliver_again
from tests.botstack import QUICK_RETRY, TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import rows

if TYPE_CHECKING:
    from pathlib import Path

USER = 9251
WINDOW, ROOM = 1024, 256
CUT = " ".join(["godwit"] * 600)  # longer than ROOM: cut at its length limit
FILE = " ".join(f"w{n % 10}" for n in range(1500))  # over the window: read in part
CONTINUE_NOTE = "✂️ The answer reached its length limit."


async def resent(tmp_path: Path, mode: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """A cut answer about a file left to its row, sent again, its Continue answered in ``mode``.

    What the user was sent, and the row left (``tests.fakes.hostile``'s modes).
    """
    db = tmp_path / "veil.db"
    telegram = HostileTelegram(token=TOKEN)
    server = FakeVLLM(answer=CUT, max_model_len=WINDOW)
    async with running_stack(
        tmp_path,
        model_server=server,
        telegram_server=telegram,
        sweep_every=3600,
        context_tokens=WINDOW,
        max_answer_tokens=ROOM,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_document(USER, FILE.encode(), file_name="long.txt", caption="Sum up")
        await stack.stored_turns(USER, 2, within=30)
        assert await stack.veil.chat.wait_idle(90)
        assert rows(db, "SELECT ending, notes_taken FROM undelivered") == [("cut", 0)]
        telegram.clear_failures()
        telegram.misbehave("sendMessage", mode, when=lambda p: p.get("text") == CONTINUE_NOTE)
        await stack.veil.chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
        sent = [str(m.get("text")) for m in telegram.sent_messages(USER)]
        left = rows(db, "SELECT notes_taken FROM undelivered")
    assert telegram.misbehaved == [("sendMessage", mode)]
    return sent, left


async def test_a_note_telegram_took_with_an_unreadable_reply_is_followed_by_the_next(
    tmp_path: Path,
) -> None:
    sent, left = await resent(tmp_path, "malformed")
    assert len(sent) == 3, sent  # the answer, Continue (taken, its reply unreadable), the file's
    assert sent[1] == CONTINUE_NOTE
    assert sent[2].startswith("📄 The file was too long"), sent
    assert left == []  # deleted once both notes were taken


async def test_a_note_telegram_refused_for_good_is_followed_by_the_next(tmp_path: Path) -> None:
    sent, left = await resent(tmp_path, "undescribed")  # a 400 for Continue's note
    assert len(sent) == 2, sent  # the answer, then the file's note all the same
    assert sent[1].startswith("📄 The file was too long"), sent
    assert left == []
