"""Wiring: the one place that builds Veil's parts and connects them.

``running_veil`` opens the store, the payment journal, the HTTP session, the sealed inference
client and the chat service, builds the aiogram ``Bot`` and ``Dispatcher``, and hands the
services to the handlers through the dispatcher's workflow data (``dp["chat"]``). It also runs
two background loops: the payment desk's (books journaled payments until they stick) and
upkeep (every ``SWEEP_EVERY_S``: releases holds older than the longest an answer can take,
purges expired unpaid orders and old journal entries), and, when Gram payments are on
(``VEIL_TON_ADDRESS``), the TON chain watcher (``bot.ton``). With ``VEIL_WEBAPP_URL`` it also
serves the Mini App (``bot.webapp``: the page and the relay of its sealed requests). On the way
out it stops every answer in progress and waits for it to be settled, delivered and stored
before anything closes (the Mini App's relayed answers too: hung up, then settled from their
receipts). ``run_polling`` and ``run_webhook`` serve it, with ``/metrics`` and ``/health``
beside it (``bot.metrics``), and on SIGTERM let answers finish first (``bot.shutdown``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import structlog
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeAllGroupChats
from aiogram.webhook.aiohttp_server import setup_application
from aiohttp import web

from bot.conflict import PollingConflicts, RefusedToken
from bot.editors import Editors
from bot.intake import INTAKE, Intake, PollIntake
from bot.listeners import CONTROL_CONNECTIONS_PER_GATEWAY, listener_guard, metrics_guard
from bot.metrics import BotMetrics, MeteredChatService, Operations, serving_operations
from bot.order import ORDER, UpdateOrder
from bot.pacing import Pace
from bot.payments import JournalMiddleware, PaymentDesk
from bot.settings import IN_HAND
from bot.shutdown import IN_FLIGHT, InFlight, Stopping, drain
from bot.streaming import DraftSink
from bot.subscriptions import cancel_subscription
from bot.telegram import build_bot, forget_handled_update, prepare_models, skip_bare_updates
from bot.ton import ton_parts
from bot.webapp import bundle_sha256, load_page, serving_webapp, set_menu_button, webapp_prefix
from bot.webhook import VeilWebhook
from common.collector import freeze_startup
from common.connections import GuardedSite, guard_app, stopping_runner
from common.texts import FALLBACK, Catalogs
from handlers import chat as chat_handlers
from handlers import errors, forget, groups, history, inline, model, pastes, private, start
from handlers import settings as settings_handlers
from handlers import shop as shop_handlers
from handlers import ton as ton_handlers
from handlers.failures import Failures
from handlers.groups.kit import GroupKit
from handlers.middleware import TextsMiddleware
from handlers.replies import TELEGRAM_LATER, went_out
from handlers.webapp import InitDataCheck, Page, build_webapp
from models import MasterKey, StorageError, Store
from models.journal import Journal
from services.chat import ChatService
from services.control import ControlClient
from services.credit import Credit
from services.errors import BillingError, VeilError
from services.groups import Groups
from services.inference import InferenceClient
from services.journal import PaymentJournal
from services.relay import RelayService
from services.shop import Shop
from services.shop_cancel import PlanCancels

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine, Iterator

    from aiogram.types import User
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from bot.settings import BotSettings
    from models.outbox import Progress, Undelivered
    from services.chat import ChatService
    from services.questions import Sent
    from services.ton.books import TonBooks
    from services.ton.watcher import TonWatcher

log = structlog.get_logger("veil.bot")
T = TypeVar("T")

COMMANDS = (
    "start",
    "help",
    "new",
    "history",
    "model",
    "balance",
    "buy",
    "cancel",
    "private",
    "privacy",
    "forget",
    "settings",
    "paysupport",
    "terms",
)

# The group menu (``all_group_chats``): what a member uses there. ``/cancel`` (``/stop``'s other
# name), ``/start`` (``/help``'s), ``/terms`` and ``/paysupport`` work too, outside the menu:
# the private chat's menu lists those two; a group's keeps to what a member does there.
GROUP_COMMANDS = ("ask", "stop", "help", "groupsettings")


@dataclass
class Veil:
    """The running bot's parts."""

    settings: BotSettings
    bot: Bot
    dispatcher: Dispatcher
    store: Store
    chat: ChatService
    credit: Credit
    shop: Shop
    catalogs: Catalogs
    desk: PaymentDesk
    operations: Operations
    ton_books: TonBooks | None = None
    ton_watcher: TonWatcher | None = None
    relay: RelayService | None = None
    webapp: str | None = None  # where the Mini App listens, once it does
    # Set once the upkeep's first pass is done: what a restart left delivered, owed sent, told.
    upkept: asyncio.Event = field(default_factory=asyncio.Event)


