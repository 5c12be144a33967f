"""Tie a part's life to the launcher's: ``python -m launcher.tether [--pipe|--group] PID FD -- …``.

The launcher starts every part through this wrapper, which then becomes the part (``exec``: same
process id, same output, same signals). A launcher stopped the normal way stops its parts in
order; this is for one that cannot: killed by SIGKILL, by the OOM killer, or crashed. Its parts
run in sessions of their own (so a terminal's Ctrl-C reaches only the launcher), so without this
they would run on, ports and data folder taken, for the next run to trip on.

- On Linux the part asks the kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
  kept across ``exec``); if the launcher (``PID``) died before that request, the part's parent is
  no longer ``PID`` and the part is never started.
- Elsewhere (macOS), or with ``--pipe``: ``FD`` is the read end of a pipe whose write end only
  the launcher holds; the kernel closes it however the launcher ends. A small watcher process,
  forked before the ``exec``, waits for its end of file, then sends the part SIGTERM (SIGKILL
  after ``STOP_WITHIN_S``); it leaves on its own once the part has ended. A launcher already
  gone is seen the same way: the pipe is at its end from the start.

- ``--group`` (the llama.cpp build, ``launcher.llama.run_logged``): as ``--pipe``, and the
  watcher ends the part's whole process group, which the part leads: CMake starts make or
  Ninja, which start the compilers, and the kernel's death signal reaches CMake alone. A launcher
  killed while it compiled left the whole build running, on every core. The watcher leaves the
  group first (a group of its own), so that it signals only the build. The launcher closes its
  end itself once the build has ended: the watcher, its parent (the build's leader) gone, then
  leaves without a signal, the group's id no longer the build's.

A part started by hand (``python -m bot``, compose, systemd) never passes through here: it
behaves as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import sys
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_WITHIN_S = 15.0  # as the launcher gives a part from SIGTERM to SIGKILL
POLL_S = 0.5  # how often the watcher looks whether the part has ended


def ask_for_deathsig() -> bool:
    """Linux: have the kernel send SIGTERM when the parent dies; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return int(libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)) == 0


def watch(fd: int, part: int, *, group: bool = False) -> None:
    """In the watcher: stop ``part`` (its group) once the pipe ends; return once it has ended."""
    while os.getppid() == part:  # the part ended: the watcher was handed to another parent
        readable, _, _ = select.select([fd], [], [], POLL_S)
        if readable and not os.read(fd, 1):  # end of file: the launcher is gone
            # Or done with the part: the launcher closes its end once a build has ended, its
            # leader reaped, and its process id (the group's id) free for another to take. The
            # part is stopped only while it runs, which it does while it is this one's parent.
            if os.getppid() != part:
                return
            if group:
                stop_group(part)
            else:
                stop(part)
            return


def stop_group(group: int) -> None:
    """SIGTERM the process group ``group``; SIGKILL what of it is left after ``STOP_WITHIN_S``.

    SIGTERM first, as the launcher's own stop does: make removes the object file it was
    writing, which the next build (resuming this one) would otherwise link cut short.
    """
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_WITHIN_S
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)  # one of it is left (a zombie not reaped yet, too)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def stop(part: int) -> None:
    """SIGTERM ``part``; SIGKILL if it has not ended within ``STOP_WITHIN_S``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(part, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN_S
    while os.getppid() == part and time.monotonic() < deadline:
        time.sleep(0.1)
    if os.getppid() == part:
        with contextlib.suppress(ProcessLookupError):
            os.kill(part, signal.SIGKILL)


def start_watcher(fd: int, *, group: bool = False) -> None:
    """Fork the watcher of this process (which then becomes the part)."""
    part = os.getpid()
    if os.fork() != 0:
        os.close(fd)  # the part itself keeps no end of the pipe: the watcher has it
        return
    try:  # the watcher: no output (the part's pipe to the launcher is the part's alone)
        null = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):
            os.dup2(null, stream)
        if group:
            os.setpgid(0, 0)  # out of the part's group: the group it ends is the part's alone
        watch(fd, part, group=group)
    finally:
        os._exit(0)


def main(argv: list[str]) -> int:  # noqa: RET503 -- it ends in execvp
    """Tether, then become ``PROGRAM …``; 1 when the launcher is gone already."""
    option = argv[0] if argv[:1] in (["--pipe"], ["--group"]) else None
    if option is not None:
        argv = argv[1:]
    if len(argv) < 4 or argv[2] != "--":  # noqa: PLR2004 -- PID FD -- PROGRAM
        print(  # noqa: T201
            "usage: python -m launcher.tether [--pipe | --group] PID FD -- PROGRAM [ARGS…]",
            file=sys.stderr,
        )
        return 2
    parent, fd, program = int(argv[0]), int(argv[1]), argv[3]
    if option is None and ask_for_deathsig():
        os.close(fd)
        if os.getppid() != parent:  # the launcher died before the kernel was asked
            return 1
    else:
        start_watcher(fd, group=option == "--group")
    os.execvp(program, [program, *argv[4:]])  # noqa: S606 -- becomes the part


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
