"""The descriptor budget: how many connections fit, and what happens when none are left.

Every client connection is a file descriptor, and so is each stream's connection to the model
server. ``connection_cap`` keeps the public listener's cap within RLIMIT_NOFILE, so ``accept()``
does not run out of descriptors; should it still (other descriptors, a lower limit set later),
asyncio reports every failed ``accept()`` (many a second), and ``AcceptErrorFilter`` turns that
flood into one log line a while.
"""

from __future__ import annotations

import resource
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    import asyncio

log = structlog.get_logger("veil.gateway")

# Descriptors kept free for everything but client connections: the listeners, the event
# loop, logging, the key file, a subprocess or two.
FD_MARGIN = 32
ACCEPT_ERROR = "socket.accept() out of system resource"


def connection_cap(configured: int, *, upstream: int, soft_limit: int | None = None) -> int:
    """The most client connections to hold: ``configured``, lowered to fit the descriptors.

    ``upstream`` is the most connections to the model server (one per stream), each of which
    pairs with a client connection; ``soft_limit`` defaults to this process's RLIMIT_NOFILE.
    """
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    room = soft_limit - FD_MARGIN
    cap = room // 2 if room // 2 <= upstream else room - upstream
    return max(1, min(configured, cap))


class AcceptErrorFilter:
    """An event-loop exception handler that logs accept errors once per ``interval``.

    One ``gateway.accept_failed`` line per interval, with how many were left out; every other
    report goes to the default handler.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._next = 0.0
        self._suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Handle one report from the loop."""
        if context.get("message") != ACCEPT_ERROR:
            loop.default_exception_handler(context)
            return
        now = loop.time()
        if now < self._next:
            self._suppressed += 1
            return
        error = context.get("exception")
        log.warning(
            "gateway.accept_failed",
            error=type(error).__name__,
            errno=getattr(error, "errno", None),
            suppressed=self._suppressed,
        )
        self._next = now + self._interval
        self._suppressed = 0
