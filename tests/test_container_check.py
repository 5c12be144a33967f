"""The compose entry point's check of the bot's settings is bounded.

``common.container`` runs the bot's own settings check in a child before it waits for the
playground; a child that never ended (a stalled disk under the image's Python) held the
container for ever, saying nothing. Now it is killed after ``SETTINGS_CHECK_SECONDS`` and
the start refused in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from common.container import ContainerError, bot_takes_settings
from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.harness import child_environment

if TYPE_CHECKING:
    from pathlib import Path


def test_a_settings_check_that_never_ends_is_killed_and_refused_in_one_line(
    tmp_path: Path,
) -> None:
    # A Python that hangs as it starts: its site module waits for ever.
    stuck = tmp_path / "stuck"
    stuck.mkdir()
    (stuck / "sitecustomize.py").write_text("import time\ntime.sleep(3600)\n")
    env = {**child_environment(measured=False), "VEIL_BOT_TOKEN": TOKEN, "PYTHONPATH": str(stuck)}

    with pytest.raises(ContainerError) as refused:
        bot_takes_settings(env, within=1.5)

    (line,) = str(refused.value).splitlines()
    assert line.startswith("the bot's settings check")
    assert "did not end within 1.5 s, so the bot was not started" in line


def test_a_settings_check_that_ends_says_whether_the_bot_takes_them(tmp_path: Path) -> None:
    env = {**child_environment(measured=False), "VEIL_DATA_DIR": str(tmp_path)}
    assert not bot_takes_settings(env)  # no token, no operator keys: refused
    assert bot_takes_settings(
        env | {"VEIL_BOT_TOKEN": TOKEN, "VEIL_OPERATOR_KEYS": b64e(b"\x01" * 32)}
    )
