"""Failures a test asks the fake Telegram for: a method's next calls, every nth, each's first."""

from __future__ import annotations

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


class Faults:
    """The failures still to inject; ``check`` consumes them call by call."""

    def __init__(self) -> None:
        self._next: dict[str, list[_Next]] = {}
        self._every: list[_EveryNth] = []
        self._first: list[_FirstOfEach] = []

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

    def clear(self) -> None:
        """Forget every failure still to come."""
        self._next.clear()
        self._every.clear()
        self._first.clear()

    def check(self, method: str) -> ApiError | None:
        """The error this call of ``method`` must get, if any; counts the call."""
        if queued := self._next.get(method):
            fault = queued[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queued.pop(0)
            return ApiError(fault.status, fault.description, retry_after=fault.retry_after)
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
