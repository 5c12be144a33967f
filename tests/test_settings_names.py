"""A misspelt ``VEIL_*`` name stops a part in one line naming it and the setting it nearly is.

Without this, a typo (``VEIL_GATEWAY`` for ``VEIL_GATEWAYS``) was silently ignored and the part
started on the default. The run command hands every part the whole environment, so no name any
part of Veil reads may be taken for a misspelling of another part's setting.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from bot.settings import BotSettings
from common.settings import SettingsError, load_settings, near_misses, setting_names
from gateway.settings import GatewaySettings
from tests.harness import REPO, run_python

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic_settings import BaseSettings

# Files that name the settings the parts are given: the run command, the container entry point,
# compose, the scripts and the docs.
SOURCES = [
    *REPO.glob("launcher/*.py"),
    REPO / "common/container.py",
    REPO / "docker-compose.yml",
    REPO / "Dockerfile",
    REPO / "scripts/run",
    REPO / "scripts/check",
    REPO / "README.md",
    *REPO.glob("docs/*.md"),
]


# The refusal's line as the docs show it, a misspelling for an example: no name a part reads.
EXAMPLE = re.compile(r"setting VEIL_[A-Z0-9_]+ is unknown")


def every_veil_name() -> set[str]:
    names = set(setting_names(BotSettings)) | set(setting_names(GatewaySettings))
    for source in SOURCES:
        text = EXAMPLE.sub("", source.read_text(encoding="utf-8"))
        names |= set(re.findall(r"VEIL_[A-Z0-9_]*[A-Z0-9]", text))
    return names


@pytest.mark.parametrize("cls", [BotSettings, GatewaySettings])
def test_no_name_veil_reads_is_taken_for_a_misspelling(cls: type[BotSettings]) -> None:
    assert near_misses(cls, sorted(every_veil_name())) == []


@pytest.mark.parametrize(
    ("cls", "given", "meant"),
    [
        (BotSettings, "VEIL_GATEWAY", "VEIL_GATEWAYS"),
        (BotSettings, "VEIL_BOT_TOKN", "VEIL_BOT_TOKEN"),
        (BotSettings, "VEIL_ADMIN", "VEIL_ADMINS"),
        (GatewaySettings, "VEIL_CLIENT_KEY", "VEIL_CLIENT_KEYS"),
        (GatewaySettings, "VEIL_VLLM_API_KY", "VEIL_VLLM_API_KEY"),
    ],
)
def test_a_misspelt_setting_is_named_with_the_one_it_nearly_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[BotSettings], given: str, meant: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    monkeypatch.setenv(given, "1")
    with pytest.raises(SettingsError) as refused:
        load_settings(cls)
    assert refused.value.code == f"veil: setting {given} is unknown: did you mean {meant}?"


def test_a_misspelling_in_the_env_file_is_named_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("VEIL_OPERATOR_KEY_FLE=operator.key\n", encoding="utf-8")
    with pytest.raises(SettingsError) as refused:
        load_settings(GatewaySettings)
    assert refused.value.code == (
        "veil: setting VEIL_OPERATOR_KEY_FLE is unknown: did you mean VEIL_OPERATOR_KEY_FILE?"
    )


def test_python_m_bot_with_a_misspelt_setting_stops_in_one_line(tmp_path: Path) -> None:
    result = run_python(
        "-m",
        "bot",
        env={
            "VEIL_BOT_TOKEN": "123456:abc",
            "VEIL_OPERATOR_KEYS": "K5jTTIoCUTGWfQmddrf4rowwJWoYQy3nQy1cI8uPDWQ",
            "VEIL_GATEWAY": "http://gpu-host:8600",
            "VEIL_DATA_DIR": str(tmp_path),
        },
    )
    assert (result.returncode, result.stderr) == (
        2,
        "veil: setting VEIL_GATEWAY is unknown: did you mean VEIL_GATEWAYS?\n",
    )
    assert not any(tmp_path.iterdir())  # nothing made, nothing started


def seconds_settings(cls: type[BaseSettings]) -> list[str]:
    return [name for name, field in cls.model_fields.items() if field.annotation is float]


@pytest.mark.parametrize(
    ("cls", "field"),
    [(cls, field) for cls in (BotSettings, GatewaySettings) for field in seconds_settings(cls)],
)
def test_no_seconds_setting_takes_infinity_for_never(
    monkeypatch: pytest.MonkeyPatch, cls: type[BaseSettings], field: str
) -> None:
    # pydantic reads "inf" as a float; a timeout of inf would never fire, a lifetime of inf
    # never end. Every seconds setting has an upper bound that refuses it.
    monkeypatch.setenv(f"VEIL_{field.upper()}", "inf")
    with pytest.raises(ValidationError) as refused:
        cls(_env_file=None)
    assert (field,) in [error["loc"] for error in refused.value.errors()]


@pytest.mark.parametrize("field", ["key_rotation_seconds", "key_grace_seconds", "max_clock_skew"])
def test_no_whole_seconds_setting_of_the_gateway_takes_never(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    # The whole-seconds settings were unbounded: a rotation or grace past JSON's exact integers
    # (a "never rotate" of 2**53) started a gateway whose bundles every client refuses (its
    # not_after out of range), and such a clock skew kept every request id for ever and let
    # any timestamp through. Each has an upper bound that refuses it, as the float ones do.
    monkeypatch.setenv(f"VEIL_{field.upper()}", str(2**53))
    with pytest.raises(ValidationError) as refused:
        GatewaySettings(_env_file=None)
    assert (field,) in [error["loc"] for error in refused.value.errors()]


@pytest.mark.parametrize("name", ["m" * 257, "bad\tname"], ids=["too-long", "tab"])
def test_a_fixed_model_no_bundle_may_carry_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A bundle listing it is malformed to every client, so all the gateway's models would be
    # unusable: VEIL_GATEWAY_MODELS is refused instead (the model server's own list is
    # filtered, tests/test_gateway_health.py).
    monkeypatch.setenv("VEIL_GATEWAY_MODELS", f"veil-test,{name}")
    with pytest.raises(ValidationError) as refused:
        GatewaySettings(_env_file=None)
    assert ("gateway_models",) in [error["loc"] for error in refused.value.errors()]
