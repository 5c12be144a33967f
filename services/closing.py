"""The deadline a service's ``close`` keeps, however often it is called during one stop."""

from __future__ import annotations

import asyncio


class CloseDeadline:
    """When a service's ``close`` must be done by: the first call sets it, later ones share it.

    The bot's stop closes a service twice (``drain`` after the grace, then the teardown): the
    second call waits only for what is left of the first's time, so the whole stop keeps within
    the time it is given; and what is still running at the end is told once (``overrun``), not
    again by each call that finds it.
    """

    def __init__(self) -> None:
        self._by: float | None = None  # the loop time, once a call set it
        self._told = False

    def start(self, within: float) -> None:
        """Be done within ``within`` seconds from now, unless an earlier call set the time."""
        if self._by is None:
            self._by = asyncio.get_running_loop().time() + within

    def left(self) -> float:
        """Seconds left until the deadline (none before ``start``, none once it has passed)."""
        if self._by is None:
            return 0.0
        return max(0.0, self._by - asyncio.get_running_loop().time())

    def overrun(self) -> bool:
        """Whether work left running at the deadline is to be told now: the first time only."""
        told, self._told = self._told, True
        return not told
