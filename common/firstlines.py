"""A process's first log lines, before ``common.logs`` (and structlog, pydantic) can load.

A Python warning raised while those libraries are imported was printed by Python as plain
text, its message and source line as they are: the process's first line, which an operator's
log shipper expecting JSON lines could not read, and which may quote what the library was
given. The entry points install ``capture_warnings`` first; this module imports the standard
library only, so nothing it loads can warn before it is in place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import sys
import warnings
from typing import TextIO


def write_warning(category: type[Warning], filename: str, lineno: int) -> None:
    """One ``python.warning`` line on stderr, as structlog would write it: never the text."""
    fields = {"category": category.__qualname__, "file": filename, "line": lineno}
    write_event("python.warning", "warning", fields)


def write_event(event: str, level: str, fields: dict[str, object]) -> None:
    """One log line on stderr, as structlog would write it, before it is configured."""
    when = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    line = fields | {"event": event, "level": level, "timestamp": when}
    try:
        print(json.dumps(line), file=sys.stderr, flush=True)  # noqa: T201 -- structlog's stand-in
    except OSError as exc:
        lost_line(exc)


def lost_line(exc: OSError) -> None:
    """A log line stderr would not take: dropped, never raised into what was being logged.

    Its reader gone (``EPIPE``: a launcher that read our stderr was killed), stderr is pointed
    at ``/dev/null``, so that no later line, and not Python's own flush at exit, fails again:
    a stop in progress still delivers, charges and stores its answers. Any other failure (a
    full disk) loses this line only.
    """
    if exc.errno == errno.EPIPE:
        _stderr_to_devnull()


def flush_or_drop() -> None:
    """At a process's end: flush stderr, dropping what it will not take (a full pipe).

    A non-blocking stderr whose pipe nobody read (``EAGAIN``) kept the rest of a dropped line
    buffered, and Python's own flush at exit failed on it: a process that had stopped well
    exited 120. What stderr will not take now is written to ``/dev/null`` instead. A process
    started with no stderr at all (``2>&-``: ``sys.stderr`` is None) has nothing to flush.
    """
    if sys.stderr is None:
        return
    try:
        sys.stderr.flush()
    except OSError:
        _stderr_to_devnull()
        with contextlib.suppress(OSError):  # no descriptor of its own to point: nothing to do
            sys.stderr.flush()


def _stderr_to_devnull() -> None:
    """Point stderr's descriptor at ``/dev/null``: no later line, nor the exit's flush, fails."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, sys.stderr.fileno())
    except (OSError, ValueError):
        pass  # no descriptor of its own (replaced by a test's capture): nothing to point
    finally:
        os.close(devnull)


def _show_warning(  # noqa: PLR0913, PLR0917 -- warnings.showwarning's signature
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` until ``common.logs`` takes over: its kind and place only."""
    del message, file, line
    write_warning(category, filename, lineno)


def capture_warnings() -> None:
    """Python warnings as JSON lines from here on (``common.logs.capture_early`` replaces it)."""
    warnings.showwarning = _show_warning