SWEEP_EVERY_S = 60.0


@dataclass(frozen=True)
class _Opened:
    """What ``running_veil`` opened for the services: the two databases and HTTP sessions."""

    store: Store
    journal: Journal
    streams: aiohttp.ClientSession
    control: aiohttp.ClientSession


def build_dispatcher(
    catalogs: Catalogs, admins: frozenset[int] = frozenset(), in_hand: int = IN_HAND
) -> Dispatcher:
    """The dispatcher with every feature's router, in order (chat last: it takes any text)."""
    # No handler keeps FSM state; aiogram's FSM would add a middleware layer to every update
    # and keep a record per chat and user in memory for good.
    dispatcher = Dispatcher(disable_fsm=True)
    # First (after aiogram's errors and user context): at most ``in_hand`` updates taken in
    # at once (a poll asks for what fits).
    intake = dispatcher[INTAKE] = Intake(in_hand)
    dispatcher.update.outer_middleware(intake)
    # Next: every update is in hand from here (a shutdown waits for it), its turn waited for
    # too, or one held behind a slow one would be dropped by a drain that ended before it.
    in_flight = dispatcher[IN_FLIGHT] = InFlight()
    dispatcher.update.outer_middleware(in_flight)
    # Then: a user's updates start one at a time, in order (the webhook takes their turns).
    # A user's backlog past ``MOST_WAITING`` is let go, and the user told in their language.
    order = dispatcher[ORDER] = UpdateOrder(catalogs=catalogs)
    dispatcher.update.outer_middleware(order)
    # Before any router: a part of a long text may begin with what reads as a command.
    joined = pastes.Pastes(held=intake.held_back)  # a next part may wait at Telegram
    dispatcher.message.outer_middleware(pastes.PasteParts(joined))
    dispatcher["answering"] = chat_handlers.Answering()  # whose answer a question waits behind
    dispatcher["presses"] = chat_handlers.Presses()  # Retry and Continue buttons pressed once
    dispatcher.update.outer_middleware(skip_bare_updates)  # what a poll could not read
    # Outer, so that the errors router (which runs outside inner middlewares) has ``texts`` too.
    dispatcher.update.outer_middleware(TextsMiddleware(catalogs))
    dispatcher.update.outer_middleware(forget_handled_update)
    dispatcher.include_routers(
        errors.build_router(),
        start.build_router(),
        shop_handlers.build_router(admins),
        ton_handlers.build_router(admins),
        model.build_router(),
        private.build_router(),
        forget.build_router(),
        history.build_router(),
        inline.build_router(),
        groups.build_router(),
        settings_handlers.build_router(),
        chat_handlers.build_router(),
    )
    return dispatcher


