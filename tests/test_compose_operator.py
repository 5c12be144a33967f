"""Compose as an operator changes it: a port moved in an override or the ``.env``, webhook mode.

Each test starts the cpu profile's services as local processes with ``tests/test_compose.py``'s
``local_compose``, the compose file merged with what the operator adds, as compose merges it.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

import aiohttp
import pytest

from common.container import health_url
from tests.fakes.relay import RecordingProxy
from tests.harness import REPO, free_port, run_python
from tests.test_compose import MissingVariable, compose_config, cpu_bot_on_telegram

if TYPE_CHECKING:
    from pathlib import Path

MOVED_PORT = "9700"


@pytest.mark.parametrize("where", ["override", ".env"])
async def test_the_bots_health_check_follows_its_metrics_port(tmp_path: Path, where: str) -> None:
    # VEIL_BOT_METRICS_PORT set in docker-compose.override.yml moved the bot's /health, while
    # the health check kept asking VEIL_HEALTH_URL, fixed at port 9601: nothing answered there,
    # and compose marked a working bot unhealthy. Set in the .env, it was not handed over.
    moved = {"services": {"bot": {"environment": {"VEIL_BOT_METRICS_PORT": MOVED_PORT}}}}
    files, variables = (
        ([moved], {}) if where == "override" else ([], {"VEIL_BOT_METRICS_PORT": MOVED_PORT})
    )
    bot = compose_config(*files, variables=variables)["services"]["bot"]
    assert bot["environment"]["VEIL_BOT_METRICS_PORT"] == MOVED_PORT
    async with cpu_bot_on_telegram(tmp_path, files=files, variables=variables) as (_, chain):
        await chain.processes["bot"].wait_for_line("bot.started", within=60)
        # Started, its /health answers 200 at once: the check passes in a few tries or never.
        await chain.healthy("bot", within=20)
        listening = chain.ports[("bot", int(MOVED_PORT))]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{listening}/health") as health,
        ):
            assert (health.status, await health.text()) == (200, "ok\n")


async def test_webhook_mode_under_compose_takes_an_update_through_its_published_port(
    tmp_path: Path,
) -> None:
    # Webhook mode under compose did not work as shipped: the bot's listener bound 127.0.0.1
    # in its container (VEIL_WEBHOOK_HOST's default), which Docker's forwarding never
    # reaches, no port was published, and nothing said how to give it the secret token.
    # compose/webhook.yml is laid over the compose file as docs/operations.md says; the
    # fake Telegram posts each update to the public URL, a TLS proxy's stand-in that forwards
    # it to the port the bot publishes.
    secret = tmp_path / "webhook_secret"
    secret.write_text(secrets.token_urlsafe(32) + "\n", encoding="ascii")
    override = REPO / "compose" / "webhook.yml"
    with pytest.raises(MissingVariable, match="VEIL_WEBHOOK_URL"):
        compose_config(override)  # no public URL: compose refuses, naming it
    async with RecordingProxy("127.0.0.1", free_port()) as proxy:
        public = f"{proxy.url}/telegram"
        async with cpu_bot_on_telegram(
            tmp_path,
            secrets={"webhook_secret": secret},
            answer="Answered through the webhook.",
            files=[override],
            variables={"VEIL_WEBHOOK_URL": public},
            outside=[proxy.url],
        ) as (telegram, chain):
            (container_port, published), *more = chain.published("bot").items()
            assert (container_port, more) == (8443, [])
            proxy.target = ("127.0.0.1", published)
            started = await chain.processes["bot"].wait_for_line("bot.started", within=60)
            told = await telegram.wait_for("setWebhook", timeout=10)
            telegram.send_text(4242, "Is the webhook up?")
            reply = await telegram.wait_for(
                "sendRichMessage", lambda c: c.params["chat_id"] == 4242, timeout=30
            )
            await chain.healthy("bot", within=20)
            output = chain.processes["bot"].output
    assert json.loads(started)["mode"] == "webhook"
    assert told.params["url"] == public
    assert told.params["secret_token"] == secret.read_text(encoding="ascii").strip()
    assert reply.params["rich_message"] == {"markdown": "Answered through the webhook."}
    assert proxy.connections >= 1  # the update came the public way, through the proxy
    assert secret.read_text(encoding="ascii").strip() not in output  # never logged


@pytest.mark.parametrize(
    ("env", "part", "url"),
    [
        ({}, "gateway", "http://127.0.0.1:8600/health"),
        ({}, "bot", "http://127.0.0.1:9601/health"),
        (
            {"VEIL_BOT_METRICS_HOST": "0.0.0.0", "VEIL_BOT_METRICS_PORT": "9700"},
            "bot",
            "http://127.0.0.1:9700/health",
        ),
        ({"VEIL_BOT_METRICS_HOST": "::"}, "bot", "http://127.0.0.1:9601/health"),
        ({"VEIL_BOT_METRICS_HOST": "10.0.0.5"}, "bot", "http://10.0.0.5:9601/health"),
        ({"VEIL_BOT_METRICS_HOST": "::1"}, "bot", "http://[::1]:9601/health"),
        (
            {"VEIL_GATEWAY_HOST": "0.0.0.0", "VEIL_GATEWAY_PORT": "8700"},
            "gateway",
            "http://127.0.0.1:8700/health",
        ),
        ({"VEIL_HEALTH_URL": "http://127.0.0.1:8080/"}, "bot", "http://127.0.0.1:8080/"),
    ],
)
def test_the_health_check_asks_where_the_parts_listener_is(
    env: dict[str, str], part: str, url: str
) -> None:
    assert health_url(env, part) == url


def test_the_health_check_names_its_parts() -> None:
    result = run_python("-m", "common.container", "health", "playground", env={})
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "veil: usage: python -m common.container health [gateway|bot]",
    )
