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
from tests.fakes.gated import GatedTelegram
from tests.fakes.vllm import split_tokens
from tests.harness import ManagedProcess, restarted, rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9253
ANSWER = " ".join(f"turnstone{i}" for i in range(30))
CUT_AT = 16
BROKE_AT = 12  # the fake model fails after this many tokens


class NotesHeld(GatedTelegram):
    """``GatedTelegram`` whose held chat takes its first sendMessage (the answer), then holds."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.let_through = 0

    async def _gated_send_message(self, p: dict[str, Any]) -> object:
        if p.get("chat_id") in self.held_chats and self.let_through > 0:
            self.let_through -= 1
            answer = self._answer_send_message(p)
            return await answer if asyncio.iscoroutine(answer) else answer
        return await super()._gated_send_message(p)


def texts_sent(telegram: GatedTelegram) -> list[str]:
    """The texts of the messages the bot sent the user."""
    return [str(m.get("text")) for m in telegram.sent_messages(USER)]


async def killed_before_the_note(data: Path, *, broke_off: bool) -> tuple[list[str], Any]:
    """Ask; kill the bot once Telegram took the answer and holds its note; restart it.

    What the user was sent before the kill (texts), and after the restart (messages).
    """
    db = data / "veil.db"
    telegram = NotesHeld(token=TOKEN)
    async with process_stack(data, answer=ANSWER, telegram_server=telegram) as stack:
        env = stack.env
        if broke_off:
            stack.vllm.error_mid_stream_after = BROKE_AT
        else:
            env |= {"VEIL_MAX_ANSWER_TOKENS": str(CUT_AT), "VEIL_MIN_ANSWER_TOKENS": "8"}
        bot = await ManagedProcess.start("-m", "bot", env=env)
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
    return before, after


async def test_a_bot_killed_between_a_cut_answer_and_its_continue_sends_the_note_at_restart(
    tmp_path: Path,
) -> None:
    before, after = await killed_before_the_note(tmp_path / "data", broke_off=False)
    cut = "".join(split_tokens(ANSWER)[:CUT_AT])
    assert before == [cut]
    answer, note = after  # the answer once, then the note the dead bot never sent
    assert answer["text"] == cut
    assert note["text"] == "✂️ The answer reached its length limit."
    (button,) = note["reply_markup"]["inline_keyboard"][0]
    assert button["text"] == "Continue"


async def test_a_bot_killed_between_a_broken_off_part_and_its_note_sends_the_note_at_restart(
    tmp_path: Path,
) -> None:
    before, after = await killed_before_the_note(tmp_path / "data", broke_off=True)
    part = "".join(split_tokens(ANSWER)[:BROKE_AT])
    assert before == [part]
    sent, note = after
    assert sent["text"] == part
    assert note["text"].startswith("⚠️ The answer broke off here")
    (button,) = note["reply_markup"]["inline_keyboard"][0]
    assert button["text"] == "Retry"
