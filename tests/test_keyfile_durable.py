"""Keys and backups reach the disk before their names do, and their names after.

A power cut after a key file's name was made but before its bytes were on the disk left an
empty or partial key file: every later start refused it as malformed (or, for the master key,
a new key was made that opens none of the history). Each key, the model server's API key and
each backup is now written whole under a name of its own and synced (``fsync``), then linked
or renamed into place, then its folder synced. A power cut cannot be made here: each command
runs in a process of its own under ``tests.syncwatch``, which records its syncs and links in
order, and the test reads that order.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from gateway.keys import read_operator_key
from models import MasterKey, Store
from sealed.encoding import b64e
from sealed.keyfile import CLIENT_KEY_HEADER, read_key_file
from tests.botstack import TOKEN
from tests.harness import install_client_key, run_python

if TYPE_CHECKING:
    from pathlib import Path

BOT_SETTINGS = {"VEIL_BOT_TOKEN": TOKEN, "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32)}


def watched(log: Path, *args: str, env: dict[str, str] | None = None) -> list[list[str]]:
    """Run ``python -m ARGS…`` under ``tests.syncwatch``; its syncs and links, in order."""
    done = run_python(
        "-m", "tests.syncwatch", *args, env={"SYNCWATCH_LOG": str(log), **(env or {})}
    )
    assert done.returncode == 0, done.stderr
    return [line.split(" ") for line in log.read_text().splitlines()]


def assert_durable(events: list[list[str]], name: Path) -> None:
    """The file that took ``name`` was synced before, and ``name``'s folder after."""
    (took,) = [i for i, event in enumerate(events) if event[0] == "link" and event[2] == str(name)]
    source = events[took][1]
    assert ["fsync", source] in events[:took], f"{name}'s bytes were not synced first: {events}"
    assert ["fsync", str(name.parent)] in events[took:], f"{name}'s folder not synced: {events}"


@pytest.mark.parametrize("part", ["bot", "gateway"])
def test_keygen_syncs_the_key_before_it_takes_its_name_and_the_folder_after(
    tmp_path: Path, part: str
) -> None:
    key_file = tmp_path / "keys" / "the.key"
    events = watched(tmp_path / "log", part, "keygen", "--out", str(key_file))
    assert_durable(events, key_file)
    if part == "bot":
        read_key_file(key_file, CLIENT_KEY_HEADER)
    else:
        read_operator_key(key_file)
    assert [p.name for p in key_file.parent.iterdir()] == ["the.key"]  # no draft left beside


def test_the_master_key_is_synced_before_and_its_folder_after(tmp_path: Path) -> None:
    # The bot's first start makes the key (audit and reconcile make none): it makes it, then
    # asks a Telegram nobody answers (port 9) and ends there, exit 1.
    data = tmp_path / "data"
    install_client_key(data)
    log = tmp_path / "log"
    env = {
        **BOT_SETTINGS,
        "VEIL_DATA_DIR": str(data),
        "VEIL_TELEGRAM_API": "http://127.0.0.1:9",
        "VEIL_BOT_METRICS_PORT": "0",
        "SYNCWATCH_LOG": str(log),
    }
    started = run_python("-m", "tests.syncwatch", "bot", env=env)
    assert "cannot reach Telegram" in started.stderr, started.stderr
    events = [line.split(" ") for line in log.read_text().splitlines()]
    assert_durable(events, data / "master.key")


def test_a_backup_is_synced_before_it_takes_its_name_and_its_folder_after(tmp_path: Path) -> None:
    data = tmp_path / "data"

    async def make() -> None:
        store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
        await store.close()

    asyncio.run(make())
    target = tmp_path / "backups" / "veil.db"
    target.parent.mkdir()
    env = {**BOT_SETTINGS, "VEIL_DATA_DIR": str(data)}
    events = watched(tmp_path / "log", "bot", "backup", str(target), env=env)
    assert_durable(events, target)


def test_the_container_syncs_the_model_servers_api_key_and_the_pinned_keys(
    tmp_path: Path,
) -> None:
    folders = {name: tmp_path / name for name in ("gateway", "bot", "model")}
    for folder in folders.values():
        folder.mkdir()
    events = watched(
        tmp_path / "log",
        "common.container",
        "keys",
        *(f"--{name}={folder}" for name, folder in folders.items()),
    )
    for written in (
        folders["model"] / "api-key",
        folders["gateway"] / "VEIL_CLIENT_KEYS",
        folders["bot"] / "VEIL_OPERATOR_KEYS",
        folders["bot"] / "client.pub",
    ):
        assert_durable(events, written)
