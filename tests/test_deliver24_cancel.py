"""An answer cancelled while it waits for its charge stays cancelled.

Each message of a private answer Telegram takes is counted in its row, which its charge
writes: the count waits for the charge. That wait swallowed a cancellation (the loop's
teardown, cancelling what a stop left running past its deadline): once the charge was
written, the rest of the answer went out from a process that was stopping. The count of the
message taken is still written; then the cancellation goes on, and the answer's row (given
back with that count) sends the rest, at the next start or pass. So does the part of an
answer that broke off, which waits for its charge before it goes out: it went out once the
charge was written; now its row, given back, sends it (and the note under it).

At a process's stop the charge's write ends before the teardown cancels anything (the store
closes after the answers, behind their writes), so the cancellation is made here as the
teardown makes it: ``Task.cancel`` on the answer's task, while its count waits for a charge
held up by the database's lock (another connection's write transaction, as a second process
or an operator's ``sqlite3`` holds it).
"""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from typing import TYPE_CHECKING

from bot.app import deliver_again
from bot.formatting import render_parts
from tests.botstack import running_stack
from tests.fakes.vllm import split_tokens
from tests.harness import rows, wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9261
# About 5,000 characters: two messages of at most 4096.
LONG = " ".join(f"dunlin{i}" for i in range(500))
ANSWER = " ".join(f"knot{i}" for i in range(30))
BROKE_AT = 12  # the fake model fails after this many tokens
PART = "".join(split_tokens(ANSWER)[:BROKE_AT])


def running(qualname: str) -> list[asyncio.Task[object]]:
    """The tasks running the coroutine function ``qualname``, as the teardown sees them."""
    return [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == qualname]


def answer_task() -> asyncio.Task[object]:
    """The task an answer runs in (``ChatService.answer``'s inner one)."""
    (task,) = running("ChatService._answer")
    return task


def awaiting(task: asyncio.Task[object], qualname: str) -> bool:
    """Whether ``task`` is suspended in the coroutine function ``qualname`` (its await chain)."""
    step: object = task.get_coro()
    while step is not None:
        if getattr(step, "__qualname__", "") == qualname:
            return True
        step = getattr(step, "cr_await", None)
    return False


async def test_an_answer_cancelled_while_its_count_waits_for_the_charge_sends_no_more(
    tmp_path: Path,
) -> None:
    db = tmp_path / "veil.db"
    first, second = (part.text for part in render_parts(LONG))
    async with running_stack(
        tmp_path,
        answer=LONG,
        token_delay=0.005,
        max_answer_tokens=2048,
        db_busy_timeout=120,
        sweep_every=3600,
    ) as stack:
        telegram = stack.telegram
        telegram.send_text(USER, "a long question")
        await telegram.wait_for("sendChatAction", timeout=30)  # held: the model is asked
        locker = sqlite3.connect(db, isolation_level=None, timeout=60)
        try:
            locker.execute("BEGIN IMMEDIATE")  # the charge waits for this lock
            await stack.final_messages(USER, 1, within=60)  # the first message is sent
            task = answer_task()
            # Telegram's answer to it read and its count waiting for the charge: the fake
            # records a message before the bot reads the reply, and a cancellation before that
            # reply (a loaded machine) leaves the message uncounted, which is not this test's.
            await wait_until(lambda: awaiting(task, "Deliveries._recording.<locals>.record"))
            task.cancel()
        finally:
            locker.close()  # the charge is written now
        async with asyncio.timeout(30):
            await asyncio.wait([task])
        sent = [str(m.get("text")) for m in telegram.sent_messages(USER)]
        left = rows(db, "SELECT parts_taken, claimed_until FROM undelivered")
        await stack.veil.chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
        after = [str(m.get("text")) for m in telegram.sent_messages(USER)]
    assert sent == [first]  # the second message did not go out from the cancelled task
    assert task.cancelled()
    assert left == [(1, 0)]  # the first counted; the row given back to a delivery pass
    assert after == [first, second]  # which sends the rest only
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]


async def test_an_answer_that_broke_off_cancelled_while_it_is_charged_leaves_its_part_to_its_row(
    tmp_path: Path,
) -> None:
    db = tmp_path / "veil.db"
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.01, db_busy_timeout=120, sweep_every=3600
    ) as stack:
        telegram = stack.telegram
        stack.vllm.error_mid_stream_after = BROKE_AT
        telegram.send_text(USER, "a question")
        await telegram.wait_for("sendChatAction", timeout=30)  # held: the model is asked
        locker = sqlite3.connect(db, isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")  # the charge waits for this lock
            await wait_until(lambda: bool(running("ChatService._settle")))  # it broke off
            task = answer_task()
            task.cancel()
        finally:
            locker.close()  # the charge is written now
        async with asyncio.timeout(30):
            await asyncio.wait([task])
        assert await stack.veil.chat.wait_idle(30)
        sent = [str(m.get("text")) for m in telegram.sent_messages(USER)]
        left = rows(db, "SELECT ending, claimed_until FROM undelivered")
        await stack.veil.chat.deliveries.deliver_undelivered(partial(deliver_again, stack.veil))
        after = [str(m.get("text")) for m in telegram.sent_messages(USER)]
    assert sent == []  # the part did not go out from the cancelled task
    assert task.cancelled()
    assert left == [("broke_off", 0)]  # its row given back to a delivery pass
    assert after[0] == PART  # which sends it, with its note
    assert after[1].startswith("⚠️ The answer broke off here")
    assert len(after) == 2
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]
