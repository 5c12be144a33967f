"""The Bot API emulator: an HTTP server the real aiogram ``Bot`` talks to as to Telegram.

Point a bot at it with
``Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))``. It records
every call (``calls``, ``wait_for``), answers with complete Bot API objects, refuses what
Telegram refuses with Telegram's status and description, and can be told to fail
(``fail_next``, ``fail_every``, ``flood_each``, ``state.blocked_users``).

``FakeTelegram`` is the server and builds the parts it serves, each owning its own data:

- ``state`` (``TelegramState``): users, chats, messages, commands, callback and inline queries,
  and the Bot API methods on them;
- ``payments`` (``StarsPayments``): invoices, charges, refunds, Star transactions;
- ``media`` (``Media``): uploaded files, ``sendPhoto`` (``photos`` keeps each picture's bytes),
  ``getFile`` and the file download path ``/file/bot<token>/<file_path>``;
- ``updates`` (``UpdateDelivery``): the pending updates, ``getUpdates`` long polling, the webhook;
- ``webapps`` (``MiniApps``): menu buttons, Mini App launches with signed ``initData``, and each
  user's SecureStorage and DeviceStorage;
- ``user`` (``UserActions``): what a user does (``send_text``, ``guest_message``,
  ``press_button``, ``pay``...), queued as updates.

The server itself owns the HTTP side, the call record, the injected failures and the table
from method name to the part that answers it. For tests, the user's actions and
``sent_messages`` are also reachable on the server (``fake.send_text(...)``), and so are the
group switches: ``limit_groups`` (Telegram's per-group flood limit; ``floods`` lists its 429s),
``set_member`` (who administers a group), ``state.privacy_mode``, ``state.ephemeral_support``,
``state.supports_guest_queries`` and ``state.topics`` (topics in private chats, Bot API
9.3+). An ``Observer`` (the playground's page) hears every
successful call and every message a user writes.

Requests may be GET or POST, urlencoded, multipart or JSON, as the Bot API allows. ``calls``
holds every request in the order it was answered (a long poll is recorded when it returns),
failed ones included, each with how its parameters came (``Call.body``).
``state.inline_query_ttl`` (10 s) is how long an inline query can be answered;
``state.callback_query_ttl`` (None: for ever) how long a button's press can be.

The other modules: ``text`` (entities), ``wire`` (parameter decoding, error replies, reply
markup), ``faults`` (failure injection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from playground.delivery import Changes, UpdateDelivery
from playground.faults import Faults
from playground.limits import DEFAULT_PER_MINUTE
from playground.media import Media
from playground.payments import StarsPayments
from playground.served import Served
from playground.state import TelegramState
from playground.updates import UserActions
from playground.webapps import MiniApps
from playground.wire import ApiError, decode_params

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from playground.limits import Flood
    from playground.state import Method

__all__ = ["Call", "Download", "FakeTelegram", "Observer"]

DOWNLOAD = "download"  # fail_next's name for file downloads
FILE_CHUNK = 64 * 1024  # bytes of a file download written at a time


@dataclass(frozen=True)
class Call:
    """One Bot API request the fake received, with its decoded parameters and its answer."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when it was received
    answered: str  # "ok", or the error description the fake replied with
    body: str = "query"  # how the parameters came: query, json, form, multipart, webhook reply


@dataclass
class Download:
    """One file download the bot made: the file's path and size, and how much of it was sent."""

    file_path: str
    size: int
    sent: int = 0
    done: bool = False  # sent whole, or the client closed the connection first


class Observer(Protocol):
    """Hears what the bot did and what a user did; the playground's page is one."""

    def answered(self, method: str, params: dict[str, Any], result: object) -> None:
        """A Bot API call succeeded with ``result``."""

    def posted(self, message: dict[str, Any]) -> None:
        """A user wrote ``message`` (whether or not the bot is told)."""


def _json_params(body: object) -> dict[str, str]:
    """A JSON request body as the form strings the Bot API also accepts."""
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="a JSON object expected")
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in body.items()
        if value is not None
    }


