"""An answer whose own messages are still going out when its row's claim runs out."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import Clock, rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9234
WORDS = 700
LONG = " ".join(f"egret{i:04d}" for i in range(WORDS))  # about 7,000 characters: two messages


async def test_a_pass_sends_no_answer_whose_own_messages_are_still_going_out(
    tmp_path: Path,
) -> None:
    # Several flood waits of a many-message answer may outlast its row's claim (the longest an
    # answer holds credit, about 12 minutes): the clock is moved past it while the second
    # message waits one out. A pass then took the row and sent the answer a second time.
    data = tmp_path / "data"
    db = data / "veil.db"
    clock = Clock()
    async with running_stack(data, answer=LONG, sweep_every=0.2) as stack:
        telegram = stack.telegram
        stack.veil.chat.clock = clock
        telegram.fail_every(["sendMessage"], nth=2, status=429, retry_after=3)  # waited out
        telegram.send_text(USER, "a long question")

        def waiting() -> bool:
            return any(c.answered != "ok" for c in telegram.calls_of("sendMessage"))

        await wait_until(waiting)
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM undelivered")))
        clock.advance(3 * stack.veil.chat.hold_lifetime)
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [], within=60)
        telegram.clear_failures()
        assert await stack.veil.chat.wait_idle(30)
        words: Counter[str] = Counter()
        for call in telegram.calls_of("sendMessage"):
            if call.answered == "ok":
                words.update(re.findall(r"egret\d{4}", str(call.params.get("text"))))
    assert set(words) == {f"egret{i:04d}" for i in range(WORDS)}
    assert set(words.values()) == {1}, f"egret0000 shown {words['egret0000']} times"
