"""Putting a file's name on the disk: the folder fsync after a link or a rename.

Without it a power cut may lose a name whose file's bytes were synced: a key gone while what it
sealed or signed stays. Standard library only: the container's entry point uses it too.
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
