"""``keygen`` (the bot's and the gateway's) stopped or killed while it writes leaves no key behind.

A keygen killed (SIGKILL, a power cut) between writing its draft ``.<name>.<pid>.<hex>`` and
removing it left the draft for good: a hidden private key (a second name of the key file, kept
in every backup of the folder after the key itself is removed). SIGTERM did the same, and
Ctrl-C ended in a traceback. Now the next keygen removes such a draft and says so, and a
stopped keygen leaves nothing (its verify key was never printed, so nothing could pin the key),
says so in one line and exits 128 + the signal. Each stop is made at the same point every time:
``tests.syncwatch`` holds the keygen at its draft's ``fsync``.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from sealed.keyfile import CLIENT_KEY_HEADER, OPERATOR_KEY_HEADER, read_key_file, verify_key_text
from tests.harness import REPO, child_environment, run_python

if TYPE_CHECKING:
    from pathlib import Path

HEADERS = {"bot": CLIENT_KEY_HEADER, "gateway": OPERATOR_KEY_HEADER}


def keygen_held_at_its_draft(part: str, key_file: Path) -> subprocess.Popen[str]:
    """``python -m PART keygen --out KEY_FILE``, paused at its draft's fsync (said on stderr)."""
    process = subprocess.Popen(  # noqa: S603 -- this interpreter, this project's own code
        [sys.executable, "-m", "tests.syncwatch", part, "keygen", "--out", str(key_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**child_environment(), "SYNCWATCH_PAUSE": f"/.{key_file.name}."},
    )
    assert process.stderr is not None
    paused = process.stderr.readline()
    assert paused.startswith(f"syncwatch: paused at {key_file.parent}/.{key_file.name}."), paused
    return process


@pytest.mark.parametrize("part", ["bot", "gateway"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_keygen_stopped_while_it_writes_leaves_nothing_and_says_so(
    tmp_path: Path, part: str, signum: signal.Signals
) -> None:
    key_file = tmp_path / "keys" / "the.key"
    process = keygen_held_at_its_draft(part, key_file)
    try:
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert err.splitlines() == [
        f"veil: keygen stopped by {signum.name}: no key was written; run it again"
    ]
    assert process.returncode == 128 + signum
    assert out == ""  # no verify key printed ...
    assert list(key_file.parent.iterdir()) == []  # ... and no key, nor its draft
    again = run_python("-m", part, "keygen", "--out", str(key_file))
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("part", ["bot", "gateway"])
def test_the_draft_a_killed_keygen_left_is_removed_by_the_next_and_said(
    tmp_path: Path, part: str
) -> None:
    key_file = tmp_path / "keys" / "the.key"
    process = keygen_held_at_its_draft(part, key_file)
    process.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    process.communicate(timeout=60)
    (draft,) = key_file.parent.iterdir()
    assert draft.read_text().startswith(f"{HEADERS[part]} ")  # a private key, hidden

    made = run_python("-m", part, "keygen", "--out", str(key_file))

    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines() == [f"veil: removed {draft}, a key draft a stopped keygen left"]
    assert [p.name for p in key_file.parent.iterdir()] == ["the.key"]
    assert key_file.stat().st_nlink == 1  # no other name holds it
    (printed,) = made.stdout.splitlines()
    assert verify_key_text(read_key_file(key_file, HEADERS[part])) == printed


@pytest.mark.parametrize("part", ["bot", "gateway"])
def test_a_draft_another_keygen_still_writes_is_left_to_it(tmp_path: Path, part: str) -> None:
    key_file = tmp_path / "keys" / "the.key"
    first = keygen_held_at_its_draft(part, key_file)  # its draft written, locked, not linked
    try:
        (draft,) = key_file.parent.iterdir()
        second = run_python("-m", part, "keygen", "--out", str(tmp_path / "keys" / "other.key"))
        assert second.returncode == 0, second.stderr
        beside = run_python("-m", part, "keygen", "--out", str(key_file))
        assert draft.exists()  # not taken for a killed keygen's
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    finally:
        first.kill()
        first.wait()
    # The one beside made the key (the draft's writer was stopped before it linked its own).
    assert beside.returncode == 0, beside.stderr
    assert "removed" not in beside.stderr
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["other.key", "the.key"]


@pytest.mark.parametrize("part", ["bot", "gateway"])
def test_a_folder_keygen_makes_is_its_owners_alone(tmp_path: Path, part: str) -> None:
    # It was made 0755 (others could list it), where the master key's folder is made 0700.
    key_file = tmp_path / "keys" / "the.key"
    made = run_python("-m", part, "keygen", "--out", str(key_file))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
