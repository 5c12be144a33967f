"""How updates reach the bot: the queue, ``getUpdates`` long polling, and the webhook.

``UpdateDelivery`` owns the pending updates and the Bot API methods that take them
(``getUpdates``, ``setWebhook``, ``deleteWebhook``, ``getWebhookInfo``). Once ``setWebhook`` is
called, updates are POSTed to the webhook with ``X-Telegram-Bot-Api-Secret-Token``; a non-2xx
answer is retried ``webhook_attempts`` times, then the update is dropped, and a method in the
reply is handed to ``run_method`` (the server's), as Telegram executes it. ``lose_answers``
answers are taken as lost on the way back (a connection that broke, a read that timed out):
the same update, its update_id unchanged, is delivered again, as Telegram does for any
delivery it did not see succeed. Unlike Telegram, a webhook may use plain http.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from playground.wire import ApiError, bad_request, decode_params

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from playground.state import Method

    RunMethod = Callable[[str, dict[str, Any], float], Awaitable[object]]

__all__ = ["Changes", "UpdateDelivery"]

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
_FIRST_UPDATE_ID = 100_000_001


class Changes:
    """Wakes every waiter at once: each ``notify`` sets the event that waiters took before."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def next(self) -> asyncio.Event:
        """The event the next ``notify`` sets; take it before looking, so no change is missed."""
        return self._event

    def notify(self) -> None:
        """Wake everything waiting on the current event."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - a plain wait
        """Until the next ``notify`` or ``timeout`` seconds, whichever comes first.

        Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancel that comes in the turn the
        event is set, and the task cancelled (a poll the server ends as it closes) runs on.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    last_error_date: int | None = None
    last_error_message: str | None = None


def _update_type(update: dict[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


class UpdateDelivery:
    """The pending updates and how the bot takes them: long polling or a webhook."""

    def __init__(self, run_method: RunMethod) -> None:
        self.pending: list[dict[str, Any]] = []
        self.allowed = DEFAULT_ALLOWED  # the update types the bot asked for
        self.webhook_attempts = 3
        self.webhook_retry_delay = 0.05
        self.lose_answers = 0  # the bot's next answers that never reach "Telegram"
        self._run_method = run_method
        self._next_update_id = _FIRST_UPDATE_ID
        self._poller = 0
        self._changes = Changes()
        self._closing = False
        self._webhook: _Webhook | None = None
        self._webhook_task: asyncio.Task[None] | None = None

    def methods(self) -> dict[str, Method]:
        """The Bot API methods that deliver updates, by their canonical names."""
        return {
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
        }

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue ``update`` with the next update_id; return it as queued."""
        queued = {"update_id": self._next_update_id} | update
        self._next_update_id += 1
        self.pending.append(queued)
        self._changes.notify()
        return queued

    async def close(self) -> None:
        """Answer waiting long polls and stop webhook delivery."""
        self._closing = True
        self._changes.notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task

    def _drop_disallowed(self) -> None:
        self.pending = [u for u in self.pending if _update_type(u) in self.allowed]

    # Long polling.

    async def _get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self._webhook is not None:
            raise ApiError(HTTPStatus.CONFLICT, CONFLICT_WEBHOOK)
        self._poller += 1  # as Telegram does: a poll already waiting ends at once with 409
        self._changes.notify()
        poller = self._poller
        offset, limit, timeout = p.get("offset"), p.get("limit", _MAX_UPDATES), p.get("timeout", 0)
        if isinstance(allowed := p.get("allowed_updates"), list):
            self.allowed = frozenset(allowed) or DEFAULT_ALLOWED
        if isinstance(offset, int) and offset < 0:
            self.pending = self.pending[offset:]
        elif isinstance(offset, int):
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        limit = min(max(limit, 1), _MAX_UPDATES) if isinstance(limit, int) else _MAX_UPDATES
        deadline = time.monotonic() + (timeout if isinstance(timeout, int) else 0)
        while True:
            if poller != self._poller:
                raise ApiError(HTTPStatus.CONFLICT, CONFLICT_POLLER)
            self._drop_disallowed()
            remaining = deadline - time.monotonic()
            if self.pending or self._closing or remaining <= 0:
                return self.pending[:limit]
            await self._changes.wait(remaining)

    # The webhook.

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
            self.pending.clear()
        max_connections = p.get("max_connections", 40)
        self._webhook = _Webhook(
            url,
            None if secret is None else str(secret),
            max_connections if isinstance(max_connections, int) else 40,
            allowed if isinstance(allowed, list) else None,
        )
        if isinstance(allowed, list):
            self.allowed = frozenset(allowed) or DEFAULT_ALLOWED
        if self._webhook_task is None:
            self._webhook_task = asyncio.create_task(self._deliver_to_webhook())
        self._poller += 1  # a webhook ends long polling
        self._changes.notify()
        return True

    def _delete_webhook(self, p: dict[str, Any]) -> bool:
        self._webhook = None
        if p.get("drop_pending_updates"):
            self.pending.clear()
        return True

    def _get_webhook_info(self, _p: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {"url": "", "has_custom_certificate": False}
        info["pending_update_count"] = len(self.pending)
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
                if hook is None or not self.pending:
                    await self._changes.wait()
                    continue
                update = self.pending[0]
                for attempt in range(self.webhook_attempts):
                    if attempt:
                        await asyncio.sleep(self.webhook_retry_delay)
                    if self._webhook is not hook or await self._post(client, hook, update):
                        break
                if self._webhook is hook and self.pending and self.pending[0] is update:
                    self.pending.pop(0)

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
                if self.lose_answers > 0:
                    self.lose_answers -= 1
                    hook.last_error_date = int(time.time())
                    hook.last_error_message = "Read timeout expired"
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
            await self._run_method(name, decode_params(raw), received)
