"""The playground: the Bot API emulator plus a page at ``/`` that plays the user's side.

``Playground`` is a ``FakeTelegram`` that also serves the page (``static/``), a server-sent
event stream (``GET /events``) and small JSON actions the page posts:

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


class Playground(FakeTelegram):
    """The emulator with the page, the event stream and the page's actions on top."""

    def __init__(
        self,
        *,
        token: str = "123456:PLAYGROUND",  # noqa: S107 - the emulator's own token, not a secret
        bot_username: str = "veil_bot",
        bot_id: int = 123456,
        inline_wait: float = 3.0,
    ) -> None:
        super().__init__(token=token, bot_username=bot_username, bot_id=bot_id)
        self.bot_user["first_name"] = "Veil"
        self.group_title = "Playground group"
        self.inline_wait = inline_wait
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._group: list[dict[str, Any]] = []  # what the play user saw in the group, in order
        self._link_serial = 0

    # The event stream.

    def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` to every open page."""
        for queue in self._subscribers:
            queue.put_nowait(event)

    def snapshot(self) -> dict[str, Any]:
        """Everything a freshly opened page shows."""
        private = sorted(
            (
                message
                for (chat_id, _id), message in self._messages.items()
                if chat_id == PLAY_USER_ID
            ),
            key=lambda message: int(message["message_id"]),
        )
        return {
            "type": "snapshot",
            "bot": {"name": self.bot_user["first_name"], "username": self.bot_user["username"]},
            "user_id": PLAY_USER_ID,
            "group": {"id": GROUP_CHAT_ID, "title": self.group_title},
            "commands": self.commands,
            "messages": [shown_message(message) for message in private],
            "group_items": self._group,
            "invoice_links": {url: self._link(url) for url in self.invoice_links},
        }

    def _link(self, url: str) -> dict[str, Any]:
        invoice = self.invoice_links[url]
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

    async def close(self) -> None:
        """End every page's event stream, then stop the emulator."""
        for queue in self._subscribers:
            queue.put_nowait(None)
        await asyncio.sleep(0)
        await super().close()

    # What the bot did, as events.

    def _observe(self, method: str, params: dict[str, Any], result: object) -> None:
        if (event := self._event_of(method, params, result)) is not None:
            self.publish(event)

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
        if method.startswith("editMessage") and inline_id in self.inline_messages:
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
            return {"type": "commands", "commands": self.commands}
        return None

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue the update, and show a message the play user sent (text or payment)."""
        update_id = super().push_update(update)
        message = update.get("message")
        if isinstance(message, dict) and message["chat"]["id"] == PLAY_USER_ID:
            self.publish({"type": "message", "message": shown_message(message)})
        return update_id

    def _inline_item(self, inline_message_id: str) -> dict[str, Any]:
        inline = self.inline_messages[inline_message_id]
        return {
            "kind": "inline",
            "inline_message_id": inline_message_id,
            "html": render_entities(str(inline.get("text", "")), inline.get("entities")),
            "buttons": (inline.get("reply_markup") or {}).get("inline_keyboard", []),
        }

    # The page and its actions.

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_get("/events", self._events)
        app.router.add_get("/ui/state", self._state)
        app.router.add_static("/static/", STATIC)
        actions = {
            "send": self._ui_send,
            "press": self._ui_press,
            "stop": self._ui_stop,
            "pay": self._ui_pay,
            "inline": self._ui_inline,
            "choose": self._ui_choose,
        }
        for name, action in actions.items():
            app.router.add_post(f"/ui/{name}", _json_action(action))

    async def _index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _state(self, _request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _ui_send(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _str(body, "text").strip()
        if not text or len(text) > _MAX_TEXT:
            raise _BadAction(f"text: 1-{_MAX_TEXT} characters expected")
        update_id = self.send_text(PLAY_USER_ID, text, language_code=_language(body))
        return {"update_id": update_id}

    async def _ui_press(self, body: dict[str, Any]) -> dict[str, Any]:
        data = _str(body, "data")
        if "inline_message_id" in body:
            inline_id = _str(body, "inline_message_id")
            if inline_id not in self.inline_messages:
                raise _BadAction("inline_message_id: no such message")
            return {"update_id": self.press_inline_button(PLAY_USER_ID, data, inline_id)}
        message_id = _int(body, "message_id")
        update_id = self.press_button(
            PLAY_USER_ID, data, message_id=message_id, language_code=_language(body)
        )
        return {"update_id": update_id}

    async def _ui_stop(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"update_id": self.stop_generation(PLAY_USER_ID, _int(body, "draft_id"))}

    async def _ui_pay(self, body: dict[str, Any]) -> dict[str, Any]:
        if "link" in body:
            invoice = self.invoice_links.get(_str(body, "link"))
        else:
            invoice = self.invoices.get((PLAY_USER_ID, _int(body, "message_id")))
        if invoice is None:
            raise _BadAction("no such invoice")
        payload, amount = invoice["payload"], invoice["total_amount"]
        self.pre_checkout(PLAY_USER_ID, payload=payload, total_amount=amount)
        query_id = next(reversed(self.pre_checkouts))
        try:
            answer = await self.wait_for(
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
        charge_id = self.pay(
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
        self.inline_query(
            PLAY_USER_ID, query, language_code=_language(body), chat_type="supergroup"
        )
        query_id = next(reversed(self._inline_queries))
        if "inline_query" in self._allowed:  # a bot without inline mode never answers
            with contextlib.suppress(TimeoutError):
                await self.wait_for(
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
            for result in self._inline_queries[query_id].results
        ]
        return {"query": query, "results": results}

    async def _ui_choose(self, body: dict[str, Any]) -> dict[str, Any]:
        query, result_id = _str(body, "query"), _str(body, "result_id")
        self._link_serial += 1
        inline_id = f"play-inline-{self._link_serial}-{secrets.token_hex(4)}"
        self.choose_inline_result(PLAY_USER_ID, result_id, query, inline_message_id=inline_id)
        item = self._inline_item(inline_id)
        self._group.append(item)
        self.publish({"type": "inline_message", "item": item})
        return {"inline_message_id": inline_id}

    def _group_chat(self) -> None:
        """Register the group chat where the play user types inline queries."""
        if GROUP_CHAT_ID not in self.chats:
            self._register_chat(GROUP_CHAT_ID, "supergroup", "")


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
