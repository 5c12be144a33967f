"""The Bot API emulator: an HTTP server the real aiogram ``Bot`` talks to as to Telegram.

Point a bot at it with
``Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))``. It records
every call (``calls``, ``wait_for``), answers with complete Bot API objects, refuses what
Telegram refuses with Telegram's status and description, and can be told to fail
(``fail_next``, ``fail_every``, ``blocked_users``). Updates come from the builders
(``send_text``, ``press_button``, ``pay``...) through ``getUpdates`` long polling or, once
``setWebhook`` is called, by POST to the webhook with ``X-Telegram-Bot-Api-Secret-Token``
(a non-2xx answer is retried ``webhook_attempts`` times; a method in the reply is executed).

Requests may be GET or POST, urlencoded, multipart or JSON, as the Bot API allows. ``calls``
holds every request in the order it was answered (a long poll is recorded when it returns),
failed ones included. ``inline_query_ttl`` (10 s) is how long an inline query can be answered.
Unlike Telegram, a webhook may use plain http.

The pieces: ``text`` with ``html_mode``, ``markdown_mode`` and
``markup`` (parse modes, entities), ``wire`` (parameter decoding, error replies,
reply markup), ``state`` (messages, drafts, queries), ``payments`` (Stars),
``updates`` (update builders), ``faults`` (failure injection) and this module
(HTTP, the updates queue, long polling, the webhook).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from playground.faults import Faults
from playground.updates import UpdateBuilders
from playground.wire import ApiError, bad_request, decode_params

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from types import TracebackType

__all__ = ["Call", "FakeTelegram"]

DEFAULT_ALLOWED = frozenset(
    {"message", "edited_message", "channel_post", "edited_channel_post", "inline_query"}
    | {"chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query"}
    | {"poll", "poll_answer", "my_chat_member", "chat_join_request", "chat_boost"}
    | {"removed_chat_boost", "business_connection", "business_message"}
    | {"edited_business_message", "deleted_business_messages", "purchased_paid_media"}
    | {"stopped_message_generation", "subscription", "managed_bot", "guest_message"}
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)
CONFLICT_POLLER = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_MAX_UPDATES = 100


@dataclass(frozen=True)
class Call:
    """One Bot API request the fake received, with its decoded parameters and its answer."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when it was received
    answered: str  # "ok", or the error description the fake replied with


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    last_error_date: int | None = None
    last_error_message: str | None = None


def _json_params(body: object) -> dict[str, str]:
    """A JSON request body as the form strings the Bot API also accepts."""
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="a JSON object expected")
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in body.items()
        if value is not None
    }


