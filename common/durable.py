"""Files written to survive: the folder fsync after a link or a rename, a draft's writer.

Without the folder's fsync a power cut may lose a name whose file's bytes were synced: a key
gone while what it sealed or signed stays. A key is written as a draft named with its writer's
pid, then linked into place; a draft whose writer is gone is settled by the next start
(``models.atrest``, ``sealed.keyfile``). Standard library only: the container's entry point uses
it too.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
