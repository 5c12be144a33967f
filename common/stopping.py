"""A stop asked for while a server starts, before its event loop takes the signals.

Python's own handling ended the process with no line (SIGTERM: killed, exit -15) or with
KeyboardInterrupt's traceback in plain text (SIGINT). ``stoppable`` runs a server's start
under a handler of its own instead: the start is abandoned where it stands, its ``finally``
blocks run, and the server says so in one line and exits 0, as a stop does. The bot and the
gateway serve under it (``bot.__main__``, ``gateway.__main__``); once their event loop takes
the signals, a signal asks for their graceful stop.

Once served, the process only ends: a signal then (after the event loop let the signals go and
``stoppable`` put the handlers back, before the process is gone) killed it (exit -15) or ended
it in KeyboardInterrupt's traceback. Run as a process (``process_main``), the end of a serve
ignores them, and the process exits with what serving returned.

A command that ends by itself (``bot backup``, ``audit``, ``reconcile``) runs under
``stoppable_command`` instead: a signal stops it where it stands, its cleanup runs, one line
says so, and it exits 128 + the signal's number.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

from common.firstlines import flush_or_drop
from common.logs import log_info

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

__all__ = [
    "STOP_SIGNALS",
    "CommandStopped",
    "StoppedBeforeStart",
    "process_main",
    "stoppable",
    "stoppable_command",
]

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

    The caller's own handlers (a test's process) are put back when it returns; in a process
    run by ``process_main`` the signals are ignored from then on: it only exits.
    """
    previous = {signum: signal.signal(signum, _stop_before_start) for signum in STOP_SIGNALS}
    try:
        return serve()
    except StoppedBeforeStart as stopped:
        log_info(logger, event, signal=stopped.signal.name)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if _process.only_exits_after else handler)


class CommandStopped(SystemExit):
    """A SIGTERM or SIGINT while a command ran (``bot audit``, ``reconcile``, ``backup``).

    Raised where the command stands, so its ``finally`` blocks run: a backup's copy is removed,
    a store closed. A ``SystemExit``, as ``StoppedBeforeStart``: no ``except Exception`` takes it,
    and an event loop passes it on from the callback it interrupts. Its code is the shell's for
    a command a signal ended, 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM): a
    cron job or script sees the command did not do its work.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signal = signal.Signals(signum)


def _stop_command(signum: int, _frame: FrameType | None) -> None:
    """A command's handler: stop where it stands; later signals wait for its cleanup."""
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise CommandStopped(signum)


def stoppable_command(run: Callable[[], int], name: str, after: str) -> int:
    """``run()``'s exit code; 128 + the signal's number where SIGTERM or SIGINT stopped it.

    Python's own handling killed the command with no line (SIGTERM) or ended it in
    KeyboardInterrupt's traceback (Ctrl-C). Now its cleanup runs and one line says so:
    ``veil: NAME stopped by SIGTERM: AFTER``.
    """
    previous = {signum: signal.signal(signum, _stop_command) for signum in STOP_SIGNALS}
    try:
        return run()
    except CommandStopped as stopped:
        print(f"veil: {name} stopped by {stopped.signal.name}: {after}", file=sys.stderr)  # noqa: T201
        return 128 + stopped.signal
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if _process.only_exits_after else handler)


class _Process:
    """Whether this process is a server run as ``python -m PART`` (``process_main``)."""

    only_exits_after = False  # once served, it only exits: no signal may change how


_process = _Process()


def process_main(main: Callable[[], int]) -> int:
    """``main()``'s exit code, run as the process (``python -m bot``, ``python -m gateway``).

    The stop signals keep Python's own handling until ``stoppable`` takes them; once it is done
    they are ignored, so the exit is ``main``'s whatever signal comes while the process ends.
    """
    _process.only_exits_after = True
    code = main()
    flush_or_drop()  # a stderr nobody reads must not turn the exit into 120
    return code
