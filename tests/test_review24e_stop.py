"""A real stop (SIGTERM to ``python -m bot``) with answers mid-stream: charged once, shown once.

Stopped the metered way (``ChatService.close``), an answer's text so far is charged and goes
out beside its charge; one whose message Telegram did not take waits in ``undelivered`` for
the next start. Across the stop and the restart, every answer is charged once and each of its
messages shown once.

Where the charges outlast the stop's deadline (the database locked by another connection), the
store closes behind them: the count of the message Telegram took while its charge waited, and
the mark that it was delivered, come after the charge and could no longer be written. The row
was left as if nothing had gone out, and the next start sent each answer a second time. The
count is now written with the row when the message was taken before it (``AnswerRow.taken``).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from typing import TYPE_CHECKING

from tests.botstack import process_stack
from tests.harness import ManagedProcess, rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import ProcessStack

USERS = (9281, 9282, 9283)
ANSWER = " ".join(f"curlew{i}" for i in range(400))


async def streaming(stack: ProcessStack, env: dict[str, str]) -> ManagedProcess:
    """A bot with an answer streaming in each user's chat (a draft shown in each)."""
    bot = await ManagedProcess.start("-m", "bot", env=env)
    await bot.wait_for_line("bot.started")
    for user in USERS:
        stack.telegram.send_text(user, "a long question")

    def all_drafted() -> bool:
        drafts = stack.telegram.calls_of("sendMessageDraft")
        return {int(call.params["chat_id"]) for call in drafts} >= set(USERS)

    await wait_until(all_drafted, within=60)
    return bot


def shown_once(stack: ProcessStack, db: Path) -> None:
    """Each user was sent the answer they were charged for, each message once."""
    charged = rows(db, "SELECT outcome FROM holds")
    assert sorted(charged) == [("settled",)] * len(USERS), charged
    for user in USERS:
        sent = [str(m.get("text")) for m in stack.telegram.sent_messages(user)]
        assert sent, user
        assert len(sent) == len(set(sent)), (user, [s[:30] for s in sent])
        assert ANSWER.startswith(" ".join(sent)), user


async def test_a_stop_with_answers_streaming_charges_and_shows_each_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    async with process_stack(data, answer=ANSWER, token_delay=0.02) as stack:
        env = stack.env | {"VEIL_SHUTDOWN_GRACE": "0", "VEIL_STOP_GRACE": "2"}
        bot = await streaming(stack, env)
        assert await bot.stop(within=60) == 0
        again = await ManagedProcess.start("-m", "bot", env=env)
        await again.wait_for_line("bot.started")
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [], within=60)
        assert await again.stop(within=60) == 0
        shown_once(stack, db)


async def test_a_stop_whose_charges_outlast_its_deadline_shows_each_answer_once(
    tmp_path: Path,
) -> None:
    # The database is locked (an operator's sqlite3, a second process) from before the stop
    # until past the answers' deadline: their charges are written as the store closes.
    data = tmp_path / "data"
    db = data / "veil.db"
    async with process_stack(data, answer=ANSWER, token_delay=0.02) as stack:
        env = stack.env | {
            "VEIL_SHUTDOWN_GRACE": "0",
            "VEIL_STOP_GRACE": "1",
            "VEIL_DB_BUSY_TIMEOUT": "120",
        }
        bot = await streaming(stack, env)
        with contextlib.closing(sqlite3.connect(db, isolation_level=None, timeout=60)) as locker:
            locker.execute("BEGIN IMMEDIATE")
            bot.process.send_signal(signal.SIGTERM)
            await bot.wait_for_line("chat.close_timed_out", within=60)
            await bot.wait_for_line("bot.stopped", within=60)
            # The journal closed (its WAL removed): the store closes next, behind the charges.
            journal_wal = data / "journal.db-wal"
            await wait_until(lambda: not journal_wal.exists(), within=60)
        assert await bot.stop(within=60) == 0
        again = await ManagedProcess.start("-m", "bot", env=env)
        await again.wait_for_line("bot.started")
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [], within=60)
        assert await again.stop(within=60) == 0

        shown_once(stack, db)
