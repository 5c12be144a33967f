"""The unlucky operator: a second bot on the same data, a lost master key, a damaged database.

Each mistake is refused at start in one line naming what is wrong (never a key or a token), and
leaves what was there as it was: the running bot's answers and holds, the history, its key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from common.container import PLAYGROUND_TON_ADDRESS
from models import MasterKey, Store
from models.backup import backup_database
from models.database import DataInUse, claim_database
from sealed.encoding import b64e
from tests.books import inconsistent_users
from tests.botstack import TOKEN, process_stack, running_stack
from tests.fakes.telegram import CONFLICT_POLLER, FakeTelegram
from tests.harness import (
    REPO,
    ManagedProcess,
    child_environment,
    install_client_key,
    run_python,
    serving,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlite_utils import Database

USER = 9301
ANSWER = " ".join(f"w{i}" for i in range(60))


async def exit_code(process: ManagedProcess, within: float = 60.0) -> int | None:
    """The process's exit code once it ends by itself within ``within`` s; else kill it, None.

    ``within`` only bounds a failure (a bot that never stops by itself), as ``wait_for_line``'s
    does: on a loaded machine a start that fails took over 30 s to say so.
    """
    try:
        async with asyncio.timeout(within):
            code = await process.process.wait()
    except TimeoutError:
        await process.kill()
        return None
    await process.kill()  # only collects its output: it has exited
    return code


async def test_a_second_bot_on_the_same_data_is_refused_and_the_first_keeps_its_answer(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with process_stack(data, answer=ANSWER, token_delay=0.1) as stack:
        telegram, env = stack.telegram, stack.env
        first = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await first.wait_for_line("bot.started")
            telegram.send_text(USER, "a slow answer please")
            await telegram.wait_for("sendMessageDraft", lambda c: c.params["chat_id"] == USER)
            # The operator starts the bot again by mistake, on the same data, while it answers.
            second = await ManagedProcess.start("-m", "bot", env=env)
            code = await exit_code(second)
            final = await telegram.wait_for(
                "sendMessage",
                lambda c: c.params["chat_id"] == USER and c.params["text"] == ANSWER,
                timeout=30,
            )
        finally:
            stopped = await first.stop()
    assert code == 2, second.output
    (line,) = second.output.strip().splitlines()
    assert line.startswith("veil: another bot is serving from ")
    assert str(data / "veil.db") in line
    assert TOKEN.split(":")[1] not in line
    assert stopped == 0
    assert final.params["text"] == ANSWER
    interrupted = [c for c in telegram.calls_of("sendMessage") if c.params["text"] != ANSWER]
    assert interrupted == []  # nobody was told their running answer had been cut off
    with sqlite3.connect(data / "veil.db") as db:
        outcomes = db.execute("SELECT outcome, COUNT(*) FROM holds GROUP BY outcome").fetchall()
    assert outcomes == [("settled", 1)]  # the first bot's hold, settled by it, not "recovered"


REFUSED_BEFORE_AIOGRAM = """
import sys
from bot.__main__ import main

