"""Telegram's flood limit in groups: about 20 messages a minute into one group, edits included.

``GroupRateLimit`` counts the bot's sends and edits into each group over a sliding window
(60 s). Past ``per_minute`` of them the next one is refused the way Telegram refuses it, 429
``Too Many Requests: retry after N`` with ``parameters.retry_after`` (N: the seconds until the
oldest counted call leaves the window), and the refusal is recorded in ``floods`` so a test can
count them. Refused calls are not counted. It is off (``per_minute`` None) until a test or the
playground turns it on.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from playground.wire import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DEFAULT_PER_MINUTE", "Flood", "GroupRateLimit"]

DEFAULT_PER_MINUTE = 20


@dataclass(frozen=True)
class Flood:
    """One 429 the limit answered: the group, the method, the wait it asked for, and when."""

    chat_id: int
    method: str
    retry_after: int
    at: float  # the limit's clock (time.monotonic by default)


class GroupRateLimit:
    """Per-group budget of sends and edits; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute: int | None = None
        self.window = 60.0
        self.floods: list[Flood] = []
        self._clock = clock
        self._spent: dict[int, deque[float]] = {}

    def set(self, per_minute: int | None, *, window: float = 60.0) -> None:
        """Allow ``per_minute`` calls per group in any ``window`` seconds; None turns it off."""
        if per_minute is not None and per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self.per_minute, self.window = per_minute, window
        self._spent.clear()

    def spend(self, chat_id: int, method: str) -> None:
        """Count one call into group ``chat_id``, or raise the 429 Telegram answers past it."""
        if self.per_minute is None:
            return
        now = self._clock()
        spent = self._spent.setdefault(chat_id, deque())
        while spent and spent[0] <= now - self.window:
            spent.popleft()
        if len(spent) >= self.per_minute:
            retry_after = max(1, math.ceil(spent[0] + self.window - now))
            self.floods.append(Flood(chat_id, method, retry_after, now))
            raise ApiError(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"Too Many Requests: retry after {retry_after}",
                retry_after=retry_after,
            )
        spent.append(now)

    def spent(self, chat_id: int) -> int:
        """How many calls into ``chat_id`` the current window holds."""
        now = self._clock()
        return sum(1 for at in self._spent.get(chat_id, ()) if at > now - self.window)
