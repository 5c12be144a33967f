"""Mini Apps in the emulator: the menu button, launches with signed ``initData``, the storages.

``MiniApps`` is the part of ``FakeTelegram`` that Telegram's clients play for a bot's Mini App:

- ``setChatMenuButton`` / ``getChatMenuButton``: the bot's default menu button and each private
  chat's (``MenuButtonCommands``, ``MenuButtonWebApp``, ``MenuButtonDefault``);
- ``launch_url``: what a client opens for a ``web_app`` button (the menu button, an inline
  keyboard button or a reply keyboard button): the page's URL with Telegram's launch
  parameters in its fragment, ``tgWebAppData`` (``initData``: the user, a fresh
  ``auth_date``, a ``query_id`` for menu and inline launches, signed as Telegram signs it,
  HMAC-SHA256 keyed with HMAC-SHA256("WebAppData", bot token)), ``tgWebAppVersion``,
  ``tgWebAppPlatform`` and ``tgWebAppThemeParams``;
- ``storage``: the answers a client gives to a page's SecureStorage and DeviceStorage request
  events (Bot API 9.0), from stores kept per user here, as a device keeps them: SecureStorage
  holds at most ``SECURE_ITEMS`` values per user (the device keychain), DeviceStorage at most
  ``DEVICE_BYTES`` bytes of keys and values; a value ``null`` removes its key, ``clear``
  empties the store, and a key gone from the keychain cannot be restored here (no earlier
  device): ``restore_key`` fails with ``RESTORE_UNAVAILABLE``.

A ``web_app`` URL must be HTTPS, as Telegram requires; the emulator also takes plain HTTP to
this machine (127.0.0.1, localhost), where the playground's bot serves its page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from playground.wire import bad_request, web_app_url_ok

if TYPE_CHECKING:
    from collections.abc import Callable

    from playground.state import Method, TelegramState

__all__ = [
    "DEVICE_BYTES",
    "SECURE_ITEMS",
    "THEME",
    "WEBAPP_PLATFORM",
    "WEBAPP_VERSION",
    "MiniApps",
    "sign_init_data",
]

WEBAPP_VERSION = "9.1"  # the Bot API version the emulated client supports
WEBAPP_PLATFORM = "weba"  # Telegram's web client, which opens a Mini App in an iframe
SECURE_ITEMS = 10  # SecureStorage: values per user and bot
DEVICE_BYTES = 5 * 1024 * 1024  # DeviceStorage: bytes of keys and values per user and bot
MAX_MENU_TEXT = 64
# The playground page's own colours (playground/static/style.css), as Telegram passes a theme.
THEME = {
    "bg_color": "#ffffff",
    "secondary_bg_color": "#f4f4f5",
    "text_color": "#000000",
    "hint_color": "#707579",
    "link_color": "#3390ec",
    "button_color": "#3390ec",
    "button_text_color": "#ffffff",
    "header_bg_color": "#ffffff",
    "accent_text_color": "#3390ec",
    "section_bg_color": "#ffffff",
    "section_header_text_color": "#3390ec",
    "subtitle_text_color": "#707579",
    "destructive_text_color": "#e53935",
    "bottom_bar_bg_color": "#ffffff",
}
_KINDS = ("secure", "device")


def sign_init_data(token: str, fields: dict[str, str]) -> str:
    """``fields`` as Telegram's ``initData`` for the bot with ``token``: with their ``hash``."""
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    signed = fields | {"hash": hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()}
    return urlencode(signed, quote_via=quote)


@dataclass
class _Stores:
    """One user's SecureStorage and DeviceStorage values."""

    secure: dict[str, str] = field(default_factory=dict)
    device: dict[str, str] = field(default_factory=dict)


