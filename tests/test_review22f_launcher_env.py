"""review22f: the launcher's Veil settings in any case, as the parts would read them.

``launcher.chain.settings_named`` upper-cases each ``VEIL_*`` name for the launcher, which asks
for its settings by name. Two spellings of one setting with different values went by the order
of the environment (the first lower-case one, or the upper-case one where set), where a part
started by hand takes the later of them in whichever case: the launcher guessed, silently. And
Python upper-cases a dotless i (U+0131) or a long s (U+017F) to ASCII letters, so a
name with them, which no part reads as a setting, became the launcher's ``VEIL_BOT_TOKEN``.
"""

from __future__ import annotations

import pytest

from launcher.chain import main_async, settings_named
from launcher.console import LaunchError


@pytest.mark.parametrize(
    "environ",
    [
        {"veil_admins": "1", "Veil_Admins": "2"},
        {"Veil_Admins": "2", "veil_admins": "1"},
        {"VEIL_ADMINS": "1", "veil_admins": "2"},
        {"veil_admins": "2", "VEIL_ADMINS": "1"},
    ],
)
def test_one_setting_in_two_cases_with_two_values_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(LaunchError) as refused:
        settings_named(environ)
    said = str(refused.value)
    assert all(name in said for name in environ)
    assert "1" not in said.replace("VEIL_ADMINS", "")  # names, never the values
    assert "2" not in said.replace("VEIL_ADMINS", "")


def test_one_setting_in_two_cases_with_one_value_is_that_setting() -> None:
    named = settings_named({"veil_admins": "7", "VEIL_ADMINS": "7", "Veil_Admins": "7"})
    assert named == {"VEIL_ADMINS": "7"}


def test_names_python_upper_cases_into_ascii_are_left_as_they_are() -> None:
    environ = {"ve\u0131l_bot_token": "t", "VEIL_\u017fECRET": "s", "path": "/bin", "Lang": "C"}
    assert settings_named(environ) == environ


async def test_the_launcher_refuses_two_values_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("veil_bot_token", "123:secret-one")
    monkeypatch.setenv("VEIL_BOT_TOKEN", "123:secret-two")
    assert await main_async(verbose=False) == 1
    said = capsys.readouterr().err
    assert "veil_bot_token" in said
    assert "VEIL_BOT_TOKEN" in said
    assert "secret" not in said
    assert "starting" not in said
