"""A reasoning model's long thinking in a private chat's draft sink is held at about its size.

The thinking streams in many small deltas (a token each); a string object per delta costs
about 60 bytes over its few characters, so a megabyte of thinking took some 15 MB per answer
while it streamed. Nothing is sent here: the sink's drafts are timers that never get to run.
"""

from __future__ import annotations

import tracemalloc

from aiogram import Bot

from bot.streaming import DraftSink


async def test_a_long_thinking_is_held_at_about_its_own_size() -> None:
    bot = Bot("42:TEST")
    sink = DraftSink(bot, 1, show_reasoning=True)
    tracemalloc.start()
    try:
        for n in range(100_000):  # 500 kB of thinking, 5 characters a delta, each a new string
            await sink.reason(f"t{n % 10}, ")  # never suspends: no draft goes out meanwhile
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await sink.abort()
        await bot.session.close()
    assert held < 2 * 500_000  # a list of the deltas held about 6 MB
