"""The descriptor budget: how many connections fit, and what happens when none are left.

Every client connection is a file descriptor, and so is each stream's connection to the model
server. ``connection_cap`` (``common.connections``, shared with the bot's listeners) keeps the
public listener's cap within RLIMIT_NOFILE, so ``accept()`` does not run out of descriptors.
Should it still (other descriptors, a lower limit set later), the event loops differ. On
uvloop (the default) libuv frees a descriptor it holds in reserve, accepts every waiting
connection with it and closes each at once, and reports nothing: clients see their connection
closed, as past the cap, and no line is logged. On asyncio's loop (``VEIL_GATEWAY_LOOP=asyncio``)
the connections wait in the listen backlog while asyncio reports every failed ``accept()``
(many a second), and ``AcceptErrorFilter`` turns that flood into one log line a while. So it
does with the failures asyncio does not expect (EINVAL from a listener shut down, EPERM), which
it reports as an exception in its accept callback, again at every turn of the loop while the
socket stays readable: ~20,000 lines in the 5 s before the listener check stopped the gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    import asyncio

log = structlog.get_logger("veil.gateway")

ACCEPT_ERROR = "socket.accept() out of system resource"
# asyncio's report of another accept() failure: "Exception in callback
# BaseSelectorEventLoop._accept_connection(<its arguments>)".
_ACCEPT_CALLBACK = "._accept_connection("


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
        if not _accept_failure(context):
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


def _accept_failure(context: dict[str, Any]) -> bool:
    """Whether the loop's report is of a failed ``accept()``: for lack of resources, or other.

    From the accept callback, an ``OSError`` only: anything else raised there is a bug, whose
    traceback the default handler shows.
    """
    message = str(context.get("message", ""))
    if message == ACCEPT_ERROR:
        return True
    return (
        message.startswith("Exception in callback")
        and _ACCEPT_CALLBACK in message
        and isinstance(context.get("exception"), OSError)
    )