class MiniApps:
    """Menu buttons, Mini App launches and the client's storages; see the module docstring."""

    def __init__(
        self, state: TelegramState, token: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._state = state
        self._token = token
        self._clock = clock
        self.default_menu: dict[str, Any] = {"type": "commands"}
        self.chat_menus: dict[int, dict[str, Any]] = {}
        self.stores: dict[int, _Stores] = {}
        self.query_ids: dict[str, int] = {}  # a launch's query_id -> its user

    def methods(self) -> dict[str, Method]:
        """The Bot API methods of this part."""
        return {
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
        }

    # The menu button.

    def menu_button(self, chat_id: int) -> dict[str, Any]:
        """The menu button a user sees in the private chat ``chat_id``."""
        chosen = self.chat_menus.get(chat_id)
        if chosen is None or chosen["type"] == "default":
            return dict(self.default_menu)
        return dict(chosen)

    def _menu_chat(self, p: dict[str, Any]) -> int | None:
        chat_id = p.get("chat_id")
        if chat_id is None:
            return None
        chat = self._state.chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None or chat.get("type") != "private":
            raise bad_request("chat not found")
        return int(chat_id)

    def _set_chat_menu_button(self, p: dict[str, Any]) -> bool:
        chat_id = self._menu_chat(p)
        button = p.get("menu_button", {"type": "default"})
        if not isinstance(button, dict) or button.get("type") not in {
            "commands",
            "web_app",
            "default",
        }:
            raise bad_request("can't parse menu button JSON object")
        if button["type"] == "web_app":
            text, app = button.get("text"), button.get("web_app")
            if not isinstance(text, str) or not 1 <= len(text) <= MAX_MENU_TEXT:
                raise bad_request("BUTTON_TEXT_INVALID")
            if not isinstance(app, dict) or not web_app_url_ok(app.get("url")):
                raise bad_request("BUTTON_URL_INVALID")
            button = {"type": "web_app", "text": text, "web_app": {"url": app["url"]}}
        else:
            button = {"type": button["type"]}
        if chat_id is None:
            self.default_menu = button if button["type"] != "default" else {"type": "commands"}
        else:
            self.chat_menus[chat_id] = button
        return True

    def _get_chat_menu_button(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._menu_chat(p)
        if chat_id is None:
            return dict(self.default_menu)
        return dict(self.chat_menus.get(chat_id, {"type": "default"}))

    # Launching.

    def launch_url(
        self, url: str, user_id: int, *, source: str, language: str | None = None
    ) -> str:
        """The URL a client opens for a ``web_app`` button: ``url`` with its launch parameters.

        ``source`` is ``menu``, ``inline`` or ``keyboard``; menu and inline launches carry a
        ``query_id`` (for ``answerWebAppQuery``), keyboard ones do not (they send data).
        """
        if not web_app_url_ok(url):
            raise ValueError("not a Mini App URL")
        user = self._state.users[user_id]
        shown = {"id": user_id, "first_name": user["first_name"], "is_bot": False}
        language = language or user.get("language_code", "en")
        shown |= {"language_code": language, "allows_write_access": True}
        fields = {
            "user": json.dumps(shown, separators=(",", ":"), ensure_ascii=False),
            "auth_date": str(int(self._clock())),
        }
        if source in {"menu", "inline"}:
            query_id = "AAE" + secrets.token_urlsafe(12)
            self.query_ids[query_id] = user_id
            fields["query_id"] = query_id
        if source == "inline":
            fields |= {"chat_type": "sender", "chat_instance": str(user_id * 7919)}
        params = {
            "tgWebAppData": sign_init_data(self._token, fields),
            "tgWebAppVersion": WEBAPP_VERSION,
            "tgWebAppPlatform": WEBAPP_PLATFORM,
            "tgWebAppThemeParams": json.dumps(THEME, separators=(",", ":")),
        }
        return url + ("&" if "#" in url else "#") + urlencode(params, quote_via=quote)

    # The client's storages.

    def storage(
        self, user_id: int, method: str, data: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """The event a client answers a storage request with: (type, data); None if none.

        ``method`` is ``web_app_{secure,device}_storage_{save_key,get_key,clear,restore_key}``.
        A request without a ``req_id`` cannot be answered and gets nothing.
        """
        kind, _, op = method.removeprefix("web_app_").partition("_storage_")
        req_id = data.get("req_id")
        if kind not in _KINDS or not isinstance(req_id, str) or not req_id:
            return None
        stores = self.stores.setdefault(user_id, _Stores())
        values = stores.secure if kind == "secure" else stores.device
        key = data.get("key")
        error = None
        if op == "clear":
            values.clear()
            return f"{kind}_storage_cleared", {"req_id": req_id}
        if not isinstance(key, str) or not key:
            error = "KEY_INVALID"
        elif op == "get_key":
            reply: dict[str, Any] = {"req_id": req_id, "value": values.get(key)}
            if kind == "secure":
                reply["can_restore"] = False
            return f"{kind}_storage_key_received", reply
        elif op == "save_key":
            error = _save(kind, values, key, data.get("value"))
        elif op == "restore_key" and kind == "secure":
            error = "RESTORE_UNAVAILABLE"
        else:
            error = "UNSUPPORTED"
        if error is not None:
            return f"{kind}_storage_failed", {"req_id": req_id, "error": error}
        return f"{kind}_storage_key_saved", {"req_id": req_id}


def _save(kind: str, values: dict[str, str], key: str, value: object) -> str | None:
    """Save (``None``: remove) ``key``'s value; the error, or None when it is done."""
    if value is None:
        values.pop(key, None)
        return None
    if not isinstance(value, str):
        return "VALUE_INVALID"
    if not _fits(kind, values, key, value):
        return "QUOTA_EXCEEDED"
    values[key] = value
    return None


def _fits(kind: str, values: dict[str, str], key: str, value: str) -> bool:
    """Whether ``key`` may hold ``value`` within the store's quota."""
    if kind == "secure":
        return key in values or len(values) < SECURE_ITEMS
    others = sum(len(k.encode()) + len(v.encode()) for k, v in values.items() if k != key)
    return others + len(key.encode()) + len(value.encode()) <= DEVICE_BYTES
