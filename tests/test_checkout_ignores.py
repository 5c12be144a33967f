"""What the docs have an operator write into the checkout stays out of git.

docs/operations.md has the bot token written to ``secrets/bot_token`` and backups made as
``backups/veil-<date>.db`` and copied out of compose as ``./veil-backup.db`` beside
``./master.key``: all in the checkout, where ``git add -A`` took them in (the token, the ledger
and, with the master key, every user's history) until ``.gitignore`` named them.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.harness import REPO

OPERATIONS = REPO / "docs" / "operations.md"
# Each path the docs write, as the docs write it, and a file it makes.
WRITTEN = {
    "> secrets/bot_token": "secrets/bot_token",
    "backup backups/veil-$(date +%F).db": "backups/veil-2026-12-01.db",
    "cp bot:/data/veil-backup.db.journal ./veil-backup.db.journal": "veil-backup.db.journal",
    "cp bot:/data/veil-backup.db ./veil-backup.db": "veil-backup.db",
    "./master.key": "master.key",
}


@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout"
)
def test_what_the_docs_write_into_the_checkout_is_ignored() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    for said, path in WRITTEN.items():
        assert said in text, f"docs/operations.md no longer writes {said!r}"
        ignored = subprocess.run(  # noqa: S603 -- git, with a path of this file's own
            ["git", "check-ignore", "--quiet", "--no-index", path],  # noqa: S607 -- git on PATH
            cwd=REPO,
            check=False,
        )
        assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"
