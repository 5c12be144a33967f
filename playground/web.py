"""The playground: the Bot API emulator plus a page at ``/`` that plays the users' side.

``Playground`` holds a ``FakeTelegram`` (``telegram``), serves the page (``static/``), a
server-sent event stream (``GET /events``) and small JSON actions the page posts on the same
port, and is the emulator's ``Observer``: it hears every call and every message a user writes,
and shows them.

The page has three chats: the play user's private chat with the bot; the Playground group
(a supergroup the bot is a member of, in privacy mode, with Telegram's limit of 20 sends and
edits a minute; the play user created it, Bob is a member); and Friends, a supergroup without
the bot, where a message that mentions the bot summons it as a guest. In the two groups the
page acts as the play user or as Bob (``as``).

With ``topics`` the bot has topics in the private chat (Bot API 9.3+): the page lists them
(``snapshot``'s ``topics``, and a ``topics`` event whenever the bot or the user makes or renames
one), shows each message in its topic (``thread_id``) and writes into the topic picked.

The actions are (``chat``: "private", "group" or "guest"; ``as``: a play user's id, for groups):

- ``/ui/send`` ``{"text", "lang", "chat", "as", "reply_to", "thread_id"}``: a message (in the
  private chat's topic ``thread_id``, if given); in the group the bot is told only what privacy
  mode lets through, in Friends only a summons (a guest_message);
- ``/ui/topic`` ``{"name", "lang"}``: the play user makes a topic in the private chat (the bot
  is told); the reply holds its ``thread_id``;
- ``/ui/press`` ``{"message_id" and "chat", or "inline_message_id"; "data", "lang", "as"}``:
  a callback_query;
- ``/ui/stop`` ``{"draft_id", "thread_id"}``: stopped_message_generation;
- ``/ui/pay`` ``{"message_id"}`` (an invoice) or ``{"link"}`` (an invoice link): a
  pre_checkout_query, then, if the bot answered ok, a successful_payment with a play charge id;
- ``/ui/inline`` ``{"query", "lang", "chat", "as"}``: an inline_query typed in a group; the
  reply holds the bot's results (none if it does not answer within ``inline_wait`` seconds);
- ``/ui/choose`` ``{"query", "result_id", "chat", "as"}``: chosen_inline_result with a new
  inline_message_id; the article is posted into that chat, via the bot, and follows its edits;
- ``/ui/ton_pay`` ``{"message_id"}``: "simulate payment" of a Gram (or USDT) invoice in the
  private chat: the transfer its Tonkeeper button (or ``ton://`` link) asks for, exact amount
  and comment, lands on the emulated toncenter (``toncenter``, served under ``/toncenter``),
  where the bot's watcher finds it; once per invoice (a reloaded page shows it paid);
- ``/ui/webapp`` ``{"source", "url", "message_id", "lang"}``: open a Mini App the bot offers in
  the private chat (``source``: ``menu``, its menu button; ``inline``, a ``web_app`` button of
  message ``message_id``; ``keyboard``, a button of the reply keyboard it shows): the URL to
  open, with launch parameters and ``initData`` signed with the bot token
  (``playground.webapps``);
- ``/ui/webapp_event`` ``{"method", "data"}``: a SecureStorage or DeviceStorage request event
  of the open Mini App; the reply holds the event the client answers with (``event``, ``data``).

The page shows the bot's menu button and the reply keyboard it sends; ``static/miniapp.js``
opens a Mini App in an iframe, as Telegram's web client does, and answers its bridge events.

``GET /ui/photo/<file_id>`` serves a photo the bot sent. Every Bot API call that changes what a
user sees becomes an event on the stream (a JSON object with a ``type``); the first event is a
``snapshot`` of everything shown so far, so a reloaded page is complete. Texts are rendered to
HTML here (``render.render_entities``, escaped); the page inserts only those as HTML and
everything else as text. A rich message (and a rich draft) also carries its blocks as
``rich``, which the page builds into headings, lists, tables, code, math, details and thinking
blocks with text nodes only (``static/rich.js``). An ephemeral message carries its receiver:
the page shows it only while it acts as that user.
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

from playground import rich
from playground.botapi import FakeTelegram
from playground.limits import DEFAULT_PER_MINUTE
from playground.render import render_entities
from playground.toncenter import FakeToncenter, transfer_of_link
from playground.topics import MAX_TOPIC_NAME
from playground.wire import web_app_url_ok

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    _Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    _Handler = Callable[[web.Request], Awaitable[web.Response]]

__all__ = [
    "GROUP_CHAT_ID",
    "GUEST_CHAT_ID",
    "PLAY_USER_ID",
    "SECOND_USER_ID",
    "TONCENTER_PREFIX",
    "Playground",
    "shown_message",
    "transfer_link",
]

PLAY_USER_ID = 1000001
SECOND_USER_ID = 1000002
GROUP_CHAT_ID = -1001000001
GUEST_CHAT_ID = -1001000002
PLAY_USERS = {PLAY_USER_ID: "Ann", SECOND_USER_ID: "Bob"}
LANGUAGES = ("en", "ru", "kk")
STATIC = Path(__file__).parent / "static"
_HEARTBEAT = 15.0
_MAX_TEXT = 4096
_QUOTE = 80  # characters of a replied-to message shown above a reply
_KEEP_TONCENTER_REQUESTS = 1000  # the bot polls the emulated toncenter all day
TONCENTER_PREFIX = "/toncenter"
_TOPIC_METHODS = frozenset({"createForumTopic", "editForumTopic"})
_MESSAGE_METHODS = frozenset(
    {"sendMessage", "sendRichMessage", "sendInvoice", "sendPhoto", "answerGuestQuery"}
    | {"editEphemeralMessageText", "deleteMessage", "deleteEphemeralMessage"}
)


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


def _as(body: dict[str, Any]) -> int:
    """The play user a group action is done as (the play user unless ``as`` names Bob)."""
    user_id = body.get("as", PLAY_USER_ID)
    if user_id not in PLAY_USERS:
        raise _BadAction("as: a play user's id expected")
    return int(user_id)


def _text_of(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(message.get("rich_message"), dict):
        return rich.text_of(message["rich_message"])
    if "text" in message:
        return str(message["text"]), list(message.get("entities") or [])
    return str(message.get("caption") or ""), list(message.get("caption_entities") or [])


def transfer_link(message: dict[str, Any]) -> str | None:
    """The TON transfer a message asks for: a Tonkeeper button's URL or a ``ton://`` link."""
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            url = str(button.get("url") or "")
            if transfer_of_link(url) is not None:
                return url
    text, entities = _text_of(message)
    for entity in entities:
        if entity.get("type") == "text_link":
            url = str(entity.get("url") or "")
        elif entity.get("type") == "url":
            url = _utf16_slice(text, entity["offset"], entity["length"])
        else:
            continue
        if transfer_of_link(url) is not None:
            return url
    return None