KEEPALIVE_SECONDS = 5.0
# At a stop, how long the webhook's listener waits for a request still being read or journaled
# (aiohttp waits a minute unless told, twice for one past its body: ``stopping_runner``): one
# cut gets no answer, and Telegram delivers it again.
WEBHOOK_STOP_WAIT_S = 5.0


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
    settings: BotSettings,
    client_key: ed25519.Ed25519PrivateKey,
    *,
    recover_all: bool = True,
    sweep_every: float = SWEEP_EVERY_S,
) -> AsyncIterator[Veil]:
    """Open every part of the bot; close them in reverse order on exit.

    ``recover_all`` releases every hold (and every payment desk's claim) left open at start
    (right when this is the only bot process, as long polling guarantees); otherwise holds are
    only released once older than the longest an answer can take, by the upkeep loop every
    ``sweep_every`` seconds, and claims once their lease has ended.
    """
    master_key = MasterKey.load_or_create(settings.master_key_path)
    store = await Store.open(
        settings.database_path, master_key, busy_timeout=settings.db_busy_timeout
    )
    try:
        journal = await Journal.open(settings.journal_path, busy_timeout=settings.db_busy_timeout)
        try:
            async with (
                gateway_sessions(settings) as (streams, control),
                _running_bot(
                    settings, _Opened(store, journal, streams, control), client_key
                ) as veil,
            ):
                if recover_all:
                    recovered = await veil.credit.recover(0)
                    if recovered:
                        log.warning("bot.holds_recovered", count=recovered)
                    # Answers a process that died was delivering: this one delivers them now.
                    if undelivered := await veil.chat.deliveries.release_undelivered():
                        log.warning("bot.undelivered_released", count=undelivered)
                    # The payment desk's claims left by a process that died (none runs beside).
                    if claims := await veil.desk.journal.release_all():
                        log.warning("payments.claims_released", count=claims)
                    # The TON watcher's claims to tell a payment, likewise.
                    ton_books = veil.ton_books
                    notices = 0 if ton_books is None else await ton_books.release_notices()
                    if notices:
                        log.warning("ton.notice_claims_released", count=notices)
                async with _background(veil, sweep_every), _webapp(veil):
                    yield veil
        finally:
            await journal.close()
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _running_bot(
    settings: BotSettings, opened: _Opened, client_key: ed25519.Ed25519PrivateKey
) -> AsyncIterator[Veil]:
    """Build the services, the Bot and the Dispatcher; close the Bot's session at the end."""
    store, journal, streams, control = opened.store, opened.journal, opened.streams, opened.control
    catalogs = Catalogs()
    inference = InferenceClient(
        settings.gateway_urls,
        settings.verify_keys,
        streams,
        client_key=client_key,
        control_session=control,
        pool_wait=settings.gateway_wait,
        stop_grace=settings.stop_grace,
    )
    credit = Credit(store, settings.price_table, settings.free_tokens_per_day)
    shop = Shop(store, settings.packs, settings.plan)
    metrics = BotMetrics()
    chat = MeteredChatService(
        metrics=metrics,
        store=store,
        inference=inference,
        credit=credit,
        default_model=settings.default_model,
        context_tokens=settings.context_tokens,
        max_answer_tokens=settings.max_answer_tokens,
        min_answer_tokens=settings.min_answer_tokens,
        max_answer_seconds=settings.max_answer_seconds,
        stop_grace=settings.stop_grace,
        system_prompt=settings.system_prompt,
        titles=settings.conversation_titles,
    )
    prepare_models()  # what answering uses of aiogram, built now: not mid-answer
    bot = build_bot(settings.bot_token.get_secret_value(), str(settings.telegram_api))
    dispatcher = build_dispatcher(catalogs, settings.admin_ids, settings.updates_in_hand)
    # A poll asks for what fits; outside the journal, so a batch it refuses (fetched again)
    # is not taken in.
    bot.session.middleware(PollIntake(dispatcher[INTAKE]))
    desk = PaymentDesk(PaymentJournal(journal, shop, credit), bot, catalogs, settings.admin_ids)
    bot.session.middleware(JournalMiddleware(desk))
    dispatcher["chat"] = chat
    dispatcher["credit"] = credit
    dispatcher["shop"] = shop
    dispatcher["plan_cancels"] = PlanCancels(store, functools.partial(cancel_subscription, bot))
    dispatcher["store"] = store
    dispatcher["catalogs"] = catalogs
    dispatcher["desk"] = desk
    dispatcher["drafts"] = functools.partial(
        DraftSink,
        bot,
        interval=settings.draft_interval,
        show_reasoning=settings.show_reasoning,
        rich=settings.rich_messages,
        retry_wait=settings.final_retry_wait,
    )
    editors = Editors(
        bot,
        Pace(
            interval=settings.edit_interval,
            group_per_minute=settings.group_messages_per_minute,
            inline_per_minute=settings.group_messages_per_minute,
            notice_seconds=settings.notice_seconds,
        ),
        rich=settings.rich_messages,
        show_reasoning=settings.show_reasoning,
    )
    dispatcher["editors"] = editors
    dispatcher["kit"] = GroupKit(chat, editors, Groups(store))
    dispatcher["prices"] = settings.price_table
    dispatcher["min_answer_tokens"] = settings.min_answer_tokens
    dispatcher["paysupport_text"] = settings.paysupport_text
    dispatcher["terms_text"] = settings.terms_text
    relay = RelayService(
        inference.pool,
        credit,
        streams,
        ControlClient(control),
        client_key=client_key,
        default_model=settings.default_model,
        context_tokens=settings.context_tokens,
        max_answer_tokens=settings.max_answer_tokens,
        min_answer_tokens=settings.min_answer_tokens,
        max_answer_seconds=settings.max_answer_seconds,
        stop_grace=settings.stop_grace,
        pool_wait=settings.gateway_wait,
    )
    served = settings.webapp_url is not None
    dispatcher["webapp_url"] = str(settings.webapp_url) if served else None
    dispatcher["webapp_sha256"] = bundle_sha256() if served else None
    operations = Operations(
        metrics, store, credit, dispatcher[IN_FLIGHT], dispatcher[INTAKE], journal
    )
    operations.watch(bot, dispatcher)
    try:
        async with ton_parts(settings, store) as ton:
            veil = Veil(
                settings, bot, dispatcher, store, chat, credit, shop, catalogs, desk, operations
            )
            veil.relay = relay
            dispatcher["ton"] = None if ton is None else ton.shop
            dispatcher["failures"] = Failures(
                bot, shop, settings.min_answer_tokens, None if ton is None else ton.shop
            )
            dispatcher["ton_books"] = None if ton is None else ton.books
            if ton is not None:
                veil.ton_books = ton.books
                veil.ton_watcher = ton.watcher(ton_handlers.TonNotifier(bot, catalogs), settings)
            yield veil
    finally:
        await editors.close()
        await bot.session.close()


