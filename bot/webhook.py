"""The webhook: Telegram's POSTs, checked, with payments journaled before the answer.

aiogram's ``SimpleRequestHandler`` skips the secret check when the secret is empty and answers
HTTP 500 when the header holds non-ASCII characters (``secrets.compare_digest`` refuses them).
``VeilWebhook`` checks the header itself: a missing or malformed one (wrong characters, wrong
length, non-ASCII) or a wrong one gets 401 and changes nothing. The body is read whole within
``VEIL_WEBHOOK_BODY_TIMEOUT``: one that stalls gets 408 and the connection is closed, one over
``BODY_LIMIT`` gets 413, one that is not an update 400, as does one sent compressed (with a
``Content-Encoding``, which Telegram never sends): refused unread, never inflated. A payment
or refund update is written to the payment journal before the answer, and a journal that
cannot be written gets 503, so Telegram delivers the update again later. Every update is then
handled in the background, as aiogram does, so Telegram is answered at once (once there is
room for it among the updates in hand, ``bot.intake``: before that its body is not read, and
Telegram holds the rest of a burst); it takes its place
among its user's updates (``bot.order``) as it arrives, so a payment journaled first is handled
before the question that came after it. At a stop, a request still being read or journaled
is cut after a few seconds (``webhook.cut_by_stop``) rather than holding the stop up: Telegram
delivers an update it got no answer for again.

Telegram delivers an update again whenever it did not see the answer to a delivery (the
connection broke on the way back, the answer was late), with the same ``update_id``, which is
there to recognise it by (Bot API, ``Update``). An update whose id is among the last
``RECENT_UPDATES`` taken is answered 200 and not handled again: the user is not answered, nor
charged, twice for one question. (Payments are idempotent besides, by their charge id.)
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import structlog
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError

from bot.order import TURN
from bot.payments import entry_from_update
from bot.telegram import unreadable_update
from common.connections import (
    BodyEncoded,
    BodyRefused,
    BodyTimedOut,
    BodyTooLarge,
    read_body,
    send_and_close,
)
from services.errors import JournalUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiogram import Bot, Dispatcher

    from bot.intake import Intake
    from bot.order import Turn, UpdateOrder
    from bot.payments import PaymentDesk

log = structlog.get_logger("veil.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 -- a header name
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}", re.ASCII)
# The most bytes of an update: far above any Telegram sends (aiohttp's own default cap).
BODY_LIMIT = 1 << 20
# How many of the latest update ids are remembered: an hour of 30 updates a second (Telegram
# does not say how long it goes on retrying); about 14 MB when full (some 140 bytes an id).
RECENT_UPDATES = 100_000
# Seconds without any update after which every remembered id is forgotten (a day: far less than
# Telegram's week, far more than its retries of a delivery it missed).
QUIET_RESET = 86_400.0
_REASONS = {408: "Request Timeout", 413: "Payload Too Large", 400: "Bad Request"}


class RecentUpdates:
    """The ids of the latest updates taken, the oldest forgotten past ``size``.

    After ``quiet`` seconds without an update all are forgotten: Telegram picks the next
    update_id at random after a week without updates (Bot API, ``Update``), and a new sequence
    must not run into ids of the old one.
    """

    def __init__(
        self,
        size: int = RECENT_UPDATES,
        *,
        quiet: float = QUIET_RESET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size = size
        self._quiet = quiet
        self._clock = clock
        self._last = clock()
        self._ids: OrderedDict[int, None] = OrderedDict()

    def take(self, update_id: int) -> bool:
        """Remember ``update_id``; False when it was taken before (a redelivery)."""
        now = self._clock()
        if now - self._last > self._quiet:
            self._ids.clear()
        self._last = now
        if update_id in self._ids:
            return False
        self._ids[update_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


class VeilWebhook(SimpleRequestHandler):
    """Checks the secret header, journals payment updates, then feeds the dispatcher."""

    def __init__(  # noqa: PLR0913 -- aiogram's two, and what a webhook of Veil's needs
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        secret: str,
        desk: PaymentDesk,
        order: UpdateOrder,
        intake: Intake,
        body_timeout: float = 10.0,
    ) -> None:
        if not secret:
            raise ValueError("a webhook needs a secret")
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret)
        self._secret = secret.encode("ascii")
        self._desk = desk
        self._order = order
        self._intake = intake
        self._body_timeout = body_timeout
        self._taken = RecentUpdates()

    async def close(self) -> None:
        """Leave the Bot's session open: answers still finishing need it; the app closes it."""

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:  # noqa: ARG002 -- aiogram's signature
        """True only for a well-formed header equal to the secret (compared in constant time)."""
        if not _SECRET_SHAPE.fullmatch(telegram_secret_token):
            return False
        return hmac.compare_digest(telegram_secret_token.encode("ascii"), self._secret)

    async def handle(self, request: web.Request) -> web.Response:
        """Refuse, journal, then answer and handle the update in the background."""
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            log.warning("webhook.refused", reason="secret")
            return web.Response(status=401, text="Unauthorized")
        try:
            await self._intake.room()  # a burst waits at Telegram, its body unread
        except asyncio.CancelledError:
            log.info("webhook.cut_by_stop", stage="room")
            raise
        delivery = object()  # in hand from now: other deliveries wait for its room too
        self._intake.take(delivery)
        try:
            return await self._handle(request)
        finally:
            self._intake.give_back(delivery)  # handed on as its update_id, or refused

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await read_body(request, limit=BODY_LIMIT, within=self._body_timeout)
        except BodyRefused as refused:
            return await _refuse_body(request, refused)
        except asyncio.CancelledError:
            # The listener stops (``bot.app.running_webhook``): Telegram sends it again.
            log.info("webhook.cut_by_stop", stage="body")
            raise
        update = self._update(body)
        if not isinstance(update, Update):
            return update
        turn = self._order.take(update)  # its place as it came, before the journal's wait
        handed_on = False
        try:
            entry = entry_from_update(update)
            if entry is not None:
                try:
                    await self._desk.record([entry])
                except JournalUnavailable:
                    log.exception("webhook.journal_unavailable", update_id=update.update_id)
                    return web.Response(status=503, text="Service Unavailable")
                except asyncio.CancelledError:  # the listener stops: Telegram sends it again
                    log.info("webhook.cut_by_stop", stage="journal", update_id=update.update_id)
                    raise
            if not self._taken.take(update.update_id):  # after the journal: a 503 is not taken
                log.info("webhook.redelivered", update_id=update.update_id)
                return web.json_response({})
            self._intake.take(update.update_id)  # until handled (``bot.intake``)
            task = asyncio.create_task(self._feed(update, turn))
            handed_on = True
        finally:
            if not handed_on:  # refused, delivered again, or failed: the user's next go on
                _leave(turn)
        self._background_feed_update_tasks.add(task)
        task.add_done_callback(self._background_feed_update_tasks.discard)
        return web.json_response({})

    def _update(self, body: bytes) -> Update | web.Response:
        """The update in ``body``; else the reply, 400: it is none.

        An update of a kind this aiogram cannot read (Telegram's: the secret says so) stands as
        a poll's does (``bot.telegram.unreadable_update``: its payment alone, or its bare id,
        taken and skipped): refused, it would be sent again and again.
        """
        raw: object = None
        try:
            raw = self.bot.session.json_loads(body.decode("utf-8"))
            return Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError as exc:
            standing = unreadable_update(raw, exc, self.bot, "webhook")
            if standing is not None:
                return standing
        except (ValueError, RecursionError):  # nested past the parser's depth too
            pass
        log.warning("webhook.refused", reason="not an update")
        return web.Response(status=400, text="Bad Request")

    async def _feed(self, update: Update, turn: Turn | None) -> None:
        try:
            result = await self.dispatcher.feed_update(
                self.bot, update, **self.data, **{TURN: turn}
            )
            if isinstance(result, TelegramMethod):
                await self.dispatcher.silent_call_request(bot=self.bot, result=result)
        except Exception:  # the edge: a handler's failure becomes a log line
            log.exception("webhook.update_failed", update_id=update.update_id)
        finally:
            _leave(turn)  # handled, or cancelled before its turn came
            self._intake.give_back(update.update_id)


def _leave(turn: Turn | None) -> None:
    """An update not handled gives up its place: the user's next ones need not wait for it."""
    if turn is not None:
        turn.done()


async def _refuse_body(request: web.Request, refused: BodyRefused) -> web.Response:
    """The reply to a body not read whole: 408 (then closed), 413 or 400."""
    reason = {BodyTimedOut: "body_timeout", BodyTooLarge: "too_large", BodyEncoded: "encoded"}.get(
        type(refused), "malformed"
    )
    log.warning("webhook.refused", reason=reason)
    response = web.Response(status=refused.status, text=_REASONS[refused.status])
    if isinstance(refused, BodyTimedOut):
        await send_and_close(request, response)  # the rest of the body is not worth waiting for
    else:
        response.force_close()  # aiohttp drains what is still sent (bounded), then closes
    return response
