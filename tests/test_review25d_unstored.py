"""A cut answer whose exchange could not be stored: no Continue note from its row later.

The answer went out whole, its charge and row written, but its turns were refused (the
conversation gone from the file as it ended): ``_finish`` raises ``HistoryUnavailable`` after
delivering, and the followup tells the user so instead of sending the notes. The row waited for
those notes all the same (``Finish.notes``, outbox25), so once its claim ran out a pass sent
"the answer reached its length limit" with a Continue that asks nothing (never kept: the
exchange is not stored), minutes after the apology. Now the row goes with the answer when its
notes will not follow.
"""

from __future__ import annotations

import contextlib
import sqlite3
from functools import partial
from typing import TYPE_CHECKING

from bot.app import deliver_again
from tests.books import inconsistent_users
from tests.botstack import running_stack
from tests.harness import rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9258
ANSWER = " ".join(f"dunlin{i}" for i in range(30))
CONTINUE_NOTE = "✂️ The answer reached its length limit."


async def test_a_cut_answer_whose_history_failed_gets_no_late_continue(tmp_path: Path) -> None:
    db = tmp_path / "veil.db"
    async with running_stack(
        tmp_path,
        answer=ANSWER,
        token_delay=0.05,
        max_answer_tokens=16,
        min_answer_tokens=8,
        sweep_every=3600,
    ) as stack:
        telegram, chat = stack.telegram, stack.veil.chat
        telegram.send_text(USER, "a question")
        await wait_until(lambda: bool(telegram.drafts(USER)), within=30)
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection, connection:
            connection.execute("DELETE FROM conversations WHERE user_id = ?", [USER])
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert await chat.wait_idle(30)
        texts = [str(m.get("text")) for m in telegram.sent_messages(USER)]
        await (
            chat.deliveries.release_undelivered()
        )  # as at the next start, or once the claim ran out
        await chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
        after = [str(m.get("text")) for m in telegram.sent_messages(USER)]
        assert after == texts
        assert CONTINUE_NOTE not in after
        assert rows(db, "SELECT 1 FROM undelivered") == []
        assert await inconsistent_users(stack.veil.store) == []