@contextlib.asynccontextmanager
async def _background(veil: Veil, sweep_every: float) -> AsyncIterator[None]:
    """Run the payment desk and upkeep; on exit, let answers finish, then stop both loops."""
    loops = [
        asyncio.create_task(veil.desk.run(), name="veil-payments"),
        asyncio.create_task(upkeep(veil, sweep_every), name="veil-upkeep"),
    ]
    if veil.ton_watcher is not None:
        loops.append(asyncio.create_task(veil.ton_watcher.run(), name="veil-ton-watcher"))
    try:
        yield
    finally:
        await veil.chat.close()
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def _webapp(veil: Veil) -> AsyncIterator[None]:
    """Serve the Mini App when ``VEIL_WEBAPP_URL`` is set; its answers settle on the way out."""
    settings = veil.settings
    if settings.webapp_url is None or veil.relay is None:
        yield
        return
    check = InitDataCheck(settings.bot_token.get_secret_value(), settings.webapp_max_age)
    page = Page(*load_page(settings.verify_keys))
    framers = settings.webapp_frame_ancestors.split()
    app = build_webapp(
        veil.relay,
        check,
        page,
        webapp_prefix(settings),
        framers,
        client_timeout=settings.webapp_client_timeout,
    )
    async with serving_webapp(app, settings, veil.relay) as url:
        veil.webapp = url
        yield


