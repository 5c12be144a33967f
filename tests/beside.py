"""A write through another mount while a bot command reads its database as immutable.

On a read-only disk ``audit`` and ``backup`` open the database as immutable; a bot writing the
same folder through a writable mount meanwhile would make what they read inconsistent. Run
``WRITTEN_BESIDE`` with ``sh -c`` in a mount namespace of its own (``unshare --mount``), with
``DATA`` the data folder, ``RW`` an empty folder, ``PYTHON`` this interpreter and ``WRAPPER``
``write_beside(...)``: the folder is mounted again, writable, at ``RW`` and read-only over
itself, and the command's first immutable open writes a table through ``RW``.
"""

from __future__ import annotations

WRITTEN_BESIDE = """
mount --bind "$DATA" "$RW" || exit 97
mount -o bind,ro "$DATA" "$DATA" || exit 97
exec "$PYTHON" -c "$WRAPPER"
"""

_WRAPPER = """
import os, runpy, sqlite3, sys

def write_beside(event, args):
    if event == "sqlite3.connect" and "immutable=1" in str(args[0]) and not written:
        written.append(True)
        db = sqlite3.connect(os.path.join(os.environ["RW"], "veil.db"))
        with db:
            db.execute("CREATE TABLE written_beside (x)")
        db.close()

written = []
sys.addaudithook(write_beside)
sys.argv = {argv!r}
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


def write_beside(*args: str) -> str:
    """The Python that runs ``python -m bot args…`` with the write beside its first read."""
    return _WRAPPER.format(argv=["bot", *args])
