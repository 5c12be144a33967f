"""How fast the bot calls into one chat: Telegram's pace, kept per chat and inline message.

Telegram allows about 20 messages a minute in a group, edits included, and answers a bot that
edits faster with ``retry_after`` of minutes. A ``Pacer`` spaces every call into one chat (or
one inline message, whose chat the bot does not know; a guest answer's is its group's) at least
``60 / per_minute`` seconds apart, first come first served; ``Pacers`` keeps one a chat and
never forgets one in use. ``Place`` names the message an answer streams into, ``Pace`` says how
edited answers stream (``bot.editing``, ``bot.editors``).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.intake import waits_elsewhere

if TYPE_CHECKING:
    from collections.abc import Callable


class Pacer:
    """Spaces the bot's calls into one chat at least ``60 / per_minute`` seconds apart.

    Calls that ``wait`` are served first come first served, through a lock that exists only
    while one waits (a pacer is kept per chat and per inline message, mostly idle).
    """

    __slots__ = ("__weakref__", "_clock", "_next", "_queue", "_waiting", "gap")

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap = 60.0 / per_minute
        self._clock = clock
        self._next = 0.0
        self._queue: asyncio.Lock | None = None  # FIFO: waiters are served in arrival order
        self._waiting = 0  # calls in ``wait``, holding the lock or queued for it

    def free(self) -> bool:
        """True when a call may go out right now without making anyone wait."""
        return not self._waiting and self._clock() >= self._next

    def free_in(self) -> float:
        """Seconds until ``free`` may be true: the next slot, or a while when calls queue."""
        delay = self._next - self._clock()
        if self._waiting:  # those waiting take the next slots: look again in a while
            return max(delay, self.gap / 4)
        return max(delay, 0.0)

    def in_use(self) -> bool:
        """True while calls wait for it or its last slot's gap has not passed.

        Such a pacer must not be forgotten (``Pacers``): a fresh one for its chat would let a
        call out at once, alongside those it spaces.
        """
        return bool(self._waiting) or self._clock() < self._next

    def take(self) -> None:
        """Spend the free slot (check ``free`` first)."""
        self._next = self._clock() + self.gap

    def unspend(self) -> None:
        """The slot ``wait`` just gave went unused (the call was withdrawn): the next may have it.

        Only right after ``wait`` returned, before anything else awaits (the slot is the gap
        before ``_next`` then).
        """
        self._next -= self.gap

    async def wait(self) -> None:
        """Wait for the next slot, after everyone already waiting, and spend it.

        The slot is looked at again after each sleep: a call ``count``-ed or a flood wait told
        (``back_off``) meanwhile moves it, and the sleeper must not go out at the one it read.
        """
        if self.in_use():  # it waits: the update asking leaves the bot's intake meanwhile
            waits_elsewhere()
        if self._queue is None:
            self._queue = asyncio.Lock()
        self._waiting += 1
        try:
            async with self._queue:
                # The slot may move while this sleeps (a post counted, a flood wait told).
                while (delay := self._next - self._clock()) > 0:  # noqa: ASYNC110 -- a time, no flag
                    await asyncio.sleep(delay)
                self._next = self._clock() + self.gap
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._queue = None

    def count(self) -> None:
        """A call went out into this chat without waiting (it could not: a guest query's answer).

        It took a slot all the same: the next free one is a gap later than it was.
        """
        self._next = max(self._next, self._clock()) + self.gap

    def back_off(self, seconds: float) -> None:
        """Telegram said ``retry_after``: nothing goes to this chat before it has passed."""
        self._next = max(self._next, self._clock() + seconds)


class Pacers:
    """One ``Pacer`` a chat or inline message, the idle ones forgotten beyond ``keep``.

    Never one in use: whose calls wait, or whose last slot's gap has not passed
    (``Pacer.in_use``), nor one something still holds (an answer's sink between its edits, a
    post waiting), which its key finds again. Forgotten so, it left its chat to a second pacer
    alongside it, and twice the pace Telegram allows (its 429s followed).
    """

    def __init__(self, per_minute: float, keep: int = 10_000) -> None:
        self.per_minute = per_minute
        self._keep = keep
        self._pacers: OrderedDict[int | str, Pacer] = OrderedDict()
        self._held: weakref.WeakValueDictionary[int | str, Pacer] = weakref.WeakValueDictionary()

    def __call__(self, key: int | str) -> Pacer:
        """The pacer of chat id or inline message id ``key``."""
        pacer = self._pacers.pop(key, None) or self._held.get(key)
        if pacer is None:
            pacer = self._held[key] = Pacer(self.per_minute)
        self._pacers[key] = pacer
        self._forget()
        return pacer

    def _forget(self) -> None:
        """Drop the least recently used beyond ``keep``; one in use goes to the back instead."""
        looked = 0
        while len(self._pacers) > self._keep and looked < len(self._pacers):
            key, pacer = next(iter(self._pacers.items()))
            if pacer.in_use():
                self._pacers.move_to_end(key)
                looked += 1
            else:
                del self._pacers[key]


@dataclass(frozen=True, slots=True)
class Place:
    """The message an answer streams into: an inline message, or one in a chat."""

    inline_message_id: str | None = None
    chat_id: int | None = None
    message_id: int | None = None

    @property
    def key(self) -> int | str:
        """What its pacer is found by: the chat (all its messages share one budget)."""
        if self.inline_message_id is not None:
            return self.inline_message_id
        assert self.chat_id is not None  # noqa: S101 -- one of the two is always set
        return self.chat_id

    def address(self) -> dict[str, Any]:
        """The editMessageText fields that name the message."""
        if self.inline_message_id is not None:
            return {"inline_message_id": self.inline_message_id}
        return {"chat_id": self.chat_id, "message_id": self.message_id}


@dataclass(frozen=True)
class Pace:
    """How edited answers stream.

    ``interval``: seconds between one answer's edits; ``min_growth``: characters it must grow
    by between edits; ``group_per_minute``: calls into one group (Telegram's limit is 20);
    ``inline_per_minute``: edits of one inline message; ``notice_seconds``: how long a notice
    that could not be ephemeral stays before it is deleted; ``final_hold``: how long an answer
    waits for its final edit before leaving it to go on by itself (``EditSink.complete``).
    """

    interval: float = 3.0
    min_growth: int = 40
    group_per_minute: float = 20.0
    inline_per_minute: float = 20.0
    notice_seconds: float = 30.0
    final_hold: float = 5.0
