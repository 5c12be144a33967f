"""The limits on the bot's own listeners: the webhook, the Mini App, and the operations port.

Each is served as the gateway serves its public port (``common.connections``): a request head
must arrive within ``VEIL_BOT_HEADER_TIMEOUT`` (an idle keep-alive connection, Telegram's or a
page's, closes after that time too; a request being handled, a Mini App answer streaming for
minutes, is never cut by it), and a connection past the cap is closed as soon as it is accepted.
The cap is ``VEIL_BOT_MAX_CONNECTIONS`` per listener, lowered so that both listeners together
and the connections the bot opens itself (to Telegram, to each gateway) fit the descriptor limit.
The operations listener (``/metrics``, ``/health``; loopback by default) has the same header
timeout and a small cap of its own, ``METRICS_CONNECTIONS``: a client that opens connections and
never finishes a head cannot hold its sockets, or the scraper's place, for ever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.connections import ConnectionGuard, connection_cap

if TYPE_CHECKING:
    from bot.settings import BotSettings

# The Bot API session's connections (bot.telegram.TurnTakingSession's limit).
TELEGRAM_CONNECTIONS = 100
# Connections for control requests (bundles, cancels, receipts) to each gateway: few and short
# (a pool of their own, beside the VEIL_GATEWAY_STREAMS streams).
CONTROL_CONNECTIONS_PER_GATEWAY = 16
# The operations listener's cap (/metrics, /health on loopback: a scraper or two, a probe).
METRICS_CONNECTIONS = 16


def outbound_connections(settings: BotSettings) -> int:
    """The most connections the bot opens itself: Telegram's, and each gateway's two pools."""
    per_gateway = settings.gateway_streams + CONTROL_CONNECTIONS_PER_GATEWAY
    return TELEGRAM_CONNECTIONS + per_gateway * len(settings.gateway_urls)


def listener_cap(settings: BotSettings, *, soft_limit: int | None = None) -> int:
    """The most connections each listener holds (``soft_limit``: RLIMIT_NOFILE by default)."""
    listeners = max(1, (settings.webhook_url is not None) + (settings.webapp_url is not None))
    budget = connection_cap(
        settings.bot_max_connections * listeners,
        upstream=outbound_connections(settings) + METRICS_CONNECTIONS,  # its descriptors too
        soft_limit=soft_limit,
    )
    return max(1, budget // listeners)


def listener_guard(settings: BotSettings) -> ConnectionGuard:
    """A guard for one of the bot's listeners (each has its own, so neither starves the other)."""
    return ConnectionGuard(
        max_connections=listener_cap(settings), header_timeout=settings.bot_header_timeout
    )


def metrics_guard(settings: BotSettings) -> ConnectionGuard:
    """The guard of the operations listener (``/metrics``, ``/health``)."""
    return ConnectionGuard(
        max_connections=METRICS_CONNECTIONS, header_timeout=settings.bot_header_timeout
    )
