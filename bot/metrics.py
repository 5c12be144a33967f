"""The bot's operations endpoints: Prometheus ``/metrics`` and ``/health`` on a port of their own.

They listen on ``VEIL_BOT_METRICS_HOST``:``VEIL_BOT_METRICS_PORT`` (loopback by default), never
on the webhook's port. What they show, from the bot's own registry:

- answers by outcome (``complete``, ``length``, ``time_limit``, ``stopped``, or the error that
  ended them, ``model_stalled``, ``insufficient_credit``…) and charges by ledger outcome;
- two stream latencies: from the question to the first text the user sees (the first draft,
  or the final message when no draft went out), and from the answer's last token to its final
  message sent (receipt, settlement and delivery);
- Telegram's 429s and errors by Bot API method (a session middleware sees every call);
- answers and updates in progress, holds open (count and µ★), and the ledger's totals (users, Stars
  received and refunded, refunds, flagged payments, tokens used today), read at each scrape.

Labels carry outcomes, method names and error class names only: never text, user ids,
tokens or request ids. ``/health`` is 200 while the dispatcher takes updates, the database
answers within ``HEALTH_TIMEOUT_S`` and the database and the payment journal take writes, else
503 with the reason.

Taking writes is read from the writes themselves (``models.database``: ``write_failure``), not
probed with a write at each ``/health``: a probe would fail under a lock held for a moment (a
``reconcile --fix``, a backup's copy) and pass where a growing write fails (a probe's page may
fit on a full disk, where a write that fits succeeds between ones that fail). So a write that
failed because the file would not take it (a full disk, a file or mount made read-only, an I/O
error) makes ``/health`` 503 for ``WRITE_FAILURE_WINDOW_S`` after it: failing writes keep it
503, and it recovers that long after the last one. One failed by a lock held past
``VEIL_DB_BUSY_TIMEOUT`` stays 503 only while the lock is held: a change committed clears it,
and so does ``/health`` taking the lock within ``LOCK_PROBE_WAIT_S`` (and letting it go, writing
nothing), so a quiet bot recovers when the other process lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramRetryAfter
from aiogram.methods import SendMessageDraft
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.listeners import METRICS_CONNECTIONS
from bot.order import ORDER, UpdateOrder
from common.connections import ConnectionGuard, GuardedSite, guard_app
from models import StorageError
from models.outbox import Progress
from services.chat import ChatService
from services.errors import LedgerUnavailable, VeilError
from services.questions import Answer, AnswerSink, CountingSink, Followup, Question, ReasoningSink

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from aiogram import Bot, Dispatcher
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType

    from bot.intake import Intake
    from bot.shutdown import InFlight
    from models import Store
    from models.journal import Journal
    from services.credit import Credit, Hold

log = structlog.get_logger("veil.metrics")

HEALTH_TIMEOUT_S = 2.0
# How long /health waits for a write lock whose holding failed the latest write: a lock held for
# a moment more (another process's commit) is no failure.
LOCK_PROBE_WAIT_S = 1.0
# How long a write that failed for a full disk, a read-only file or an I/O error keeps /health
# at 503: longer than compose's health check takes to call a bot unhealthy (3 tries 10 s apart).
WRITE_FAILURE_WINDOW_S = 60.0
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120)
_FINISH_OUTCOMES = {"stop": "complete", "length": "length", "time_limit": "time_limit"}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def error_label(error: BaseException) -> str:
    """An error's class name in snake case (``ModelStalled`` → ``model_stalled``)."""
    return _CAMEL.sub("_", type(error).__name__).lower()