async def upkeep(veil: Veil, every: float) -> None:
    """Every ``every`` seconds: release stale holds, purge expired orders and old entries.

    First, and after each sweep, the answers charged whose final message never went out (a
    crash, Telegram down) are delivered (``deliver_again``), the refunded plans'
    cancellations still owed (a crash after the refund, Telegram down) are sent
    (``services.shop_cancel``), and the users whose answers a restart (or the sweep) cut off
    are told so (``handlers.chat.tell_interrupted``).
    """
    cancels: PlanCancels = veil.dispatcher["plan_cancels"]
    while True:
        try:
            await veil.chat.deliveries.deliver_undelivered(functools.partial(deliver_again, veil))
        except VeilError:
            log.exception("bot.upkeep_failed")
        try:
            await cancels.send()
        except VeilError:
            log.exception("bot.upkeep_failed")
        try:
            await chat_handlers.tell_interrupted(veil.bot, veil.catalogs, veil.credit)
        except BillingError:
            log.exception("bot.upkeep_failed")
        veil.upkept.set()
        await asyncio.sleep(every)
        try:
            await sweep(veil)
            await veil.shop.purge_expired_orders()
            await veil.desk.journal.purge()
        except (BillingError, StorageError):
            log.exception("bot.upkeep_failed")


async def sweep(veil: Veil) -> int:
    """Release the holds a crash left (older than an answer can run), sparing every running one.

    The chat service's answers (and their titles) are its own to spare; the Mini App's are the
    relay's, which the service does not see.
    """
    return await veil.chat.sweep(spare=veil.relay.holding() if veil.relay is not None else ())


async def deliver_again(veil: Veil, answer: Undelivered) -> Sent | Progress:
    """Deliver one answer a crash (or Telegram, down) kept from its user, as its surface allows.

    A private chat's is sent anew (its draft, a 30-second preview, is gone: there is no message
    to edit); a group's is edited into its placeholder and an inline or guest answer into its
    inline message (the only way to reach them: the bot cannot post in that chat), which
    shows it once however often it is made. A private answer's messages Telegram took before
    (``answer.progress``) are not sent again; of one not taken whole now, those it took are
    what comes back (the next pass goes on from there), each recorded as it is taken
    (``Deliveries.took``). A refusal for good (the bot blocked, the message deleted) is not
    tried again; a flood wait or a 5xx past the tries leaves it to the next pass.

    A private answer looks like the live one: it replies to its question (if that is gone, it
    goes out all the same) and is followed by the note and button the live one had
    (``handlers.chat.note_ending``: Continue, or where it broke off and Retry).
    """
    place, finish = answer.place, answer.finish
    texts = veil.catalogs.for_language(answer.language)
    sink: DraftSink | None = None
    try:
        if place.edited:
            editors: Editors = veil.dispatcher["editors"]
            return await editors.edit_again(place, answer.text, texts("read_whole"))
        if place.chat_id is None:
            return "refused"
        sink = veil.dispatcher["drafts"](
            place.chat_id, thread_id=place.thread_id, reply_to=finish.reply_to
        )
        sink.recording(functools.partial(veil.chat.deliveries.took, answer.request_id))
        await sink.complete(answer.text, answer.progress)
        await chat_handlers.note_ending(sink, texts, answer.request_id, finish)
    except TELEGRAM_LATER as exc:
        if went_out(exc):
            return "sent"
        return "later" if sink is None else sink.progress
    except TelegramAPIError as exc:
        log.warning("bot.redelivery_refused", error=type(exc).__name__)
        return "refused"
    return "sent"


async def register_commands(veil: Veil) -> None:
    """Tell Telegram the command list, in every language, and the Mini App's menu button."""
    for language in veil.catalogs.languages:
        texts = veil.catalogs.for_language(language)
        commands = [BotCommand(command=c, description=texts(f"cmd_{c}")) for c in COMMANDS]
        code = None if language == FALLBACK else language
        await veil.bot.set_my_commands(commands, language_code=code)
        in_groups = [BotCommand(command=c, description=texts(f"cmd_{c}")) for c in GROUP_COMMANDS]
        await veil.bot.set_my_commands(
            in_groups, scope=BotCommandScopeAllGroupChats(), language_code=code
        )
    await set_menu_button(veil.bot, veil.settings, veil.catalogs.for_language(FALLBACK))


