"""A live answer's note still going out when its row's claim runs out: not sent twice.

A cut answer's row stays until its Continue note is taken (``Finish.notes``). The answer's own
messages are guarded against a delivery pass while they go out (``_delivering``), past its
row's claim; its notes were not: the guard went once the message was taken, before the notes.
A note held up long enough (a flood wait, on top of an answer's own that used up the claim)
let the upkeep's pass take the row and send the same Continue note beside the live one: the
user saw it twice. Now the row stays the answer's own until its followup has ended.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.books import inconsistent_users
from tests.botstack import TOKEN, running_stack
from tests.fakes.gated import GatedTelegram
from tests.harness import Clock, rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9255
ANSWER = " ".join(f"plover{i}" for i in range(30))
CONTINUE_NOTE = "✂️ The answer reached its length limit."


class FirstNoteHeld(GatedTelegram):
    """``GatedTelegram`` that holds the first Continue note only, until ``release_messages``."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.held_one = False

    async def _gated_send_message(self, p: dict[str, Any]) -> object:
        if p.get("text") == CONTINUE_NOTE and not self.held_one:
            self.held_one = True
            self.holding.set()
            await self._gate.wait()
        answer = self._answer_send_message(p)
        return await answer if asyncio.iscoroutine(answer) else answer


def notes_sent(telegram: GatedTelegram) -> int:
    """How many Continue notes Telegram took for the user."""
    return sum(
        call.answered == "ok" and call.params.get("text") == CONTINUE_NOTE
        for call in telegram.calls_of("sendMessage")
    )


async def test_a_pass_past_the_claim_sends_no_note_the_live_answer_is_still_sending(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    clock = Clock()
    telegram = FirstNoteHeld(token=TOKEN)
    async with running_stack(
        data,
        answer=ANSWER,
        telegram_server=telegram,
        sweep_every=0.2,
        max_answer_tokens=16,
        min_answer_tokens=8,
    ) as stack:
        chat = stack.veil.chat
        chat.clock = clock
        telegram.send_text(USER, "a question")
        async with asyncio.timeout(30):
            await telegram.holding.wait()  # the answer taken, its Continue note in flight
        claimed = int(str(rows(db, "SELECT claimed_until FROM undelivered")[0][0]))
        clock.advance(3 * chat.hold_lifetime)  # the note's flood waits outlast the claim

        def passed() -> bool:  # a pass took the row: it sent the note, or left it (renewed)
            renewed = rows(db, "SELECT claimed_until FROM undelivered")
            return notes_sent(telegram) > 0 or (bool(renewed) and int(str(renewed[0][0])) > claimed)

        await wait_until(passed, within=30)
        telegram.release_messages()
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [], within=30)
        assert await chat.wait_idle(30)
        assert notes_sent(telegram) == 1
        assert rows(db, "SELECT COUNT(*) FROM ledger WHERE kind = 'usage'") == [(1,)]
        assert await inconsistent_users(stack.veil.store) == []
