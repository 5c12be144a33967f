"""Files written to survive: the folder fsync after a link or a rename, a draft's writer.

Without the folder's fsync a power cut may lose a name whose file's bytes were synced: a key
gone while what it sealed or signed stays. A key is written as a draft named with its writer's
pid, then linked into place; a draft whose writer is gone is settled by the next start
(``models.atrest``, ``sealed.keyfile``). Standard library only: the container's entry point uses
it too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def sync_folder(folder: Path) -> None:
    """Put a name just linked or renamed in ``folder`` on the disk (fsync of the folder).

    A file system that cannot sync a folder (``EINVAL``: some network and FUSE ones) keeps the
    name as it keeps any other; nothing more can be done there.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def running(pid: int) -> bool:
    """Whether another process ``pid`` runs (a draft's writer, where its lock cannot be asked).

    Ours is none: the pid of a killed writer, reused by us, is not still writing. Another
    user's process (``EPERM``) runs.
    """
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


DRAFT = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}")  # ``.<name>.<pid>.<hex>``
# Drafts a new file may take: one another process settled away before its writer locked it goes.
DRAFT_TRIES = 3


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` as the new file ``path``, whole and synced, never over one (FileExistsError).

    Written and synced under a name of its own (a draft, ``DRAFT``), locked while it is written
    so that no other process settles it (``abandoned``), then linked into place and the folder
    synced: a power cut or a process starting beside finds no file, or the whole one, never an
    empty or partial file under its name. Failing or stopped (a signal's handler raising) after
    the link, the file goes too, while it is still this draft's: nothing was told of it yet.
    """
    for _ in range(DRAFT_TRIES):
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as file:
            try:
                if not _locked(fd, draft):
                    continue  # settled away by another process before we locked it
                file.write(data)
                file.flush()
                os.fsync(fd)
                os.link(draft, path)  # fails, rather than overwrite, if the file appeared
                sync_folder(path.parent)
            except BaseException:
                if same_file(fd, path):  # ours, linked: not one another process made
                    path.unlink(missing_ok=True)
                raise
            finally:
                draft.unlink(missing_ok=True)
        return
    raise FileNotFoundError(errno.ENOENT, f"{path}'s drafts were removed by another process")


def drafts(path: Path) -> list[tuple[Path, int]]:
    """The drafts beside ``path`` (``write_new``'s), each with the pid its name gives."""
    try:
        names = sorted(entry.name for entry in path.parent.iterdir())
    except OSError:  # no folder yet, or none to look in: the file's own write says so
        return []
    found = []
    for name in names:
        draft = DRAFT.fullmatch(name)
        if draft and draft["name"] == path.name:
            found.append((path.with_name(name), int(draft["pid"])))
    return found


@contextlib.contextmanager
def abandoned(draft: Path, pid: int) -> Iterator[bool]:
    """Whether no process is writing ``draft`` (held so while the block settles it).

    Its writer's lock tells, wherever that runs: the pid in its name means nothing to a process
    in another container (pid 1 in both), where a draft still being written was taken for a
    killed one's. A file system without ``flock`` falls back on that pid.
    """
    try:
        fd = os.open(draft, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:  # settled by another process meanwhile
        yield False
        return
    except OSError:  # a link, or one we may not open: no lock to ask
        yield not running(pid)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer holds it
            yield False
            return
        except OSError:
            yield not running(pid)
            return
        yield same_file(fd, draft)  # else another process settled it before we locked it
    finally:
        os.close(fd)


def same_file(fd: int, path: Path) -> bool:
    """Whether the file open at ``fd`` is the one ``path`` names (not settled away, replaced)."""
    try:
        named = path.lstat()
    except FileNotFoundError:
        return False
    return os.path.samestat(named, os.fstat(fd))


def _locked(fd: int, draft: Path) -> bool:
    """Lock the new draft at ``fd`` until it is closed; False when another process removed it.

    Between making the draft and locking it, a process settling drafts may take it for one cut
    short (unlocked) and remove it: then another draft is made.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a file system without flock: the pid in its name tells
        return True
    return same_file(fd, draft)
