"""Bot API calls wait for a free connection before their request is built (``TurnTakingSession``).

A Bot API server that accepts connections and never answers keeps the one connection busy:
the calls behind it wait for their turn holding ~7 KB each, their task and the method's model
included (waiting in aiohttp's pool, with their request built first, ~13 KB), they go out in
order once the connection is free, and a call that waits longer than its timeout fails as
aiohttp's timeout would.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc
from typing import TYPE_CHECKING

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError

from bot.telegram import TurnTakingSession
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

WAITING = 50
# Measured 6.9 KB per waiting sendMessage (its task, coroutines and model); 13.2 KB with
# aiogram's own session, which builds the request before aiohttp waits for a connection.
MAX_BYTES_PER_WAITING_CALL = 9_000


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A server that reads requests and never answers; its URL and the connections it took."""
    connections: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client hangs up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_waiting_calls_hold_little_and_time_out_as_aiohttp_would() -> None:
    async with silent_server() as (url, connections):
        session = TurnTakingSession(api=TelegramAPIServer.from_base(url), limit=1)
        bot = Bot(TOKEN, session=session)
        try:
            busy = asyncio.create_task(bot.send_chat_action(chat_id=1, action="typing"))
            while not connections:  # noqa: ASYNC110 -- the server's record has no event
                await asyncio.sleep(0.005)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            waiting = [
                asyncio.create_task(bot.send_message(chat_id=2 + i, text="word " * 50))
                for i in range(WAITING)
            ]
            await asyncio.sleep(0.1)
            held = (tracemalloc.get_traced_memory()[0] - before) / WAITING
            tracemalloc.stop()
            with pytest.raises(TelegramNetworkError, match="timeout"):
                await bot.send_message(chat_id=1000, text="late", request_timeout=1)
            assert connections == [1]  # nothing else was sent
            for task in [busy, *waiting]:
                task.cancel()
            await asyncio.gather(busy, *waiting, return_exceptions=True)
        finally:
            await session.close()
    assert held <= MAX_BYTES_PER_WAITING_CALL, f"{held:.0f} B per waiting call"


async def test_calls_beyond_the_limit_go_out_in_order_once_a_connection_is_free() -> None:
    async with FakeTelegram(token=TOKEN) as telegram:
        session = TurnTakingSession(api=TelegramAPIServer.from_base(telegram.url), limit=2)
        bot = Bot(TOKEN, session=session)
        try:
            await asyncio.gather(*(bot.send_message(chat_id=5, text=f"{i}") for i in range(20)))
        finally:
            await session.close()
    assert [m["text"] for m in telegram.sent_messages(5)] == [f"{i}" for i in range(20)]
