"""A group's pacer is never forgotten while in use: one chat, one pace.

``Pacers`` kept the newest 10,000 and forgot the rest, in use or not: with more chats than that
touching the editors while a group answer streamed, its pacer was dropped, the next call there
made a fresh one, and the group got two pacers side by side, twice Telegram's pace (its 429s
followed). A small ``keep`` shows it here, without a clock.
"""

from __future__ import annotations

import asyncio
import weakref

from bot.pacing import Pacers

GROUP = -1_001_234_567
OTHERS = range(10)  # more chats than ``keep`` touching the editors meanwhile


def touch_others(pacers: Pacers) -> None:
    for chat_id in OTHERS:
        pacers(chat_id)


def test_a_pacer_whose_last_slot_is_recent_is_kept_past_the_cap() -> None:
    pacers = Pacers(per_minute=1, keep=2)  # a slot a minute: the gap outlasts the test
    pacers(GROUP).take()  # a call went out; nothing of the caller's holds the pacer
    touch_others(pacers)
    assert not pacers(GROUP).free()  # the same pacer: the next call waits out the gap


def test_a_pacer_a_streaming_answer_holds_is_found_again_by_its_chat() -> None:
    pacers = Pacers(per_minute=1, keep=2)
    held = pacers(GROUP)  # as an answer's sink holds it between its edits, idle meanwhile
    assert not held.in_use()
    touch_others(pacers)
    assert pacers(GROUP) is held


async def test_a_pacer_with_calls_queued_is_kept_past_the_cap() -> None:
    pacers = Pacers(per_minute=1, keep=2)
    pacer = pacers(GROUP)
    await pacer.wait()  # one slot spent: the next waits a minute
    queued = asyncio.create_task(pacer.wait())
    await asyncio.sleep(0)  # it is in the queue
    del pacer
    touch_others(pacers)
    assert not pacers(GROUP).free()
    queued.cancel()


def test_idle_pacers_nothing_holds_are_forgotten_beyond_the_cap() -> None:
    pacers = Pacers(per_minute=1, keep=2)
    first = weakref.ref(pacers(GROUP))
    touch_others(pacers)
    assert first() is None  # memory stays bounded by ``keep`` for idle chats