def _utf16_slice(text: str, offset: int, length: int) -> str:
    units = text.encode("utf-16-le")
    return units[offset * 2 : (offset + length) * 2].decode("utf-16-le", "replace")


def shown_message(message: dict[str, Any], inline_message_id: str | None = None) -> dict[str, Any]:
    """What the page needs of a message: ids, sender, its HTML, buttons, reply, photo, invoice.

    ``key`` tells messages apart on the page: ``m<message_id>``, or ``e<ephemeral id>`` for an
    ephemeral message (whose message_id is 0).
    """
    sender = message.get("from", {})
    text, entities = _text_of(message)
    ephemeral_id = message.get("ephemeral_message_id")
    shown: dict[str, Any] = {
        "chat_id": message["chat"]["id"],
        "message_id": message["message_id"],
        "key": f"e{ephemeral_id}" if ephemeral_id else f"m{message['message_id']}",
        "from_id": sender.get("id", 0),
        "from_name": sender.get("first_name", ""),
        "is_bot": sender.get("is_bot", False),
        "outgoing": not sender.get("is_bot", False),
        "date": message.get("date", 0),
        "edited": "edit_date" in message,
        "html": render_entities(text, entities),
        "buttons": (message.get("reply_markup") or {}).get("inline_keyboard", []),
    }
    if isinstance(message.get("rich_message"), dict):
        shown["rich"] = message["rich_message"].get("blocks") or []
    if ephemeral_id:
        shown["ephemeral"] = {"receiver_id": message["receiver_user"]["id"]}
    shown |= _topic_fields(message)
    if inline_message_id is not None:
        shown["inline_message_id"] = inline_message_id
    if (via := message.get("via_bot")) is not None:
        shown["via_bot"] = via.get("username", "")
    if (replied := message.get("reply_to_message")) is not None:
        quote = _text_of(replied)[0] or ("Photo" if "photo" in replied else "Message")
        shown["reply_to"] = {
            "message_id": replied["message_id"],
            "from_name": replied.get("from", {}).get("first_name", ""),
            "text": quote if len(quote) <= _QUOTE else quote[: _QUOTE - 1] + "…",
        }
    if photo := message.get("photo"):
        largest = photo[-1]
        shown["photo"] = {
            "url": f"/ui/photo/{largest['file_id']}",
            "width": largest["width"],
            "height": largest["height"],
        }
    if (invoice := message.get("invoice")) is not None:
        shown["invoice"] = {
            key: invoice[key] for key in ("title", "description", "currency", "total_amount")
        }
    if (payment := message.get("successful_payment")) is not None:
        shown["payment"] = {"total_amount": payment["total_amount"]}
    if (link := transfer_link(message)) is not None and (asked := transfer_of_link(link)):
        shown["ton_invoice"] = {
            "asset": "gram" if asked.jetton is None else "jetton",
            "amount": asked.amount,
            "comment": asked.comment or "",
        }
    return shown


