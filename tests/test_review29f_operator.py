"""review29f: an operator's settings that did nothing and said nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from bot.settings import BotSettings
from common.settings import SettingsError, load_settings
from sealed.encoding import b64e
from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 4242


async def test_a_default_model_and_a_price_no_gateway_serves_are_told(tmp_path: Path) -> None:
    """``VEIL_DEFAULT_MODEL`` and a ``VEIL_PRICES`` model misspelt: warned once, by name.

    Before, users got the first served model and the misspelt model's price was never used
    (the served one billed at ``*``), and nothing in the log said so.
    """
    with capture_logs() as logs:
        async with running_stack(
            tmp_path,
            models=("veil-test",),
            default_model="veil-tset",
            prices="veil-tset=100/300,veil-test=1/2,*=20/60",
        ) as stack:
            for turn in (1, 2):
                stack.telegram.send_text(USER, f"question {turn}")
                await stack.final_messages(USER, count=turn)

    told = [entry for entry in logs if entry["event"].endswith("_unserved")]
    assert told == [
        {
            "event": "chat.default_model_unserved",
            "log_level": "warning",
            "model": "veil-tset",
            "served": ["veil-test"],
        },
        {
            "event": "chat.priced_model_unserved",
            "log_level": "warning",
            "models": ["veil-tset"],
            "served": ["veil-test"],
        },
    ]


async def test_settings_that_name_served_models_are_not_told(tmp_path: Path) -> None:
    """A default model and prices the gateways serve: no warning."""
    with capture_logs() as logs:
        async with running_stack(
            tmp_path,
            models=("veil-test",),
            default_model="veil-test",
            prices="veil-test=1/2,*=20/60",
        ) as stack:
            stack.telegram.send_text(USER, "question")
            await stack.final_messages(USER)

    assert [entry for entry in logs if entry["event"].endswith("_unserved")] == []


def _settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **given: str) -> None:
    """The bot's required settings, and ``given``, in the environment (no ``.env`` read)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VEIL_BOT_TOKEN", "123456:TOKEN")
    monkeypatch.setenv("VEIL_OPERATOR_KEYS", b64e(bytes(32)))
    for name, value in given.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("admins", "line"),
    [
        # ``isdigit`` took it; ``int`` then failed at start with a traceback
        ("12,³", "veil: setting VEIL_ADMINS is invalid: Telegram user ids, comma-separated"),
        # a group's id: taken, and that admin could never be one
        (
            "12, -1001234567890",
            (
                "veil: setting VEIL_ADMINS is invalid: -1001234567890 is a group's or channel's"
                " id; an admin is a user: their own id (a whole number above 0)"
            ),
        ),
        ("0", "veil: setting VEIL_ADMINS is invalid: Telegram user ids, comma-separated"),
    ],
)
def test_admins_that_name_no_user_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, admins: str, line: str
) -> None:
    """``VEIL_ADMINS`` holds users' ids: anything else stops start-up naming the setting."""
    _settings_env(monkeypatch, tmp_path, VEIL_ADMINS=admins)
    with pytest.raises(SettingsError) as refused:
        load_settings(BotSettings).admin_ids  # noqa: B018 -- what start-up reads
    assert refused.value.code == line


def test_admins_as_users_ids_are_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Users' ids, spaced as an operator types them, are the admins."""
    _settings_env(monkeypatch, tmp_path, VEIL_ADMINS=" 12, 345 ,")
    assert load_settings(BotSettings).admin_ids == frozenset({12, 345})
