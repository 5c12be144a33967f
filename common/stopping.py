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
says so, and it exits 128 + the signal's number. Where the command runs an event loop
(``run_command_loop``), it stops where it awaits instead: the loop's task is cancelled.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TYPE_CHECKING, TypeVar

from common.firstlines import flush_or_drop
from common.logs import log_info

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import FrameType

T = TypeVar("T")

__all__ = [
    "STOP_SIGNALS",
    "CommandStopped",
    "StoppedBeforeStart",
    "process_main",
    "run_command_loop",
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


class _Command:
    """The event loop a command runs (``run_command_loop``), while it runs."""

    looping = False  # inside the loop's ``asyncio.run``: a signal must not raise there
    task: asyncio.Task[object] | None = None  # the command's own coroutine, while it runs
    stopped: int | None = None  # the signal that stopped it


_command = _Command()


def _stop_command(signum: int, _frame: FrameType | None) -> None:
    """A command's handler: stop where it stands; later signals wait for its cleanup.

    Inside a command's event loop it cancels the command's task instead (``run_command_loop``):
    raised there, the stop ended whichever task step it fell in (aiohttp's request writer, as
    a reconcile waited for Telegram), which kept it as that task's exception, and the loop's
    end logged "Task exception was never retrieved", a traceback at ERROR, after the one line.
    """
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    if not _command.looping:
        raise CommandStopped(signum)
    _command.stopped = signum
    task = _command.task
    if task is not None:  # the loop may sleep in its selector: wake it for the cancel
        task.get_loop().call_soon_threadsafe(task.cancel)


def run_command_loop(main: Coroutine[object, object, T]) -> T:
    """``asyncio.run(main)`` for a command under ``stoppable_command``: a stop cancels ``main``.

    ``main`` stops at the ``await`` it stands at (its ``finally`` blocks and ``async with``
    exits run, as for a stop anywhere else), and ``CommandStopped`` is raised once the loop
    is closed: never inside one of its tasks or callbacks. A stop that came before its task
    began (as ``asyncio.run`` made the loop), with no task to cancel, ends it unbegun.
    """

    async def command() -> T:
        _command.task = asyncio.current_task()  # before the look: a stop after it cancels
        try:
            if _command.stopped is not None:
                main.close()  # never started: nothing of it to clean up
                raise asyncio.CancelledError
            return await main
        finally:
            _command.task = None

    _command.looping, _command.stopped = True, None
    try:
        result = asyncio.run(command())
    except asyncio.CancelledError:
        if _command.stopped is None:
            raise
    finally:
        _command.looping = False
    if _command.stopped is not None:  # also one that came as the loop closed: the shell's code
        raise CommandStopped(_command.stopped)
    return result


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
