"""The bot's client key: ``python -m bot keygen`` makes it; the bot will not start without it."""

from __future__ import annotations

import stat
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from sealed.encoding import b64d, b64e
from sealed.keyfile import CLIENT_KEY_HEADER, read_key_file, verify_key_text
from tests.botstack import TOKEN
from tests.harness import REPO, child_environment, install_client_key, run_python

if TYPE_CHECKING:
    from pathlib import Path

OPERATOR_KEYS = b64e(b"\x01" * 32)


def run_bot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "bot", *args, env=env, timeout=30)


def test_keygen_writes_a_private_key_file_and_prints_its_verify_key(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "client.key"
    made = run_bot("keygen", "--out", str(key_file))
    assert made.returncode == 0, made.stderr
    (printed,) = made.stdout.strip().splitlines()
    assert len(b64d(printed)) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith(f"{CLIENT_KEY_HEADER} ")
    key = read_key_file(key_file, CLIENT_KEY_HEADER)
    assert verify_key_text(key) == printed
    assert printed not in key_file.read_text()  # the file holds the private key, not this


@pytest.mark.parametrize(
    ("part", "rest"),
    [("bot", ("aiogram", "bot.settings")), ("gateway", ("aiohttp", "gateway.server"))],
)
def test_a_keygen_imports_none_of_the_rest_of_its_part(
    tmp_path: Path, part: str, rest: tuple[str, ...]
) -> None:
    # A keygen needs the key file's module alone; importing the whole bot (aiogram, its
    # settings) or gateway first made each one cost ~0.8 s of CPU for ~0.15 s of work.
    made = run_python("-X", "importtime", "-m", part, "keygen", "--out", str(tmp_path / "k"))
    assert made.returncode == 0, made.stderr
    imported = {line.rpartition("|")[2].strip() for line in made.stderr.splitlines()}
    assert "sealed.keyfile" in imported
    assert not imported & set(rest)


def test_keygen_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    key_file = tmp_path / "client.key"
    assert run_bot("keygen", "--out", str(key_file)).returncode == 0
    before = key_file.read_bytes()
    again = run_bot("keygen", "--out", str(key_file))
    assert again.returncode == 1
    assert again.stdout == ""
    (line,) = again.stderr.strip().splitlines()
    assert "already exists" in line
    assert key_file.read_bytes() == before


@pytest.mark.parametrize("part", ["bot", "gateway"])
def test_keygen_where_no_folder_can_be_made_is_one_line(tmp_path: Path, part: str) -> None:
    # Its folder could not be made (a file in the way): it was a NotADirectoryError traceback.
    blocker = tmp_path / "keys"
    blocker.write_text("a file where the folder should be")
    key_file = blocker / "sub" / "some.key"
    made = run_python("-m", part, "keygen", "--out", str(key_file), timeout=30)
    assert made.returncode == 1
    assert made.stdout == ""
    assert made.stderr.strip().splitlines() == [
        f"veil: cannot create key file {key_file}: Not a directory"
    ]


def test_the_bot_refuses_to_start_without_a_client_key(tmp_path: Path) -> None:
    env = {"VEIL_BOT_TOKEN": TOKEN, "VEIL_OPERATOR_KEYS": OPERATOR_KEYS}
    missing = run_bot(env={**env, "VEIL_DATA_DIR": str(tmp_path)})
    assert missing.returncode == 2
    (line,) = missing.stderr.strip().splitlines()
    assert line.startswith("veil: setting VEIL_CLIENT_KEY_FILE:")
    assert str(tmp_path / "client.key") in line  # the default path, under VEIL_DATA_DIR
    assert "python -m bot keygen" in line
    assert not (tmp_path / "veil.db").exists()  # nothing was started


def test_the_bot_refuses_a_client_key_others_may_read(tmp_path: Path) -> None:
    key_file = install_client_key(tmp_path)
    key_file.chmod(0o644)
    env = {"VEIL_BOT_TOKEN": TOKEN, "VEIL_OPERATOR_KEYS": OPERATOR_KEYS}
    refused = run_bot(env={**env, "VEIL_CLIENT_KEY_FILE": str(key_file)})
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "VEIL_CLIENT_KEY_FILE" in line
    assert "0600" in line


@pytest.mark.parametrize("part", ["bot", "gateway"])
def test_keygen_on_a_full_disk_says_so_and_leaves_no_empty_key_file(
    tmp_path: Path, part: str
) -> None:
    # A file size limit (as a full disk): the key file was made, nothing written into it, and
    # the command ended in a traceback. The empty file stayed: the next keygen refused to
    # overwrite it, and the bot or gateway called it malformed.
    key_file = tmp_path / "operator.key"
    command = f'ulimit -f 0; exec "{sys.executable}" -m {part} keygen --out "{key_file}"'
    made = subprocess.run(  # noqa: S603 -- a shell of our own for the limit
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=child_environment(measured=False),  # coverage's data file would meet the limit
        timeout=30,
        check=False,
    )
    assert made.returncode == 1
    assert made.stderr.strip() == f"veil: cannot write key file {key_file}: File too large"
    assert not key_file.exists()
