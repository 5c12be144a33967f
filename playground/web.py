"""The playground: the Bot API emulator plus a page at ``/`` that plays the user's side.

``Playground`` holds a ``FakeTelegram`` (``telegram``), serves the page (``static/``), a
server-sent event stream (``GET /events``) and small JSON actions the page posts on the same
port, and is the emulator's ``Observer``: it hears every call and update and shows them.
The actions are:

- ``/ui/send`` ``{"text", "lang"}``: a message from the play user in the private chat;
- ``/ui/press`` ``{"message_id" or "inline_message_id", "data", "lang"}``: a callback_query;
- ``/ui/stop`` ``{"draft_id"}``: stopped_message_generation;
- ``/ui/pay`` ``{"message_id"}`` (an invoice) or ``{"link"}`` (an invoice link): a
  pre_checkout_query, then, if the bot answered ok, a successful_payment with a play charge id;
- ``/ui/inline`` ``{"query", "lang"}``: an inline_query typed in the group; the reply holds the
  bot's results (none if it does not answer within ``inline_wait`` seconds);
- ``/ui/choose`` ``{"query", "result_id"}``: chosen_inline_result with a new inline_message_id.

Every Bot API call that changes what the user sees becomes an event on the stream (a JSON
object with a ``type``); the first event is a ``snapshot`` of everything shown so far, so a
reloaded page is complete. Texts are rendered to HTML here (``render.render_entities``,
escaped); the page inserts only those as HTML and everything else as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from playground.botapi import FakeTelegram
from playground.render import render_entities

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    _Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    _Handler = Callable[[web.Request], Awaitable[web.Response]]

__all__ = ["GROUP_CHAT_ID", "PLAY_USER_ID", "Playground"]

PLAY_USER_ID = 1000001
GROUP_CHAT_ID = -1001000001
LANGUAGES = ("en", "ru", "kk")
STATIC = Path(__file__).parent / "static"
_HEARTBEAT = 15.0
_MAX_TEXT = 4096


class _BadAction(Exception):
    """A page action with a missing or malformed field."""


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _BadAction(f"{name}: an integer expected")
    return value


def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _BadAction(f"{name}: a string expected")
    return value


def _language(body: dict[str, Any]) -> str:
    lang = body.get("lang", "en")
    return lang if lang in LANGUAGES else "en"


def shown_message(message: dict[str, Any]) -> dict[str, Any]:
    """What the page needs of a message: ids, who sent it, its HTML, buttons, invoice."""
    sender = message.get("from", {})
    shown: dict[str, Any] = {
        "chat_id": message["chat"]["id"],
        "message_id": message["message_id"],
        "outgoing": not sender.get("is_bot", False),
        "date": message.get("date", 0),
        "edited": "edit_date" in message,
        "html": render_entities(str(message.get("text", "")), message.get("entities")),
        "buttons": (message.get("reply_markup") or {}).get("inline_keyboard", []),
    }
    if (invoice := message.get("invoice")) is not None:
        shown["invoice"] = {
            key: invoice[key] for key in ("title", "description", "currency", "total_amount")
        }
    if (payment := message.get("successful_payment")) is not None:
        shown["payment"] = {"total_amount": payment["total_amount"]}
    return shown


class Playground:
    """The page, its event stream and its actions, over the Bot API emulator it holds."""

    def __init__(
        self,
        *,
        token: str = "123456:PLAYGROUND",  # noqa: S107 - the emulator's own token, not a secret
        bot_username: str = "veil_bot",
        bot_id: int = 123456,
        inline_wait: float = 3.0,
    ) -> None:
        self.telegram = FakeTelegram(
            token=token,
            bot_username=bot_username,
            bot_id=bot_id,
            observer=self,
            routes=self._routes(),
        )
        self.telegram.state.bot_user["first_name"] = "Veil"
        self.telegram.state.group_title = "Playground group"
        self.inline_wait = inline_wait
        self._state = self.telegram.state
        self._payments = self.telegram.payments
        self._user = self.telegram.user
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._group: list[dict[str, Any]] = []  # what the play user saw in the group, in order
        self._link_serial = 0

    @property
    def url(self) -> str:
        """The base URL of the page and of the Bot API ("" before ``start``)."""
        return self.telegram.url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the page and the Bot API on ``host:port`` (0: a free port); return the URL."""
        return await self.telegram.start(host, port)

    async def close(self) -> None:
        """End every page's event stream, then stop the emulator."""
        for queue in self._subscribers:
            queue.put_nowait(None)
        await asyncio.sleep(0)
        await self.telegram.close()

    # The event stream.

    def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` to every open page."""
        for queue in self._subscribers:
            queue.put_nowait(event)

    def snapshot(self) -> dict[str, Any]:
        """Everything a freshly opened page shows."""
        state = self._state
        return {
            "type": "snapshot",
            "bot": {"name": state.bot_user["first_name"], "username": state.bot_user["username"]},
            "user_id": PLAY_USER_ID,
            "group": {"id": GROUP_CHAT_ID, "title": state.group_title},
            "commands": state.commands,
            "messages": [shown_message(message) for message in state.chat_messages(PLAY_USER_ID)],
            "group_items": self._group,
            "invoice_links": {url: self._link(url) for url in self._payments.invoice_links},
        }

    def _link(self, url: str) -> dict[str, Any]:
        invoice = self._payments.invoice_links[url]
        shown = {key: invoice[key] for key in ("title", "description", "total_amount")}
        return shown | {"subscription": "subscription_period" in invoice}

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            with contextlib.suppress(ConnectionResetError):  # the page went away
                await response.write(_sse(self.snapshot()))
                while (event := await _next_or_ping(queue, response)) is not None:
                    await response.write(_sse(event))
        finally:
            self._subscribers.discard(queue)
        return response

    # What the bot and the user did, as events (the emulator's Observer).

    def answered(self, method: str, params: dict[str, Any], result: object) -> None:
        """Show what a successful Bot API call changed, if the user would see it."""
        if (event := self._event_of(method, params, result)) is not None:
            self.publish(event)

    def queued(self, update: dict[str, Any]) -> None:
        """Show a message the play user sent (text or payment)."""
        message = update.get("message")
        if isinstance(message, dict) and message["chat"]["id"] == PLAY_USER_ID:
            self.publish({"type": "message", "message": shown_message(message)})

    def _event_of(  # noqa: PLR0911 - one return per Bot API method the page shows
        self, method: str, params: dict[str, Any], result: object
    ) -> dict[str, Any] | None:
        """The page event a successful Bot API call makes, if it changes what the user sees."""
        chat_id = params.get("chat_id")
        inline_id = str(params.get("inline_message_id", ""))
        if method in {"sendMessage", "sendInvoice"} and isinstance(result, dict):
            return {"type": "message", "message": shown_message(result)}
        if method in {"editMessageText", "editMessageReplyMarkup"} and isinstance(result, dict):
            return {"type": "edit", "message": shown_message(result)}
        if method.startswith("editMessage") and inline_id in self._state.inline_messages:
            return {"type": "inline_edit", "item": self._inline_item(inline_id)}
        if method == "deleteMessage":
            return {"type": "delete", "chat_id": chat_id, "message_id": params.get("message_id")}
        if method == "sendMessageDraft":
            return _draft_event(params)
        if method == "sendChatAction":
            return {"type": "action", "chat_id": chat_id, "action": params.get("action")}
        if method == "answerCallbackQuery":
            text, alert = str(params.get("text") or ""), bool(params.get("show_alert"))
            return {"type": "callback_answer", "text": text, "show_alert": alert}
        if method == "createInvoiceLink" and isinstance(result, str):
            return {"type": "invoice_link", "url": result, "invoice": self._link(result)}
        if method == "setMyCommands":
            return {"type": "commands", "commands": self._state.commands}
        return None

    def _inline_item(self, inline_message_id: str) -> dict[str, Any]:
        inline = self._state.inline_messages[inline_message_id]
        return {
            "kind": "inline",
            "inline_message_id": inline_message_id,
            "html": render_entities(str(inline.get("text", "")), inline.get("entities")),
            "buttons": (inline.get("reply_markup") or {}).get("inline_keyboard", []),
        }

    # The page and its actions.

    def _routes(self) -> list[web.AbstractRouteDef]:
        actions = {
            "send": self._ui_send,
            "press": self._ui_press,
            "stop": self._ui_stop,
            "pay": self._ui_pay,
            "inline": self._ui_inline,
            "choose": self._ui_choose,
        }
        return [
            web.get("/", self._index),
            web.get("/events", self._events),
            web.get("/ui/state", self._ui_state),
            web.static("/static/", STATIC),
            *(web.post(f"/ui/{name}", _json_action(action)) for name, action in actions.items()),
        ]

    async def _index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _ui_state(self, _request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _ui_send(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _str(body, "text").strip()
        if not text or len(text) > _MAX_TEXT:
            raise _BadAction(f"text: 1-{_MAX_TEXT} characters expected")
        update_id = self._user.send_text(PLAY_USER_ID, text, language_code=_language(body))
        return {"update_id": update_id}

    async def _ui_press(self, body: dict[str, Any]) -> dict[str, Any]:
        data = _str(body, "data")
        if "inline_message_id" in body:
            inline_id = _str(body, "inline_message_id")
            if inline_id not in self._state.inline_messages:
                raise _BadAction("inline_message_id: no such message")
            return {"update_id": self._user.press_inline_button(PLAY_USER_ID, data, inline_id)}
        message_id = _int(body, "message_id")
        update_id = self._user.press_button(
            PLAY_USER_ID, data, message_id=message_id, language_code=_language(body)
        )
        return {"update_id": update_id}

    async def _ui_stop(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"update_id": self._user.stop_generation(PLAY_USER_ID, _int(body, "draft_id"))}

    async def _ui_pay(self, body: dict[str, Any]) -> dict[str, Any]:
        if "link" in body:
            invoice = self._payments.invoice_links.get(_str(body, "link"))
        else:
            invoice = self._payments.invoices.get((PLAY_USER_ID, _int(body, "message_id")))
        if invoice is None:
            raise _BadAction("no such invoice")
        payload, amount = invoice["payload"], invoice["total_amount"]
        self._user.pre_checkout(PLAY_USER_ID, payload=payload, total_amount=amount)
        query_id = next(reversed(self._payments.pre_checkouts))
        try:
            answer = await self.telegram.wait_for(
                "answerPreCheckoutQuery",
                lambda call: (
                    str(call.params.get("pre_checkout_query_id")) == query_id
                    and call.answered == "ok"
                ),
                timeout=10.0,
            )
        except TimeoutError:
            return {"paid": False, "error": "The bot did not answer the payment in time."}
        if answer.params.get("ok") is not True:
            return {"paid": False, "error": str(answer.params.get("error_message") or "")}
        charge_id = self._user.pay(
            PLAY_USER_ID,
            payload=payload,
            total_amount=amount,
            charge_id=f"play-{secrets.token_hex(6)}",
            is_recurring="subscription_period" in invoice,
        )
        return {"paid": True, "charge_id": charge_id}

    async def _ui_inline(self, body: dict[str, Any]) -> dict[str, Any]:
        query = _str(body, "query")
        self._group_chat()
        self._user.inline_query(
            PLAY_USER_ID, query, language_code=_language(body), chat_type="supergroup"
        )
        query_id = next(reversed(self._state.inline_queries))
        if "inline_query" in self.telegram.updates.allowed:  # a bot without inline mode
            with contextlib.suppress(TimeoutError):  # never answers
                await self.telegram.wait_for(
                    "answerInlineQuery",
                    lambda call: str(call.params.get("inline_query_id")) == query_id,
                    timeout=self.inline_wait,
                )
        results = [
            {
                "id": result["id"],
                "title": str(result.get("title") or result["id"]),
                "description": str(result.get("description", "")),
                "html": render_entities(str(result.get("text", "")), result.get("entities")),
            }
            for result in self._state.inline_queries[query_id].results
        ]
        return {"query": query, "results": results}

    async def _ui_choose(self, body: dict[str, Any]) -> dict[str, Any]:
        query, result_id = _str(body, "query"), _str(body, "result_id")
        self._link_serial += 1
        inline_id = f"play-inline-{self._link_serial}-{secrets.token_hex(4)}"
        self._user.choose_inline_result(PLAY_USER_ID, result_id, query, inline_message_id=inline_id)
        item = self._inline_item(inline_id)
        self._group.append(item)
        self.publish({"type": "inline_message", "item": item})
        return {"inline_message_id": inline_id}

    def _group_chat(self) -> None:
        """Register the group chat where the play user types inline queries."""
        if GROUP_CHAT_ID not in self._state.chats:
            self._state.register_chat(GROUP_CHAT_ID, "supergroup", "")


def _draft_event(params: dict[str, Any]) -> dict[str, Any]:
    text = str(params.get("text") or "")
    entities = params.get("entities")
    return {
        "type": "draft",
        "chat_id": params.get("chat_id"),
        "draft_id": params.get("draft_id"),
        "html": render_entities(text, entities if isinstance(entities, list) else []),
        "empty": not text.strip(),
        "can_stop": bool(params.get("can_stop")),
    }


async def _next_or_ping(
    queue: asyncio.Queue[dict[str, Any] | None], response: web.StreamResponse
) -> dict[str, Any] | None:
    """The next event (None: the stream ends), writing a comment line while none comes."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), _HEARTBEAT)
        except TimeoutError:
            await response.write(b": ping\n\n")


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def _json_action(action: _Action) -> _Handler:
    """An aiohttp handler that runs a page action on a JSON object; 400 with a reason if bad."""

    async def handler(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(
                {"error": "a JSON body expected"}, status=HTTPStatus.BAD_REQUEST
            )
        if not isinstance(body, dict):
            return web.json_response(
                {"error": "a JSON object expected"}, status=HTTPStatus.BAD_REQUEST
            )
        try:
            reply = await action(body)
        except _BadAction as error:
            return web.json_response({"error": str(error)}, status=HTTPStatus.BAD_REQUEST)
        return web.json_response({"ok": True} | reply)

    return handler
