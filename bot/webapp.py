"""The Mini App's web server: the page from ``webapp/static``, served with the relay's routes.

``bot.app`` builds the routes (``handlers.webapp``) and this module serves them on
``VEIL_WEBAPP_HOST:VEIL_WEBAPP_PORT`` under the path of ``VEIL_WEBAPP_URL`` (behind the
operator's HTTPS proxy in production, for TLS: the listener itself closes heads that do not
arrive in time and connections past its cap, ``bot.listeners``). The page is the
template ``index.html`` with the operator keys it pins and its script's Subresource Integrity
hash filled in, and the committed bundle ``veil.js`` byte for byte: whoever fetches the page
can check both against the published SHA-256 of the bundle (docs/miniapp.md).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from aiogram.exceptions import TelegramAPIError
from aiogram.types import MenuButtonWebApp, WebAppInfo

from bot.listeners import listener_guard
from common.connections import GuardedSite, guard_app, stopping_runner
from sealed.encoding import b64e

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from aiogram import Bot
    from aiohttp import web

    from bot.settings import BotSettings
    from common.texts import Texts
    from services.relay import RelayService

log = structlog.get_logger("veil.webapp")

WEBAPP_DIR = Path(__file__).resolve().parent.parent / "webapp" / "static"
TEMPLATE = "index.html"
SCRIPT = "veil.js"
CONFIG_MARK = "__VEIL_CONFIG__"
INTEGRITY_MARK = "__VEIL_SCRIPT_INTEGRITY__"
# At a stop, after the relayed answers are settled, how long the Mini App's listener waits for a
# request still in hand before it cuts it (``stopping_runner``).
WEBAPP_STOP_WAIT_S = 5.0


def bundle_sha256(directory: Path = WEBAPP_DIR) -> str:
    """The SHA-256 (hex) of the page's script: what README and /privacy publish."""
    return hashlib.sha256((directory / SCRIPT).read_bytes()).hexdigest()


def render_page(
    template: str, script: bytes, operator_keys: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """The page's HTML with its pins filled in, and the script.

    The pins are the operator keys the page trusts and the script's integrity hash.
    """
    if template.count(CONFIG_MARK) != 1 or template.count(INTEGRITY_MARK) != 1:
        raise ValueError(f"{TEMPLATE} must hold {CONFIG_MARK} and {INTEGRITY_MARK} once each")
    config = {
        "operator_keys": [b64e(key) for key in operator_keys],
        "script_sha256": hashlib.sha256(script).hexdigest(),
    }
    # Inside <script type="application/json">: no "<" may close the element early.
    text = json.dumps(config, sort_keys=True).replace("<", "\\u003c")
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(script).digest()).decode("ascii")
    html = template.replace(CONFIG_MARK, text).replace(INTEGRITY_MARK, integrity)
    return html.encode("utf-8"), script


def load_page(operator_keys: Sequence[bytes], directory: Path = WEBAPP_DIR) -> tuple[bytes, bytes]:
    """Read the template and the bundle; the rendered HTML and the script."""
    template = (directory / TEMPLATE).read_text(encoding="utf-8")
    return render_page(template, (directory / SCRIPT).read_bytes(), operator_keys)


def webapp_prefix(settings: BotSettings) -> str:
    """The path the Mini App is served under (``VEIL_WEBAPP_URL``'s)."""
    if settings.webapp_url is None:
        raise ValueError("the Mini App needs VEIL_WEBAPP_URL")
    return settings.webapp_url.path or "/"


@contextlib.asynccontextmanager
async def serving_webapp(
    app: web.Application, settings: BotSettings, relay: RelayService
) -> AsyncIterator[str]:
    """Serve the Mini App's ``app``; yields the URL it listens on (its path included).

    On the way out it stops listening, then hangs up on every answer still relayed and waits
    until each is settled.
    """
    prefix = webapp_prefix(settings)
    guard = listener_guard(settings)
    runner = stopping_runner(guard_app(app, guard), cut_within=WEBAPP_STOP_WAIT_S)
    await runner.setup()
    try:
        site = GuardedSite(runner, settings.webapp_host, settings.webapp_port, guard=guard)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}{prefix}"
        log.info(
            "webapp.serving",
            url=url,
            script_sha256=bundle_sha256(),
            max_connections=guard.max_connections,
        )
        try:
            yield url
        finally:
            await site.stop()
            await relay.close()
    finally:
        await runner.cleanup()


async def set_menu_button(bot: Bot, settings: BotSettings, texts: Texts) -> bool:
    """Make the chat menu button open the Mini App; False (logged) if Telegram refused."""
    if settings.webapp_url is None:
        return False
    button = MenuButtonWebApp(
        text=texts("webapp_menu"), web_app=WebAppInfo(url=str(settings.webapp_url))
    )
    try:
        await bot.set_chat_menu_button(menu_button=button)
    except TelegramAPIError as exc:
        log.warning("webapp.menu_button_refused", error=type(exc).__name__)
        return False
    return True
