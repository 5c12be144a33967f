"""What the launcher's tests start ``python -m launcher`` with: settings, files, a local model.

The launcher serves from a data folder; each test gives it free ports (never the defaults,
which another run may hold) and, where a bot runs, the fake Telegram with the tests' token.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from launcher.llama import SOURCE_VERSION
from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.harness import CLIENT_VERIFY_KEY, ManagedProcess, free_port, install_client_key

if TYPE_CHECKING:
    from pathlib import Path


async def launch(*args: str, env: dict[str, str]) -> ManagedProcess:
    """``python -m launcher args…`` with the settings ``env``, started."""
    return await ManagedProcess.start("-m", "launcher", *args, env=env)


def serving_settings(data: Path, telegram: str | None = None, **settings: str) -> dict[str, str]:
    """A launcher serving from ``data``: its gateway on free ports, the bot's metrics on any.

    With ``telegram`` (a fake Telegram's URL) the bot runs too, with the tests' token;
    ``settings`` (``VEIL_…`` names) come last, over these.
    """
    bot = {"VEIL_BOT_TOKEN": TOKEN, "VEIL_TELEGRAM_API": telegram} if telegram else {}
    return {
        "VEIL_DATA_DIR": str(data),
        "VEIL_GATEWAY_PORT": str(free_port()),
        "VEIL_METRICS_PORT": str(free_port()),
        "VEIL_BOT_METRICS_PORT": "0",
        **bot,
        **settings,
    }


def install_client_files(data: Path) -> None:
    """The test gateways' pinned client key, and its verify key beside it as keygen leaves it."""
    install_client_key(data)
    (data / "client.pub").write_text(b64e(CLIENT_VERIFY_KEY) + "\n")


def install_fake_llama_server(cache: Path) -> None:
    """Put the stand-in ``llama-server`` where the launcher keeps the one it builds."""
    binary = cache / SOURCE_VERSION / "llama-server"
    binary.parent.mkdir(parents=True)
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.fakes.llama_server "$@"\n')
    binary.chmod(0o755)


def local_model(folder: Path) -> dict[str, str]:
    """A model file and the stand-in ``llama-server`` in ``folder``: the settings that run them.

    The launcher finds the server built already (in ``folder/llama.cpp``) and starts it for
    ``folder/tiny-chat.gguf`` on a free port.
    """
    cache = folder / "llama.cpp"
    install_fake_llama_server(cache)
    model = folder / "tiny-chat.gguf"
    model.write_bytes(b"GGUF")
    return {
        "VEIL_LLAMA_CPP_DIR": str(cache),
        "VEIL_LOCAL_MODEL": str(model),
        "VEIL_LOCAL_MODEL_PORT": str(free_port()),
    }
