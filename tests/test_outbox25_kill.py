"""A live answer's notes are part of its delivery: its row stays until Telegram took them.

A cut answer goes out as its message, then the note under it with Continue. The answer's row
(``models.outbox``) was deleted once Telegram took the message, before the note went out: a
bot killed between the two (SIGKILL, the host's OOM killer) left the user an answer with no
Continue, and nothing to send it from. Now the note is counted in the row as the message is
(``notes_taken``), and the row goes once the last note was taken: the restart sends the note
only (not the answer again). So does a broken-off answer's part, whose note says where it
broke off and carries Retry.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.botstack import TOKEN, process_stack
from tests.fakes.vllm import split_tokens
from tests.harness import ManagedProcess, restarted, rows, wait_until
from tests.test_deliver23_resend import SecondHeld

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fakes.gated import GatedTelegram

USER = 9253
ANSWER = " ".join(f"turnstone{i}" for i in range(30))
CUT_AT = 16
BROKE_AT = 12  # the fake model fails after this many tokens


def texts_sent(telegram: GatedTelegram) -> list[str]:
    """The texts of the messages the bot sent the user."""
    return [str(m.get("text")) for m in telegram.sent_messages(USER)]


async def note_sent_at_restart(data: Path, shown: str, *, broke_off: bool) -> dict[str, Any]:
    """Ask; kill the bot once Telegram took the answer and holds its note; restart it.

    The answer's message (``shown``) is what the user was sent before the kill, and again
    after the restart, then the note the dead bot never sent: that note.
    """
    db = data / "veil.db"
    telegram = SecondHeld(token=TOKEN)
    async with process_stack(data, answer=ANSWER, telegram_server=telegram) as stack:
        env = stack.env
        if broke_off:
            stack.vllm.error_mid_stream_after = BROKE_AT
        else:
            env |= {"VEIL_MAX_ANSWER_TOKENS": str(CUT_AT), "VEIL_MIN_ANSWER_TOKENS": "8"}
        bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
        await bot.wait_for_line("bot.started")
        telegram.hold_messages_to(USER)
        telegram.let_through = 1  # the answer's message is taken; its note waits, never taken
        telegram.send_text(USER, "a question")
        async with asyncio.timeout(30):
            await telegram.holding.wait()
        before = texts_sent(telegram)
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        # The answer counted, its note not taken: the row kept (it was deleted here).
        assert rows(db, "SELECT parts_taken, notes_taken FROM undelivered") == [(1, 0)]
        await bot.kill()
        telegram.held_chats.clear()  # the dead bot's note stays held; new calls go through
        async with restarted(env, db):
            pass
        after = telegram.sent_messages(USER)
        telegram.release_messages()
    assert before == [shown]
    answer, note = after  # the answer once, then the note
    assert answer["text"] == shown
    return dict(note)


def button_of(note: dict[str, Any]) -> str:
    """The text of the one button under ``note``."""
    (button,) = note["reply_markup"]["inline_keyboard"][0]
    return str(button["text"])


async def test_a_bot_killed_between_a_cut_answer_and_its_continue_sends_the_note_at_restart(
    tmp_path: Path,
) -> None:
    cut = "".join(split_tokens(ANSWER)[:CUT_AT])
    note = await note_sent_at_restart(tmp_path / "data", cut, broke_off=False)
    assert note["text"] == "✂️ The answer reached its length limit."
    assert button_of(note) == "Continue"


async def test_a_bot_killed_between_a_broken_off_part_and_its_note_sends_the_note_at_restart(
    tmp_path: Path,
) -> None:
    part = "".join(split_tokens(ANSWER)[:BROKE_AT])
    note = await note_sent_at_restart(tmp_path / "data", part, broke_off=True)
    assert note["text"].startswith("⚠️ The answer broke off here")
    assert button_of(note) == "Retry"
