"""Two backups to one name at once: the one stopped never removes the other's finished backup.

A backup that looked for its name before another backup to that name took it, and claimed the
copy's ``.partial`` after that one let it go, copied the whole database again; stopped then
(SIGTERM, Ctrl-C: a cron job's and a hand-run backup overlapping, the slow one stopped), it
removed the copy "under way" by its name, which was the other backup's, whole and reported
made. A backup now looks for its name again once it holds the claim, and refuses there.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING

from models import MasterKey, Store
from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.harness import REPO, child_environment, run_python

if TYPE_CHECKING:
    from pathlib import Path

# ``python -m bot backup …``, held (an audit hook) as it opens the copy's ``.partial`` until a
# line on stdin; SIGTERM to itself as it links the copy into place.
HELD_BACKUP = """
import os, runpy, signal, sys
held = []
def hook(event, args):
    if event == "open" and str(args[0]).endswith(".partial") and not held:
        held.append(event)
        print("held", flush=True)
        sys.stdin.readline()
    elif event == "os.link" and held == ["open"]:
        held.append(event)
        os.kill(os.getpid(), signal.SIGTERM)
sys.addaudithook(hook)
sys.argv = ["bot", *sys.argv[1:]]
runpy.run_module("bot", run_name="__main__")
"""


async def a_database(data: Path) -> None:
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    await store.close()


def test_a_backup_stopped_beside_another_to_its_name_keeps_the_others_backup(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    asyncio.run(a_database(data))
    target = tmp_path / "backup.db"
    env = {
        **child_environment(),
        "VEIL_BOT_TOKEN": TOKEN,
        "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
        "VEIL_DATA_DIR": str(data),
    }
    late = subprocess.Popen(  # noqa: S603 -- this interpreter, this project's own code
        [sys.executable, "-c", HELD_BACKUP, "backup", str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert late.stdout is not None
        assert late.stdout.readline() == "held\n"  # it found no backup.db, and goes on to claim
        first = run_python("-m", "bot", "backup", str(target), env=env)
        assert first.returncode == 0, first.stderr
        made = target.read_bytes()
        out, err = late.communicate("go\n", timeout=60)
    finally:
        late.kill()
        late.wait()
    assert target.read_bytes() == made  # the first backup's, still there
    assert err.splitlines() == [f"veil: {target} already exists; not overwriting a backup"]
    assert late.returncode == 1
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.db", "data"]
