"""Reading settings: ``VEIL_*`` variables into a pydantic-settings class, or one clear line."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from dotenv.parser import parse_stream
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

PREFIX = "VEIL_"
# How alike a name must be to one of the part's settings to be taken for a misspelling of it
# (difflib's ratio): a letter or two in a name this long. No name another part of Veil reads
# is this close to one of this part's (tests/test_settings_names.py checks), so the run command,
# which hands each part its own settings and the names this close to them
# (``launcher.environment``), never trips it.
NEAR_MISS = 0.92
# The most a token count (a window, an answer, a day's free tokens) or an amount of credit or
# coin (µ★ units, nanograms, USDT's millionths) setting may be: far above any real model or
# price, and far below SQLite's and JSON's exact integers, which a hold, a ledger row or a
# sealed request built from it must fit (a 40-digit value was taken, and failed each question).
MOST_TOKENS = 100_000_000
MOST_UNITS = 10**15


def _host_name(value: str) -> str:
    """Refuse a host no listener could be bound to: asyncio would fail on it with a traceback."""
    try:
        value.encode("idna")  # how the socket module looks a host name up
    except UnicodeError as exc:
        raise ValueError("not a host name or IP address") from exc
    return value


# A listener's address: a host name or IP address. Never empty, which would be every interface
# (that is 0.0.0.0, written out).
ListenHost = Annotated[str, Field(min_length=1), AfterValidator(_host_name)]


def named_path(value: object) -> object:
    """Refuse an empty path: ``Path("")`` is the current folder, wherever the process runs.

    ``VEIL_DATA_DIR=`` (a compose file's ``${VEIL_DATA_DIR}`` with the variable unset) made the
    database and a new master key in the working folder, outside the data volume, silently.
    So did ``VEIL_DATA_DIR=~/veil`` in a ``.env`` file or a compose file, which expand no
    ``~`` (only a shell does): a folder named ``~`` in the working folder. Refused too.
    ``ValueError`` says why; ``NamedPath`` is this as a setting's type, and the launcher, which
    reads the environment without pydantic, calls it itself.
    """
    if isinstance(value, str) and not value.strip():
        raise ValueError("it is empty; name a folder or file (empty would be the current folder)")
    if isinstance(value, str) and value.strip().startswith("~"):
        raise ValueError(
            "it starts with ~, which only a shell expands (here it would be a folder named ~ in"
            " the current folder); give the full path"
        )
    return value


# A file or folder setting: never empty.
NamedPath = Annotated[Path, BeforeValidator(named_path)]


def _upper(value: object) -> object:
    """A level in any case: ``debug`` is ``DEBUG`` (it was refused, as no level at all)."""
    return value.strip().upper() if isinstance(value, str) else value


# ``VEIL_LOG_LEVEL``: one of these, in any case; anything else is refused in one line.
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]


class SettingsError(SystemExit):
    """A bad or missing setting; carries the one line that names the variable."""


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Build ``cls`` from the environment, or stop with one line naming the bad variable."""
    misspelt = near_misses(cls, given_names(cls))
    if misspelt:
        given, meant = misspelt[0]
        raise SettingsError(f"veil: setting {given} is unknown: did you mean {meant}?")
    try:
        return cls()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = f"{PREFIX}{field.upper()}"
        if error["type"] == "missing":
            raise SettingsError(f"veil: setting {name} is required but not set") from None
        raise SettingsError(f"veil: setting {name} is invalid: {reason(error['msg'])}") from None


def reason(message: str) -> str:
    """A validation message without the ``Value error, `` pydantic puts before Veil's own."""
    return message.removeprefix("Value error, ")


def setting_names(cls: type[BaseSettings]) -> list[str]:
    """The ``VEIL_*`` names of ``cls``'s fields."""
    return sorted(f"{PREFIX}{field.upper()}" for field in cls.model_fields)


def given_names(cls: type[BaseSettings]) -> list[str]:
    """The ``VEIL_*`` names set in the environment and in the ``.env`` file ``cls`` reads."""
    names = {name.upper() for name in os.environ if name.upper().startswith(PREFIX)}
    env_file = cls.model_config.get("env_file")
    if isinstance(env_file, str | Path) and Path(env_file).is_file():
        read = (name.upper() for name in _env_file_names(Path(env_file), cls))
        names |= {name for name in read if name.startswith(PREFIX)}
    return sorted(names)


def _env_file_names(path: Path, cls: type[BaseSettings]) -> list[str]:
    """The names the ``.env`` file at ``path`` sets, read with python-dotenv's own parser.

    Not with ``dotenv_values``, which logs each line it cannot read: pydantic-settings reads
    the file again for the values and logs them then, and each such line came twice.
    """
    encoding = cls.model_config.get("env_file_encoding")
    with path.open(encoding=encoding) as stream:
        return [binding.key for binding in parse_stream(stream) if binding.key is not None]


def near_misses(cls: type[BaseSettings], given: Iterable[str]) -> list[tuple[str, str]]:
    """(given, meant) for each given name that is not a setting of ``cls`` but nearly one."""
    known = setting_names(cls)
    return [(name, meant) for name in given if (meant := near_miss(name, known)) is not None]


def near_miss(name: str, known: Collection[str]) -> str | None:
    """The one of ``known`` that ``name``, none of them, is nearly (``NEAR_MISS``); or None.

    The part's own check (``near_misses``), and the run command's, which passes such a name
    to the part it is nearly a setting of (``launcher.environment``), so it stops there.
    """
    if name in known:
        return None
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=NEAR_MISS)
    return close[0] if close else None
