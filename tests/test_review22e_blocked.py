"""A user who blocked the bot: the answer's row is dropped after one more try, not kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9234
ANSWER = "the osprey folds its wings"


async def test_an_answer_to_a_user_who_blocked_the_bot_is_dropped_not_retried_forever(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    async with running_stack(data, answer=ANSWER, sweep_every=0.2) as stack:
        telegram = stack.telegram
        telegram.fail_next(
            "sendMessage",
            status=403,
            description="Forbidden: bot was blocked by the user",
            count=10_000,
        )
        telegram.send_text(USER, "a question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert await stack.veil.chat.wait_idle(30)
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [])
        # Tried by the answer itself, then once by a pass, refused for good: gone, not retried.
        assert len(telegram.calls_of("sendMessage")) >= 2
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]
