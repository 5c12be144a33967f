"""Each part the run command starts gets the basics and its own settings, no other part's.

The launcher started every part with its whole environment: the bot got the gateway's model
server key (``VEIL_VLLM_API_KEY``), the gateway the bot's Telegram token and toncenter key, and
``llama-server``, a program of another project, all of them, with whatever else the shell held.
Each is now given the basics (``PATH``, ``HOME``, ``LANG``, ``TMPDIR``, …) and the ``VEIL_*``
settings its own settings class reads; the model server none. Read from ``/proc/PID/environ``
of each part while the run serves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.launching import install_client_files, launch, local_model, serving_settings

if TYPE_CHECKING:
    from tests.harness import ManagedProcess

SECRETS = {
    "VEIL_VLLM_API_KEY": "model-server-key-for-the-gateway",  # the gateway's alone
    "VEIL_TONCENTER_KEY": "toncenter-key-for-the-bot",  # the bot's alone
    "VEIL_ADMINS": "777",  # the bot's alone
    "OTHER_APP_SECRET": "nobody-here-needs-it",  # no part's
}


def environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.decode().partition("=") for entry in raw.split(b"\0") if entry)
    return {name: value for name, _, value in pairs}


def parts_of(launcher: ManagedProcess) -> dict[str, dict[str, str]]:
    """The launcher's children, by what they run: their environments."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if int(stat[1]) != launcher.process.pid:
                continue
            env = environment(int(entry.name))
        except (OSError, IndexError):
            continue
        if b"tests.fakes.llama_server" in command:  # the stand-in llama-server (exec'd)
            found["model"] = env
        elif command[1:3] in ([b"-m", b"gateway"], [b"-m", b"bot"]):
            found[command[2].decode()] = env
    return found


async def parts_while_serving(tmp_path: Path, **settings: str) -> dict[str, dict[str, str]]:
    """Run on a local model with ``settings`` added; each part's environment while it serves.

    The run is then stopped, and must end cleanly.
    """
    data = tmp_path / "data"
    install_client_files(data)
    async with FakeTelegram(token=TOKEN) as telegram:
        env = serving_settings(data, telegram.url, **local_model(tmp_path), **settings)
        launcher = await launch(env=env)
        try:
            await launcher.wait_for_line("press Ctrl-C to stop", within=120)
            parts = parts_of(launcher)
        finally:
            code = await launcher.stop()
    assert code == 0, launcher.output
    return parts


async def test_each_part_gets_its_own_settings_and_no_other_parts(tmp_path: Path) -> None:
    parts = await parts_while_serving(tmp_path, **SECRETS)
    assert sorted(parts) == ["bot", "gateway", "model"]
    bot, gateway, model = parts["bot"], parts["gateway"], parts["model"]
    assert bot["VEIL_TONCENTER_KEY"] == SECRETS["VEIL_TONCENTER_KEY"]
    assert bot["VEIL_ADMINS"] == "777"
    assert bot["VEIL_BOT_TOKEN"] == TOKEN
    assert "VEIL_VLLM_API_KEY" not in bot
    assert gateway["VEIL_VLLM_API_KEY"] == SECRETS["VEIL_VLLM_API_KEY"]
    assert not {"VEIL_BOT_TOKEN", "VEIL_TONCENTER_KEY", "VEIL_ADMINS"} & set(gateway)
    assert [name for name in model if name.startswith("VEIL_")] == []
    for part in (bot, gateway, model):
        assert "OTHER_APP_SECRET" not in part
        assert "VEIL_LOCAL_MODEL" not in part  # the launcher's own setting
        assert part["PATH"] == os.environ["PATH"]