@contextlib.contextmanager
def stop_signals() -> Iterator[Stopping]:
    """From now on, SIGINT and SIGTERM ask for a stop instead of ending the process.

    Taken first thing, so a signal during start-up (holds recovered, bundles fetched,
    commands registered) still ends in a graceful shutdown once start-up is done; a second
    one cuts the grace short (``Stopping``).

    Once served, they are ignored: the loop letting them go puts Python's own handling back,
    and a signal while it closes and the claim is let go killed the stopped bot (exit -15, no
    line) or ended it in KeyboardInterrupt's traceback. ``bot.__main__.main`` puts its
    caller's handlers back when it returns.
    """
    stopping = Stopping()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.signalled, signum)
    try:
        yield stopping
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)


async def poll_until(veil: Veil, stop: asyncio.Event) -> None:
    """Long-poll until ``stop`` is set (at once if it is), then end polling as aiogram does."""
    if stop.is_set():
        return
    dispatcher = veil.dispatcher
    polling = asyncio.create_task(
        dispatcher.start_polling(
            veil.bot,
            allowed_updates=dispatcher.resolve_used_update_types(),
            handle_signals=False,  # ``stop_signals`` has them
            close_bot_session=False,
        )
    )
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({polling, stopped}, return_when=asyncio.FIRST_COMPLETED)
        while not polling.done():
            try:
                await dispatcher.stop_polling()
            except RuntimeError:  # "Polling is not started": it is about to be
                await asyncio.sleep(0.01)
        await polling
    finally:
        stopped.cancel()


async def run_polling(settings: BotSettings, client_key: ed25519.Ed25519PrivateKey) -> None:
    """Serve with long polling until SIGINT/SIGTERM, then shut down gracefully."""
    with stop_signals() as stopping:
        await _run_polling(settings, client_key, stopping)


async def _run_polling(
    settings: BotSettings, client_key: ed25519.Ed25519PrivateKey, stopping: Stopping
) -> None:
    stop = stopping.stop
    async with (
        running_veil(settings, client_key) as veil,
        serving_operations(
            veil.operations,
            settings.bot_metrics_host,
            settings.bot_metrics_port,
            guard=metrics_guard(settings),
        ),
    ):
        conflicts = PollingConflicts(settings.poll_conflict_limit, stop.set)
        veil.bot.session.middleware(conflicts)
        veil.desk.stop_serving = stop.set  # a journal newer code migrated: see ``record``
        me = await until_stopped(stop, _start_polling(veil))
        if me is not None:
            log.info(
                "bot.started",
                mode="polling",
                username=me.username,
                bot_id=me.id,
                frozen_objects=freeze_startup(),
            )
            await poll_until(veil, stop)
        await drain(
            veil.operations.in_flight,
            veil.chat,
            settings.shutdown_grace,
            veil.relay,
            stopping=stopping,
        )
        log.info("bot.stopped")
    if conflicts.failure is not None:
        raise conflicts.failure
    if veil.desk.outdated is not None:
        raise veil.desk.outdated


async def _start_polling(veil: Veil) -> User:
    """Tell Telegram who serves and how (no webhook, the commands), fetch the bundles."""
    me = await veil.bot.get_me()
    await veil.bot.delete_webhook(drop_pending_updates=False)
    await register_commands(veil)
    await veil.chat.models()  # the bundles; a default model or price no gateway serves is told
    return me


