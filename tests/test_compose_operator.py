"""Compose as an operator changes it: a port moved in an override or the ``.env``, webhook mode.

Each test starts the cpu profile's services as local processes with ``tests/test_compose.py``'s
``local_compose``, the compose file merged with what the operator adds, as compose merges it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.test_compose import compose_config, local_compose

if TYPE_CHECKING:
    from pathlib import Path

MOVED_PORT = "9700"


@pytest.mark.parametrize("where", ["override", ".env"])
async def test_the_bots_health_check_follows_its_metrics_port(tmp_path: Path, where: str) -> None:
    # VEIL_BOT_METRICS_PORT set in docker-compose.override.yml moved the bot's /health, while
    # the health check kept asking VEIL_HEALTH_URL, fixed at port 9601: nothing answered there,
    # and compose marked a working bot unhealthy. Set in the .env, it was not handed over.
    token = tmp_path / "bot_token"
    token.write_text(f"{TOKEN}\n", encoding="ascii")
    moved = {"services": {"bot": {"environment": {"VEIL_BOT_METRICS_PORT": MOVED_PORT}}}}
    files, variables = (
        ([moved], {}) if where == "override" else ([], {"VEIL_BOT_METRICS_PORT": MOVED_PORT})
    )
    bot = compose_config(*files, variables=variables)["services"]["bot"]
    assert bot["environment"]["VEIL_BOT_METRICS_PORT"] == MOVED_PORT
    async with (
        FakeTelegram(token=TOKEN) as telegram,
        local_compose(
            tmp_path,
            {"cpu"},
            secrets={"bot_token": token},
            extra_env={"bot": {"VEIL_TELEGRAM_API": telegram.url}},
            files=files,
            variables=variables,
        ) as chain,
    ):
        await chain.processes["bot"].wait_for_line("bot.started", within=60)
        # Started, its /health answers 200 at once: the check passes in a few tries or never.
        await chain.healthy("bot", within=20)
        listening = chain.ports[("bot", int(MOVED_PORT))]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{listening}/health") as health,
        ):
            assert (health.status, await health.text()) == (200, "ok\n")
