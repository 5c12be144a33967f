r"""The bot's Telegram client: a real aiogram ``Bot`` pointed at any Bot API server, with retries.

aiogram does not retry. ``RetryMiddleware`` sleeps for ``retry_after`` on flood control and
retries, again after each one, up to a minute of waiting in all; it retries once on a Telegram
5xx (unless the caller's ``RETRY_WANTED`` says it is no longer wanted), and the answer to a
query (answered once) once on a broken connection. A caller that must know when its call waits
one out (or must wait it out itself) sets ``FLOOD_WAITS`` for its task.
Draft updates and chat actions are not retried here: a stale draft is worthless, so the answer
sinks skip them and send the next one when Telegram allows.

``TurnTakingSession`` lets a Bot API call build its request only once a connection is free:
aiohttp builds a call's form, request and timers before it waits for one of the session's
connections (100), so under load (hundreds of answers, each with a draft or "typing…" due) every
waiting call held ~13 KB (a ``sendMessage``, its task included); waiting for its turn first,
~6 KB (``tests/test_bot_turns.py``).

Calls are posted as JSON, which the Bot API accepts for any call that uploads no file (those
keep aiogram's multipart form): aiohttp URL-encodes a form one character at a time in Python,
~150 µs for a final message of 1,300 characters, where ``json.dumps`` takes a few.

Its errors never carry the token or a reply: aiohttp's message (which may quote the Bot API's
URL, ``/bot<token>/<method>``) has the token cut out, and a reply that does not decode or
validate raises ``UnreadableReply`` (aiogram's ``ClientDecodeError`` naming what failed, where
aiogram's quotes the whole reply: a proxy's page, or a ``Message`` with its text).

The serving bot (``bot.app``) builds, before it serves, the pydantic models its answers use
(``prepare_models``): aiogram's types and methods are built on their first use
(bot/aiogram_types.py), and aiogram parses each answer from Telegram into ``Response[T]`` for
the method's result type ``T``, a generic model pydantic builds the first time it meets ``T``.
Met first while answering, each stopped the event loop: the first update 0.15 s, the first
final message 0.23 s, the first edit as much again (and when all of aiogram was built at
import, still 5 to 12 ms a ``Response[T]``: the first final messages after a start, all ending
at once, met three of them, 37 ms, measured with ``bench/chat.py`` at 50 users). Built up front
are the calls the bot makes as it answers (``ANSWERING``), the models of their replies,
``Update`` and what the bot builds itself (``ANSWERING_TYPES``): ~0.65 s of CPU at start. A
call outside them (a refund, a group's member looked up) builds its models when first made, a
few ms, most of them. ``build_bot`` builds none: a one-shot command (``bot reconcile``) builds
what it calls when it calls it, and no more.

Telegram's JSON is read by ``loads_repaired``: a lone half of a surrogate pair, which JSON may
escape on its own (``"\ud83d"``: an emoji a client cut in two), becomes U+FFFD, as a browser
shows it. Python keeps it as a lone surrogate, which no UTF-8 encoder takes: such a question
could not be counted, sealed or stored, and the user was told something went wrong.

``StalePresses`` lets a button's press whose callback query Telegram finds too old to answer
go on: the press is carried out, its answer logged as refused. So does a press whose answer
meets flood waits past the query's life. A press already answered is not answered again
(Telegram would refuse it in the same words).

``forget_handled_update`` frees each update once handled: aiogram caches ``Update.event_type``
in an ``lru_cache`` keyed by the update, which kept the last 128 updates (each with its
``Message``, ``Chat`` and ``User``, ~10 KB) alive long after they were handled.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import OrderedDict
from contextvars import ContextVar
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

import structlog
from aiogram import Bot, methods, types
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    AnswerGuestQuery,
    AnswerInlineQuery,
    AnswerPreCheckoutQuery,
    GetUpdates,
    Response,
    SendChatAction,
    SendMessageDraft,
    SendRichMessageDraft,
    TelegramMethod,
)
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from aiohttp import ClientError, ClientTimeout, FormData
from aiohttp.payload import BytesPayload
from pydantic import ValidationError

from bot.intake import waits_elsewhere
from bot.pruned import unread_envelope, without_unread
from common.logs import describe, without_token
from common.waits import retry_after
from sealed.encoding import well_formed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods.base import TelegramType
    from aiogram.types import InputFile, TelegramObject
    from pydantic import BaseModel

log = structlog.get_logger("veil.telegram")

# Drafts (plain and rich) wait out a flood wait in their own loop and then send the text that
# has arrived by then; a retry here would show the refused, older text first.
_NOT_RETRIED = (SendMessageDraft, SendRichMessageDraft, SendChatAction)
# Answers to a query Telegram lets go of within seconds: a flood wait longer than that is not
# waited out (the answer would be refused as too old, and add to the flood). A press's answer
# that is not waited out is let go (``StalePresses``); a checkout's is logged
# (``stars.checkout_unanswered``), and Telegram fails that payment on the user's screen itself.
_SHORT_LIVED = (AnswerInlineQuery, AnswerGuestQuery, AnswerCallbackQuery, AnswerPreCheckoutQuery)
# The longest flood wait taken as said: a longer one (a proxy's 10**400, past a float) is read
# as this, so no wait, pacer or deadline built from it overflows (OverflowError), and a poll
# waits no more than an hour before it asks again (another 429 if Telegram meant it).
MOST_RETRY_AFTER = 3_600
# The flood wait of a 429 that names none (``retry_after`` 0 or absent, no ``Retry-After``).
UNNAMED_RETRY_AFTER = 1
QUERY_LIFE = 10.0  # seconds a query can be answered (~10 s reported; 10 s for a checkout)
# A payment message read again with only what booking it needs (``unreadable_update``).
_PAYMENT_FIELDS = ("successful_payment", "refunded_payment")
_BOOKED_FIELDS = ("message_id", "date", "chat", "from", *_PAYMENT_FIELDS)
# Readings of an update cut each time (``_read_in_part``): a rich message nests 16 deep at most.
_READINGS = 17


_QUERY_TOO_OLD = "query is too old"  # Telegram's 400 for a press answered past its life
# Presses whose answer is remembered (``StalePresses``): a second answer comes within the
# handling of the same update, seconds later.
PRESSES_REMEMBERED = 10_000
# Told the seconds of each flood wait a call is about to wait out (``RetryMiddleware``), where a
# caller set it for its task: a final part's try that waits one was answered, not left
# unanswered by a slow Telegram (``bot.streaming.delivered``); a group's placeholder raises it
# instead, to wait in the group's pacer and look again whether its question was withdrawn
# (``bot.editors.Editors.post``).
FLOOD_WAITS: ContextVar[Callable[[float], None] | None] = ContextVar("flood_waits", default=None)
# Asked before the session retries a 5xx, where a caller set it for its task: False, and the 5xx
# is raised, not retried. A group's placeholder says so once its question was withdrawn as the
# try was in flight (``bot.editors.Editors.post``): the retry went out unlooked-at, after the
# ``/stop``, and posted a placeholder only to say "Stopped.".
RETRY_WANTED: ContextVar[Callable[[], bool] | None] = ContextVar("retry_wanted", default=None)


class StalePresses(BaseRequestMiddleware):
    """A button's press answered too late for Telegram is let go; the press is carried out.

    A callback query can be answered for a few seconds only: after that Telegram refuses the
    answer ("query is too old and response timeout expired or query ID is invalid"). A press
    waits for the user's update before it (``bot.order``), which may take longer (a slow or
    flood-waiting Telegram); its handler answers the press first, and the refusal failed the
    handler: "Yes, erase" erased nothing and the user was told something went wrong. The
    refusal is now logged (``telegram.press_too_old``) and the answer taken as given: the
    button's spinner has long stopped by then anyway.

    A press is answered once. A handler that answers first (Retry, Continue) and then fails
    (the user busy) had the errors router answer it again: Telegram refuses a second answer in
    the same words, and the operator read a press too old that was none (and a Bot API error
    counted). The second answer of a press answered (or let go) before is not sent.

    A press's answer that meets flood waits past ``QUERY_LIFE`` (``RetryMiddleware``, inside
    this one) is let go too (``telegram.press_flood``): the handler failed on it, so "Yes,
    erase" erased nothing and the user was told Telegram did not take a reply.
    """

    def __init__(self, remembered: int = PRESSES_REMEMBERED) -> None:
        self._remembered = remembered
        self._answered: OrderedDict[str, None] = OrderedDict()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Call the next handler; a press's answer refused as too old counts as answered."""
        press = method.callback_query_id if isinstance(method, AnswerCallbackQuery) else None
        if press is None:
            return await make_request(bot, method)
        if press in self._answered:
            return _answered()  # answered before: Telegram would refuse this one
        try:
            response = await make_request(bot, method)
        except TelegramBadRequest as exc:
            if _QUERY_TOO_OLD not in exc.message:
                raise
            log.warning("telegram.press_too_old")
            response = _answered()
        except TelegramRetryAfter as exc:
            log.warning("telegram.press_flood", seconds=exc.retry_after)
            response = _answered()
        self._answered[press] = None
        while len(self._answered) > self._remembered:
            self._answered.popitem(last=False)
        return response


