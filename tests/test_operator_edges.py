"""The small things an operator meets: stops that must stop, and lines that name the setting."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from playground.delivery import Changes
from playground.web import _next_or_ping
from tests.fakes.telegram import FakeTelegram

# Waits in the playground (the tests' fake Telegram): a cancel that comes in the turn the
# awaited event is set. ``asyncio.wait_for`` on Python 3.11 swallows it: the task cancelled
# runs on, and a shutdown awaiting it waits with it.


class _CancelOnAnswer:
    """An observer that cancels ``task`` in the turn the fake records a getMe."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None

    def answered(self, method: str, params: dict[str, Any], result: object) -> None:
        del params, result
        if method == "getMe" and self.task is not None:
            self.task.cancel()

    def posted(self, message: dict[str, Any]) -> None:
        del message


async def test_a_fake_telegram_wait_cancelled_as_its_call_comes_is_cancelled() -> None:
    observer = _CancelOnAnswer()
    telegram = FakeTelegram(observer=observer)
    await telegram.start()
    try:
        waiting = asyncio.create_task(telegram.wait_for("getMe"))
        observer.task = waiting
        await asyncio.sleep(0)  # it has looked at the calls and waits for the next
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{telegram.url}/bot{telegram.token}/getMe") as reply,
        ):
            assert reply.status == 200
        done, _ = await asyncio.wait({waiting}, timeout=10)
    finally:
        await telegram.close()
    assert done == {waiting}
    assert waiting.cancelled()  # not the getMe it was waiting for: it was stopped


async def test_a_poll_wait_cancelled_as_an_update_comes_is_cancelled() -> None:
    changes = Changes()
    waiting = asyncio.create_task(changes.wait(10))
    await asyncio.sleep(0)
    changes.notify()  # an update queued for the poll ...
    waiting.cancel()  # ... in the turn the fake's server stops it
    done, _ = await asyncio.wait({waiting}, timeout=10)
    assert done == {waiting}
    assert waiting.cancelled()


async def test_a_page_stream_cancelled_as_an_event_comes_is_cancelled_and_keeps_it() -> None:
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    waiting = asyncio.create_task(_next_or_ping(queue, web.StreamResponse()))
    await asyncio.sleep(0)
    queue.put_nowait({"type": "draft"})  # the bot drafts ...
    waiting.cancel()  # ... in the turn the playground stops
    done, _ = await asyncio.wait({waiting}, timeout=10)
    assert done == {waiting}
    assert waiting.cancelled()
    assert queue.get_nowait() == {"type": "draft"}