class BotMetrics:
    """The bot's counters, gauges and histograms, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "veil_bot_answers",
            "Answers by outcome: how the stream ended, or the error that ended it.",
            ["outcome"],
            registry=self.registry,
        )
        self.charges = Counter(
            "veil_bot_charges",
            "Answers' holds closed, by ledger outcome (settled from a receipt, estimated…).",
            ["outcome"],
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "veil_bot_answers_in_progress", "Answers being written now.", registry=self.registry
        )
        self.updates_in_progress = Gauge(
            "veil_bot_updates_in_progress",
            "Updates being handled now (read at each scrape).",
            registry=self.registry,
        )
        self.updates_in_hand = Gauge(
            "veil_bot_updates_in_hand",
            "Updates counted against VEIL_UPDATES_IN_HAND now (read at each scrape).",
            registry=self.registry,
        )
        self.intake_waits = Counter(
            "veil_bot_intake_waits",
            "Polls and webhook deliveries that waited for room among the updates in hand.",
            registry=self.registry,
        )
        self.updates_dropped = Counter(
            "veil_bot_updates_dropped",
            "Updates let go unhandled: past the most one user's private chat may have waiting.",
            registry=self.registry,
        )
        self.first_text = Histogram(
            "veil_bot_first_text_seconds",
            "From the question to the first text the user sees (a draft or the final message).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.final_message = Histogram(
            "veil_bot_final_message_seconds",
            "From an answer's last token to its final message sent.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.telegram_rate_limited = Counter(
            "veil_bot_telegram_rate_limited",
            "Bot API calls answered 429 (retry after), by method.",
            ["method"],
            registry=self.registry,
        )
        self.telegram_errors = Counter(
            "veil_bot_telegram_errors",
            "Bot API calls that failed otherwise, by method and error.",
            ["method", "error"],
            registry=self.registry,
        )
        self.holds_open = Gauge(
            "veil_bot_holds_open", "Credit holds not yet closed.", registry=self.registry
        )
        self.held_units = Gauge(
            "veil_bot_held_units", "µ★ held by the open holds.", registry=self.registry
        )
        self.ledger = Gauge(
            "veil_bot_ledger",
            "Ledger totals: users, active_today, tokens_today, stars_received, refunds,"
            " stars_refunded, flagged.",
            ["figure"],
            registry=self.registry,
        )
        self.ledger_unavailable = Counter(
            "veil_bot_ledger_unavailable",
            "Scrapes whose ledger figures could not be read (the previous ones are shown).",
            registry=self.registry,
        )
        self._first_text_waits: dict[int, _Timing] = {}

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

    def await_first_text(self, draft_id: int, timing: _Timing) -> None:
        """Time the answer shown in draft ``draft_id`` until its first draft reaches Telegram."""
        self._first_text_waits[draft_id] = timing

    def forget_draft(self, draft_id: int) -> None:
        """The answer in draft ``draft_id`` is over: a late draft of it is not its first text."""
        self._first_text_waits.pop(draft_id, None)

    def draft_shown(self, draft_id: int) -> None:
        """A draft reached Telegram: the first one of an answer is its first visible text."""
        timing = self._first_text_waits.pop(draft_id, None)
        if timing is not None:
            timing.text_shown(self)


@dataclass(slots=True)
class _Timing:
    """When one answer was asked for, showed text, and got its last token (monotonic)."""

    asked: float = field(default_factory=time.monotonic)
    shown: bool = False
    last_token: float | None = None

    def text_shown(self, metrics: BotMetrics) -> None:
        if not self.shown:
            self.shown = True
            metrics.first_text.observe(time.monotonic() - self.asked)


class TimedSink:
    """An ``AnswerSink`` that notes when tokens arrive and when the final message went out."""

    __slots__ = ("_metrics", "_sink", "_timing")

    def __init__(self, sink: AnswerSink, timing: _Timing, metrics: BotMetrics) -> None:
        self._sink = sink
        self._timing = timing
        self._metrics = metrics

    async def begin(self) -> None:
        """As the wrapped sink."""
        await self._sink.begin()

    async def append(self, delta: str) -> None:
        """As the wrapped sink; the time is the latest token's."""
        self._timing.last_token = time.monotonic()
        await self._sink.append(delta)

    async def complete(self, text: str) -> None:
        """Send the final message, then observe how long it took after the last token."""
        await self._sink.complete(text)
        if text:
            self._timing.text_shown(self._metrics)
        if self._timing.last_token is not None:
            self._metrics.final_message.observe(time.monotonic() - self._timing.last_token)

    async def abort(self) -> None:
        """As the wrapped sink."""
        await self._sink.abort()

    @property
    def progress(self) -> Progress:
        """As the wrapped sink, where it counts its messages taken (``CountingSink``)."""
        return self._sink.progress if isinstance(self._sink, CountingSink) else Progress()

    def recording(self, record: Callable[[Progress], Awaitable[None]]) -> None:
        """As the wrapped sink, where it counts its messages taken (``CountingSink``)."""
        if isinstance(self._sink, CountingSink):
            self._sink.recording(record)

    def kept(self) -> None:
        """As the wrapped sink, where it counts its messages taken (``CountingSink``)."""
        if isinstance(self._sink, CountingSink):
            self._sink.kept()

    async def reason(self, delta: str) -> None:
        """As the wrapped sink, when it shows a model's thinking (else the thinking is dropped)."""
        if isinstance(self._sink, ReasoningSink):
            await self._sink.reason(delta)