def _answered() -> Response[Any]:
    """What aiogram's chain hands back for an answered press (answerCallbackQuery's: True)."""
    return cast("Response[Any]", True)  # noqa: FBT003 -- the result itself


class RetryMiddleware(BaseRequestMiddleware):
    """Honour ``retry_after`` while the waits add up to at most ``max_wait``; retry a 5xx once.

    A flood wait says when the call will go through, but other calls may take that moment first
    (Telegram's limits count every chat's calls), so a call may meet one again: it waits again,
    for as long as its waits add up to at most ``max_wait`` seconds (each waited, and counted,
    as at least one: a wait below zero, never Telegram's, had a poll, which no limit ends, call
    again at once without end). It used to give up after four tries, and under a busy minute the
    user got "something went wrong" for a reply that only had to wait. The answer to an inline
    or guest query waits at most ``QUERY_LIFE``: the query is gone after that, and each letter a
    user typed during a flood left a retry, all due at once when it ended, each refused as too
    old. Such an answer whose connection broke (the network, a proxy cutting it) is tried again
    once, while the query lives: the query's one answer was lost with it (a guest summons left
    with no answer at all), and Telegram refuses a second answer to a query the first one
    reached.
    A poll (``getUpdates``) waits out every flood wait, however long: given up, it went to
    aiogram's polling loop, which logged an error and polled again within seconds, into the
    same flood, again and again until it ended.
    """

    def __init__(self, max_wait: float = 60.0) -> None:
        self.max_wait = max_wait

    def limit(self, method: TelegramMethod[Any]) -> float:
        """The seconds of flood waits ``method`` waits out in all."""
        if isinstance(method, GetUpdates):
            return math.inf  # the poller has nothing else to do: polled sooner, it is refused
        if isinstance(method, _SHORT_LIVED):
            return min(self.max_wait, QUERY_LIFE)
        return self.max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Call the next handler, retrying as described on the class."""
        retried = not isinstance(method, _NOT_RETRIED)  # (a test mypy would narrow ``method`` by)
        if not retried:
            return await make_request(bot, method)
        waited = 0.0
        server_errors = 0
        short_lived = isinstance(method, _SHORT_LIVED)
        limit = self.limit(method)
        started = asyncio.get_running_loop().time()
        cut = False
        while True:
            try:
                return await make_request(bot, method)
            except TelegramNetworkError:
                # A query is answered once: a second answer to one the first reached is
                # refused, never shown twice; one the first never reached is answered.
                if not short_lived or cut or asyncio.get_running_loop().time() - started > limit:
                    raise
                cut = True
                log.warning("telegram.answer_cut", method=type(method).__name__)
            except TelegramRetryAfter as exc:
                wait = max(exc.retry_after, 1)  # slept as counted: none below (a proxy's) spins
                waited += wait
                if waited > limit:
                    raise
                log.warning(
                    "telegram.retry_after",
                    method=type(method).__name__,
                    seconds=exc.retry_after,
                    waited=waited,
                )
                if (told := FLOOD_WAITS.get()) is not None:
                    told(wait)
                waits_elsewhere()  # the update asking leaves the bot's intake meanwhile
                await asyncio.sleep(wait)
            except TelegramServerError:
                server_errors += 1
                if server_errors > 1 or not await _server_error_waited(method):
                    raise


async def _server_error_waited(method: TelegramMethod[Any]) -> bool:
    """Wait a second after a 5xx; whether the call is still wanted then (``RETRY_WANTED``)."""
    log.warning("telegram.server_error", method=type(method).__name__)
    await asyncio.sleep(1.0)
    wanted = RETRY_WANTED.get()
    return wanted is None or wanted()


class TurnTakingSession(AiohttpSession):
    """aiogram's aiohttp session, whose calls wait for a free connection before being built.

    At most ``limit`` calls are in flight (the connector's own limit, so a call that has its
    turn never waits for a connection); the others wait in order. A call that waits longer
    than its timeout fails as one aiohttp timed out on would (``TelegramNetworkError``).
    """

    def __init__(self, *, api: TelegramAPIServer, limit: int = 100) -> None:
        super().__init__(api=api, limit=limit, json_loads=loads_repaired)
        self._turns = asyncio.Semaphore(limit)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 -- aiogram's signature
    ) -> TelegramType:
        """``AiohttpSession.make_request`` once a connection is free."""
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                await self._turns.acquire()
        except TimeoutError as exc:
            raise TelegramNetworkError(method=method, message="Request timeout error") from exc
        try:
            return await self._post(bot, method, timeout)
        finally:
            self._turns.release()

    async def _post(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None,  # noqa: ASYNC109 -- aiogram's signature
    ) -> TelegramType:
        """Post the call, its body as ``body`` builds it; its result, or aiogram's errors."""
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(
                url,
                data=self.body(bot, method),
                timeout=ClientTimeout(total=self.timeout if timeout is None else timeout),
                # The Bot API never redirects: a 3xx is a proxy's, which would have the call,
                # its text and the token in its URL sent where it names.
                allow_redirects=False,
            ) as reply:
                # The Bot API speaks UTF-8 JSON: a charset the reply names is a proxy's (one
                # may name a codec that is no text encoding, charset=hex: a LookupError).
                raw = (await reply.read()).decode()
        except TimeoutError as exc:
            raise TelegramNetworkError(method=method, message="Request timeout error") from exc
        except UnicodeDecodeError as exc:  # not the Bot API's (it speaks UTF-8): a page, say
            message = f"{method.__api_method__}: the reply is not UTF-8: {describe(exc)}"
            raise UnreadableReply(message, exc, None, method) from None
        except ClientError as exc:
            # aiohttp's message may quote the URL (a redirect's, a refused reply's), and the
            # Bot API's URL carries the token: it never leaves here.
            message = without_token(f"{type(exc).__name__}: {exc}")
            message = message.replace(bot.token, "<token>")
            raise TelegramNetworkError(method=method, message=message) from None
        if HTTPStatus.MULTIPLE_CHOICES <= reply.status < HTTPStatus.BAD_REQUEST:
            # Not followed, and no reply of the Bot API's (which never redirects) whatever its
            # body says: one in the Bot API's shape was read as a refusal of a status aiogram
            # knows nothing of (a bare ``TelegramAPIError``), a bug. The call did not go out.
            message = f"{method.__api_method__}: a redirect (HTTP {reply.status}), not followed"
            raise UnreadableReply(message, ValueError(f"HTTP {reply.status}"), None, method)
        if not HTTPStatus.OK <= reply.status <= HTTPStatus.IM_USED:
            raw = _described(raw, reply.status)
        return self._result(bot, method, reply.status, raw, reply.headers.get("Retry-After"))

    def _result(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status: int,
        raw: str,
        asked_wait: str | None,
    ) -> TelegramType:
        """The call's result from Telegram's reply (``status``, body ``raw``), or its error.

        ``asked_wait``: the reply's ``Retry-After`` header, read for a 429 that names no wait.
        """
        try:
            response = self.check_response(bot=bot, method=method, status_code=status, content=raw)
        except TelegramRetryAfter as exc:
            if exc.retry_after > MOST_RETRY_AFTER:
                log.warning("telegram.retry_after_capped", method=method.__api_method__)
                exc.retry_after = MOST_RETRY_AFTER
            raise
        except TelegramAPIError as exc:
            # aiogram reads a flood wait only from a ``retry_after`` that is true: a 429 with 0,
            # or none (a proxy's, a rate limiter's before the Bot API), was a plain error, not
            # tried again, and the answer it carried was lost to an apology. It is flood
            # control all the same: its ``Retry-After`` header, else a second.
            if status != HTTPStatus.TOO_MANY_REQUESTS or type(exc) is not TelegramAPIError:
                raise
            wait = _header_wait(asked_wait)
            raise TelegramRetryAfter(method=method, message=exc.message, retry_after=wait) from None
        except ClientDecodeError as exc:
            # aiogram's error quotes the reply (a page quoting the URL, a Message's text).
            message = f"{method.__api_method__}: {exc.message}: {describe(exc.original)}"
            # The Bot API's own "ok": the call went through; only its result did not validate.
            taken = (
                status == HTTPStatus.OK
                and isinstance(exc.data, dict)
                and exc.data.get("ok") is True
            )
            if (
                taken
                and isinstance(method, GetUpdates)
                and isinstance(exc.data.get("result"), list)
            ):
                return cast("TelegramType", readable_updates(exc.data["result"], bot))
            raise UnreadableReply(
                message,
                exc.original,
                None,
                method,
                taken=taken,
                message_id=_message_id(exc.data) if taken else None,
            ) from None
        return cast("TelegramType", response.result)

    def body(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData | JsonBody:
        """The call as a JSON object, or as aiogram's multipart form if it uploads a file.

        The fields are aiogram's (its defaults filled in; None and empty strings left out),
        nested objects as objects, not JSON in a string.
        """
        files: dict[str, InputFile] = {}
        fields = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None and prepared != "":
                fields[key] = prepared
        if files:
            return self.build_form_data(bot, method)
        return JsonBody(fields)


def readable_updates(raw: list[Any], bot: Bot) -> list[Update]:
    """A batch of updates of which some do not validate: each stands as ``unreadable_update``.

    aiogram reads a batch whole, so one update it cannot read (a kind of forward origin, say,
    that a newer Bot API sends and this aiogram does not know) failed the whole poll, and
    polling asked for the same batch again and again: no update after it was ever handled,
    for anyone.
    """
    updates = []
    for item in raw:
        try:
            updates.append(Update.model_validate(item, context={"bot": bot}))
        except ValidationError as exc:
            update = unreadable_update(item, exc, bot, "poll")
            if update is not None:
                updates.append(update)
    return updates


def unreadable_update(item: object, error: ValidationError, bot: Bot, via: str) -> Update | None:
    """What stands for an update that did not validate: it less what failed, its payment, its id.

    An update that failed only on rich content (a block of a newer Bot API's kind, in its
    message or the one replied to) or on a field of the message it replies to is read without
    that part (``bot.pruned``) and handled as any, logged once
    (``telegram.update_read_in_part``: how many parts were left out).
    A payment or refund message is read again with only what booking it needs (its ids, chat,
    sender and payment), so the Stars are journaled and credited as any; if even that does not
    validate, ``telegram.payment_unreadable`` asks the operator for ``reconcile --fix``. Any
    other update is logged (``telegram.update_unreadable``: its id, what did not validate and
    ``via`` "poll" or "webhook", none of its content) and kept as its message's envelope
    (``bot.pruned.unread_envelope``: where it came from, marked unread, so that one who asked
    Veil is told it could not be read, ``handlers.replies.unread``; ``kept="envelope"``), else
    as its bare id, which the next poll goes past and ``skip_bare_updates`` stops before any
    handler. None: not even an id.
    """
    update_id = item.get("update_id") if isinstance(item, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        log.warning("telegram.update_unreadable", update_id=None, via=via, error=describe(error))
        return None
    assert isinstance(item, dict)  # noqa: S101 -- it has an update_id
    read = _read_in_part(item, error, bot)
    if read is not None:
        update, skipped = read
        log.warning(
            "telegram.update_read_in_part",
            update_id=update_id,
            via=via,
            skipped=skipped,
            error=describe(error),
        )
        return update
    message = item.get("message") if isinstance(item, dict) else None
    if isinstance(message, dict) and any(field in message for field in _PAYMENT_FIELDS):
        reduced = {key: message[key] for key in _BOOKED_FIELDS if key in message}
        booked = _validated({"update_id": update_id, "message": reduced}, bot)
        if booked is None:
            log.error(
                "telegram.payment_unreadable", update_id=update_id, via=via, error=describe(error)
            )
            return Update(update_id=update_id)
        return _unreadable(booked, via, error, kept="payment")
    envelope = unread_envelope(item)
    stand_in = None if envelope is None else _validated(envelope, bot)
    if stand_in is None:
        return _unreadable(Update(update_id=update_id), via, error)
    return _unreadable(stand_in, via, error, kept="envelope")


def _unreadable(update: Update, via: str, error: ValidationError, **kept: str) -> Update:
    """``update``, logged as one that could not be read (``kept``: what of it is kept)."""
    log.warning(
        "telegram.update_unreadable",
        update_id=update.update_id,
        via=via,
        error=describe(error),
        **kept,
    )
    return update


def _read_in_part(
    item: dict[str, Any], error: ValidationError, bot: Bot
) -> tuple[Update, int] | None:
    """The update less the rich content ``error`` failed on, and the parts left out; or None.

    Read again after each cut (``bot.pruned.without_unread``), a few times at most: a block
    that fails of itself is blamed only once what fails inside it is cut. None where it failed
    elsewhere too, or still fails.
    """
    skipped = 0
    for _ in range(_READINGS):
        item, cut = without_unread(item, error)
        if not cut:
            return None
        skipped += cut
        try:
            return Update.model_validate(item, context={"bot": bot}), skipped
        except ValidationError as exc:
            error = exc
    return None


def _validated(raw: dict[str, Any], bot: Bot) -> Update | None:
    try:
        return Update.model_validate(raw, context={"bot": bot})
    except ValidationError:
        return None


async def skip_bare_updates(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:  # noqa: ANN401 -- whatever the handler returns
    """An outer update middleware: an update with nothing in it goes no further.

    Those ``readable_updates`` left of updates it could not read (aiogram would warn with the
    update's dump on stderr, and skip it).
    """
    if isinstance(event, Update):
        try:
            _ = event.event_type
        except UpdateTypeLookupError:
            return UNHANDLED
    return await handler(event, data)


class UnreadableReply(ClientDecodeError):
    """aiogram's ``ClientDecodeError`` that says what failed to decode, never what came.

    It names the call (``method``), as aiogram's ``TelegramAPIError`` does, for the log line.
    ``taken``: the Bot API answered ``"ok": true`` (the call went through, a message was sent)
    with a result that does not validate; else the reply is not the Bot API's (a proxy's page)
    and the call may never have reached Telegram. ``message_id``: the id of the message a taken
    call sent, when its result still names one (a whole number under ``message_id``), so that
    message can be edited or deleted all the same; None when it does not (or none was sent).
    """

    def __init__(  # noqa: PLR0913 -- aiogram's fields, and what the bot learns of the call
        self,
        message: str,
        original: Exception,
        data: object,
        method: TelegramMethod[Any] | None = None,
        *,
        taken: bool = False,
        message_id: int | None = None,
    ) -> None:
        super().__init__(message, original, data)
        self.method = method
        self.taken = taken
        self.message_id = message_id

    def __str__(self) -> str:
        return self.message


def _header_wait(header: str | None) -> int:
    """The whole seconds a 429's ``Retry-After`` header asks (seconds, or an HTTP-date).

    ``UNNAMED_RETRY_AFTER`` where it names none that is usable (or none at all), at most
    ``MOST_RETRY_AFTER``.
    """
    asked = retry_after(header, time.time())
    if asked is None:
        return UNNAMED_RETRY_AFTER
    return max(math.ceil(min(asked, MOST_RETRY_AFTER)), UNNAMED_RETRY_AFTER)


def _described(raw: str, status: int) -> str:
    """A refusal's JSON with a ``description``: the HTTP status's phrase where it has none.

    The Bot API always says why it refuses, but a proxy that rewrites error bodies may drop it
    (``{"ok": false, "error_code": 502}``); aiogram reads the description as text (a 5xx's for
    "restart"), and so does the bot (``"not modified" in exc.message``): without one, each of
    those raised a ``TypeError``, a bug, where the refusal itself was what to handle.
    """
    try:
        refusal = json.loads(raw)
    except (ValueError, RecursionError):  # nested past the parser's depth too
        return raw  # not JSON: aiogram says so (ClientDecodeError)
    if not isinstance(refusal, dict) or isinstance(refusal.get("description"), str):
        return raw
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    return json.dumps({**refusal, "description": f"{phrase} (no description given)"})


def _message_id(reply: object) -> int | None:
    """The ``message_id`` a Bot API reply's result names, if it is a whole number; else None."""
    result = reply.get("result") if isinstance(reply, dict) else None
    message_id = result.get("message_id") if isinstance(result, dict) else None
    return message_id if type(message_id) is int else None


class JsonBody(BytesPayload):
    """A Bot API call's fields as a UTF-8 JSON body."""

    def __init__(self, fields: dict[str, Any]) -> None:
        text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        super().__init__(text.encode(), content_type="application/json")


def loads_repaired(text: str) -> Any:  # noqa: ANN401 -- parsed JSON
    r"""``json.loads``, with each lone surrogate in a string (or a key) replaced by U+FFFD.

    A surrogate left in a string can only come from an escape, so a text without ``\ud`` is
    not walked (``sealed.encoding.well_formed`` walks it).
    """
    value = json.loads(text)
    if "\\ud" in text or "\\uD" in text:
        return well_formed(value)
    return value


# The calls the bot makes as it answers, and getUpdates, which brings the questions: their
# models and their replies' are built before it serves (``prepare_models``).
ANSWERING: tuple[type[TelegramMethod[Any]], ...] = (
    GetUpdates,
    methods.SendMessage,
    methods.SendRichMessage,
    SendMessageDraft,
    SendRichMessageDraft,
    methods.EditMessageText,
    methods.EditMessageReplyMarkup,
    methods.DeleteMessage,
    SendChatAction,
    AnswerCallbackQuery,
    AnswerInlineQuery,
    AnswerGuestQuery,
    AnswerPreCheckoutQuery,
    methods.SendInvoice,
    methods.SendPhoto,  # a TON invoice's QR code
)
# What the bot builds of its own as it answers: buttons, replies, inline results, notices, rich
# messages and their drafts' thinking, an invoice's prices, and aiogram's event for a handler's
# error. (Each took 1 to 40 ms when first built, mid-answer.)
ANSWERING_TYPES: tuple[type[BaseModel], ...] = (
    types.InlineKeyboardMarkup,
    types.InlineKeyboardButton,
    types.ReplyParameters,
    types.LinkPreviewOptions,
    types.MessageEntity,
    types.InlineQueryResultArticle,
    types.InputTextMessageContent,
    types.InlineQueryResultsButton,
    types.EphemeralMessageParameters,
    types.InputRichMessage,
    types.InputRichBlockThinking,
    types.LabeledPrice,
    types.ErrorEvent,
)
_RESPONSES: list[type[BaseModel]] = []  # built once, kept: pydantic's cache holds them weakly


def prepare_models() -> int:
    """Build the models the bot's answers use now, not while it answers; how many replies'.

    Each ``ANSWERING`` method, ``Response[T]`` for each of their result types, ``Update`` (a
    webhook's updates are read into it) and the ``ANSWERING_TYPES``. ``model_rebuild`` builds
    a model not built yet, in aiogram's names (bot/aiogram_types.py), and leaves one built alone.
    """
    if not _RESPONSES:
        results = {repr(method.__returning__): method.__returning__ for method in ANSWERING}
        generic: Any = Response  # parametrised by runtime values, which mypy cannot follow
        _RESPONSES.extend(generic[result] for result in results.values())
        built: tuple[type[BaseModel], ...] = (*ANSWERING, *_RESPONSES, Update, *ANSWERING_TYPES)
        for model in built:
            model.model_rebuild()
    return len(_RESPONSES)


def build_bot(token: str, api_base: str) -> Bot:
    """A ``Bot`` that talks to ``api_base`` (Telegram, or a local emulator) with retries."""
    session = TurnTakingSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
    session.middleware(StalePresses())  # outside the retries: it lets go of what they give up
    session.middleware(RetryMiddleware())
    return Bot(token, session=session)


async def forget_handled_update(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:  # noqa: ANN401 -- whatever the handler returns
    """An outer update middleware: once the update is handled, aiogram's cache lets go of it.

    The cache (``Update.event_type``, an ``lru_cache`` on the property) holds the updates
    being handled too; they compute their type again if asked (a few attribute reads).
    """
    try:
        return await handler(event, data)
    finally:
        _EVENT_TYPE_CACHE.cache_clear()


_EVENT_TYPE_CACHE: Any = vars(Update)["event_type"].fget  # functools' lru_cache wrapper
