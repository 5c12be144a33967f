"""The Bot API's wire format: decoding request parameters, error replies, reply markup checks.

A request's parameters arrive as strings (query string, urlencoded or multipart form): nested
objects as JSON, booleans as ``true``/``false``, numbers as digits. ``decode_params`` turns them
back into Python values by field name and never fails: a value that does not decode stays a
string, and the method that reads it answers 400 as Telegram would.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

__all__ = [
    "ApiError",
    "Upload",
    "bad_request",
    "check_reply_markup",
    "decode_params",
    "web_app_url_ok",
]

_JSON_FIELDS = frozenset(
    {"reply_markup", "entities", "caption_entities", "prices", "results", "commands"}
    | {"allowed_updates", "scope", "link_preview_options", "reply_parameters", "button"}
    | {"suggested_tip_amounts", "media", "rich_message", "suggested_post_parameters"}
    | {"ephemeral_message_parameters", "reaction", "menu_button", "result"}
)
_INT_FIELDS = frozenset(
    {"chat_id", "message_id", "draft_id", "user_id", "offset", "limit", "timeout"}
    | {"message_thread_id", "direct_messages_topic_id", "max_connections", "cache_time"}
    | {"photo_size", "photo_width", "photo_height", "max_tip_amount", "subscription_period"}
    | {"reply_to_message_id", "receiver_user_id", "from_chat_id", "duration", "width", "height"}
    | {"ephemeral_message_id"}
)
_BOOL_FIELDS = frozenset(
    {"disable_notification", "protect_content", "allow_paid_broadcast", "can_stop"}
    | {"keep_on_stop", "show_alert", "is_personal", "ok", "drop_pending_updates", "need_name"}
    | {"need_phone_number", "need_email", "need_shipping_address", "is_flexible"}
    | {"send_phone_number_to_provider", "send_email_to_provider", "disable_web_page_preview"}
    | {"allow_sending_without_reply", "has_spoiler", "supports_streaming", "is_big"}
)
_INTEGER = re.compile(r"-?\d{1,19}")
_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_MAX_CALLBACK_DATA = 64
_MAX_URL = 2048
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart request: its form field's file name, type and bytes."""

    file_name: str
    content_type: str
    data: bytes = field(repr=False)


class ApiError(Exception):
    """A Bot API error reply: HTTP status, description and its ``ResponseParameters``.

    ``retry_after`` for flood waits; ``migrate_to_chat_id`` for a call into a group that was
    upgraded to a supergroup (the supergroup's id).
    """

    def __init__(
        self,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def response(self) -> web.Response:
        """The reply Telegram sends: the same JSON body, HTTP status and ``Retry-After``."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        parameters = {
            "retry_after": self.retry_after,
            "migrate_to_chat_id": self.migrate_to_chat_id,
        }
        if any(value is not None for value in parameters.values()):
            body["parameters"] = {k: v for k, v in parameters.items() if v is not None}
        # The Bot API server sends a flood wait in this header too (telegram-bot-api's
        # ``HttpConnection::send_response``).
        headers = {} if not self.retry_after else {"Retry-After": str(self.retry_after)}
        return web.json_response(body, status=self.status, headers=headers)


def bad_request(detail: str) -> ApiError:
    """A 400 reply: ``Bad Request: <detail>``."""
    return ApiError(HTTPStatus.BAD_REQUEST, f"Bad Request: {detail}")


def _decode(key: str, value: str) -> object:
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key in _INT_FIELDS and _INTEGER.fullmatch(value):
        return int(value)
    if key in _BOOL_FIELDS and value in {"true", "false"}:
        return value == "true"
    return value


def decode_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode a request's string parameters by field name; uploaded files become ``Upload``s."""
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, web.FileField):
            params[key] = Upload(value.filename, value.content_type, value.file.read())
        else:
            params[key] = _decode(key, str(value))
    return params


def _loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_app_url_ok(url: object) -> bool:
    """A Mini App's URL: HTTPS, as Telegram requires (or plain HTTP to this machine)."""
    if not isinstance(url, str) or len(url) > _MAX_URL:
        return False
    parts = urlsplit(url)
    host = parts.hostname or ""
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and _loopback(host)))


def _check_web_app(button: dict[str, Any]) -> None:
    """A button's ``web_app`` field, if it has one: a WebAppInfo with a Mini App's URL."""
    if "web_app" not in button:
        return
    app = button["web_app"]
    if not isinstance(app, dict) or not web_app_url_ok(app.get("url")):
        raise bad_request("BUTTON_URL_INVALID")


def _check_inline_button(button: object) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if not button["text"]:
        raise bad_request("BUTTON_TEXT_INVALID")
    actions = [name for name in _INLINE_ACTIONS if name in button]
    if not actions:
        raise bad_request("text buttons are unallowed in the inline keyboard")
    data = button.get("callback_data")
    if "callback_data" in button and (
        not isinstance(data, str) or not 1 <= len(data.encode()) <= _MAX_CALLBACK_DATA
    ):
        raise bad_request("BUTTON_DATA_INVALID")
    _check_web_app(button)
    url = button.get("url")
    if "url" in button and (not isinstance(url, str) or not re.match(r"(?i)(https?|tg)://\S", url)):
        raise bad_request("BUTTON_URL_INVALID")


def _rows(markup: dict[str, Any], key: str) -> list[list[Any]]:
    rows = markup[key]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f'field "{key}" of the reply markup must be an Array of Arrays')
    return rows


def _check_keyboard(markup: dict[str, Any]) -> None:
    for row in _rows(markup, "keyboard"):
        for button in row:
            if isinstance(button, dict) and isinstance(button.get("text"), str):
                _check_web_app(button)
                continue
            if not isinstance(button, str):
                raise bad_request("can't parse keyboard button")


def check_reply_markup(raw: object, *, inline_only: bool) -> dict[str, Any] | None:
    """Validate ``reply_markup``; return the inline keyboard a message carries, if any.

    Only an inline keyboard is attached to the Message object Telegram returns; reply keyboards,
    keyboard removal and force-reply act on the client and are not echoed back.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in raw:
        for row in _rows(raw, "inline_keyboard"):
            for button in row:
                _check_inline_button(button)
        return {"inline_keyboard": raw["inline_keyboard"]} if raw["inline_keyboard"] else None
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in raw:
        _check_keyboard(raw)
    elif raw.get("remove_keyboard") is not True and raw.get("force_reply") is not True:
        raise bad_request("object expected as reply markup")
    return None
