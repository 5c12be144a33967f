"""The run command's keys and their ``.pub`` out of step, as in the container's ``keys``.

The launcher writes each key (``python -m PART keygen``), then its verify key beside it in
``VEIL_DATA_DIR`` as ``<name>.pub``. Killed between the two, the key stayed without its ``.pub``
and every later run refused it ("remove it or restore both"); a ``.pub`` whose key was gone got a
second key silently, and the ``.pub`` was rewritten for it. Now the ``.pub`` is derived from the
key again, and a ``.pub`` without its key is refused in one line, nothing made.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.harness import CLIENT_VERIFY_KEY, install_client_key
from tests.launching import install_client_files, launch, local_model, serving_settings

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_client_key_without_its_pub_gets_it_back_and_the_run_serves(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    install_client_key(data)  # the key, as a run killed before its .pub left it
    async with FakeTelegram(token=TOKEN) as telegram:
        launcher = await launch(env=serving_settings(data, telegram.url, **local_model(tmp_path)))
        try:
            await launcher.wait_for_line("press Ctrl-C to stop", within=120)
        finally:
            code = await launcher.stop()
    assert code == 0, launcher.output
    pub = data / "client.pub"
    assert f"veil: {pub} was missing: made again from {data / 'client.key'}" in launcher.lines
    assert pub.read_text() == b64e(CLIENT_VERIFY_KEY) + "\n"


async def test_an_operator_pub_whose_key_is_gone_is_refused_and_no_key_is_made(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    install_client_files(data)
    pub, key = data / "operator.pub", data / "operator.key"
    pub.write_text("the-verify-key-every-bot-pins\n")
    launcher = await launch(env=serving_settings(data, **local_model(tmp_path)))
    try:
        async with asyncio.timeout(60):  # it stops at once; before, it made a key and served
            code = await launcher.process.wait()
    finally:
        await launcher.stop()
    assert code == 1, launcher.output
    assert launcher.lines[-1] == (
        f"veil: {pub} exists but {key} does not: the operator key it verifies is gone; put"
        f" {key} back from its backup, or remove {pub} to make a new operator key (and pin its"
        " verify key again wherever the old one was pinned)"
    )
    assert not key.exists()
    assert pub.read_text() == "the-verify-key-every-bot-pins\n"
