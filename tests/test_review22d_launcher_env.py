"""What the run command hands each part of its environment, proven on the parts it starts.

Each part gets the basics and its own settings (``launcher.environment``). The settings are
matched by name against its settings class, and pydantic-settings reads names in any case:
``veil_admins=777`` is the bot's ``VEIL_ADMINS``, and reached the bot while it got the whole
environment. The filter matched the upper-case name only and dropped it, with no word: the bot
ran without its admins. A setting is now matched in any case. The basics a laptop's shell sets
for the locale, Python's output and the certificates reach each Python part as they are.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.launching import install_client_files, launch, local_model, serving_settings
from tests.test_ops22_launcher_env import parts_while_serving

if TYPE_CHECKING:
    from pathlib import Path

BASICS = {
    "LC_ALL": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
}


async def test_a_setting_in_lower_case_and_the_basics_reach_their_part(tmp_path: Path) -> None:
    parts = await parts_while_serving(
        tmp_path,
        **BASICS,
        veil_admins="777",  # the bot's VEIL_ADMINS, as pydantic-settings reads it
        veil_vllm_api_key="model-server-key",  # the gateway's alone
    )
    bot, gateway = parts["bot"], parts["gateway"]
    assert bot.get("veil_admins") == "777"
    assert "veil_vllm_api_key" not in bot
    assert gateway.get("veil_vllm_api_key") == "model-server-key"
    assert "veil_admins" not in gateway
    for part in (bot, gateway):
        assert {name: part.get(name) for name in BASICS} == BASICS


async def test_a_misspelt_setting_still_stops_its_part_in_one_line(tmp_path: Path) -> None:
    # VEIL_ADMIN for VEIL_ADMINS: no part's setting, so the filter dropped it and the bot ran
    # without its admins, where the README promises the line below rather than the typo ignored.
    data = tmp_path / "data"
    install_client_files(data)
    async with FakeTelegram(token=TOKEN) as telegram:
        env = serving_settings(data, telegram.url, **local_model(tmp_path), VEIL_ADMIN="777")
        launcher = await launch(env=env)
        try:
            async with asyncio.timeout(90):  # before, it served on, and this timed out
                code = await launcher.process.wait()
        finally:
            await launcher.stop()
    assert code == 1, launcher.output
    assert "veil: setting VEIL_ADMIN is unknown: did you mean VEIL_ADMINS?" in launcher.output