code = main([])
print(code, "aiogram" in sys.modules)
"""


def test_a_second_bot_is_refused_before_it_loads_aiogram(tmp_path: Path) -> None:
    # Loading aiogram takes seconds (its Telegram types are built at import): the operator who
    # started a second bot by mistake waited for it before being told, as for a bad setting.
    data = tmp_path / "data"
    install_client_key(data)
    with claim_database(data / "veil.db"):  # the bot that serves from it
        result = run_python("-c", REFUSED_BEFORE_AIOGRAM, env=start_settings(data))
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"veil: another bot is serving from {data / 'veil.db'}: stop it first")


def test_webhook_replicas_share_the_database_and_a_poller_claims_it_alone(tmp_path: Path) -> None:
    database = tmp_path / "data" / "veil.db"
    with claim_database(database, shared=True) as lock, claim_database(database, shared=True):
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        with pytest.raises(DataInUse), claim_database(database):
            pass
    with claim_database(database):  # the replicas are gone: the claim went with them
        with pytest.raises(DataInUse), claim_database(database, shared=True):
            pass
        with pytest.raises(DataInUse), claim_database(database):
            pass
    with claim_database(database):
        pass


def start_settings(
    data: Path, telegram: str = "http://127.0.0.1:9", token: str = TOKEN
) -> dict[str, str]:
    """What ``python -m bot`` on ``data`` needs to get as far as asking ``telegram``.

    No gateway: each test here stops the bot before one is asked (nothing listens on the
    default Telegram's port 9).
    """
    return {
        "VEIL_BOT_TOKEN": token,
        "VEIL_TELEGRAM_API": telegram,
        "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
        "VEIL_DATA_DIR": str(data),
        "VEIL_BOT_METRICS_PORT": "0",
    }


def bot_command(
    data: Path, *args: str, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m bot args…`` on ``data``, with a Telegram nobody answers: what start-up says."""
    return run_python("-m", "bot", *args, env={**start_settings(data), **(settings or {})})


def a_database(data: Path) -> None:
    """An empty database in ``data``, such as a first start makes: audit and reconcile need one.

    They refuse a data folder without one (a mistyped ``VEIL_DATA_DIR``) and make nothing there.
    """
    data.mkdir(parents=True, exist_ok=True)
    (data / "veil.db").touch(mode=0o600)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last line a command wrote on stderr: what stopped it."""
    return result.stderr.strip().splitlines()[-1]


def gram_settings(toncenter_url: str) -> dict[str, str]:
    """Gram payments on (the playground's testnet wallet), toncenter at ``toncenter_url``."""
    return {
        "VEIL_TON_ADDRESS": PLAYGROUND_TON_ADDRESS,
        "VEIL_TON_TESTNET": "1",
        "VEIL_TONCENTER_URL": toncenter_url,
    }


async def a_database_without_its_key(data: Path) -> None:
    """A database with history in ``data``, and its master key file gone."""
    install_client_key(data)
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    try:
        opened = await store.open_conversation(USER, "en")
        await store.add_turns(USER, opened.conversation_id, [("user", "a private question")])
    finally:
        await store.close()
    (data / "master.key").unlink()


def refusal(data: Path, *args: str) -> str:
    """The one line ``python -m bot args…`` on ``data`` refuses to start with (exit 2)."""
    result = bot_command(data, *args)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("command", [[], ["audit"], ["reconcile"]])
async def test_a_lost_master_key_is_named_and_no_new_one_is_made(
    tmp_path: Path, command: list[str]
) -> None:
    data = tmp_path / "data"
    await a_database_without_its_key(data)
    before = (data / "veil.db").read_bytes()
    line = refusal(data, *command)
    assert line.startswith(f"veil: the master key file {data / 'master.key'} is missing")
    assert "put it back from its backup" in line
    # No new key: one would open none of the history, and a later start would call it wrong.
    assert not (data / "master.key").exists()
    assert (data / "veil.db").read_bytes() == before


@pytest.mark.parametrize("command", [[], ["audit"], ["reconcile"]])
async def test_a_wrong_master_key_is_refused_in_one_line_and_kept(
    tmp_path: Path, command: list[str]
) -> None:
    data = tmp_path / "data"
    await a_database_without_its_key(data)
    MasterKey.load_or_create(data / "master.key")  # another key in its place
    wrong = (data / "master.key").read_bytes()
    assert refusal(data, *command) == (
        f"veil: cannot open the data store: the master key does not open the data keys in"
        f" {data / 'veil.db'}: is it the key this database was created with?"
    )
    assert (data / "master.key").read_bytes() == wrong


# A start killed (SIGKILL) while it makes the master key: in the child, an audit hook kills it
# at the event named, the real os.link or os.remove of models.atrest's draft.
KILLED_MAKING_THE_KEY = """
import os, signal, sys
from pathlib import Path
from models import MasterKey
def kill(event, args):
    if event == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(kill)
MasterKey.load_or_create(Path(sys.argv[1]))
"""


@pytest.mark.parametrize("killed_at", ["os.link", "os.remove"])
def test_a_key_draft_a_killed_start_left_is_settled_and_no_key_is_lost(
    tmp_path: Path, killed_at: str
) -> None:
    # Killed before the draft was linked into place (no key file, the draft holds the only
    # key), or after (the draft is the key's second name): the draft stayed in the data folder
    # for good, a hidden copy of the key that a backup carries and destroying the key leaves.
    data = tmp_path / "data"
    key_file = data / "master.key"
    killed = run_python("-c", KILLED_MAKING_THE_KEY, str(key_file), killed_at)
    assert killed.returncode == -signal.SIGKILL
    (draft,) = data.glob(".master.key.*")
    key = draft.read_bytes()
    assert key_file.exists() == (killed_at == "os.remove")
    a_database(data)
    result = bot_command(data, "audit")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in data.iterdir() if "master" in path.name) == ["master.key"]
    assert (
        key_file.read_bytes() == key
    )  # the key the draft held: the one, or one that sealed nothing
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.stat().st_nlink == 1


def test_a_key_draft_cut_short_goes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ended = subprocess.Popen([sys.executable, "-c", ""])  # a pid no process holds
    ended.wait()
    draft = data / f".master.key.{ended.pid}.0badcafe"
    draft.write_bytes(b"")  # killed before the key was written into it
    draft.chmod(0o600)
    a_database(data)
    result = bot_command(data, "audit")
    assert result.returncode == 0, result.stderr
    # The draft goes; the audit makes no key in its place (only the bot's start makes one).
    assert sorted(path.name for path in data.iterdir() if "master" in path.name) == []


# A start making the master key, held (an audit hook) the first time at the event named; it
# says "held", goes on at a line on stdin, and prints a data key it wrapped under the key it
# ended with.
HELD_MAKING_THE_KEY = """
import base64, sys
from pathlib import Path
from models import MasterKey
held = []
def hold(event, args):
    if event == sys.argv[2] and not held:
        held.append(event)
        print("held", flush=True)
        sys.stdin.readline()
sys.addaudithook(hold)
key = MasterKey.load_or_create(Path(sys.argv[1]))
print(base64.b64encode(key.wrap(1, bytes(32))).decode(), flush=True)
"""
# A process in a pid namespace of its own (another container's), where it is pid 1.
IN_ANOTHER_CONTAINER = ["unshare", "--pid", "--fork", "--map-root-user"]


def another_container() -> bool:
    """Whether processes may be started here in a pid namespace of their own."""
    try:
        made = subprocess.run(  # noqa: S603 -- unshare, to run `true`
            [*IN_ANOTHER_CONTAINER, "true"], capture_output=True, check=False
        )
    except OSError:
        return False
    return made.returncode == 0


@pytest.mark.skipif(not another_container(), reason="no pid namespaces here (unshare)")
def test_a_key_draft_another_container_is_writing_is_left_to_it(tmp_path: Path) -> None:
    # Two containers on one data folder (a bot starting, `docker compose run --rm bot audit`
    # beside it): a pid in the draft's name means nothing in the other, where it was taken
    # for a killed start's. The draft still being written was linked into place and removed
    # under its writer, whose own link then failed: that start stopped, the key unmade.
    data = tmp_path / "data"
    key_file = data / "master.key"
    writer = held_making_the_key(key_file, "os.link")  # the draft whole, not linked yet
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "held\n"
        a_database(data)
        audit = subprocess.run(  # noqa: S603 -- this interpreter, this project's own code
            [*IN_ANOTHER_CONTAINER, sys.executable, "-m", "bot", "audit"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**child_environment(), **start_settings(data)},
            timeout=60,
            check=False,
        )
        assert audit.returncode == 0, audit.stderr
        assert "master key draft" not in audit.stderr
        wrapped, errors = writer.communicate("go\n", timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0, errors
    assert sorted(path.name for path in data.iterdir() if "master" in path.name) == ["master.key"]
    key = MasterKey.load_or_create(key_file)  # the one both starts ended with
    assert key.unwrap(1, base64.b64decode(wrapped)) == bytes(32)


def test_a_key_draft_removed_before_its_writer_locked_it_is_made_again(tmp_path: Path) -> None:
    # Made, not locked yet: empty and unlocked, as one a start killed at once left, so a start
    # beside settles it away; its writer, finding it gone once locked, makes another.
    data = tmp_path / "data"
    key_file = data / "master.key"
    writer = held_making_the_key(key_file, "fcntl.flock")
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "held\n"
        assert [path.read_bytes() for path in data.glob(".master.key.*")] == [b""]
        a_database(data)
        audit = bot_command(data, "audit")
        assert audit.returncode == 0, audit.stderr
        assert not list(data.glob(".master.key.*"))
        wrapped, errors = writer.communicate("go\n", timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0, errors
    assert sorted(path.name for path in data.iterdir() if "master" in path.name) == ["master.key"]
    key = MasterKey.load_or_create(key_file)  # the one both starts ended with
    assert key.unwrap(1, base64.b64decode(wrapped)) == bytes(32)


# A start settling the key's drafts, held (an audit hook) before it locks the first one; it
# says "held", goes on at a line on stdin, and prints the lines it has for the operator.
HELD_SETTLING = """
import json, sys
from pathlib import Path
from models.atrest import settle_drafts
held = []
def hold(event, args):
    if event == "fcntl.flock" and not held:
        held.append(event)
        print("held", flush=True)
        sys.stdin.readline()
sys.addaudithook(hold)
print(json.dumps(settle_drafts(Path(sys.argv[1]))), flush=True)
"""


def test_a_key_draft_another_start_settled_meanwhile_is_left_without_a_line(
    tmp_path: Path,
) -> None:
    # Two starts beside each other over a killed start's draft: the second opened it, the first
    # settled it (linked into place, removed), then the second took its lock and said it
    # "cannot remove the master key draft …: No such file or directory".
    data = tmp_path / "data"
    key_file = data / "master.key"
    killed = run_python("-c", KILLED_MAKING_THE_KEY, str(key_file), "os.link")
    assert killed.returncode == -signal.SIGKILL
    (draft,) = data.glob(".master.key.*")
    key = draft.read_bytes()
    second = subprocess.Popen(  # noqa: S603 -- this interpreter, this project's own code
        [sys.executable, "-c", HELD_SETTLING, str(key_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=child_environment(),
    )
    try:
        assert second.stdout is not None
        assert second.stdout.readline() == "held\n"
        a_database(data)
        first = bot_command(data, "audit")
        assert first.returncode == 0, first.stderr
        assert "took the missing" in first.stderr
        told, errors = second.communicate("go\n", timeout=60)
    finally:
        second.kill()
        second.wait()
    assert second.returncode == 0, errors
    assert json.loads(told) == []
    assert sorted(path.name for path in data.iterdir() if "master" in path.name) == ["master.key"]
    assert key_file.read_bytes() == key


def held_making_the_key(key_file: Path, event: str) -> subprocess.Popen[str]:
    """A start making the master key at ``key_file``, held at ``event``: HELD_MAKING_THE_KEY."""
    return subprocess.Popen(  # noqa: S603 -- this interpreter, this project's own code
        [sys.executable, "-c", HELD_MAKING_THE_KEY, str(key_file), event],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=child_environment(),
    )


# A signal while the bot's process ends: atexit runs after main returned (its handlers put
# back), before the process is gone, and this one sends the signal then.
SIGNALLED_AT_EXIT = """
import atexit, os, runpy, signal, sys
atexit.register(os.kill, os.getpid(), signal.SIGNAME)
sys.argv = ["bot"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_while_the_bot_exits_changes_nothing(tmp_path: Path, signame: str) -> None:
    # It killed the bot as it ended (exit -15), or added KeyboardInterrupt's traceback to its
    # one line. Here serving ends at once, refused for a setting.
    settings = start_settings(tmp_path / "data")
    del settings["VEIL_BOT_TOKEN"]
    result = run_python("-c", SIGNALLED_AT_EXIT.replace("SIGNAME", signame), env=settings)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == ["veil: setting VEIL_BOT_TOKEN is required but not set"]


def test_a_bot_started_without_stderr_still_exits_with_its_code(tmp_path: Path) -> None:
    # stderr closed (2>&-): Python has no sys.stderr, and the end's flush of it raised.
    settings = start_settings(tmp_path / "data")
    del settings["VEIL_BOT_TOKEN"]
    command = f'exec "{sys.executable}" -m bot 2>&-'
    result = subprocess.run(  # noqa: S603 -- a shell of our own to close stderr
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=child_environment() | settings,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == "veil: setting VEIL_BOT_TOKEN is required but not set\n"


# Each kind once, each command once: the three open the store alike (all nine pairs, a bot
# process each at ~13 s in CI, added no coverage).
@pytest.mark.parametrize(
    ("kind", "command"),
    # Only serving makes the key: audit and reconcile read without one where there is none.
    [("client key", ["reconcile"]), ("readable by others", ["audit"]), ("folder not made", [])],
)
def test_a_master_key_file_that_cannot_be_used_names_the_setting(
    tmp_path: Path, command: list[str], kind: str
) -> None:
    # A client key given as the master key, a key file others may read, or one in a folder
    # that cannot be made (the first start makes the key): the first two were told as "cannot
    # open the data store" naming no setting, the last crashed with a traceback.
    data = tmp_path / "data"
    key_file = install_client_key(data)  # any file other than a master key
    if kind == "readable by others":
        key_file = data / "shared-master.key"
        MasterKey.load_or_create(key_file)
        key_file.chmod(0o644)
    elif kind == "folder not made":
        key_file = Path("/proc/veil-no-such-folder/master.key")  # no folder can be made in /proc
    a_database(data)
    result = bot_command(data, *command, settings={"VEIL_MASTER_KEY_FILE": str(key_file)})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"veil: setting VEIL_MASTER_KEY_FILE: master key file {key_file} ")
    if kind == "readable by others":
        assert line.endswith("run chmod 600 on it")
    assert not (data / "master.key").exists()


async def test_a_full_disk_is_named_for_the_operator_and_the_user_keeps_the_answer(
    tmp_path: Path,
) -> None:
    answer = "a fine answer " * 40
    async with running_stack(tmp_path / "data", answer=answer) as stack:
        telegram, store = stack.telegram, stack.veil.store
        telegram.send_text(USER, "hello")
        await stack.stored_turns(USER, 2)

        def cap(pages: int | None) -> Callable[[Database], None]:
            def set_cap(db: Database) -> None:
                if pages is None:
                    (pages_now,) = db.execute("PRAGMA page_count").fetchone()
                    db.execute(f"PRAGMA max_page_count = {int(pages_now):d}").fetchall()
                else:
                    db.execute(f"PRAGMA max_page_count = {pages:d}").fetchall()

            return set_cap

        # The disk fills up (SQLite's cap on its file: no page more than it has now).
        await store.write(cap(None))
        with capture_logs() as logs:
            telegram.send_text(USER, "a long question " * 300)
            sent = await stack.final_messages(USER, 3)
        await store.write(cap(2**31 - 1))  # space again
        telegram.send_text(USER, "and now?")
        await stack.final_messages(USER, 4)
        turns = await stack.stored_turns(USER, 4)
        assert await inconsistent_users(store) == []
    texts = [m["text"] for m in sent]
    assert texts[1].startswith("a fine answer a fine")  # the answer itself reached the user
    assert texts[2] == stack.veil.catalogs.for_language("en")("error_history")
    failures = [e for e in logs if e["event"] == "storage.failed"]
    assert failures
    assert {(e["database"], e["code"]) for e in failures} == {("database", "SQLITE_FULL")}
    assert "long question" not in str(logs)
    assert len(turns) == 4  # the first exchange and the last; the one the full disk lost is not


FORGET_THEN_DIE = """
import asyncio, os, sqlite3, sys
from pathlib import Path
from models import MasterKey, Store

async def main(data: Path) -> None:
    key = MasterKey.load_or_create(data / "master.key")
    store = await Store.open(data / "veil.db", key)
    opened = await store.open_conversation(7, "en")
    await store.add_turns(7, opened.conversation_id, [("user", "q"), ("assistant", "a")])
    await store.close()  # all of it in the database file itself now
    store = await Store.open(data / "veil.db", key)
    reader = sqlite3.connect(data / "veil.db")  # a backup or a replica reading meanwhile
    reader.execute("BEGIN")
    (wrapped,) = reader.execute("SELECT data_key FROM users WHERE user_id = 7").fetchone()
    print(bytes(wrapped).hex(), flush=True)
    assert await store.forget(7) == 2
    os._exit(9)  # killed: the forget is committed, its checkpoint did not get through

asyncio.run(main(Path(sys.argv[1])))
"""


def forget_then_die(data: Path) -> bytes:
    """Run ``FORGET_THEN_DIE`` on ``data``; the forgotten user's wrapped data key."""
    child = run_python("-c", FORGET_THEN_DIE, str(data))
    assert child.returncode == 9, child.stderr
    return bytes.fromhex(child.stdout.splitlines()[0])  # then forget says the checkpoint waits


async def test_a_forget_whose_checkpoint_a_crash_cut_short_leaves_the_disk_at_the_next_start(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    wrapped = forget_then_die(data)
    assert wrapped in (data / "veil.db").read_bytes()  # what the forgotten user's key was
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    try:
        on_disk = b"".join(path.read_bytes() for path in data.glob("veil.db*"))
        assert await store.get_user(7) is None
    finally:
        await store.close()
    assert wrapped not in on_disk  # gone from the disk once the bot started again


@pytest.mark.parametrize("listener", ["metrics", "webhook", "shared port"])
def test_a_taken_port_stops_the_bot_with_one_line_naming_the_setting(
    tmp_path: Path, listener: str
) -> None:
    data = tmp_path / "data"
    install_client_key(data)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if listener == "metrics":
            settings = {"VEIL_BOT_METRICS_PORT": str(port)}
            named = f"VEIL_BOT_METRICS_HOST:VEIL_BOT_METRICS_PORT (127.0.0.1:{port})"
        elif listener == "shared port":
            # The metrics listener takes the port on another loopback address; the webhook's
            # address is the taken one: only the webhook's settings are named (by host and port).
            settings = {
                "VEIL_BOT_METRICS_HOST": "127.0.0.2",
                "VEIL_BOT_METRICS_PORT": str(port),
                "VEIL_WEBHOOK_URL": "https://bot.example/hook",
                "VEIL_WEBHOOK_SECRET": "s" * 40,
                "VEIL_WEBHOOK_PORT": str(port),
            }
            named = f"VEIL_WEBHOOK_HOST:VEIL_WEBHOOK_PORT (127.0.0.1:{port})"
        else:
            secret = "s" * 40
            settings = {
                "VEIL_WEBHOOK_URL": "https://bot.example/hook",
                "VEIL_WEBHOOK_SECRET": secret,
                "VEIL_WEBHOOK_PORT": str(port),
            }
            named = f"VEIL_WEBHOOK_HOST:VEIL_WEBHOOK_PORT (127.0.0.1:{port})"
        result = bot_command(data, settings=settings)
    assert result.returncode == 2
    assert last_line(result) == f"veil: cannot listen on {named}: address already in use"
    assert "process.crashed" not in result.stderr
    assert "s" * 40 not in result.stderr


def test_a_taken_port_is_told_before_the_bot_loads_aiogram(tmp_path: Path) -> None:
    # The listeners were bound seconds into start-up, once aiogram had loaded and the data
    # store was open: an operator's port typo took as long to be told as a whole start.
    data = tmp_path / "data"
    install_client_key(data)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = start_settings(data) | {"VEIL_BOT_METRICS_PORT": str(port)}
        result = run_python("-c", REFUSED_BEFORE_AIOGRAM, env=settings)
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert last_line(result) == (
        f"veil: cannot listen on VEIL_BOT_METRICS_HOST:VEIL_BOT_METRICS_PORT (127.0.0.1:{port}):"
        " address already in use"
    )


@pytest.mark.parametrize("name", ["VEIL_BOT_METRICS", "VEIL_WEBHOOK", "VEIL_WEBAPP"])
def test_a_listen_host_that_names_no_address_stops_the_bot_with_one_line(
    tmp_path: Path, name: str
) -> None:
    # A host name that does not resolve (a typo) was a "process.crashed" traceback (gaierror).
    data = tmp_path / "data"
    install_client_key(data)
    settings = {
        "VEIL_WEBHOOK_URL": "https://bot.example/hook",
        "VEIL_WEBHOOK_SECRET": "s" * 40,
        "VEIL_WEBHOOK_PORT": "0",
        "VEIL_WEBAPP_URL": "https://bot.example/app/",
        "VEIL_WEBAPP_PORT": "0",
        f"{name}_HOST": "no-such-host.invalid",  # RFC 2606: never resolves
    }
    result = bot_command(data, settings=settings)
    assert result.returncode == 2
    line = last_line(result)
    assert line.startswith("veil: cannot listen on ")
    assert f"{name}_HOST:{name}_PORT (no-such-host.invalid:0)" in line
    assert "process.crashed" not in result.stderr
    assert "s" * 40 not in result.stderr


async def test_a_token_telegram_refuses_stops_the_bot_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    install_client_key(data)
    async with FakeTelegram(token=TOKEN) as telegram:
        env = start_settings(data, telegram.url, token="123456:revoked-or-mistyped")
        bot = await ManagedProcess.start("-m", "bot", env=env)
        code = await exit_code(bot)
    assert code == 2
    assert bot.lines[-1] == (
        "veil: Telegram refused the bot token (getMe: Unauthorized): set VEIL_BOT_TOKEN to the"
        " token @BotFather gave this bot"
    )
    assert "process.crashed" not in bot.output
    assert "revoked-or-mistyped" not in bot.output


async def test_a_webhook_url_telegram_refuses_stops_the_bot_in_one_line(tmp_path: Path) -> None:
    # Telegram's own reply to setWebhook for a URL it will not post to (plain http, a port other
    # than 80, 88, 443 or 8443, a host it cannot resolve): a 400 that ended start-up in a
    # traceback (process.crashed), as if the bot had a bug, naming no setting.
    data = tmp_path / "data"
    install_client_key(data)
    refused = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
    async with FakeTelegram(token=TOKEN) as telegram:
        telegram.fail_next("setWebhook", status=400, description=refused)
        env = {
            **start_settings(data, telegram.url),
            "VEIL_WEBHOOK_URL": "http://veil.example.com/hook",
            "VEIL_WEBHOOK_SECRET": "s" * 40,
            "VEIL_WEBHOOK_PORT": "0",
        }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        code = await exit_code(bot)
    assert code == 2
    assert bot.lines[-1] == (
        "veil: Telegram refused the webhook URL http://veil.example.com (VEIL_WEBHOOK_URL):"
        f" {refused}"
    )
    assert "process.crashed" not in bot.output
    assert "Traceback" not in bot.output
    assert "s" * 40 not in bot.output


@pytest.mark.parametrize(
    ("status", "body", "named"),
    [
        (502, "<html>502 Bad Gateway</html>", "UnreadableReply: getMe: Failed to decode object"),
        (500, '{"ok":false,"error_code":500,"description":"Internal Server Error"}', "getMe"),
    ],
)
async def test_a_telegram_that_cannot_serve_at_start_is_one_line_naming_the_setting(
    tmp_path: Path, status: int, body: str, named: str
) -> None:
    # VEIL_TELEGRAM_API behind a proxy that answers with its own page, or a Bot API failing
    # for now (a 5xx past the session's retry): a crash report with a traceback, where a
    # Telegram out of reach is one line naming the setting.
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    data = tmp_path / "data"
    install_client_key(data)
    async with serving(app) as url:
        bot = await ManagedProcess.start("-m", "bot", env=start_settings(data, url))
        code = await exit_code(bot)
    assert code == 1
    assert bot.lines[-1].startswith(
        f"veil: Telegram at {url.rstrip('/')}/ (VEIL_TELEGRAM_API) could not serve the bot now:"
    )
    assert named in bot.lines[-1]
    assert "process.crashed" not in bot.output
    assert TOKEN.split(":")[1] not in bot.output


def test_telegram_out_of_reach_at_start_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    install_client_key(data)
    result = bot_command(data)  # Telegram at http://127.0.0.1:9, where nothing listens
    assert result.returncode == 1
    line = last_line(result)
    assert line.startswith(
        "veil: cannot reach Telegram at http://127.0.0.1:9/ (VEIL_TELEGRAM_API): getMe:"
        " ClientConnectorError"
    )
    assert "process.crashed" not in result.stderr
    assert TOKEN.split(":")[1] not in result.stderr


async def test_a_password_in_a_url_is_not_shown_when_its_server_is_out_of_reach(
    tmp_path: Path,
) -> None:
    # A Bot API server or an indexer behind a proxy that asks for a password takes it in its
    # URL (aiohttp sends it as Basic auth); the line naming the setting showed it as given.
    data = tmp_path / "data"
    install_client_key(data)
    a_database(data)
    password = "hunter2-d4e5f6"
    ton = gram_settings(f"http://veil:{password}@127.0.0.1:9/toncenter")
    async with FakeTelegram(token=TOKEN) as telegram:
        away, no_chain = await asyncio.gather(
            asyncio.to_thread(
                bot_command,
                data,
                settings={"VEIL_TELEGRAM_API": f"http://veil:{password}@127.0.0.1:9/"},
            ),
            asyncio.to_thread(
                bot_command, data, "reconcile", settings={"VEIL_TELEGRAM_API": telegram.url, **ton}
            ),
        )
    assert away.returncode == 1
    assert last_line(away).startswith(
        "veil: cannot reach Telegram at http://127.0.0.1:9/ (VEIL_TELEGRAM_API): getMe:"
    )
    assert no_chain.returncode == 2
    assert last_line(no_chain).startswith(
        "veil: cannot read the TON payments from toncenter at http://127.0.0.1:9/toncenter"
        " (VEIL_TONCENTER_URL):"
    )
    for result in (away, no_chain):
        assert password not in result.stderr


async def test_reconcile_with_telegram_or_toncenter_unusable_is_one_line_naming_the_setting(
    tmp_path: Path,
) -> None:
    # A data folder each: three commands closing one database at once defer its checkpoint,
    # and say so in a line of their own (CI, 2026-11-30), which is not what this test reads.
    folders = [tmp_path / name for name in ("away", "mistyped", "no_chain")]
    for data in folders:
        install_client_key(data)
        a_database(data)
    ton = gram_settings("http://127.0.0.1:9/toncenter")
    async with FakeTelegram(token=TOKEN) as telegram:  # the three at once: each is a process
        away, mistyped, no_chain = await asyncio.gather(
            asyncio.to_thread(bot_command, folders[0], "reconcile"),  # nothing on 127.0.0.1:9
            asyncio.to_thread(
                bot_command,
                folders[1],
                "reconcile",
                settings={"VEIL_TELEGRAM_API": telegram.url, "VEIL_BOT_TOKEN": "123456:mistyped"},
            ),
            asyncio.to_thread(
                bot_command,
                folders[2],
                "reconcile",
                settings={"VEIL_TELEGRAM_API": telegram.url, **ton},
            ),
        )
    assert away.returncode == 2
    assert last_line(away).startswith(
        "veil: cannot reach Telegram at http://127.0.0.1:9/ (VEIL_TELEGRAM_API):"
        " getStarTransactions: ClientConnectorError"
    )
    assert mistyped.returncode == 2
    assert last_line(mistyped) == (
        "veil: Telegram refused the bot token (getStarTransactions: Unauthorized): set"
        " VEIL_BOT_TOKEN to the token @BotFather gave this bot"
    )
    assert no_chain.returncode == 2
    assert last_line(no_chain).startswith(
        "veil: cannot read the TON payments from toncenter at http://127.0.0.1:9/toncenter"
        " (VEIL_TONCENTER_URL): toncenter: ClientConnectorError"
    )
    for result in (away, mistyped, no_chain):
        assert "process.crashed" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert TOKEN.split(":")[1] not in result.stderr
        assert "mistyped" not in result.stderr


BACKUP_THEN_DIE = """
import os, sys, threading
from pathlib import Path
from models.backup import backup_database

source, target = Path(sys.argv[1]), Path(sys.argv[2])

def die_midway() -> None:  # the machine goes down while the copy is a tenth done
    while True:
        for path in target.parent.glob(target.name + "*"):
            if path.stat().st_size > source.stat().st_size // 10:
                os._exit(9)

threading.Thread(target=die_midway, daemon=True).start()
backup_database(source, target)
os._exit(0)
"""


BACKUP_THEN_STOP = """
import os, signal, sys, threading
from pathlib import Path
from models.backup import backup_database

source, target, other = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
partial = target.with_name(target.name + ".partial")

def stop_midway() -> None:  # this backup's own copy a tenth made (not the other one's)
    while True:
        try:
            made = partial.stat()
        except FileNotFoundError:
            continue
        if made.st_ino != other and made.st_size > source.stat().st_size // 10:
            os.kill(os.getpid(), signal.SIGSTOP)
            return

threading.Thread(target=stop_midway, daemon=True).start()
backup_database(source, target)
"""


def _stopped_or_ended(process: subprocess.Popen[str]) -> None:
    """Wait until ``process`` stopped itself (SIGSTOP) or ended."""
    deadline = time.monotonic() + 30
    while process.poll() is None:
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        assert time.monotonic() < deadline, "the backup neither stopped nor ended"
        time.sleep(0.01)


def ledger_to_back_up(folder: Path) -> tuple[Path, Path]:
    """A 16 MB WAL database (a copy long enough to stop midway) and its backup's path."""
    source, target = folder / "veil.db", folder / "backups" / "veil-today.db"
    target.parent.mkdir()
    with closing(sqlite3.connect(source)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE ledger (amount BLOB)")
        db.executemany("INSERT INTO ledger VALUES (?)", ([bytes(2000)] for _ in range(8000)))
        db.commit()
    return source, target


def test_a_second_backup_to_the_same_name_leaves_the_first_whole(tmp_path: Path) -> None:
    # A cron backup overlapping one run by hand, both to today's name: the second removed the
    # first's half-made copy and made its own under the same name; the first, done, took that
    # one as the backup, which the second was still writing (and never finished: killed).
    source, target = ledger_to_back_up(tmp_path)

    def backup(other: int) -> subprocess.Popen[str]:
        return subprocess.Popen(  # noqa: S603 -- this interpreter, the script above
            [sys.executable, "-c", BACKUP_THEN_STOP, str(source), str(target), str(other)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=child_environment(),
        )

    first = backup(0)
    second = None
    try:
        _stopped_or_ended(first)
        assert first.poll() is None, first.communicate()[1]
        half_made = (target.parent / "veil-today.db.partial").stat().st_ino
        second = backup(half_made)
        _stopped_or_ended(second)
        first.send_signal(signal.SIGCONT)
        _, first_err = first.communicate(timeout=60)
        if second.poll() is None:
            second.kill()  # the second never finishes
        _, second_err = second.communicate(timeout=60)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert first.returncode == 0, first_err
    assert second.returncode != 0
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA quick_check").fetchone() == ("ok",)
        assert copy.execute("SELECT COUNT(*) FROM ledger").fetchone() == (8000,)
    assert "another backup is writing" in second_err
    assert sorted(path.name for path in target.parent.iterdir()) == ["veil-today.db"]


def test_a_backup_killed_midway_leaves_nothing_under_the_backups_name(tmp_path: Path) -> None:
    source, target = ledger_to_back_up(tmp_path)
    child = run_python("-c", BACKUP_THEN_DIE, str(source), str(target))
    assert child.returncode == 9, child.stderr  # it died with the copy half made
    # Before, the half-made copy was there under its name, and opened as an empty database
    # (SQLite rolls an unfinished copy back to nothing): restored, it would start the bot afresh.
    assert not target.exists()
    assert backup_database(source, target) > 4000  # the next try makes it whole
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("SELECT COUNT(*) FROM ledger").fetchone() == (8000,)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(path.name for path in target.parent.iterdir()) == ["veil-today.db"]


async def patient_store(folder: Path) -> Store:
    """The store in ``folder`` (its key made there if none is), its calls waiting 30 s for a lock.

    A wait that long stands out: the tests below show the checkpoints give way instead.
    """
    return await Store.open(
        folder / "veil.db", MasterKey.load_or_create(folder / "master.key"), busy_timeout=30
    )


@contextmanager
def a_reader_beside(database: Path) -> Iterator[None]:
    """A reader holding on to the database as it is now (a backup, a replica) in the block."""
    with closing(sqlite3.connect(database)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM users").fetchone()
        yield


async def test_the_start_checkpoint_gives_way_to_a_running_bot_and_its_readers(
    tmp_path: Path,
) -> None:
    # audit or reconcile opened beside the running bot while a backup reads an older snapshot:
    # the checkpoint at open cannot finish, and gives way at once instead of waiting (and
    # holding the bot's writers up) for the busy timeout.
    running = await patient_store(tmp_path)
    try:
        opened = await running.open_conversation(USER, "en")
        with a_reader_beside(tmp_path / "veil.db"):  # the backup
            await running.add_turns(USER, opened.conversation_id, [("user", "q")])
            started = asyncio.get_running_loop().time()
            beside = await patient_store(tmp_path)
            took = asyncio.get_running_loop().time() - started
        try:  # the backup is done: closing, it checkpoints in full
            waits = await beside.read(lambda db: db.execute("PRAGMA busy_timeout").fetchone())
        finally:
            await beside.close()
    finally:
        await running.close()
    assert took < 5  # not the 30 s busy timeout
    assert waits == (30_000,)  # its own calls wait as long as they were told


OPEN_AT_ONCE = """
import asyncio, sys, time
from pathlib import Path
from models import MasterKey, Store, StorageError

async def main(data: Path) -> None:
    while not (data / "go").exists():  # all together, as replicas started at once
        time.sleep(0.001)
    try:
        store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    except StorageError as exc:
        print(f"refused: {exc}")
        return
    await store.close()
    print("opened")

asyncio.run(main(Path(sys.argv[1])))
"""


async def test_bots_starting_at_once_on_a_new_database_all_open_it(tmp_path: Path) -> None:
    # Webhook replicas (or audit beside a starting bot) migrating one database together: each
    # applied the pending migrations over the others' ("table ton_orders already exists",
    # "duplicate column name") or found it locked, and refused to start.
    outcomes = []
    for attempt in range(3):
        data = tmp_path / str(attempt)
        data.mkdir()
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                OPEN_AT_ONCE,
                str(data),
                cwd=REPO,
                env=child_environment(),
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(4)
        ]
        await asyncio.sleep(1.0)  # all of them waiting
        (data / "go").touch()
        # The last line: the store's own log lines come first (a checkpoint that gave way to
        # another process's reader at close logs store.checkpoint_deferred).
        outcomes += [
            (await child.communicate())[0].decode().strip().splitlines()[-1] for child in children
        ]
    assert outcomes == ["opened"] * 12


async def test_forget_beside_a_long_reader_holds_nobody_up(tmp_path: Path) -> None:
    # A reader on an older snapshot (Litestream keeps one open all the time; a backup while it
    # copies): forget's checkpoint cannot finish. It waited the busy timeout on the store's one
    # thread, so every user's calls waited with it; now it gives way and says so.
    store = await patient_store(tmp_path)
    try:
        for user in (USER, USER + 1):
            opened = await store.open_conversation(user, "en")
            await store.add_turns(user, opened.conversation_id, [("user", "q"), ("assistant", "a")])
        with a_reader_beside(tmp_path / "veil.db"):  # the replica
            await store.add_turns(USER + 1, opened.conversation_id, [("user", "and now")])
            loop = asyncio.get_running_loop()
            started = loop.time()
            with capture_logs() as logs:
                assert await store.forget(USER) == 2
            other = await store.get_user(USER + 1)
            took = loop.time() - started
    finally:
        await store.close()
    assert other is not None
    assert took < 5  # not the 30 s busy timeout
    assert [e["event"] for e in logs] == ["store.checkpoint_deferred"]


async def test_closing_beside_a_long_reader_gives_way_at_once(tmp_path: Path) -> None:
    # audit or reconcile ending beside the running bot while a replica reads: the full
    # checkpoint at close waited the busy timeout, blocking the bot's writers while it waited.
    running = await patient_store(tmp_path)
    try:
        opened = await running.open_conversation(USER, "en")
        with a_reader_beside(tmp_path / "veil.db"):  # the replica
            await running.add_turns(USER, opened.conversation_id, [("user", "q")])
            audit = await patient_store(tmp_path)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await audit.close()
            took = loop.time() - started
            await running.add_turns(USER, opened.conversation_id, [("assistant", "a")])
    finally:
        await running.close()
    assert took < 5  # not the 30 s busy timeout


async def test_a_second_poller_with_the_same_token_stops_the_bot_in_one_line(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # One 409 (Telegram's own at a restart, the old poll still held) is waited out; a conflict
    # that persists (another process polls with the token, from a data folder of its own) stops
    # the bot gracefully, in one line that names the cause.
    data = tmp_path / "data"
    async with process_stack(data, answer=ANSWER) as stack:
        telegram, env = stack.telegram, stack.env
        bot = await ManagedProcess.start("-m", "bot", env={**env, "VEIL_POLL_CONFLICT_LIMIT": "2"})
        try:
            await bot.wait_for_line("bot.started")
            telegram.fail_next("getUpdates", status=409, description=CONFLICT_POLLER)
            for count in (1, 2):  # the second after the 409 and aiogram's backoff
                telegram.send_text(USER, "/start")
                async with asyncio.timeout(30):
                    while len(telegram.sent_messages(USER)) < count:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            assert "bot.stopped" not in bot.output  # the 409 passed: it serves on
            assert "telegram.token_in_use" not in bot.output
            other = f"{telegram.url}/bot{TOKEN}/getUpdates"
            async with asyncio.timeout(30):
                while bot.process.returncode is None:  # the other process polls on
                    async with http.post(other, json={"timeout": 1}) as reply:
                        await reply.read()
            code = await exit_code(bot)
        finally:
            await bot.kill()
    assert code == 2  # an operator's mistake
    assert bot.lines[-1] == (
        "veil: another process uses this bot's token (VEIL_BOT_TOKEN): Telegram refused its"
        f' update polls for 2 s or more ("{CONFLICT_POLLER}"): stop the other one (one token,'
        " one long-polling bot), or give each bot its own token"
    )
    assert bot.output.count('"telegram.token_in_use"') == 1
    assert "bot.stopped" in bot.output
    assert TOKEN.split(":")[1] not in bot.output


async def test_a_token_revoked_while_the_bot_serves_stops_it_in_one_line(tmp_path: Path) -> None:
    # The token revoked in @BotFather (or replaced) while the bot long-polls: Telegram answers
    # every poll 401. aiogram logged each and polled again for ever, so the bot served no one,
    # said so nowhere an operator looks, and a supervisor never restarted it.
    data = tmp_path / "data"
    async with process_stack(data, answer=ANSWER) as stack:
        telegram, env = stack.telegram, stack.env
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("Run polling for bot")  # aiogram's getMe done: it polls
            telegram.token = "123456:REVOKED"  # Telegram now refuses the old one, every method
            telegram.send_text(USER, "/start")  # ends the poll waiting now; the next is refused
            code = await exit_code(bot)
        finally:
            await bot.kill()
    assert code == 2  # the operator's to fix, as a token refused at start
    assert bot.lines[-1] == (
        "veil: Telegram refused the bot token (getUpdates: Unauthorized) while the bot was"
        " serving: set VEIL_BOT_TOKEN to the token @BotFather gave this bot (/revoke there"
        " replaces it)"
    )
    assert bot.output.count('"telegram.token_refused"') == 1
    assert "bot.stopped" in bot.output
    assert TOKEN.split(":")[1] not in bot.output


async def test_one_refused_poll_with_a_token_telegram_still_takes_does_not_stop_the_bot(
    tmp_path: Path,
) -> None:
    # One poll refused 401 though the token is good (getMe, asked then, answers): a proxy's
    # refusal in the Bot API's shape, or one of Telegram's passing 401s for a working token
    # (tdlib/telegram-bot-api#77: "The getMe command got through about 2 out of 20 trials").
    # The bot stopped for good on it, exit 2 (which RestartPreventExitStatus=2 keeps down),
    # and served no one.
    data = tmp_path / "data"
    async with process_stack(data, answer=ANSWER) as stack:
        telegram, env = stack.telegram, stack.env
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started")
            telegram.fail_next("getUpdates", status=401, description="Unauthorized")
            for count in (1, 2):  # the second after the 401 and aiogram's backoff
                telegram.send_text(USER, "/start")
                async with asyncio.timeout(30):
                    while len(telegram.sent_messages(USER)) < count:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            assert bot.process.returncode is None
            bot.process.send_signal(signal.SIGTERM)
            code = await exit_code(bot)
        finally:
            await bot.kill()
    assert code == 0
    assert "telegram.token_refused" not in bot.output
    assert bot.output.count('"telegram.poll_refused"') == 1
    assert TOKEN.split(":")[1] not in bot.output
