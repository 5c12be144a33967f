"""``python -m bot backup FILE``: a consistent, still-sealed copy taken while the bot writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from bot.__main__ import USAGE
from models import MasterKey, Store
from models.journal import Journal
from sealed.encoding import b64e
from tests.beside import WRITTEN_BESIDE, write_beside
from tests.botstack import TOKEN
from tests.harness import REPO, child_environment, run_python

if TYPE_CHECKING:
    from pathlib import Path

USER = 4242


async def backup(data: Path, target: Path) -> tuple[int, str, str]:
    """Run the command the operator runs; return its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "backup",
        str(target),
        env={
            **child_environment(),
            "VEIL_BOT_TOKEN": TOKEN,
            "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32),
            "VEIL_DATA_DIR": str(data),
        },
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_backup_while_the_bot_writes_is_consistent_and_still_sealed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    master_key = MasterKey.load_or_create(data / "master.key")
    store = await Store.open(data / "veil.db", master_key)
    try:
        await store.ensure_user(USER, "en")
        conversation = await store.active_conversation(USER)
        writing = True

        async def write() -> int:
            written = 0
            while writing or written < 50:
                secret = f"periwinkle secret number {written}"
                await store.add_turns(USER, conversation, [("user", secret), ("assistant", "ok")])
                written += 1
            return written

        writer = asyncio.create_task(write())
        target = tmp_path / "backup.db"
        code, out, err = await backup(data, target)
        writing = False
        written = await writer
    finally:
        await store.close()
    assert code == 0, err
    assert f"backed up {data / 'veil.db'} to {target}" in out
    assert "master key" in out  # the operator is reminded that the key is needed apart
    assert target.stat().st_mode & 0o077 == 0
    with sqlite3.connect(target) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert b"periwinkle" not in target.read_bytes()  # history stays sealed in the copy
    copy = await Store.open(target, master_key)
    try:
        turns = await copy.history(USER, conversation)
    finally:
        await copy.close()
    assert 0 < len(turns) <= 2 * written
    assert len(turns) % 2 == 0  # whole exchanges only: one snapshot, never half a write
    assert turns[0].text == "periwinkle secret number 0"
    again = await backup(data, target)
    assert again[0] == 1
    assert "already exists" in again[2]


