"""A process's first log lines, before ``common.logs`` (and structlog, pydantic) can load.

A Python warning raised while those libraries are imported was printed by Python as plain
text, its message and source line as they are: the process's first line, which an operator's
log shipper expecting JSON lines could not read, and which may quote what the library was
given. The entry points install ``capture_warnings`` first; this module imports the standard
library only, so nothing it loads can warn before it is in place.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import warnings
from typing import TextIO


def write_warning(category: type[Warning], filename: str, lineno: int) -> None:
    """One ``python.warning`` line on stderr, as structlog would write it: never the text."""
    when = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    line = {
        "category": category.__qualname__,
        "file": filename,
        "line": lineno,
        "event": "python.warning",
        "level": "warning",
        "timestamp": when,
    }
    print(json.dumps(line), file=sys.stderr, flush=True)  # noqa: T201 -- structlog's stand-in


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