@dataclass
class MeteredChatService(ChatService):
    """The chat service, counting each answer's outcome and timing its stream."""

    metrics: BotMetrics = field(default_factory=BotMetrics)

    def start(self, question: Question, sink: AnswerSink, followup: Followup) -> None:
        """``ChatService.start``, counting a refusal to start (busy, erasing) as an outcome.

        ``answer`` counts the rest; an answer ``start`` refuses never gets there.
        """
        try:
            super().start(question, sink, followup)
        except VeilError as exc:
            self.metrics.answers.labels(outcome=error_label(exc)).inc()
            raise

    async def answer(self, question: Question, sink: AnswerSink) -> Answer:
        """``ChatService.answer``, observed (a private chat's draft by its id)."""
        draft_id = question.stop_tag if isinstance(question.stop_tag, int) else None
        timing = _Timing()
        if draft_id is not None:
            self.metrics.await_first_text(draft_id, timing)
        self.metrics.in_progress.inc()
        try:
            answer = await super().answer(question, TimedSink(sink, timing, self.metrics))
        except VeilError as exc:
            self.metrics.answers.labels(outcome=error_label(exc)).inc()
            raise
        finally:
            self.metrics.in_progress.dec()
            if draft_id is not None:
                self.metrics.forget_draft(draft_id)
        if answer.stopped:
            outcome = "stopped"
        else:
            outcome = _FINISH_OUTCOMES.get(answer.finish_reason or "", "other")
        self.metrics.answers.labels(outcome=outcome).inc()
        if answer.outcome is not None:
            self.metrics.charges.labels(outcome=answer.outcome).inc()
        return answer


