"""Wiring: the one place that builds Veil's parts and connects them.

``running_veil`` opens the store, the HTTP session, the sealed inference client and the chat
service, builds the aiogram ``Bot`` and ``Dispatcher``, and hands the services to the handlers
through the dispatcher's workflow data (``dp["chat"]``). ``run_polling`` and ``run_webhook``
serve it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import structlog
from aiogram import Bot, Dispatcher
from aiogram.types import BotCommand
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.middleware import TextsMiddleware
from bot.telegram import build_bot
from bot.texts import FALLBACK, Catalogs
from handlers import billing as billing_handlers
from handlers import chat as chat_handlers
from handlers import forget, model, payments, start
from models import MasterKey, Store
from services.billing import Billing
from services.chat import ChatService
from services.inference import InferenceClient
from services.stars import StarsShop

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from cryptography.hazmat.primitives.asymmetric import ed25519

    from bot.settings import BotSettings

log = structlog.get_logger("veil.bot")

COMMANDS = (
    "start",
    "help",
    "new",
    "model",
    "balance",
    "buy",
    "cancel",
    "privacy",
    "forget",
    "paysupport",
    "terms",
)


@dataclass
class Veil:
    """The running bot's parts."""

    settings: BotSettings
    bot: Bot
    dispatcher: Dispatcher
    store: Store
    chat: ChatService
    billing: Billing
    shop: StarsShop
    catalogs: Catalogs


def build_dispatcher(catalogs: Catalogs, admins: frozenset[int] = frozenset()) -> Dispatcher:
    """The dispatcher with every feature's router, in order (chat last: it takes any text)."""
    dispatcher = Dispatcher()
    dispatcher.update.middleware(TextsMiddleware(catalogs))
    dispatcher.include_routers(
        start.build_router(),
        payments.build_router(admins),
        billing_handlers.build_router(),
        model.build_router(),
        forget.build_router(),
        chat_handlers.build_router(),
    )
    return dispatcher


# Connections for control requests (bundles, cancels, receipts) to each gateway: few and short.
KEEPALIVE_SECONDS = 5.0
CONTROL_CONNECTIONS_PER_GATEWAY = 16


@contextlib.asynccontextmanager
async def gateway_sessions(
    settings: BotSettings,
) -> AsyncIterator[tuple[aiohttp.ClientSession, aiohttp.ClientSession]]:
    """The HTTP sessions to the gateways: one for answer streams, one for control requests.

    The stream pool holds ``VEIL_GATEWAY_STREAMS`` connections per gateway (the gateways'
    stream capacity), so the bot never queues requests a gateway has room for; a request that
    still has to wait longer than ``VEIL_GATEWAY_WAIT`` fails over. Control requests have their
    own small pool, so a stop is never queued behind new answers.
    """
    streams = settings.gateway_streams
    gateways = len(settings.gateway_urls)
    # Idle connections are dropped before a gateway's header timeout (10 s by default) would
    # close them, so a request never goes out on a connection the gateway is closing.
    stream_pool = aiohttp.TCPConnector(
        limit=streams * gateways, limit_per_host=streams, keepalive_timeout=KEEPALIVE_SECONDS
    )
    control_pool = aiohttp.TCPConnector(
        limit=CONTROL_CONNECTIONS_PER_GATEWAY * gateways,
        limit_per_host=CONTROL_CONNECTIONS_PER_GATEWAY,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    async with (
        aiohttp.ClientSession(connector=stream_pool) as stream_session,
        aiohttp.ClientSession(connector=control_pool) as control_session,
    ):
        yield stream_session, control_session


@contextlib.asynccontextmanager
async def running_veil(
    settings: BotSettings, client_key: ed25519.Ed25519PrivateKey
) -> AsyncIterator[Veil]:
    """Open every part of the bot; close them in reverse order on exit."""
    catalogs = Catalogs()
    master_key = MasterKey.load_or_create(settings.master_key_path)
    store = await Store.open(settings.database_path, master_key)
    try:
        async with gateway_sessions(settings) as (streams, control):
            inference = InferenceClient(
                settings.gateway_urls,
                settings.verify_keys,
                streams,
                client_key=client_key,
                control_session=control,
                pool_wait=settings.gateway_wait,
                stop_grace=settings.stop_grace,
            )
            billing = Billing(store, settings.price_table, settings.free_tokens_per_day)
            shop = StarsShop(store, settings.packs, settings.plan)
            recovered = await billing.recover(0)
            if recovered:
                log.warning("bot.holds_recovered", count=recovered)
            chat = ChatService(
                store=store,
                inference=inference,
                billing=billing,
                default_model=settings.default_model,
                context_tokens=settings.context_tokens,
                max_answer_tokens=settings.max_answer_tokens,
                system_prompt=settings.system_prompt,
            )
            bot = build_bot(settings.bot_token.get_secret_value(), str(settings.telegram_api))
            dispatcher = build_dispatcher(catalogs, settings.admin_ids)
            dispatcher["chat"] = chat
            dispatcher["billing"] = billing
            dispatcher["shop"] = shop
            dispatcher["store"] = store
            dispatcher["catalogs"] = catalogs
            dispatcher["settings"] = settings
            try:
                yield Veil(settings, bot, dispatcher, store, chat, billing, shop, catalogs)
            finally:
                await bot.session.close()
    finally:
        await store.close()


async def register_commands(veil: Veil) -> None:
    """Tell Telegram the command list, in every language with a catalog."""
    for language in veil.catalogs.languages:
        texts = veil.catalogs.for_language(language)
        commands = [BotCommand(command=c, description=texts(f"cmd_{c}")) for c in COMMANDS]
        await veil.bot.set_my_commands(
            commands, language_code=None if language == FALLBACK else language
        )


async def run_polling(settings: BotSettings, client_key: ed25519.Ed25519PrivateKey) -> None:
    """Serve with long polling until SIGINT/SIGTERM."""
    async with running_veil(settings, client_key) as veil:
        me = await veil.bot.get_me()
        await veil.bot.delete_webhook(drop_pending_updates=False)
        await register_commands(veil)
        await veil.chat.inference.refresh()
        log.info("bot.started", mode="polling", username=me.username, bot_id=me.id)
        await veil.dispatcher.start_polling(
            veil.bot,
            allowed_updates=veil.dispatcher.resolve_used_update_types(),
            handle_signals=True,
            close_bot_session=False,
        )
        log.info("bot.stopped")


async def run_webhook(settings: BotSettings, client_key: ed25519.Ed25519PrivateKey) -> None:
    """Serve a webhook (secret header checked) until SIGINT/SIGTERM."""
    if settings.webhook_url is None or settings.webhook_secret is None:
        raise ValueError("webhook mode needs VEIL_WEBHOOK_URL and VEIL_WEBHOOK_SECRET")
    async with running_veil(settings, client_key) as veil:
        secret = settings.webhook_secret.get_secret_value()
        app = web.Application()
        path = settings.webhook_url.path or "/"
        SimpleRequestHandler(veil.dispatcher, veil.bot, secret_token=secret).register(app, path)
        setup_application(app, veil.dispatcher, bot=veil.bot)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
        await site.start()
        await register_commands(veil)
        await veil.bot.set_webhook(
            str(settings.webhook_url),
            secret_token=secret,
            allowed_updates=veil.dispatcher.resolve_used_update_types(),
        )
        log.info("bot.started", mode="webhook", port=runner.addresses[0][1])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            log.info("bot.stopped")