async def until_stopped(stop: asyncio.Event, start_up: Coroutine[Any, Any, T]) -> T | None:
    """Run ``start_up`` to its end, or until ``stop`` is set: then it is cancelled, and None.

    A start-up call Telegram leaves unanswered waits out aiogram's timeout (60 s), and the next
    one after it; a signal meanwhile ends start-up where it stands (nothing is served yet).
    """
    task = asyncio.ensure_future(start_up)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled():
        log.info("bot.start_up_abandoned")
        return None
    return task.result()


@contextlib.asynccontextmanager
async def running_webhook(veil: Veil) -> AsyncIterator[int]:
    """Serve the webhook on ``VEIL_WEBHOOK_HOST:VEIL_WEBHOOK_PORT``; yields the bound port.

    Telegram keeps its connections open between updates; one idle for the header timeout is
    closed (it opens another), as is one past the listener's cap (``bot.listeners``). On the
    way out a request still being read or journaled is cut within ``WEBHOOK_STOP_WAIT_S``
    (``webhook.cut_by_stop``): Telegram delivers an update it got no answer for again.

    The caller tells Telegram the public URL (``set_webhook``) once it listens.
    """
    settings = veil.settings
    if settings.webhook_url is None or settings.webhook_secret is None:
        raise ValueError("webhook mode needs VEIL_WEBHOOK_URL and VEIL_WEBHOOK_SECRET")
    secret = settings.webhook_secret.get_secret_value()
    guard = listener_guard(settings)
    app = guard_app(web.Application(), guard)
    path = settings.webhook_url.path or "/"
    hook = VeilWebhook(
        veil.dispatcher,
        veil.bot,
        secret=secret,
        desk=veil.desk,
        order=veil.dispatcher[ORDER],
        intake=veil.dispatcher[INTAKE],
        body_timeout=settings.webhook_body_timeout,
    )
    hook.register(app, path)
    setup_application(app, veil.dispatcher, bot=veil.bot)
    runner = stopping_runner(app, cut_within=WEBHOOK_STOP_WAIT_S)
    await runner.setup()
    try:
        site = GuardedSite(runner, settings.webhook_host, settings.webhook_port, guard=guard)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def _start_webhook(veil: Veil, url: str, secret: str) -> bool:
    """Tell Telegram the commands and the webhook's URL (it listens already); True."""
    await register_commands(veil)
    await veil.bot.set_webhook(
        url, secret_token=secret, allowed_updates=veil.dispatcher.resolve_used_update_types()
    )
    return True


async def run_webhook(settings: BotSettings, client_key: ed25519.Ed25519PrivateKey) -> None:
    """Serve a webhook (secret header checked) until SIGINT/SIGTERM, then shut down gracefully."""
    with stop_signals() as stopping:
        await _run_webhook(settings, client_key, stopping)


async def _run_webhook(
    settings: BotSettings, client_key: ed25519.Ed25519PrivateKey, stopping: Stopping
) -> None:
    stop = stopping.stop
    if settings.webhook_url is None or settings.webhook_secret is None:
        raise ValueError("webhook mode needs VEIL_WEBHOOK_URL and VEIL_WEBHOOK_SECRET")
    refused = RefusedToken(stop.set)  # installed once started: start-up tells its own 401
    async with (
        running_veil(settings, client_key, recover_all=False) as veil,
        serving_operations(
            veil.operations,
            settings.bot_metrics_host,
            settings.bot_metrics_port,
            guard=metrics_guard(settings),
        ),
    ):
        async with running_webhook(veil) as port:
            url, secret = str(settings.webhook_url), settings.webhook_secret.get_secret_value()
            if await until_stopped(stop, _start_webhook(veil, url, secret)):
                veil.bot.session.middleware(refused)
                log.info("bot.started", mode="webhook", port=port, frozen_objects=freeze_startup())
                await stop.wait()
        # No longer listening: Telegram keeps new updates for later.
        await drain(
            veil.operations.in_flight,
            veil.chat,
            settings.shutdown_grace,
            veil.relay,
            stopping=stopping,
        )
        log.info("bot.stopped")
    if refused.failure is not None:
        raise refused.failure