class TelegramMetrics(BaseRequestMiddleware):
    """Counts the Bot API's 429s and errors by method; notes each answer's first draft shown."""

    def __init__(self, metrics: BotMetrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Call the method and count how it failed, if it did."""
        name = method.__api_method__
        try:
            response = await make_request(bot, method)
        except TelegramRetryAfter:
            self.metrics.telegram_rate_limited.labels(method=name).inc()
            raise
        except (TelegramAPIError, ClientDecodeError) as exc:  # a proxy's page: unreadable_reply
            self.metrics.telegram_errors.labels(method=name, error=error_label(exc)).inc()
            raise
        if isinstance(method, SendMessageDraft):
            self.metrics.draft_shown(method.draft_id)
        return response


@dataclass
class Operations:
    """What ``/metrics`` and ``/health`` read: the metrics, the store, and whether updates flow."""

    metrics: BotMetrics
    store: Store
    credit: Credit
    in_flight: InFlight  # the dispatcher's middleware that counts updates being handled
    intake: Intake  # its outermost, which bounds the updates taken in (``bot.intake``)
    journal: Journal  # the payment journal: a file of its own, which must take writes too
    taking_updates: bool = False
    write_failure_window: float = WRITE_FAILURE_WINDOW_S

    def watch(self, bot: Bot, dispatcher: Dispatcher) -> None:
        """Count ``bot``'s API calls; follow the dispatcher (its ``in_flight`` counts updates)."""
        bot.session.middleware(TelegramMetrics(self.metrics))
        self.intake.on_full = self.metrics.intake_waits.inc
        order = dispatcher.get(ORDER)
        if isinstance(order, UpdateOrder):
            order.on_dropped = self.metrics.updates_dropped.inc
        dispatcher.startup.register(self._started)
        dispatcher.shutdown.register(self._stopped)

    async def _started(self) -> None:
        self.taking_updates = True

    async def _stopped(self) -> None:
        self.taking_updates = False

    async def health(self) -> str | None:
        """None when healthy, else what is wrong (in words, for the operator)."""
        if not self.taking_updates:
            return "the dispatcher is not taking updates"
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await self.store.user_count()
        except (StorageError, OSError, TimeoutError):
            return "the database does not answer"
        for name, file in (("the database", self.store), ("the payment journal", self.journal)):
            problem = await _unwritable(name, file, self.write_failure_window)
            if problem is not None:
                return problem
        return None

    async def refresh(self) -> None:
        """Read the ledger's figures into the gauges (the previous ones stay on failure)."""
        self.metrics.updates_in_progress.set(self.in_flight.count)
        self.metrics.updates_in_hand.set(self.intake.count)
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                stats = await self.credit.stats()
                holds: list[Hold] = await self.credit.open_holds()
        except (LedgerUnavailable, StorageError, OSError, TimeoutError):
            self.metrics.ledger_unavailable.inc()
            log.warning("metrics.ledger_unavailable")
            return
        self.metrics.holds_open.set(len(holds))
        self.metrics.held_units.set(sum(hold.units for hold in holds))
        figures: dict[str, Any] = {
            "users": stats.users,
            "active_today": stats.active_today,
            "tokens_today": stats.tokens_today,
            "stars_received": stats.stars_received,
            "refunds": stats.refunds,
            "stars_refunded": stats.stars_refunded,
            "flagged": stats.flagged,
        }
        for figure, value in figures.items():
            self.metrics.ledger.labels(figure=figure).set(value)


async def _unwritable(name: str, file: Store | Journal, window: float) -> str | None:
    """What keeps ``file`` from taking writes, in words; None while its writes work."""
    failure = file.write_failure
    if failure is None:
        return None
    if failure.locked:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                if await file.probe_lock(LOCK_PROBE_WAIT_S):
                    return None
        except TimeoutError:  # its thread is busy with writes waiting for that lock
            pass
        return f"{name} does not take writes: another process holds its lock ({failure.code})"
    if time.monotonic() - failure.at > window:
        return None
    return f"{name} does not take writes: a write failed within {window:g} s ({failure.code})"


_OPERATIONS: web.AppKey[Operations] = web.AppKey("operations", Operations)


async def handle_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the Prometheus text, with the ledger's figures read just now."""
    operations = request.app[_OPERATIONS]
    await operations.refresh()
    return web.Response(body=operations.metrics.render(), content_type="text/plain")


async def handle_health(request: web.Request) -> web.Response:
    """``GET /health``: 200 ``ok``, or 503 and the reason."""
    problem = await request.app[_OPERATIONS].health()
    if problem is None:
        return web.Response(text="ok\n")
    return web.Response(status=503, text=problem + "\n")


def build_operations_app(operations: Operations) -> web.Application:
    """The operator's application: ``GET /metrics`` and ``GET /health``."""
    app = web.Application()
    app[_OPERATIONS] = operations
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/health", handle_health)
    return app


@contextlib.asynccontextmanager
async def serving_operations(
    operations: Operations, host: str, port: int, *, guard: ConnectionGuard | None = None
) -> AsyncIterator[str]:
    """Serve ``/metrics`` and ``/health`` on ``host:port`` (0: a free port); yields the base URL.

    Behind ``guard`` (``bot.listeners.metrics_guard``; by default its cap and a 10 s header
    timeout): a connection past the cap is closed at once, one without a whole head in time
    closes.
    """
    if guard is None:
        guard = ConnectionGuard(max_connections=METRICS_CONNECTIONS, header_timeout=10.0)
    runner = web.AppRunner(guard_app(build_operations_app(operations), guard), access_log=None)
    await runner.setup()
    try:
        site = GuardedSite(runner, host, port, guard=guard)
        await site.start()
        bound = runner.addresses[0][1]
        url = f"http://{host}:{bound}"
        log.info("bot.operations_listening", url=url)
        yield url
    finally:
        await runner.cleanup()