def _topic_fields(message: dict[str, Any]) -> dict[str, Any]:
    """A message's topic (``thread_id``) and, for a topic's service message, what happened."""
    fields: dict[str, Any] = {}
    if message.get("is_topic_message"):
        fields["thread_id"] = message["message_thread_id"]
    for kind in ("created", "edited"):
        if (event := message.get(f"forum_topic_{kind}")) is not None:
            fields["topic_event"] = {"kind": kind, "name": str(event.get("name", ""))}
    return fields


class Playground:
    """The page, its event stream and its actions, over the Bot API emulator it holds."""

    def __init__(  # noqa: PLR0913 -- keyword-only options of the emulated world
        self,
        *,
        token: str = "123456:PLAYGROUND",  # noqa: S107 - the emulator's own token, not a secret
        bot_username: str = "veil_bot",
        bot_id: int = 123456,
        inline_wait: float = 3.0,
        group_limit: int | None = DEFAULT_PER_MINUTE,
        toncenter: FakeToncenter | None = None,
        topics: bool = False,
    ) -> None:
        """``group_limit``: sends and edits a minute into one group (None: no limit).

        ``toncenter``: the emulated chain served under ``/toncenter`` (a new one by default).
        ``topics``: the bot has topics in private chats (getMe's ``has_topics_enabled``).
        """
        toncenter = toncenter or FakeToncenter(keep_requests=_KEEP_TONCENTER_REQUESTS)
        self.toncenter = toncenter
        self.telegram = FakeTelegram(
            token=token,
            bot_username=bot_username,
            bot_id=bot_id,
            observer=self,
            routes=self._routes(),
        )
        self.inline_wait = inline_wait
        self._state = self.telegram.state
        self._payments = self.telegram.payments
        self._user = self.telegram.user
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._inline_serial = 0
        self._ton_paid: set[tuple[int, int]] = set()  # (chat, message) of invoices paid
        self._webapps = self.telegram.webapps
        self._reply_keyboards: dict[int, list[list[dict[str, Any]]]] = {}  # chat id -> rows
        self._set_up_chats(group_limit)
        self._state.topics.enabled = topics

    def _set_up_chats(self, group_limit: int | None) -> None:
        state = self._state
        state.bot_user["first_name"] = "Veil"
        state.privacy_mode = True  # BotFather's default for a new bot
        self.telegram.limit_groups(group_limit)
        for user_id, name in PLAY_USERS.items():
            state.register_user(user_id, name, "en")
        state.register_chat(PLAY_USER_ID, "private", PLAY_USERS[PLAY_USER_ID])
        state.register_chat(GROUP_CHAT_ID, "supergroup", "", title="Playground group")
        state.register_chat(GUEST_CHAT_ID, "supergroup", "", title="Friends", with_bot=False)
        for chat_id in (GROUP_CHAT_ID, GUEST_CHAT_ID):
            state.set_member(chat_id, PLAY_USER_ID, "creator")
            state.set_member(chat_id, SECOND_USER_ID, "member")

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

    def _chat_ids(self) -> dict[str, int]:
        return {"private": PLAY_USER_ID, "group": GROUP_CHAT_ID, "guest": GUEST_CHAT_ID}

    def _shown(self, message: dict[str, Any]) -> dict[str, Any]:
        """``shown_message`` with the inline message id of an article posted into a chat."""
        place = (message["chat"]["id"], message["message_id"])
        inline_id = next(
            (key for key, at in self._state.inline_places.items() if at == place), None
        )
        shown = shown_message(message, inline_id)
        if "ton_invoice" in shown and place in self._ton_paid:
            shown["ton_invoice"]["paid"] = True
        return shown

    def snapshot(self) -> dict[str, Any]:
        """Everything a freshly opened page shows."""
        state = self._state
        messages = [
            self._shown(message)
            for chat_id in self._chat_ids().values()
            for message in state.chat_messages(chat_id)
        ]
        messages += [shown_message(m) for m in state.ephemeral_messages(GROUP_CHAT_ID)]
        return {
            "type": "snapshot",
            "bot": {"name": state.bot_user["first_name"], "username": state.bot_user["username"]},
            "user_id": PLAY_USER_ID,
            "users": [{"id": user_id, "name": name} for user_id, name in PLAY_USERS.items()],
            "chats": {
                name: {"id": chat_id, "title": state.chats[chat_id].get("title", "")}
                for name, chat_id in self._chat_ids().items()
            },
            "group": {"id": GROUP_CHAT_ID, "title": state.chats[GROUP_CHAT_ID]["title"]},
            "commands": state.commands,
            "topics": self._topics(),
            "messages": messages,
            "invoice_links": {url: self._link(url) for url in self._payments.invoice_links},
            "menu_button": self._webapps.menu_button(PLAY_USER_ID),
            "reply_keyboard": self._reply_keyboards.get(PLAY_USER_ID),
        }

    def _topics(self) -> dict[str, Any]:
        """Whether the private chat has topics, and its topics, oldest first."""
        topics = self._state.topics
        return {
            "enabled": topics.enabled,
            "list": [
                {"thread_id": t.thread_id, "name": t.name, "icon_color": t.icon_color}
                for t in topics.of(PLAY_USER_ID)
            ],
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

    # What the bot and the users did, as events (the emulator's Observer).

    def answered(self, method: str, params: dict[str, Any], result: object) -> None:
        """Show what a successful Bot API call changed, if a user would see it."""
        if method in _TOPIC_METHODS and params.get("chat_id") == PLAY_USER_ID:
            self._topic_changed()
        elif (event := self._event_of(method, params, result)) is not None:
            self.publish(event)
        if method in _MESSAGE_METHODS and (keyboard := self._reply_keyboard(params)) is not None:
            self.publish(keyboard)

    def _reply_keyboard(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """A reply keyboard a message shows or removes in a play chat, as a page event."""
        markup, chat_id = params.get("reply_markup"), params.get("chat_id")
        if not isinstance(markup, dict) or not isinstance(chat_id, int):
            return None
        if chat_id not in self._chat_ids().values():
            return None
        if isinstance(markup.get("keyboard"), list):
            rows = [
                [
                    {"text": b} if isinstance(b, str) else {"text": b["text"]} | _web_app(b)
                    for b in row
                ]
                for row in markup["keyboard"]
                if isinstance(row, list)
            ]
            self._reply_keyboards[chat_id] = rows
        elif markup.get("remove_keyboard") is True:
            self._reply_keyboards.pop(chat_id, None)
        else:
            return None
        keyboard = self._reply_keyboards.get(chat_id)
        return {"type": "reply_keyboard", "chat_id": chat_id, "keyboard": keyboard}

    def posted(self, message: dict[str, Any]) -> None:
        """Show a message a play user wrote (text, an inline article or a payment, a topic)."""
        if message["chat"]["id"] in self._chat_ids().values():
            self.publish({"type": "message", "message": self._shown(message)})
        if "forum_topic_created" in message:
            self.publish({"type": "topics", "topics": self._topics()})

    def _topic_changed(self) -> None:
        """A topic made or renamed: the new list, and the service message it posted."""
        self.publish({"type": "topics", "topics": self._topics()})
        newest = self._state.chat_messages(PLAY_USER_ID)[-1:]
        for message in newest:
            self.publish({"type": "message", "message": self._shown(message)})

    def _event_of(  # noqa: PLR0911 - one return per Bot API method the page shows
        self, method: str, params: dict[str, Any], result: object
    ) -> dict[str, Any] | None:
        """The page event a successful Bot API call makes, if it changes what a user sees."""
        if method in _MESSAGE_METHODS or method.startswith("editMessage"):
            return self._message_event(method, params, result)
        if method == "sendMessageDraft":
            return _draft_event(params)
        if method == "sendRichMessageDraft":
            return _draft_event(_rich_draft_params(params))
        if method == "sendChatAction":
            chat_id, action = params.get("chat_id"), params.get("action")
            return {"type": "action", "chat_id": chat_id, "action": action}
        if method == "answerCallbackQuery":
            query_id = str(params.get("callback_query_id"))
            text, alert = str(params.get("text") or ""), bool(params.get("show_alert"))
            user_id = self._state.callback_users.get(query_id, PLAY_USER_ID)
            return {"type": "callback_answer", "text": text, "show_alert": alert} | {
                "user_id": user_id
            }
        if method == "createInvoiceLink" and isinstance(result, str):
            return {"type": "invoice_link", "url": result, "invoice": self._link(result)}
        if method == "setMyCommands":
            return {"type": "commands", "commands": self._state.commands}
        if method == "setChatMenuButton":
            return {"type": "menu_button", "button": self._webapps.menu_button(PLAY_USER_ID)}
        return None

    def _message_event(
        self, method: str, params: dict[str, Any], result: object
    ) -> dict[str, Any] | None:
        """A message posted, edited or deleted, as the page shows it."""
        chat_id = params.get("chat_id")
        if method in {"sendMessage", "sendRichMessage", "sendInvoice", "sendPhoto"} and isinstance(
            result, dict
        ):
            return {"type": "message", "message": shown_message(result)}
        if isinstance(result, dict) and method != "answerGuestQuery":  # an edit in a chat
            return {"type": "edit", "message": self._shown(result)}
        if method == "editEphemeralMessageText" and isinstance(chat_id, int):
            ephemeral = self._state.ephemeral_message(chat_id, params["ephemeral_message_id"])
            return (
                None if ephemeral is None else {"type": "edit", "message": shown_message(ephemeral)}
            )
        if method in {"deleteMessage", "deleteEphemeralMessage"}:
            key = f"m{params.get('message_id')}"
            if method == "deleteEphemeralMessage":
                key = f"e{params.get('ephemeral_message_id')}"
            return {"type": "delete", "chat_id": chat_id, "key": key}
        inline_id = str(params.get("inline_message_id", ""))  # an inline message edited...
        kind = "edit"
        if method == "answerGuestQuery" and isinstance(result, dict):  # ...or a guest answer
            inline_id, kind = str(result["inline_message_id"]), "message"
        placed = self._state.placed_message(inline_id)
        return None if placed is None else {"type": kind, "message": self._shown(placed)}

    # The page and its actions.

    def _routes(self) -> list[web.AbstractRouteDef]:
        actions = {
            "send": self._ui_send,
            "press": self._ui_press,
            "stop": self._ui_stop,
            "pay": self._ui_pay,
            "inline": self._ui_inline,
            "choose": self._ui_choose,
            "ton_pay": self._ui_ton_pay,
            "topic": self._ui_topic,
            "webapp": self._ui_webapp,
            "webapp_event": self._ui_webapp_event,
        }
        return [
            web.get("/", self._index),
            web.get("/events", self._events),
            web.get("/ui/state", self._ui_state),
            web.get("/ui/photo/{file_id}", self._ui_photo),
            web.static("/static/", STATIC),
            *(web.post(f"/ui/{name}", _json_action(action)) for name, action in actions.items()),
            *self.toncenter.routes(TONCENTER_PREFIX),
        ]

    async def _index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _ui_state(self, _request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _ui_photo(self, request: web.Request) -> web.Response:
        stored = self.telegram.media.files.get(request.match_info["file_id"])
        if stored is None:
            raise web.HTTPNotFound
        return web.Response(body=stored.data, content_type=stored.content_type)

    def _chat(self, body: dict[str, Any]) -> int:
        name = body.get("chat", "private")
        chat_id = self._chat_ids().get(name) if isinstance(name, str) else None
        if chat_id is None:
            raise _BadAction('chat: "private", "group" or "guest" expected')
        return chat_id

    async def _ui_send(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _str(body, "text").strip()
        if not text or len(text) > _MAX_TEXT:
            raise _BadAction(f"text: 1-{_MAX_TEXT} characters expected")
        chat_id = self._chat(body)
        user_id = PLAY_USER_ID if chat_id == PLAY_USER_ID else _as(body)
        reply_to = body.get("reply_to")
        if reply_to is not None and (
            not isinstance(reply_to, int) or self._state.message(chat_id, reply_to) is None
        ):
            raise _BadAction("reply_to: no such message in that chat")
        update_id = self._user.send_text(
            user_id,
            text,
            language_code=_language(body),
            chat_id=None if chat_id == PLAY_USER_ID else chat_id,
            first_name=PLAY_USERS[user_id],
            reply_to=reply_to,
            thread_id=self._thread(body, chat_id),
        )
        return {"update_id": update_id}

    def _thread(self, body: dict[str, Any], chat_id: int) -> int | None:
        """The private chat's topic an action names (``thread_id``), checked; None: none."""
        if body.get("thread_id") is None:
            return None
        thread_id = _int(body, "thread_id")
        if chat_id != PLAY_USER_ID or self._state.topics.get(chat_id, thread_id) is None:
            raise _BadAction("thread_id: no such topic in the private chat")
        return thread_id

    async def _ui_topic(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _str(body, "name").strip()
        if not 1 <= len(name) <= MAX_TOPIC_NAME:
            raise _BadAction(f"name: 1-{MAX_TOPIC_NAME} characters expected")
        if not (self._state.topics.enabled and self._state.topics.users_create):
            raise _BadAction("this bot has no topics users may create in private chats")
        thread_id = self._user.create_topic(PLAY_USER_ID, name, language_code=_language(body))
        return {"thread_id": thread_id}

    async def _ui_press(self, body: dict[str, Any]) -> dict[str, Any]:
        data = _str(body, "data")
        user_id = _as(body)
        if "inline_message_id" in body:
            inline_id = _str(body, "inline_message_id")
            if inline_id not in self._state.inline_messages:
                raise _BadAction("inline_message_id: no such message")
            update_id = self._user.press_inline_button(
                user_id, data, inline_id, language_code=_language(body)
            )
            return {"update_id": update_id}
        message_id, chat_id = _int(body, "message_id"), self._chat(body)
        update_id = self._user.press_button(
            user_id,
            data,
            message_id=message_id,
            chat_id=None if chat_id == PLAY_USER_ID else chat_id,
            language_code=_language(body),
        )
        return {"update_id": update_id}

    async def _ui_stop(self, body: dict[str, Any]) -> dict[str, Any]:
        thread_id = self._thread(body, PLAY_USER_ID)
        draft_id = _int(body, "draft_id")
        return {"update_id": self._user.stop_generation(PLAY_USER_ID, draft_id, thread_id)}

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
        self._user.inline_query(
            _as(body), query, language_code=_language(body), chat_type="supergroup"
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
        chat_id = self._chat(body)
        if chat_id == PLAY_USER_ID:
            raise _BadAction('chat: "group" or "guest" expected')
        self._inline_serial += 1
        inline_id = f"play-inline-{self._inline_serial}-{secrets.token_hex(4)}"
        self._user.choose_inline_result(
            _as(body), result_id, query, inline_message_id=inline_id, chat_id=chat_id
        )
        return {"inline_message_id": inline_id}

    async def _ui_ton_pay(self, body: dict[str, Any]) -> dict[str, Any]:
        message = self._state.message(PLAY_USER_ID, _int(body, "message_id"))
        link = None if message is None else transfer_link(message)
        if link is None:
            raise _BadAction("message_id: no TON invoice in the private chat")
        place = (PLAY_USER_ID, _int(body, "message_id"))
        if place in self._ton_paid:
            raise _BadAction("this invoice was paid already")
        self._ton_paid.add(place)
        record = self.toncenter.pay_link(link)
        assert record is not None  # noqa: S101 -- transfer_link found a transfer link
        tx_hash = record.get("hash") or record["transaction_hash"]
        return {"paid": True, "hash": tx_hash}

    async def _ui_webapp(self, body: dict[str, Any]) -> dict[str, Any]:
        source, url = _str(body, "source"), _str(body, "url")
        if url not in self._offered(source, body):
            raise _BadAction("url: the bot offers no such Mini App there")
        launch = self._webapps.launch_url(
            url, PLAY_USER_ID, source=source, language=_language(body)
        )
        return {"url": launch, "title": self._state.bot_user["first_name"]}

    def _offered(self, source: str, body: dict[str, Any]) -> list[str]:
        """The Mini App URLs the bot offers the play user in the private chat, by ``source``."""
        if source == "menu":
            menu = self._webapps.menu_button(PLAY_USER_ID)
            return [menu["web_app"]["url"]] if menu["type"] == "web_app" else []
        if source == "inline":
            message = self._state.message(PLAY_USER_ID, _int(body, "message_id"))
            markup = (message or {}).get("reply_markup") or {}
            rows = markup.get("inline_keyboard", [])
        elif source == "keyboard":
            rows = self._reply_keyboards.get(PLAY_USER_ID, [])
        else:
            raise _BadAction('source: "menu", "inline" or "keyboard" expected')
        return [b["web_app"]["url"] for row in rows for b in row if "web_app" in b]

    async def _ui_webapp_event(self, body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data")
        if not isinstance(data, dict):
            raise _BadAction("data: an object expected")
        answer = self._webapps.storage(PLAY_USER_ID, _str(body, "method"), data)
        if answer is None:
            return {"event": None}
        event, reply = answer
        return {"event": event, "data": reply}


def _web_app(button: dict[str, Any]) -> dict[str, Any]:
    """A keyboard button's ``web_app`` field, if it has a Mini App's URL."""
    app = button.get("web_app")
    if isinstance(app, dict) and web_app_url_ok(app.get("url")):
        return {"web_app": {"url": app["url"]}}
    return {}


def _rich_draft_params(params: dict[str, Any]) -> dict[str, Any]:
    """A rich draft's parameters as a plain draft's: its text as the page shows it."""
    raw = params.get("rich_message")
    blocks = rich.parse_rich(raw, draft=True) if isinstance(raw, dict) else []
    text, entities = rich.text_of({"blocks": blocks})
    return params | {"text": text, "entities": entities, "rich_blocks": blocks}


def _draft_event(params: dict[str, Any]) -> dict[str, Any]:
    text = str(params.get("text") or "")
    entities = params.get("entities")
    event = {
        "type": "draft",
        "chat_id": params.get("chat_id"),
        "draft_id": params.get("draft_id"),
        "thread_id": params.get("message_thread_id"),
        "html": render_entities(text, entities if isinstance(entities, list) else []),
        "empty": not text.strip(),
        "can_stop": bool(params.get("can_stop")),
    }
    if "rich_blocks" in params:  # a rich draft: the page builds its blocks (rich.js)
        event["rich"] = params["rich_blocks"]
    return event


async def _next_or_ping(
    queue: asyncio.Queue[dict[str, Any] | None], response: web.StreamResponse
) -> dict[str, Any] | None:
    """The next event (None: the stream ends), writing a comment line while none comes.

    Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancel that comes in the turn an
    event is queued, and the stream's handler, cancelled as the playground stops, runs on.
    """
    while True:
        try:
            async with asyncio.timeout(_HEARTBEAT):
                return await queue.get()
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
