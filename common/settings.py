"""Reading settings: ``VEIL_*`` variables into a pydantic-settings class, or one clear line."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class SettingsError(SystemExit):
    """A bad or missing setting; carries the one line that names the variable."""


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Build ``cls`` from the environment, or stop with one line naming the bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = f"VEIL_{field.upper()}"
        if error["type"] == "missing":
            raise SettingsError(f"veil: setting {name} is required but not set") from None
        raise SettingsError(f"veil: setting {name} is invalid: {error['msg']}") from None
