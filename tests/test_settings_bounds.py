"""A number setting outside what any deployment means stops its part in one line naming it.

A token count or an amount of credit of forty digits, or ``nan`` for a number of seconds, was
taken: the first is far past what a hold, a ledger row (SQLite's integers) or a sealed request
(JSON's exact integers) can carry, the second compared false with every bound it was checked
against ("less than or equal to 300", said of ``nan``).
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from bot.settings import BotSettings
from common.settings import MOST_TOKENS, MOST_UNITS, SettingsError, load_settings
from gateway.settings import GatewaySettings
from tests.harness import child_environment

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic_settings import BaseSettings

FORTY_DIGITS = "9" * 40
REQUIRED: dict[type[BaseSettings], dict[str, str]] = {
    BotSettings: {"VEIL_BOT_TOKEN": "123:" + "A" * 35, "VEIL_OPERATOR_KEYS": "A" * 43},
    GatewaySettings: {"VEIL_OPERATOR_KEY_FILE": "operator.key", "VEIL_CLIENT_KEYS": ""},
}


def _refusal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[BaseSettings], name: str, value: str
) -> str:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    for required, given in REQUIRED[cls].items():
        monkeypatch.setenv(required, given)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        load_settings(cls)
    return str(refused.value)


@pytest.mark.parametrize(
    ("cls", "name", "most"),
    [
        (BotSettings, "VEIL_CONTEXT_TOKENS", MOST_TOKENS),
        (BotSettings, "VEIL_MAX_ANSWER_TOKENS", MOST_TOKENS),
        (BotSettings, "VEIL_MIN_ANSWER_TOKENS", MOST_TOKENS),
        (BotSettings, "VEIL_FREE_TOKENS_PER_DAY", MOST_TOKENS),
        (BotSettings, "VEIL_PLAN_UNITS", MOST_UNITS),
        (BotSettings, "VEIL_TON_DUST", MOST_UNITS),
        (BotSettings, "VEIL_TON_USDT_DUST", MOST_UNITS),
        (GatewaySettings, "VEIL_MAX_COMPLETION_TOKENS", MOST_TOKENS),
        (GatewaySettings, "VEIL_MAX_STREAMS", 100_000),
        (GatewaySettings, "VEIL_MAX_CONNECTIONS", 1_000_000),
    ],
)
def test_a_number_past_any_deployment_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cls: type[BaseSettings],
    name: str,
    most: int,
) -> None:
    line = _refusal(monkeypatch, tmp_path, cls, name, FORTY_DIGITS)
    assert line == f"veil: setting {name} is invalid: Input should be less than or equal to {most}"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (BotSettings, "VEIL_GATEWAY_WAIT"),
        (BotSettings, "VEIL_FINAL_RETRY_WAIT"),
        (GatewaySettings, "VEIL_STREAM_TICK"),
    ],
)
def test_a_number_of_seconds_that_is_no_number_is_refused_as_such(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[BaseSettings], name: str, value: str
) -> None:
    line = _refusal(monkeypatch, tmp_path, cls, name, value)
    assert line == f"veil: setting {name} is invalid: Input should be a finite number"


# The wait before a final message Telegram did not take goes again (doubled each try): 0 would
# send its five tries in one breath, and past a minute a message would wait a quarter of an hour.
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "Input should be greater than 0"),
        ("-1", "Input should be greater than 0"),
        ("61", "Input should be less than or equal to 60"),
    ],
)
def test_a_final_retry_wait_outside_its_bounds_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, why: str
) -> None:
    line = _refusal(monkeypatch, tmp_path, BotSettings, "VEIL_FINAL_RETRY_WAIT", value)
    assert line == f"veil: setting VEIL_FINAL_RETRY_WAIT is invalid: {why}"


def test_a_final_retry_wait_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    for required, given in REQUIRED[BotSettings].items():
        monkeypatch.setenv(required, given)
    assert load_settings(BotSettings).final_retry_wait == 1.0  # 1, 2, 4, 8 s between tries
    monkeypatch.setenv("VEIL_FINAL_RETRY_WAIT", "0.05")
    assert load_settings(BotSettings).final_retry_wait == 0.05


# An empty file or folder setting (a compose file's ``VEIL_DATA_DIR: ${VEIL_DATA_DIR}`` with the
# variable unset) was taken as the current folder: the bot made its database and a new master
# key wherever it ran, outside the data volume, and said nothing.
@pytest.mark.parametrize("value", ["", " "])
@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (BotSettings, "VEIL_DATA_DIR"),
        (BotSettings, "VEIL_MASTER_KEY_FILE"),
        (BotSettings, "VEIL_CLIENT_KEY_FILE"),
        (GatewaySettings, "VEIL_OPERATOR_KEY_FILE"),
    ],
)
def test_an_empty_file_or_folder_setting_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[BaseSettings], name: str, value: str
) -> None:
    line = _refusal(monkeypatch, tmp_path, cls, name, value)
    assert line.startswith(f"veil: setting {name} is invalid: ")
    assert line.endswith("it is empty; name a folder or file (empty would be the current folder)")


# A path that starts with ``~`` in a ``.env`` or compose file (no shell expands it there) was a
# folder named ``~`` in the current folder: the same database and master key made outside the
# data volume.
@pytest.mark.parametrize("value", ["~", "~/veil-data", " ~root/veil"])
@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (BotSettings, "VEIL_DATA_DIR"),
        (BotSettings, "VEIL_MASTER_KEY_FILE"),
        (BotSettings, "VEIL_CLIENT_KEY_FILE"),
        (GatewaySettings, "VEIL_OPERATOR_KEY_FILE"),
    ],
)
def test_a_file_or_folder_setting_under_an_unexpanded_tilde_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[BaseSettings], name: str, value: str
) -> None:
    line = _refusal(monkeypatch, tmp_path, cls, name, value)
    assert line.startswith(f"veil: setting {name} is invalid: ")
    assert line.endswith(
        "it starts with ~, which only a shell expands (here it would be a "
        "folder named ~ in the current folder); give the full path"
    )


@pytest.mark.parametrize("value", ["", "~/veil-data"])
def test_a_refused_data_folder_setting_makes_nothing_where_the_bot_runs(
    tmp_path: Path, value: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "audit"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**child_environment(), **REQUIRED[BotSettings], "VEIL_DATA_DIR": value},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("veil: setting VEIL_DATA_DIR is invalid: ")
    assert sorted(path.name for path in tmp_path.iterdir()) == []


# ``VEIL_LOG_LEVEL=debug`` was refused as no level at all: the level is taken in any case.
@pytest.mark.parametrize("value", ["debug", "Warning", " error "])
@pytest.mark.parametrize("cls", [BotSettings, GatewaySettings])
def test_a_log_level_is_taken_in_any_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[BaseSettings], value: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    for required, given in REQUIRED[cls].items():
        monkeypatch.setenv(required, given)
    monkeypatch.setenv("VEIL_LOG_LEVEL", value)
    settings = load_settings(cls)
    assert getattr(settings, "log_level") == value.strip().upper()  # noqa: B009 -- either class


@pytest.mark.parametrize("cls", [BotSettings, GatewaySettings])
def test_an_unknown_log_level_is_still_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[BaseSettings]
) -> None:
    line = _refusal(monkeypatch, tmp_path, cls, "VEIL_LOG_LEVEL", "verbose")
    assert line == (
        "veil: setting VEIL_LOG_LEVEL is invalid:"
        " Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"
    )
