"""Failures a test asks the fake Telegram for: a method's next calls, every nth, each's first.

And a flood that refuses every call until it ends (``add_until``), as Telegram's does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from playground.wire import ApiError

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["Faults"]


@dataclass
class _Next:
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _EveryNth:
    methods: frozenset[str]
    nth: int
    status: int
    retry_after: int
    seen: int = 0


@dataclass
class _FirstOfEach:
    methods: frozenset[str] | None  # None: every method
    count: int
    retry_after: int
    seen: dict[str, int]


@dataclass
class _Until:
    methods: frozenset[str] | None  # None: every method
    ends: float  # time.monotonic() the flood ends


class Faults:
    """The failures still to inject; ``check`` consumes them call by call."""

    def __init__(self) -> None:
        self._next: dict[str, list[_Next]] = {}
        self._every: list[_EveryNth] = []
        self._first: list[_FirstOfEach] = []
        self._until: list[_Until] = []

    def add_next(
        self, method: str, status: int, description: str, retry_after: int | None, count: int
    ) -> None:
        """Fail the next ``count`` calls of ``method`` with this reply."""
        self._next.setdefault(method, []).append(_Next(status, description, retry_after, count))

    def add_every(self, methods: Collection[str], nth: int, status: int, retry_after: int) -> None:
        """Fail every ``nth`` call among ``methods``, counted together."""
        if nth < 1:
            raise ValueError("nth must be at least 1")
        self._every.append(_EveryNth(frozenset(methods), nth, status, retry_after))

    def add_first_of_each(
        self, methods: Collection[str] | None, count: int, retry_after: int
    ) -> None:
        """Answer the first ``count`` calls of each method (of ``methods``; None: all) 429.

        Counted from now: an earlier such flood still to come is replaced.
        """
        chosen = None if methods is None else frozenset(methods)
        self._first[:] = [_FirstOfEach(chosen, count, retry_after, {})]

    def add_until(self, methods: Collection[str] | None, seconds: float) -> None:
        """Answer every call (of ``methods``; None: all) 429 for ``seconds``, as a real flood.

        Each refusal's ``retry_after`` is the whole seconds left until it ends (at least 1).
        """
        chosen = None if methods is None else frozenset(methods)
        self._until.append(_Until(chosen, time.monotonic() + seconds))

    def clear(self) -> None:
        """Forget every failure still to come."""
        self._until.clear()
        self._next.clear()
        self._every.clear()
        self._first.clear()

    def _flooded(self, method: str) -> ApiError | None:
        """The 429 of a flood still on (``add_until``) for ``method``, told the seconds left."""
        now = time.monotonic()
        self._until[:] = [flood for flood in self._until if flood.ends > now]
        for flood in self._until:
            if flood.methods is None or method in flood.methods:
                left = max(math.ceil(flood.ends - now), 1)
                return ApiError(429, f"Too Many Requests: retry after {left}", retry_after=left)
        return None

    def check(self, method: str) -> ApiError | None:
        """The error this call of ``method`` must get, if any; counts the call."""
        if queued := self._next.get(method):
            fault = queued[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queued.pop(0)
            return ApiError(fault.status, fault.description, retry_after=fault.retry_after)
        return self._flooded(method) or self._counted(method)

    def _counted(self, method: str) -> ApiError | None:
        """The error of each method's first calls, or of every nth (``add_first_of_each``...)."""
        for first in self._first:
            if first.methods is not None and method not in first.methods:
                continue
            if (seen := first.seen.get(method, 0)) < first.count:
                first.seen[method] = seen + 1
                description = f"Too Many Requests: retry after {first.retry_after}"
                return ApiError(429, description, retry_after=first.retry_after)
        for rule in self._every:
            if method not in rule.methods:
                continue
            rule.seen += 1
            if rule.seen % rule.nth:
                continue
            if rule.status == HTTPStatus.TOO_MANY_REQUESTS:
                description = f"Too Many Requests: retry after {rule.retry_after}"
                return ApiError(rule.status, description, retry_after=rule.retry_after)
            return ApiError(rule.status, HTTPStatus(rule.status).phrase)
        return None
