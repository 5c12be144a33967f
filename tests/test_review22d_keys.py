"""A signing key whose ``.pub`` beside it is another key's: refused in one line, each run.

The container's ``keys`` and the run command keep each signing key's verify key beside it as
``<name>.pub`` and hand it to the other side to pin (``VEIL_OPERATOR_KEYS``, ``VEIL_CLIENT_KEYS``).
A ``.pub`` that is not the key's (one of the two replaced by hand, or the two restored from
different backups) was taken as it stood: the other side pinned a key nobody signs with, and
every request failed its signature check, first at someone's first question. Each run now
derives the verify key from the key and refuses a ``.pub`` that differs, naming both files.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealed.encoding import b64e
from tests.harness import run_python
from tests.launching import install_client_files, launch, local_model, serving_settings

if TYPE_CHECKING:
    from pathlib import Path

# A verify key of no key here: what a .pub restored from another installation holds.
STRANGER = b64e(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


def refusal(kind: str, key: Path, pub: Path) -> str:
    return (
        f"veil: {pub} is not the verify key of {key}: one of the two was replaced; put back the"
        f" {kind} key and its .pub from the same backup, or remove {pub} to make it again from"
        " the key (and pin that verify key wherever the old one was pinned)"
    )


def test_the_container_refuses_a_pub_that_is_not_its_keys(tmp_path: Path) -> None:
    made = {name: tmp_path / name for name in ("gateway", "bot", "model")}
    for folder in made.values():
        folder.mkdir()
    args = [f"--{name}={folder}" for name, folder in made.items()]
    first = run_python("-m", "common.container", "keys", *args, env={"VEIL_ENV_DIRS": ""})
    assert first.returncode == 0, first.stderr
    pinned = (made["gateway"] / "VEIL_CLIENT_KEYS").read_text()
    key, pub = made["bot"] / "client.key", made["bot"] / "client.pub"
    pub.write_text(STRANGER + "\n")

    again = run_python("-m", "common.container", "keys", *args, env={"VEIL_ENV_DIRS": ""})

    assert again.returncode == 2, again.stderr
    assert again.stderr.splitlines() == [refusal("client", key, pub)]
    assert pub.read_text() == STRANGER + "\n"  # nothing is changed
    assert (made["gateway"] / "VEIL_CLIENT_KEYS").read_text() == pinned


async def test_the_run_command_refuses_a_pub_that_is_not_its_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    install_client_files(data)
    key, pub = data / "client.key", data / "client.pub"
    pub.write_text(STRANGER + "\n")
    launcher = await launch(env=serving_settings(data, **local_model(tmp_path)))
    try:
        async with asyncio.timeout(60):  # before, the gateway started pinning the stranger
            code = await launcher.process.wait()
    finally:
        await launcher.stop()
    assert code == 1, launcher.output
    assert launcher.lines[-1] == refusal("client", key, pub)
    assert pub.read_text() == STRANGER + "\n"
