"""Waiting for a task that must run to its end, whatever cancels the one waiting for it.

An answer's charge, its row and its history are written by tasks of their own: a stop that
cancels the answer's task must not cancel them (a charge half-written, a row never marked).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def written(task: asyncio.Future[Any]) -> None:
    """Wait until ``task`` (a write) is done; a cancellation meanwhile is raised once it is.

    Unlike ``finished``, the waiter stays cancelled: what it would do after the write (send
    the rest of an answer) is not done by a task the loop is tearing down.
    """
    try:
        await asyncio.wait([task])  # never cancels it
    except asyncio.CancelledError:
        await finished(task)
        raise


async def finished(task: asyncio.Future[Any]) -> None:
    """Wait until ``task`` is done, whatever cancels the waiter meanwhile (its error is left)."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([task])