class FakeTelegram(Served):
    """A small aiohttp app speaking the Bot API for one bot; see the module docstring."""

    def __init__(
        self,
        *,
        token: str = "123456:TEST-TOKEN",  # noqa: S107 - a fake token, part of the API
        bot_username: str = "veil_test_bot",
        bot_id: int = 123456,
        observer: Observer | None = None,
        routes: Sequence[web.AbstractRouteDef] = (),
    ) -> None:
        """``routes`` are served beside the Bot API (the playground's page)."""
        self.token = token
        self.state = TelegramState(bot_username=bot_username, bot_id=bot_id)
        self.payments = StarsPayments(self.state)
        self.media = Media(self.state)
        self.updates = UpdateDelivery(self._run_from_webhook)
        self.user = UserActions(self.state, self.payments, self._queue, self._posted)
        self.webapps = MiniApps(self.state, token)
        self.calls: list[Call] = []
        self.downloads: list[Download] = []  # file downloads, in the order they began
        self.url = ""
        self._observer = observer
        self._routes = list(routes)
        self._methods: dict[str, Method] = (
            self.state.methods()
            | self.payments.methods()
            | self.media.methods()
            | self.updates.methods()
            | self.webapps.methods()
        )
        self._canonical = {name.lower(): name for name in self._methods}
        self._changes = Changes()
        self._faults = Faults()
        self._runner: web.AppRunner | None = None
        # A test's shortcuts: what a user does, and what the bot sent a chat.
        self.send_text = self.user.send_text
        self.send_as_chat = self.user.send_as_chat
        self.upgrade_group = self.user.upgrade_group
        self.edit_text = self.user.edit_text
        self.forward_text = self.user.forward_text
        self.close_topic = self.user.close_topic
        self.guest_message = self.user.guest_message
        self.guest_message_as_chat = self.user.guest_message_as_chat
        self.send_message_of = self.user.send_message_of
        self.press_button = self.user.press_button
        self.press_inline_button = self.user.press_inline_button
        self.stop_generation = self.user.stop_generation
        self.create_topic = self.user.create_topic
        self.inline_query = self.user.inline_query
        self.choose_inline_result = self.user.choose_inline_result
        self.pre_checkout = self.user.pre_checkout
        self.pay = self.user.pay
        self.refunded = self.user.refunded
        self.sent_messages = self.state.sent_messages
        self.ephemeral_messages = self.state.ephemeral_messages
        self.set_member = self.state.set_member
        self.photos = self.media.photos

    def send_document(  # noqa: PLR0913 -- the fake's API mirrors a document's fields
        self,
        user_id: int,
        data: bytes,
        *,
        file_name: str = "notes.txt",
        mime_type: str = "text/plain",
        caption: str | None = None,
        language_code: str = "en",
        sized: bool = True,
        thread_id: int | None = None,
    ) -> int:
        """A document with ``data`` from ``user_id`` in their private chat: an update_id.

        Its file is kept for ``getFile`` and the download path, as Telegram keeps it;
        ``sized=False`` leaves out its ``file_size``, which the Bot API marks optional. In
        the chat's topic ``thread_id`` if given.
        """
        document = self.media.receive(data, file_name=file_name, mime_type=mime_type, sized=sized)
        topic: dict[str, object] = {}
        if thread_id is not None:
            if self.state.topics.get(user_id, thread_id) is None:
                raise ValueError(f"no topic {thread_id} in chat {user_id}")
            topic = {"message_thread_id": thread_id, "is_topic_message": True}
        return self.user.send_message_of(
            user_id,
            "document",
            document=document,
            caption=caption,
            language_code=language_code,
            **topic,
        )

    # Lifecycle.

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); return the base URL for TelegramAPIServer."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        app.router.add_routes(self._routes)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        return self.url

    async def close(self) -> None:
        """Answer waiting long polls, stop webhook delivery and the server."""
        await self.updates.close()
        self._changes.notify()
        if self._runner is not None:
            await self._runner.cleanup()

    # What tests read.

    def calls_of(self, method: str) -> list[Call]:
        """Every call of ``method``, in the order they were answered."""
        return [call for call in self.calls if call.method == method]

    def drafts(self, chat_id: int) -> list[Call]:
        """Successful sendMessageDraft calls to ``chat_id``."""
        return [
            call
            for call in self.calls_of("sendMessageDraft")
            if call.answered == "ok" and call.params.get("chat_id") == chat_id
        ]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - the fake's API: a plain number reads best
    ) -> Call:
        """The first call of ``method`` matching ``predicate``, received already or later."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            changed = self._changes.next()
            for call in self.calls[checked:]:
                if call.method == method and (predicate is None or predicate(call)):
                    return call
            checked = len(self.calls)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = ", ".join(
                    f"{c.method}({'ok' if c.answered == 'ok' else 'failed'})"
                    for c in self.calls[-10:]
                )
                raise TimeoutError(
                    f"no matching {method} call within {timeout} s; last calls: {recent or 'none'}"
                )
            with contextlib.suppress(TimeoutError):  # (not wait_for: it can swallow a cancel)
                async with asyncio.timeout(remaining):
                    await changed.wait()

    @property
    def floods(self) -> list[Flood]:
        """Every 429 the per-group limit answered, in order (``limit_groups``)."""
        return self.state.group_limit.floods

    def limit_groups(
        self, per_minute: int | None = DEFAULT_PER_MINUTE, *, window: float = 60.0
    ) -> None:
        """Refuse sends and edits into a group past ``per_minute`` per ``window`` s (None: off).

        Telegram's limit is about 20 a minute per group, edits included; it is off by default.
        """
        self.state.group_limit.set(per_minute, window=window)

    # Failure injection.

    def fail_next(
        self,
        method: str,
        *,
        status: int,
        description: str,
        retry_after: int | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` calls of ``method`` with this error, changing nothing.

        ``method`` ``DOWNLOAD`` fails file downloads (Telegram's file server answers a failed
        one with the same JSON error as the Bot API).
        """
        self._faults.add_next(method, status, description, retry_after, count)

    def fail_every(
        self, methods: Collection[str], *, nth: int, status: int = 429, retry_after: int = 3
    ) -> None:
        """Fail every ``nth`` call among ``methods`` (one count across them, like a chat limit).

        A 429 says "Too Many Requests: retry after N" with ``parameters.retry_after``; other
        statuses carry their HTTP reason phrase.
        """
        self._faults.add_every(methods, nth, status, retry_after)

    def flood_each(
        self,
        *,
        count: int = 1,
        retry_after: int = 1,
        methods: Collection[str] | None = None,
    ) -> None:
        """Answer the first ``count`` calls of each method from now on 429, flood control's.

        Each method on its own count (``methods`` only, or every one), so every call the bot
        makes meets "Too Many Requests: retry after N" with ``parameters.retry_after`` and
        Telegram's ``Retry-After`` header once, whichever calls a user's path makes. Counted
        from now: a ``flood_each`` before it is replaced.
        """
        self._faults.add_first_of_each(methods, count, retry_after)

    def flood_for(self, seconds: float, *, methods: Collection[str] | None = None) -> None:
        """Answer every call (of ``methods``; None: all) 429 for ``seconds``, as flood control.

        A real flood refuses every call until it ends, each told the seconds left
        (``parameters.retry_after`` and the ``Retry-After`` header), not only the first.
        """
        self._faults.add_until(methods, seconds)

    def flooded(self) -> set[str]:
        """The methods the fake answered 429 at least once."""
        return {c.method for c in self.calls if c.answered.startswith("Too Many Requests")}

    def clear_failures(self) -> None:
        """Forget every ``fail_next``, ``fail_every`` and ``flood_each`` still to come."""
        self._faults.clear()

    # HTTP.

    async def _not_found(self, _request: web.Request) -> web.Response:
        return ApiError(HTTPStatus.NOT_FOUND, "Not Found").response()

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """A file download, as ``https://api.telegram.org/file/bot<token>/<file_path>``.

        Sent in ``FILE_CHUNK`` pieces, each once the client takes the one before, and recorded
        in ``downloads``: a client that closes the connection early got only ``sent`` bytes.
        """
        stored = self.media.by_path(request.match_info["path"])
        if request.match_info["token"] != self.token or stored is None:
            return ApiError(HTTPStatus.NOT_FOUND, "Not Found").response()
        if (refusal := self._faults.check(DOWNLOAD)) is not None:
            return refusal.response()
        download = Download(stored.file_path, len(stored.data))
        self.downloads.append(download)
        response = web.StreamResponse(headers={"Content-Type": stored.content_type})
        response.content_length = len(stored.data)
        try:
            await response.prepare(request)
            for start in range(0, len(stored.data), FILE_CHUNK):
                await response.write(stored.data[start : start + FILE_CHUNK])
                download.sent = min(len(stored.data), start + FILE_CHUNK)
            await response.write_eof()
        except ConnectionError:  # the client went away: it has what was sent
            pass
        finally:
            download.done = True
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        received = time.monotonic()
        raw: dict[str, Any] = dict(request.query)
        body = "query"
        if request.content_type == "application/json":
            raw |= _json_params(await request.json())
            body = "json"
        elif request.method == "POST":
            raw |= dict(await request.post())
            body = "multipart" if request.content_type.startswith("multipart/") else "form"
        token, name = request.match_info["token"], request.match_info["method"]
        return await self._process(token, name, decode_params(raw), received, body)

    async def _process(
        self, token: str, name: str, params: dict[str, Any], received: float, body: str
    ) -> web.Response:
        method = self._canonical.get(name.lower(), name)
        refusal: ApiError | None = None
        if token != self.token:
            refusal = ApiError(HTTPStatus.UNAUTHORIZED, "Unauthorized")
        elif method not in self._methods:
            refusal = ApiError(HTTPStatus.NOT_FOUND, "Not Found")
        else:
            refusal = self._faults.check(method)
        if refusal is None:
            try:
                result = self._methods[method](params)
                if asyncio.iscoroutine(result):
                    result = await result
            except ApiError as error:
                refusal = error
            except Exception:
                self._record(Call(method, params, received, "Internal Server Error", body))
                raise
        if refusal is not None:
            self._record(Call(method, params, received, refusal.description, body))
            return refusal.response()
        self._record(Call(method, params, received, "ok", body))
        if self._observer is not None:
            self._observer.answered(method, params, result)
        return web.json_response({"ok": True, "result": result})

    async def _run_from_webhook(self, name: str, params: dict[str, Any], received: float) -> None:
        """A method the bot put in its webhook reply, run as if it had been requested."""
        await self._process(self.token, name, params, received, "webhook reply")

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._changes.notify()

    def _queue(self, update: dict[str, Any]) -> int:
        """Queue a user's update for the bot; return its update_id."""
        return int(self.updates.push(update)["update_id"])

    def _posted(self, message: dict[str, Any]) -> None:
        """A user wrote a message: tell the observer."""
        if self._observer is not None:
            self._observer.posted(message)
