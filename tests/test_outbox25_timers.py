"""An answer ended by its loop's teardown leaves no draft or "typing…" timer behind.

An answer whose stream is cancelled (the loop tearing down what a stop left running past its
deadline) settled its charge and went on cancelled with its sink's timers still set: the next
draft went out after the bot had closed aiogram's session, which made aiogram open a new one
that nobody closed (an unclosed ``ClientSession`` warning, failing a later test on the worker).
b29c94a aborted the sink on the path of an answer that broke off; the stream's own
cancellation had the same leak: here, "typing…" while the model has not begun. The sink is
aborted there too (before the charge is written) before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import warnings
from typing import TYPE_CHECKING

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 9255
FIRST_TOKEN = 60.0  # seconds the model takes to its first token: "typing…" meanwhile
TYPING_EVERY = 4.5  # seconds between two "typing…" (``bot.streaming``)
SINK_CALLS = {"sendMessageDraft", "sendRichMessageDraft", "sendChatAction"}  # a sink's timers


def answer_task() -> asyncio.Task[object]:
    """The task an answer runs in (``ChatService.answer``'s inner one)."""
    (task,) = [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "ChatService._answer"
    ]
    return task


async def test_an_answer_cancelled_while_typing_sends_nothing_once_the_bot_closed(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, answer="Late.", token_delay=FIRST_TOKEN, sweep_every=3600
    ) as stack:
        telegram = stack.telegram
        telegram.send_text(USER, "a question")
        await telegram.wait_for("sendChatAction", timeout=30)  # "typing…", the next one due
        task = answer_task()
        task.cancel()  # as the loop's teardown does
        async with asyncio.timeout(30):
            await asyncio.wait([task])
        await stack.veil.bot.session.close()  # as the bot's stop does, behind its answers
        closed = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with contextlib.suppress(TimeoutError):  # the next "typing…" would go out by then
                await telegram.wait_for(
                    "sendChatAction", lambda c: c.at > closed, timeout=2 * TYPING_EVERY
                )
            gc.collect()
        late = [c.method for c in telegram.calls if c.at > closed and c.method in SINK_CALLS]
    assert task.cancelled()
    assert late == []  # no call from the sink once the session was closed
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