def _update_type(update: dict[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


class FakeTelegram(UpdateBuilders):
    """A small aiohttp app speaking the Bot API for one bot; see the module docstring."""

    def __init__(
        self,
        *,
        token: str = "123456:TEST-TOKEN",  # noqa: S107 - a fake token, part of the API
        bot_username: str = "veil_test_bot",
        bot_id: int = 123456,
    ) -> None:
        super().__init__(token=token, bot_username=bot_username, bot_id=bot_id)
        self.calls: list[Call] = []
        self.url = ""
        self.webhook_attempts = 3
        self.webhook_retry_delay = 0.05
        self._methods = self.methods() | {
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
        }
        self._canonical = {name.lower(): name for name in self._methods}
        self._pending: list[dict[str, Any]] = []
        self._next_update_id = 100_000_001
        self._allowed = DEFAULT_ALLOWED
        self._poller = 0
        self._changed = asyncio.Event()
        self._closing = False
        self._faults = Faults()
        self._webhook: _Webhook | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None

    # Lifecycle.

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); return the base URL for TelegramAPIServer."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        return self.url

    def _add_routes(self, app: web.Application) -> None:
        """Routes a subclass serves beside the Bot API (the playground's page); none here."""

    def _observe(self, method: str, params: dict[str, Any], result: object) -> None:
        """Called after each successful Bot API call; the playground pushes it to its page."""

    async def close(self) -> None:
        """Answer waiting long polls, stop webhook delivery and the server."""
        self._closing = True
        self._notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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
            changed = self._changed
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

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
        """Answer the next ``count`` calls of ``method`` with this error, changing nothing."""
        self._faults.add_next(method, status, description, retry_after, count)

    def fail_every(
        self, methods: Collection[str], *, nth: int, status: int = 429, retry_after: int = 3
    ) -> None:
        """Fail every ``nth`` call among ``methods`` (one count across them, like a chat limit).

        A 429 says "Too Many Requests: retry after N" with ``parameters.retry_after``; other
        statuses carry their HTTP reason phrase.
        """
        self._faults.add_every(methods, nth, status, retry_after)

    def clear_failures(self) -> None:
        """Forget every ``fail_next`` and ``fail_every`` still to come."""
        self._faults.clear()

    # HTTP.

    async def _not_found(self, _request: web.Request) -> web.Response:
        return ApiError(HTTPStatus.NOT_FOUND, "Not Found").response()

    async def _handle(self, request: web.Request) -> web.Response:
        received = time.monotonic()
        raw: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            raw |= _json_params(await request.json())
        elif request.method == "POST":
            raw |= dict(await request.post())
        token, name = request.match_info["token"], request.match_info["method"]
        return await self._process(token, name, decode_params(raw), received)

    async def _process(
        self, token: str, name: str, params: dict[str, Any], received: float
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
                self._record(Call(method, params, received, "Internal Server Error"))
                raise
        if refusal is not None:
            self._record(Call(method, params, received, refusal.description))
            return refusal.response()
        self._record(Call(method, params, received, "ok"))
        self._observe(method, params, result)
        return web.json_response({"ok": True, "result": result})

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._notify()

    def _notify(self) -> None:
        """Wake everything waiting for a call or an update."""
        self._changed.set()
        self._changed = asyncio.Event()

    # Updates.

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue ``update`` (its update_id assigned here) for getUpdates or the webhook."""
        update_id = self._next_update_id
        self._next_update_id += 1
        self._pending.append({"update_id": update_id} | update)
        self._notify()
        return update_id

    def _drop_disallowed(self) -> None:
        self._pending = [u for u in self._pending if _update_type(u) in self._allowed]

    async def _get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self._webhook is not None:
            raise ApiError(HTTPStatus.CONFLICT, CONFLICT_WEBHOOK)
        self._poller += 1
        poller = self._poller
        offset, limit, timeout = p.get("offset"), p.get("limit", _MAX_UPDATES), p.get("timeout", 0)
        if isinstance(allowed := p.get("allowed_updates"), list):
            self._allowed = frozenset(allowed) or DEFAULT_ALLOWED
        if isinstance(offset, int) and offset < 0:
            self._pending = self._pending[offset:]
        elif isinstance(offset, int):
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        limit = min(max(limit, 1), _MAX_UPDATES) if isinstance(limit, int) else _MAX_UPDATES
        deadline = time.monotonic() + (timeout if isinstance(timeout, int) else 0)
        while True:
            if poller != self._poller:
                raise ApiError(HTTPStatus.CONFLICT, CONFLICT_POLLER)
            self._drop_disallowed()
            remaining = deadline - time.monotonic()
            if self._pending or self._closing or remaining <= 0:
                return self._pending[:limit]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # Webhook.

    def _set_webhook(self, p: dict[str, Any]) -> bool:
        url = str(p.get("url", ""))
        if not url:
            return self._delete_webhook(p)
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise bad_request("bad webhook: invalid webhook URL specified")
        secret = p.get("secret_token")
        if secret is not None and not _SECRET.fullmatch(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        allowed = p.get("allowed_updates")
        if p.get("drop_pending_updates"):
            self._pending.clear()
        max_connections = p.get("max_connections", 40)
        self._webhook = _Webhook(
            url,
            None if secret is None else str(secret),
            max_connections if isinstance(max_connections, int) else 40,
            allowed if isinstance(allowed, list) else None,
        )
        if isinstance(allowed, list):
            self._allowed = frozenset(allowed) or DEFAULT_ALLOWED
        if self._webhook_task is None:
            self._webhook_task = asyncio.create_task(self._deliver_to_webhook())
        self._poller += 1  # a webhook ends long polling
        self._notify()
        return True

    def _delete_webhook(self, p: dict[str, Any]) -> bool:
        self._webhook = None
        if p.get("drop_pending_updates"):
            self._pending.clear()
        return True

    def _get_webhook_info(self, _p: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {"url": "", "has_custom_certificate": False}
        info["pending_update_count"] = len(self._pending)
        if (hook := self._webhook) is None:
            return info
        info |= {
            "url": hook.url,
            "ip_address": "127.0.0.1",
            "max_connections": hook.max_connections,
        }
        if hook.allowed_updates is not None:
            info["allowed_updates"] = hook.allowed_updates
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        return info

    async def _deliver_to_webhook(self) -> None:
        """Deliver pending updates in order; retry an update a few times, then drop it."""
        async with aiohttp.ClientSession() as client:
            while not self._closing:
                self._drop_disallowed()
                hook = self._webhook
                if hook is None or not self._pending:
                    await self._changed.wait()
                    continue
                update = self._pending[0]
                for attempt in range(self.webhook_attempts):
                    if attempt:
                        await asyncio.sleep(self.webhook_retry_delay)
                    if self._webhook is not hook or await self._post(client, hook, update):
                        break
                if self._webhook is hook and self._pending and self._pending[0] is update:
                    self._pending.pop(0)

    async def _post(
        self, client: aiohttp.ClientSession, hook: _Webhook, update: dict[str, Any]
    ) -> bool:
        """POST one update; run a method the bot returned in the reply, as Telegram does."""
        headers = {}
        if hook.secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        timeout = aiohttp.ClientTimeout(total=10)
        try:
            async with client.post(
                hook.url, json=update, headers=headers, timeout=timeout
            ) as reply:
                if not HTTPStatus.OK <= reply.status < HTTPStatus.MULTIPLE_CHOICES:
                    hook.last_error_date = int(time.time())
                    hook.last_error_message = f"Wrong response from the webhook: {reply.status}"
                    return False
                if reply.content_type == "multipart/form-data":
                    await self._run_reply(aiohttp.MultipartReader(reply.headers, reply.content))
        except (aiohttp.ClientError, TimeoutError) as error:
            hook.last_error_date = int(time.time())
            hook.last_error_message = f"Connection failed: {type(error).__name__}"
            return False
        return True

    async def _run_reply(self, reader: aiohttp.MultipartReader) -> None:
        received = time.monotonic()
        raw: dict[str, str] = {}
        while (part := await reader.next()) is not None:
            if isinstance(part, aiohttp.BodyPartReader) and part.name:
                raw[part.name] = await part.text()
        if name := raw.pop("method", ""):
            await self._process(self.token, name, decode_params(raw), received)
