"""An answer cancelled while its end is written stays cancelled.

``_deliver`` waits for the answer's charge, whatever cancels it meanwhile, before it marks the
answer's row: the charge must be written. The cancellation was swallowed there: a task the
loop's teardown cancelled while its charge waited for the database went on once it was
written (an empty answer told its user, a followup run from a stopping process). Now the end
is written, then the cancellation goes on. As the teardown makes it (``Task.cancel`` on the
answer's task), while the charge waits for a lock another connection holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import rows, wait_until
from tests.test_deliver24_cancel import answer_task

if TYPE_CHECKING:
    from pathlib import Path

USER = 9254


def awaited(task: asyncio.Task[object]) -> list[str]:
    """The coroutine functions ``task`` is suspended in, outermost first (its await chain)."""
    chain: list[str] = []
    step: object = task.get_coro()
    while step is not None:
        chain.append(str(getattr(step, "__qualname__", "")))
        step = getattr(step, "cr_await", None)
    return chain


def ending(task: asyncio.Task[object]) -> bool:
    """Whether the answer has shown its end and waits in ``_deliver`` for its charge."""
    chain = awaited(task)
    return "Deliveries.deliver" in chain and not any(n.endswith(".abort") for n in chain)


async def test_an_answer_cancelled_while_its_end_waits_for_the_charge_stays_cancelled(
    tmp_path: Path,
) -> None:
    db = tmp_path / "veil.db"
    async with running_stack(tmp_path, answer="", db_busy_timeout=120, sweep_every=3600) as stack:
        telegram = stack.telegram
        telegram.send_text(USER, "a question")
        await telegram.wait_for("sendChatAction", timeout=30)  # the model is asked
        locker = sqlite3.connect(db, isolation_level=None, timeout=60)
        try:
            locker.execute("BEGIN IMMEDIATE")  # the charge waits for this lock
            task = answer_task()
            await wait_until(lambda: ending(task))
            task.cancel()
        finally:
            locker.close()  # the charge is written now
        async with asyncio.timeout(30):
            await asyncio.wait([task])
        assert await stack.veil.chat.wait_idle(30)
        told = [str(m.get("text")) for m in telegram.sent_messages(USER)]
    assert task.cancelled()  # it was: the empty answer went on, and its user was told
    assert told == []
    assert rows(db, "SELECT outcome FROM holds") == [("released",)]
