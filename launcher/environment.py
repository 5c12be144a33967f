"""What of the launcher's environment each part it starts gets: the basics and its own settings.

Every part got the launcher's whole environment: the bot the gateway's model server key
(``VEIL_VLLM_API_KEY``), the gateway the bot's Telegram token and toncenter key, ``llama-server``
(another project's program) all of them, with whatever else the shell held. Now each gets the
basics a program needs to run here (``BASICS``, ``BASIC_PREFIXES``), and, of the rest, only the
names its own settings read: the bot's and the gateway's ``VEIL_*`` settings (their settings
classes list them), llama.cpp's own variables for the model server, nothing for the playground.
What the launcher gives a part itself (ports, keys, URLs) comes on top.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

from common.settings import PREFIX, near_miss
from launcher.console import LaunchError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

# To find programs and libraries, a home, a language, a place for temporary files, the
# terminal, and the way out of a network that needs a proxy or its own certificates.
BASICS = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TERM",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
    }
)
# The locale's parts, Python's own settings, and coverage's (a measured run measures its parts).
BASIC_PREFIXES = ("LC_", "PYTHON", "COVERAGE_")

MODEL_SERVER_PREFIXES = ("LLAMA_", "GGML_", "OMP_")  # llama.cpp's own (LLAMA_ARG_THREADS, …)


def part_environment(
    env: Mapping[str, str], names: Collection[str] = (), prefixes: tuple[str, ...] = ()
) -> dict[str, str]:
    """The basics of ``env``, and its variables that ``names`` or ``prefixes`` give the part.

    ``names`` in any case: the parts' settings classes read ``veil_admins`` as ``VEIL_ADMINS``
    (pydantic-settings' names are not case-sensitive), and one written so reached the part
    before each got only its own. A name a letter or two off one of ``names`` goes too, for the
    part to refuse it in one line (``common.settings.load_settings``), as it did when it got
    the whole environment: filtered out, a typo for ``VEIL_ADMINS`` was ignored with no word.
    """
    return {
        name: value
        for name, value in env.items()
        if name in BASICS
        or name.startswith(BASIC_PREFIXES)
        or name.upper() in names
        or misspelt(name, names)
        or (prefixes and name.startswith(prefixes))
    }


def misspelt(name: str, names: Collection[str]) -> bool:
    """Whether ``name`` is a ``VEIL_*`` name the part takes for one of ``names`` misspelt."""
    upper = name.upper()
    return upper.startswith(PREFIX) and near_miss(upper, names) is not None


# The ``VEIL_*`` names the bot's and the gateway's settings read, printed as JSON by a child: the
# launcher imports none of what it starts (their settings classes hold the list).
SETTING_NAMES = """
import json
from bot.settings import BotSettings
from common.settings import setting_names
from gateway.settings import GatewaySettings
print(json.dumps({"bot": setting_names(BotSettings), "gateway": setting_names(GatewaySettings)}))
"""


async def settings_of_parts(env: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """The ``VEIL_*`` names each Python part (``bot``, ``gateway``) reads, asked of a child."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SETTING_NAMES,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=part_environment(env),
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise LaunchError(f"cannot read the bot's and the gateway's settings: {''.join(last)}")
    return {part: frozenset(names) for part, names in json.loads(out).items()}
