"""The container's ``keys``: a signing key and its ``.pub`` out of step after a power cut.

``ensure_signing_key`` writes the key (``python -m PART keygen``), then its verify key beside it
as ``<name>.pub``. Killed between the two (a power cut, the one-shot container killed), the key
stayed without its ``.pub``, and every later ``keys`` refused to go on ("remove both or add
it"), where the verify key is plain to derive from the key. The reverse (a ``.pub`` whose key is
gone) made a second key silently and rewrote the ``.pub`` and the settings that pin it: every
side that pinned the old one stopped trusting the new one, with no word why. Now the first is
repaired (the ``.pub`` derived from the key, said in one line) and the second refused in one
line that names both files, and nothing is changed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from gateway.keys import read_operator_key
from sealed.keyfile import CLIENT_KEY_HEADER, read_key_file, verify_key_text
from tests.harness import REPO, child_environment, run_python

if TYPE_CHECKING:
    from pathlib import Path


def folders(tmp_path: Path) -> dict[str, Path]:
    made = {name: tmp_path / name for name in ("gateway", "bot", "model")}
    for folder in made.values():
        folder.mkdir(exist_ok=True)
    return made


def keys(made: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    args = [f"--{name}={folder}" for name, folder in made.items()]
    return run_python("-m", "common.container", "keys", *args, env={"VEIL_ENV_DIRS": ""})


def killed_before_the_pub(made: dict[str, Path], pub: str) -> None:
    """Run ``keys``, SIGKILLed as it syncs ``pub``'s bytes: its key is written, its .pub is not."""
    process = subprocess.Popen(  # noqa: S603 -- this interpreter, this project's own code
        [
            sys.executable,
            "-m",
            "tests.syncwatch",
            "common.container",
            "keys",
            *(f"--{name}={folder}" for name, folder in made.items()),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**child_environment(), "SYNCWATCH_PAUSE": f".{pub}.tmp", "VEIL_ENV_DIRS": ""},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        while line and not line.startswith("syncwatch: paused at "):
            line = process.stderr.readline()  # the entry point's own lines before
        assert line.startswith("syncwatch: paused at "), line
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.parametrize(
    ("key", "pub"), [("operator.key", "operator.pub"), ("client.key", "client.pub")]
)
def test_a_key_left_without_its_pub_gets_it_back_from_the_key(
    tmp_path: Path, key: str, pub: str
) -> None:
    made = folders(tmp_path)
    folder = made["gateway"] if key == "operator.key" else made["bot"]
    killed_before_the_pub(made, pub)
    written = (folder / key).read_bytes()
    assert not (folder / pub).exists()

    again = keys(made)

    assert again.returncode == 0, again.stderr
    assert f"veil: {folder / pub} was missing: made again from {folder / key}" in again.stderr
    assert (folder / key).read_bytes() == written  # the same key, no second one
    if key == "operator.key":
        verify = verify_key_text(read_operator_key(folder / key))
        assert (made["bot"] / "VEIL_OPERATOR_KEYS").read_text() == verify + "\n"
    else:
        verify = verify_key_text(read_key_file(folder / key, CLIENT_KEY_HEADER))
        assert (made["gateway"] / "VEIL_CLIENT_KEYS").read_text() == f"bot:{verify}\n"
    assert (folder / pub).read_text() == verify + "\n"
    assert (folder / pub).stat().st_mode & 0o077 == 0


def test_a_pub_whose_key_is_gone_is_refused_and_no_second_key_is_made(tmp_path: Path) -> None:
    made = folders(tmp_path)
    first = keys(made)
    assert first.returncode == 0, first.stderr
    pinned = (made["bot"] / "VEIL_OPERATOR_KEYS").read_text()
    public = (made["gateway"] / "operator.pub").read_text()
    (made["gateway"] / "operator.key").unlink()

    again = keys(made)

    key, pub = made["gateway"] / "operator.key", made["gateway"] / "operator.pub"
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        (
            f"veil: {pub} exists but {key} does not: the operator key it verifies is gone; put"
            f" {key} back from its backup, or remove {pub} to make a new operator key (and pin"
            " its verify key again wherever the old one was pinned)"
        )
    ]
    assert not key.exists()
    assert pub.read_text() == public
    assert (made["bot"] / "VEIL_OPERATOR_KEYS").read_text() == pinned


def test_a_key_without_its_pub_that_cannot_be_read_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    # The .pub is derived only from a key the part itself would take: one others may read is
    # refused as the part refuses it, and no .pub is written for it.
    made = folders(tmp_path)
    first = keys(made)
    assert first.returncode == 0, first.stderr
    key, pub = made["bot"] / "client.key", made["bot"] / "client.pub"
    pub.unlink()
    key.chmod(0o644)

    again = keys(made)

    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        (
            f"veil: {pub} is missing and cannot be made again from {key}: key file {key} has"
            " mode 0644, so group or others may read it; it must be mode 0600: run chmod 600 on it"
        )
    ]
    assert not pub.exists()
