"""Shaped streams: one record per tick, all of one size, so the wire shows no token rhythm.

A network observer who sees one sealed record per token learns each token's size and time,
which is enough to guess an answer's topic. A shaped stream (``VEIL_STREAM_SHAPE``) instead
sends, after the first record:

- one ``DELTA`` record a tick (``VEIL_STREAM_TICK``) holding the text that came since the last
  one, an empty one when none came;
- every record padded to the stream's record size: the smallest bucket at first, grown to the
  bucket a tick's text needs when it does not fit, and never shrunk (``RecordSize``);
- at the model's end, at once, one ``DELTA`` record with the text still waiting (often empty,
  always sent) and the final record, padded to at least ``FINAL_RECORD_SIZE``, in one write.

The first record goes out as soon as the model's first piece of text arrives, so the answer
starts as early as unshaped. In the stricter ``tick+duration`` mode the end is held back too:
the closing records go out at the first tick whose number, counted from the first record, is a
power of two and past the model's end (``held_until``), so the duration shows only its bucket.
``off`` sends one record per piece of text as it arrives; it is for benchmarks only.

Ticks come from a ``Ticker``: ``LoopTicker`` in the gateway, a single timer on the event loop
for every stream (their ticks coincide); tests drive their own by hand.
"""

from __future__ import annotations

import asyncio
import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sealed.encoding import RECORD_BUCKETS
from sealed.stream import record_size_for

if TYPE_CHECKING:
    from collections.abc import Callable

# Chosen from bench/sealed.py (docs/benchmarks.md): once a tick's work was made cheap, what is
# left is a fixed cost a record, so the gateway's CPU per token fell another 9-14 % from 200 to
# 250 ms ticks in four of five comparisons, with a fifth fewer records and bytes on the wire.
# Text waits half a tick on average (125 ms), well inside the second Telegram takes between
# drafts (a Mini App shows 4 updates a second). The first text and the end never wait.
DEFAULT_TICK = 0.25
# A shaped stream's final record is padded to at least this: every DONE record fits (its
# fields are bounded; only an ERROR record with a long message, or a receipt for a model with
# a very long name, needs a larger bucket).
FINAL_RECORD_SIZE = 1024


class StreamShape(enum.StrEnum):
    """How a gateway shapes its sealed streams (``VEIL_STREAM_SHAPE``)."""

    OFF = "off"
    TICK = "tick"
    TICK_DURATION = "tick+duration"


class Ticker(Protocol):
    """Where a shaped stream's ticks come from."""

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` at every tick from now on; returns the function that stops it."""
        ...


class LoopTicker:
    """Ticks every ``interval`` seconds on the running event loop, for all subscribers at once.

    Ticks fall on multiples of ``interval`` of the loop's clock; one timer serves every
    stream, and it runs only while someone is subscribed. A tick the loop was too busy to
    fire on time is not fired twice. A subscriber that raises is reported through the loop's
    exception handler; the others get their tick and the ticks go on.
    """

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError("a tick must be longer than zero")
        self.interval = interval
        self._subscribers: dict[int, Callable[[], None]] = {}
        self._next_key = 0
        self._handle: asyncio.TimerHandle | None = None
        self._last = -math.inf

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` at every tick from now on; returns the function that stops it."""
        key = self._next_key
        self._next_key += 1
        self._subscribers[key] = callback
        if self._handle is None:
            self._schedule(asyncio.get_running_loop())
        return lambda: self._unsubscribe(key)

    @property
    def running(self) -> bool:
        """True while a tick is scheduled (someone is subscribed)."""
        return self._handle is not None

    def _unsubscribe(self, key: int) -> None:
        self._subscribers.pop(key, None)
        if not self._subscribers and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = self.interval
        at = max((math.floor(loop.time() / interval) + 1) * interval, self._last + interval)
        self._last = at
        self._handle = loop.call_at(at, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Call every subscriber; one that raises is reported and the others still tick."""
        self._handle = None
        for callback in list(self._subscribers.values()):
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 -- reported; one stream must not stop all
                loop.call_exception_handler(
                    {"message": "a tick's subscriber failed", "exception": exc}
                )
        if self._subscribers:
            self._schedule(loop)


@dataclass(frozen=True)
class Shaping:
    """A gateway's stream shape and its tick source (``VEIL_STREAM_SHAPE``, ``_TICK``)."""

    shape: StreamShape = StreamShape.TICK
    ticker: Ticker = field(default_factory=lambda: LoopTicker(DEFAULT_TICK))

    @classmethod
    def off(cls) -> Shaping:
        """One record per piece of text as it arrives (for benchmarks and per-token tests)."""
        return cls(StreamShape.OFF)

    @property
    def shaped(self) -> bool:
        """True unless records go out per piece of text."""
        return self.shape is not StreamShape.OFF

    @property
    def holds_duration(self) -> bool:
        """True when the stream's end is held to a bucket (``tick+duration``)."""
        return self.shape is StreamShape.TICK_DURATION


class RecordSize:
    """A shaped stream's record size: the smallest bucket first, grown when text does not fit."""

    def __init__(self) -> None:
        self.size = RECORD_BUCKETS[0]
        self.growths = 0

    def fit(self, text_bytes: int) -> int:
        """The record size for a tick of ``text_bytes`` bytes of text (growing if need be)."""
        needed = record_size_for(text_bytes)
        if needed > self.size:
            self.size = needed
            self.growths += 1
        return self.size

    @property
    def final_size(self) -> int:
        """What the final record is padded to (at least; a larger payload takes its bucket)."""
        return max(self.size, FINAL_RECORD_SIZE)


def held_until(ticks: int) -> int:
    """The tick (counted from the first record) at which a held stream ends.

    ``ticks`` is how many ticks had passed when the model ended; the end is the first power of
    two past it: 1, 2, 4, 8, … ticks.
    """
    return 1 << ticks.bit_length()