async def test_backup_without_a_database_says_so(tmp_path: Path) -> None:
    code, _, err = await backup(tmp_path, tmp_path / "copy.db")
    assert code == 2
    assert err.strip() == f"veil: setting VEIL_DATA_DIR: no database at {tmp_path / 'veil.db'}"
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize("target", ["", "/"])
async def test_backup_to_a_path_that_names_no_file_is_the_usage_line(
    tmp_path: Path, target: str
) -> None:
    # With a payment journal beside the database, it was a ValueError traceback ("has an empty
    # name") from naming the journal's copy.
    store = await Store.open(
        tmp_path / "veil.db", MasterKey.load_or_create(tmp_path / "master.key")
    )
    await store.close()
    journal = await Journal.open(tmp_path / "journal.db")
    await journal.close()
    result = run_python(
        "-m",
        "bot",
        "backup",
        target,
        env={
            "VEIL_BOT_TOKEN": TOKEN,
            "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32),
            "VEIL_DATA_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [USAGE]


def test_a_command_without_the_bots_settings_says_it_reads_them(tmp_path: Path) -> None:
    # Next to scripts/run, which hands the bot its settings itself, `backup` said only
    # "setting VEIL_BOT_TOKEN is required but not set": a backup seems to need no token.
    for command in ("backup", "audit", "reconcile"):
        args = [command, str(tmp_path / "copy.db")] if command == "backup" else [command]
        result = run_python("-m", "bot", *args, env={"VEIL_DATA_DIR": str(tmp_path)})
        assert result.returncode == 2
        line = (
            "veil: setting VEIL_BOT_TOKEN is required but not set"
            f" ({command} reads the bot's own settings: give it the ones the bot runs with;"
            ' docs/operations.md, "Backups", has those of scripts/run)'
        )
        assert result.stderr.strip().splitlines() == [line]
        assert list(tmp_path.iterdir()) == []


def test_help_prints_the_commands_and_exits_0_without_any_setting() -> None:
    # It was the usage line on stderr and exit 2, as for a mistyped command: a newcomer asking
    # for help was told they had it wrong, and not what each command does.
    for flag in ("--help", "-h"):
        result = run_python("-m", "bot", flag)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        lines = result.stdout.splitlines()
        assert lines[0] == USAGE
        for command in ("reconcile [--fix]", "audit", "backup FILE", "keygen --out FILE"):
            assert any(line.startswith(f"  {command}  ") for line in lines), command


async def test_help_after_a_command_is_the_help_and_writes_nothing(tmp_path: Path) -> None:
    # `backup --help` took --help for FILE: with the bot's settings given, the database was
    # copied to a file named "--help" in the current folder; `keygen --out --help` wrote the
    # client key there. Asking a command for help is asking for help.
    data = tmp_path / "data"
    data.mkdir()
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    await store.close()
    here = tmp_path / "here"
    here.mkdir()
    env = child_environment()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env |= {
        "VEIL_BOT_TOKEN": TOKEN,
        "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32),
        "VEIL_DATA_DIR": str(data),
    }
    for args in (
        ["backup", "--help"],
        ["backup", "-h"],
        ["keygen", "--out", "--help"],
        ["reconcile", "--help"],
        ["audit", "-h"],
    ):
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot", *args],
            capture_output=True,
            text=True,
            cwd=here,
            env=env,
            timeout=60,
            check=False,
        )
        assert (result.returncode, result.stderr) == (0, ""), args
        assert result.stdout.splitlines()[0] == USAGE, args
        assert list(here.iterdir()) == [], args


async def test_a_journal_copy_left_from_an_older_backup_stops_the_backup_before_it_copies(
    tmp_path: Path,
) -> None:
    # The database was copied, then the journal's copy refused: the new database sat beside
    # the older journal, which a restore pairs with it (payments it booked since: lost).
    data = tmp_path / "data"
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    await store.close()
    journal = await Journal.open(data / "journal.db")
    await journal.close()
    target = tmp_path / "backup.db"
    older = target.with_name("backup.db.journal")
    older.write_bytes(b"an older backup's journal")

    code, out, err = await backup(data, target)

    assert code == 1
    assert err.strip().splitlines() == [f"veil: {older} already exists; not overwriting a backup"]
    assert "backed up" not in out
    assert not target.exists()
    assert older.read_bytes() == b"an older backup's journal"
    assert not target.with_name("backup.db.partial").exists()


async def test_a_journal_that_cannot_be_copied_leaves_no_backup_of_the_database(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    await store.close()
    (data / "journal.db").write_bytes(b"not a database " * 100)
    target = tmp_path / "backup.db"

    code, out, err = await backup(data, target)

    assert code == 1
    assert err.strip().splitlines()[0].startswith(f"veil: backup of {data / 'journal.db'} failed")
    assert "backed up" not in out
    assert not target.exists()  # a database without its journal is no backup to restore


# A disk gone read-only (ext4 remounts so on errors): when a backup is wanted most, it failed
# with "backup of …/veil.db failed: unable to open database file". SQLite opens a WAL database
# only where it can make the ``-shm`` file beside it; with no ``-wal`` file there, nothing
# waits to be checkpointed, and nothing can write the file, so it is read as it stands.
_READ_ONLY_BACKUP = """
mount -o bind,ro "$DATA" "$DATA" || exit 97
exec "$PYTHON" -m bot backup "$TARGET"
"""


def backup_read_only(data: Path, target: Path) -> subprocess.CompletedProcess[str] | None:
    """``bot backup target`` with ``data`` mounted read-only (its own mount namespace)."""
    try:
        return subprocess.run(  # noqa: S603 -- unshare, this interpreter, this project
            ["unshare", "--mount", "sh", "-c", _READ_ONLY_BACKUP],  # noqa: S607 -- util-linux
            capture_output=True,
            text=True,
            cwd=REPO,
            env={
                **child_environment(),
                "DATA": str(data),
                "TARGET": str(target),
                "PYTHON": sys.executable,
                "VEIL_BOT_TOKEN": TOKEN,
                "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32),
                "VEIL_DATA_DIR": str(data),
            },
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        return None


async def test_a_backup_of_a_data_folder_on_a_read_only_disk_is_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    master_key = MasterKey.load_or_create(data / "master.key")
    store = await Store.open(data / "veil.db", master_key)
    try:
        await store.ensure_user(USER, "en")
        conversation = await store.active_conversation(USER)
        await store.add_turns(USER, conversation, [("user", "quince secret"), ("assistant", "ok")])
    finally:
        await store.close()
    assert not (data / "veil.db-wal").exists()  # all of it in the database file
    target = tmp_path / "copy" / "backup.db"
    target.parent.mkdir()
    result = await asyncio.to_thread(backup_read_only, data, target)
    if result is None:
        pytest.skip("needs unshare (util-linux)")
    if result.returncode == 97 or "unshare:" in result.stderr:
        pytest.skip("needs a mount namespace of its own (root, or CAP_SYS_ADMIN)")
    assert result.returncode == 0, result.stderr
    assert f"backed up {data / 'veil.db'} to {target}" in result.stdout
    copy = await Store.open(target, master_key)
    try:
        turns = await copy.history(USER, conversation)
    finally:
        await copy.close()
    assert [turn.text for turn in turns] == ["quince secret", "ok"]


async def test_a_backup_stopped_by_the_file_size_limit_says_so(tmp_path: Path) -> None:
    # SQLite's own words were all: "backup of …/veil.db failed: disk I/O error".
    data = tmp_path / "data"
    data.mkdir()
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    await store.close()
    with contextlib.closing(sqlite3.connect(data / "veil.db")) as raw, raw:
        raw.execute("CREATE TABLE ballast (b BLOB)")  # a database past the limit
        raw.execute("INSERT INTO ballast VALUES (zeroblob(1048576))")
    target = tmp_path / "backup.db"
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        'ulimit -f 256 && exec "$0" -m bot backup "$1"',  # 256 KiB a file at most
        sys.executable,
        str(target),
        env={
            **child_environment(),
            "VEIL_BOT_TOKEN": TOKEN,
            "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32),
            "VEIL_DATA_DIR": str(data),
        },
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 1, err.decode()
    (line,) = err.decode().strip().splitlines()
    assert line.startswith(f"veil: backup of {data / 'veil.db'} failed: ")
    assert "file size limit" in line
    assert "262144 bytes" in line
    assert "ulimit -f" in line
    assert not target.exists()
    assert not target.with_name(target.name + ".partial").exists()


async def test_a_wal_without_its_shm_on_a_read_only_disk_is_named_with_what_to_do(
    tmp_path: Path,
) -> None:
    # A bot that was writing when its disk went read-only, and whose -shm is gone (a copy of
    # the folder that left it out): SQLite cannot read the -wal there, and said only "unable
    # to open database file".
    written = tmp_path / "written"
    written.mkdir()
    with contextlib.closing(sqlite3.connect(written / "veil.db")) as raw:
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute("PRAGMA wal_autocheckpoint = 0")
        with raw:
            raw.execute("CREATE TABLE t (x)")
            raw.execute("INSERT INTO t VALUES (1)")
        data = tmp_path / "data"
        data.mkdir()
        for name in ("veil.db", "veil.db-wal"):  # as the disk holds them: no -shm
            (data / name).write_bytes((written / name).read_bytes())
    target = tmp_path / "copy" / "backup.db"
    target.parent.mkdir()
    result = await asyncio.to_thread(backup_read_only, data, target)
    if result is None:
        pytest.skip("needs unshare (util-linux)")
    if result.returncode == 97 or "unshare:" in result.stderr:
        pytest.skip("needs a mount namespace of its own (root, or CAP_SYS_ADMIN)")
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"veil: backup of {data / 'veil.db'} failed: ")
    assert f"{data / 'veil.db-wal'}" in line
    assert "without its -shm" in line
    assert "writable disk" in line
    assert not target.exists()


# The disk read-only here, but not for a bot writing the same folder through another mount:
# the database was read as immutable, as it stood, and a write meanwhile could make the copy
# inconsistent, said nothing. Here the write comes through a writable mount of the same folder
# as the copy opens the database.
async def test_a_write_through_another_mount_during_a_read_only_backup_is_told(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    await store.close()
    rw = tmp_path / "rw"
    rw.mkdir()
    target = tmp_path / "copy" / "backup.db"
    target.parent.mkdir()

    def run() -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(  # noqa: S603 -- unshare, this interpreter, this project
                ["unshare", "--mount", "sh", "-c", WRITTEN_BESIDE],  # noqa: S607
                capture_output=True,
                text=True,
                cwd=REPO,
                env={
                    **child_environment(),
                    "DATA": str(data),
                    "RW": str(rw),
                    "TARGET": str(target),
                    "PYTHON": sys.executable,
                    "WRAPPER": write_beside("backup", str(target)),
                    "VEIL_BOT_TOKEN": TOKEN,
                    "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32),
                    "VEIL_DATA_DIR": str(data),
                },
                timeout=60,
                check=False,
            )
        except FileNotFoundError:
            return None

    result = await asyncio.to_thread(run)
    if result is None:
        pytest.skip("needs unshare (util-linux)")
    if result.returncode == 97 or "unshare:" in result.stderr:
        pytest.skip("needs a mount namespace of its own (root, or CAP_SYS_ADMIN)")
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"veil: backup of {data / 'veil.db'} failed: ")
    assert "changed while it was read" in line
    assert "another mount" in line
    assert not target.exists()
