"""``audit`` and ``reconcile`` on a data folder that holds no database: refused, nothing made.

On a mistyped ``VEIL_DATA_DIR`` both made a new master key and an empty ``veil.db`` there; the
audit then reported every charge proven (of none, exit 0) and ``reconcile --fix`` would have
booked Telegram's payments into that empty ledger, apart from the bot's own. Now they refuse
in one line naming the setting and the path, as ``backup`` does, and make nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.harness import run_python

if TYPE_CHECKING:
    from pathlib import Path


def command_settings(data: Path) -> dict[str, str]:
    """The bot's settings on ``data``; a Telegram on port 9, which nothing should reach."""
    return {
        "VEIL_BOT_TOKEN": TOKEN,
        "VEIL_TELEGRAM_API": "http://127.0.0.1:9",
        "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
        "VEIL_DATA_DIR": str(data),
    }


@pytest.mark.parametrize("command", [["audit"], ["reconcile"], ["reconcile", "--fix"]])
@pytest.mark.parametrize("folder", ["absent", "empty"])
def test_a_command_on_a_data_folder_without_a_database_is_refused_and_makes_nothing(
    tmp_path: Path, command: list[str], folder: str
) -> None:
    data = tmp_path / "mistyped"
    if folder == "empty":
        data.mkdir()

    result = run_python("-m", "bot", *command, env=command_settings(data))

    assert result.stderr.splitlines() == [
        f"veil: setting VEIL_DATA_DIR: no database at {data}/veil.db"
    ]
    assert result.returncode == 2  # not 0 ("every charge proves"), nor 1 (differences)
    assert result.stdout == ""
    if folder == "empty":
        assert list(data.iterdir()) == []  # no master key, no veil.db, no journal
    else:
        assert not data.exists()
