"""The launcher's voice and its log files: what every step of the run command shares."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from common.container import say  # the containers' voice is the run command's too

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LaunchError", "LogFile", "make_folder", "rotate", "say"]

KEEP_LOGS = 3  # earlier runs' logs kept beside the current one, as <part>.log.1 … .3
MAX_LOG_BYTES = 10 * 1024 * 1024  # a log this long is rotated like a new run's


class LaunchError(Exception):
    """A part could not be started; the message says which and why."""


def make_folder(path: Path, setting: str) -> None:
    """Make the folder ``path`` (and its parents) if need be, or fail naming ``setting``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LaunchError(
            f"{setting}: cannot make the folder {path}: {exc.strerror or exc}"
        ) from exc


def rotate(path: Path, keep: int = KEEP_LOGS) -> None:
    """Shift ``path`` to ``path.1`` (``.1`` to ``.2`` …), dropping what falls past ``keep``."""
    for number in range(keep, 0, -1):
        newer = path if number == 1 else path.with_name(f"{path.name}.{number - 1}")
        if newer.exists():
            newer.replace(path.with_name(f"{path.name}.{number}"))


class LogFile:
    """One part's log: a new file each run, rotated again when it passes ``limit`` bytes.

    Lines are written and flushed as they come (a local file, a line at a time), so the file
    shows what a part said up to the moment it hung or died.
    """

    def __init__(self, path: Path, limit: int = MAX_LOG_BYTES) -> None:
        self.path = path
        self.limit = limit
        path.parent.mkdir(parents=True, exist_ok=True)
        rotate(path)
        self._handle: IO[bytes] = path.open("wb")
        self._size = 0

    def write(self, raw: bytes) -> None:
        """Append one line of the part's output."""
        if self._size and self._size + len(raw) > self.limit:
            self._handle.close()
            rotate(self.path)
            self._handle = self.path.open("wb")
            self._size = 0
        self._handle.write(raw)
        self._handle.flush()
        self._size += len(raw)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()
