"""``python -m tests.syncwatch MODULE ARGS…``: run ``python -m MODULE ARGS…``, watching its syncs.

A power cut cannot be made in a test; what can be seen is whether a file's bytes were synced
before its name took them and the folder synced after. This runs the real module in its own
process with ``os.fsync``, ``os.link``, ``os.replace`` and ``os.rename`` recorded (each call
still made), one line each in the file ``SYNCWATCH_LOG`` names: ``fsync PATH`` (the path its
descriptor names, a folder's too) or ``link SOURCE TARGET``.

``SYNCWATCH_PAUSE``: an ``fsync`` of a path that holds this text first says
``syncwatch: paused at PATH`` on stderr and waits for a signal: a point the test can stop the
process at, every time, without guessing when it gets there.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path
from typing import Any

_LOG = os.environ.get("SYNCWATCH_LOG", "")
_PAUSE = os.environ.get("SYNCWATCH_PAUSE", "")
_fsync, _link, _replace, _rename = os.fsync, os.link, os.replace, os.rename


def _record(*words: object) -> None:
    if _LOG:
        with Path(_LOG).open("a", encoding="utf-8") as log:
            log.write(" ".join(str(word) for word in words) + "\n")


def _named(fd: Any) -> str:  # noqa: ANN401 -- whatever os.fsync takes
    number = fd if isinstance(fd, int) else fd.fileno()
    return str(Path(f"/proc/self/fd/{number}").readlink())


def fsync(fd: Any) -> None:  # noqa: ANN401 -- whatever os.fsync takes
    """``os.fsync``, recorded; paused first where ``SYNCWATCH_PAUSE`` says."""
    path = _named(fd)
    _record("fsync", path)
    if _PAUSE and _PAUSE in path:
        print(f"syncwatch: paused at {path}", file=sys.stderr, flush=True)  # noqa: T201
        while True:
            signal.pause()  # a handler that raises ends it; one that returns waits on
    _fsync(fd)


def link(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
    """``os.link``, recorded."""
    _link(source, target, *args, **kwargs)
    _record("link", os.fspath(source), os.fspath(target))


def replace(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
    """``os.replace``, recorded (as a link: the name takes the file)."""
    _replace(source, target, *args, **kwargs)
    _record("link", os.fspath(source), os.fspath(target))


def rename(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
    """``os.rename``, recorded (as a link: the name takes the file)."""
    _rename(source, target, *args, **kwargs)
    _record("link", os.fspath(source), os.fspath(target))


if __name__ == "__main__":
    for name, watching in {
        "fsync": fsync,
        "link": link,
        "replace": replace,
        "rename": rename,
    }.items():
        setattr(os, name, watching)
    module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
