"""A stop asked for while a server starts, before its event loop takes the signals.

Python's own handling ended the process with no line (SIGTERM: killed, exit -15) or with
KeyboardInterrupt's traceback in plain text (SIGINT). ``stoppable`` runs a server's start
under a handler of its own instead: the start is abandoned where it stands, its ``finally``
blocks run, and the server says so in one line and exits 0, as a stop does. The bot and the
gateway serve under it (``bot.__main__``, ``gateway.__main__``); once their event loop takes
the signals, a signal asks for their graceful stop.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from common.logs import log_info

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

__all__ = ["STOP_SIGNALS", "StoppedBeforeStart", "stoppable"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StoppedBeforeStart(SystemExit):
    """A SIGTERM or SIGINT while a server started, before its event loop took the signals.

    Nothing is served then (no update taken, no request relayed): the start is abandoned.
    Not an ``Exception``: no start-up failure's handler may take it for one. A ``SystemExit``:
    an event loop (the listeners' bind check runs one) passes it on from the callback it
    interrupts, as it does no other ``BaseException``, which it logged and ran on with, the
    stop lost (the signals ignored from then on, the server started and served).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(0)  # should it ever reach Python's own handling: exit 0, quietly
        self.signal = signal.Signals(signum)


def _stop_before_start(signum: int, _frame: FrameType | None) -> None:
    """The serving process's handler until its event loop takes over: stop now.

    Later signals are ignored: there is nothing left to stop but the exit itself.
    """
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise StoppedBeforeStart(signum)


def stoppable(serve: Callable[[], int], logger: str, event: str) -> int:
    """``serve()``'s exit code; 0 and one line ``event`` where a stop came before its start.

    The caller's own handlers (a test's process) are put back when it returns.
    """
    previous = {signum: signal.signal(signum, _stop_before_start) for signum in STOP_SIGNALS}
    try:
        return serve()
    except StoppedBeforeStart as stopped:
        log_info(logger, event, signal=stopped.signal.name)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
