"""A backup stopped while it claims its copy's ``.partial`` leaves nothing behind.

The claim (open or create ``FILE.partial``, lock it, make it owner-only and empty) ran before
the backup's cleanup was in force: a SIGTERM or Ctrl-C there (``stoppable_command`` raises
where the command stands) left an empty ``FILE.partial`` beside the backups, no copy of
anything, after the line that said no backup was kept. Now a stop anywhere in the claim takes
the file away again, unless another backup holds it. Each run stops itself at one point of the
claim (an audit hook signals the process at that event), the same point every time.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import pytest

from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.harness import run_python
from tests.test_review21d_backup import a_database

if TYPE_CHECKING:
    from pathlib import Path

BOT_SETTINGS = {"VEIL_BOT_TOKEN": TOKEN, "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32)}

# ``python -m bot backup …`` that signals itself at the first audit event named EVENT once the
# copy's ``.partial`` is being opened: the stop comes as that operation is about to run.
STOPPED_AT = """
import os, runpy, signal, sys
event_name, signum = sys.argv[1], int(sys.argv[2])
fds = set()
def hook(event, args):
    if event == "open" and str(args[0]).endswith(".partial"):
        fds.add(None)
    if event == event_name and fds and not fds.issuperset({"sent"}):
        if event == "open" and not str(args[0]).endswith(".partial"):
            return
        fds.add("sent")
        os.kill(os.getpid(), signum)
sys.addaudithook(hook)
sys.argv = ["bot", *sys.argv[3:]]
runpy.run_module("bot", run_name="__main__")
"""


@pytest.mark.parametrize(
    ("event", "signum"),
    [
        ("open", signal.SIGTERM),  # before the .partial is made
        ("fcntl.flock", signal.SIGINT),  # made, not locked yet
        ("os.chmod", signal.SIGTERM),  # locked and checked, not yet made owner-only
        ("os.truncate", signal.SIGINT),  # not yet emptied
    ],
)
def test_a_backup_stopped_while_it_claims_its_copy_leaves_no_partial(
    tmp_path: Path, event: str, signum: signal.Signals
) -> None:
    data = tmp_path / "data"
    asyncio.run(a_database(data))
    backups = tmp_path / "backups"
    backups.mkdir()
    target = backups / "veil.db"
    env = {**BOT_SETTINGS, "VEIL_DATA_DIR": str(data)}

    stopped = run_python("-c", STOPPED_AT, event, str(int(signum)), "backup", str(target), env=env)

    assert stopped.stderr.splitlines() == [
        f"veil: backup stopped by {signum.name}: no backup was kept; run it again"
    ]
    assert stopped.returncode == 128 + signum
    assert sorted(p.name for p in backups.iterdir()) == []  # no copy, whole or partial
    again = run_python("-m", "bot", "backup", str(target), env=env)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in backups.iterdir()) == ["veil.db"]
