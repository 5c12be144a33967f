"""What the docs have an operator write into the checkout stays out of git.

docs/operations.md has the bot token written to ``secrets/bot_token`` and backups made as
``backups/veil-<date>.db`` and copied out of compose as ``./veil-backup.db`` beside
``./master.key``, and keygen writes the operator's and the bot's signing keys where it is run
(``--out operator-2.key``): all in the checkout, where ``git add -A`` took them in (the token,
the ledger, the signing keys and, with the master key, every user's history) until
``.gitignore`` named them.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.harness import REPO

OPERATIONS = "operations.md"
DEPLOYMENT = "deployment.md"
# Each path the docs write, as the docs write it, and a file it makes.
WRITTEN = {
    (OPERATIONS, "> secrets/bot_token"): "secrets/bot_token",
    (OPERATIONS, "backup backups/veil-$(date +%F).db"): "backups/veil-2026-12-01.db",
    (
        OPERATIONS,
        "cp bot:/data/veil-backup.db.journal ./veil-backup.db.journal",
    ): "veil-backup.db.journal",
    (OPERATIONS, "cp bot:/data/veil-backup.db ./veil-backup.db"): "veil-backup.db",
    (OPERATIONS, "./master.key"): "master.key",
    # The signing keys keygen writes where it is run (a key rotation run in the checkout):
    # operator-2.key and client-2.key were not ignored, and `git add -A` took them in.
    (OPERATIONS, "gateway keygen --out operator-2.key"): "operator-2.key",
    (OPERATIONS, "bot keygen --out client-2.key"): "client-2.key",
    (DEPLOYMENT, "gateway keygen --out operator.key"): "operator.key",
}


@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout"
)
def test_what_the_docs_write_into_the_checkout_is_ignored() -> None:
    for (doc, said), path in WRITTEN.items():
        text = (REPO / "docs" / doc).read_text(encoding="utf-8")
        assert said in text, f"docs/{doc} no longer writes {said!r}"
        ignored = subprocess.run(  # noqa: S603 -- git, with a path of this file's own
            ["git", "check-ignore", "--quiet", "--no-index", path],  # noqa: S607 -- git on PATH
            cwd=REPO,
            check=False,
        )
        assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"
