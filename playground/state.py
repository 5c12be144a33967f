"""What Telegram knows about one bot, and the Bot API methods on chats, messages and queries.

``TelegramState`` owns the users, chats, messages, commands and open queries, and answers each of
its methods from decoded parameters, raising ``ApiError`` with Telegram's status and description
where Telegram refuses. The other parts of the emulator use it, never the other way round:
``payments`` (Stars) sends invoices through it, ``updates`` (what a user does) registers users,
chats, messages and queries in it, and ``botapi`` (the HTTP server) routes requests to it.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from playground.text import FormatError, format_text, utf16_len
from playground.wire import ApiError, bad_request, check_reply_markup

__all__ = ["InlineQuery", "Method", "TelegramState"]

Method = Callable[[dict[str, Any]], Any]

MAX_TEXT = 4096
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice"}
    | {"upload_document", "choose_sticker", "find_location", "record_video_note"}
    | {"upload_video_note"}
)
MAX_INLINE_RESULTS = 50
MAX_RESULT_ID = 64
MAX_COMMANDS = 100
MAX_COMMAND = 32
MAX_COMMAND_DESCRIPTION = 256


@dataclass
class InlineQuery:
    """An inline query the fake sent: who asked, when, and the bot's answer."""

    user_id: int
    query: str
    received: float
    answered: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)


def _scope_type(scope: object) -> str:
    """A BotCommandScope's ``type`` (absent: ``default``); anything else is refused."""
    if scope is None:
        return "default"
    if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
        raise bad_request("can't parse BotCommandScope JSON object")
    return str(scope["type"])


def _now() -> int:
    return int(time.time())


def _content(
    text: str, entities: list[dict[str, Any]], markup: dict[str, Any] | None
) -> dict[str, Any]:
    return {"text": text, "entities": entities, "reply_markup": markup}


class TelegramState:
    """What Telegram knows about one bot, and the Bot API methods that read and change it."""

    def __init__(self, *, bot_username: str, bot_id: int) -> None:
        self.bot_user: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Veil Test Bot",
            "username": bot_username,
        }
        self.users: dict[int, dict[str, Any]] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.blocked_users: set[int] = set()
        self.inline_messages: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.scoped_commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.inline_queries: dict[str, InlineQuery] = {}
        self.inline_query_ttl = 10.0  # seconds an inline query can be answered
        self.group_title = "Test group"
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._last_message_id: dict[int, int] = {}
        self._sent: dict[int, list[int]] = {}
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._ids = itertools.count(1)

    def methods(self) -> dict[str, Method]:
        """The Bot API methods this state answers, by their canonical names."""
        return {
            "getMe": self._get_me,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "sendMessageDraft": self._send_message_draft,
            "sendChatAction": self._send_chat_action,
            "answerCallbackQuery": self._answer_callback_query,
            "answerInlineQuery": self._answer_inline_query,
        }

    def sent_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The messages the bot sent to ``chat_id`` and has not deleted, as they are now."""
        return [
            copy.deepcopy(self._messages[chat_id, message_id])
            for message_id in self._sent.get(chat_id, [])
            if (chat_id, message_id) in self._messages
        ]

    def chat_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Every message in ``chat_id`` not deleted, both ways, oldest first, as they are now."""
        found = [message for (chat, _id), message in self._messages.items() if chat == chat_id]
        return copy.deepcopy(sorted(found, key=lambda message: int(message["message_id"])))

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The stored message itself (not a copy), or None if there is none or it was deleted."""
        return self._messages.get((chat_id, message_id))

    # The registry the other parts write to.

    def next_id(self) -> str:
        """A fresh id for a query, a charge or a file, unique within this emulator."""
        return str(4_000_000_000 + next(self._ids))

    def register_user(self, user_id: int, first_name: str, language_code: str) -> dict[str, Any]:
        """Record (or update) a user as an update would show them."""
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        self.users[user_id] = user
        return user

    def register_chat(self, chat_id: int, chat_type: str, first_name: str) -> dict[str, Any]:
        """Record (or replace) a chat: a private chat is named for its user, a group titled."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = self.group_title if chat_type != "channel" else "Test channel"
        self.chats[chat_id] = chat
        return chat

    def store_message(
        self, chat: dict[str, Any], sender: dict[str, Any], **content: object
    ) -> dict[str, Any]:
        """Store a new message from ``sender`` in ``chat`` with the next id of that chat."""
        message_id = self._last_message_id.get(chat["id"], 0) + 1
        self._last_message_id[chat["id"]] = message_id
        message = {"message_id": message_id, "from": sender, "chat": chat, "date": _now()}
        message |= {key: value for key, value in content.items() if value not in (None, [])}
        self._messages[chat["id"], message_id] = message
        return message

    def send(self, chat: dict[str, Any], **content: object) -> dict[str, Any]:
        """Store a message from the bot; return a copy, as the Bot API answers with it."""
        message = self.store_message(chat, self.bot_user, **content)
        self._sent.setdefault(chat["id"], []).append(message["message_id"])
        return copy.deepcopy(message)

    def new_callback_query(self) -> str:
        """Open a callback query the bot may answer once; return its id."""
        query_id = self.next_id()
        self._callback_queries[query_id] = False
        return query_id

    def new_inline_query(self, user_id: int, query: str) -> str:
        """Open an inline query the bot may answer once, within ``inline_query_ttl``; its id."""
        query_id = self.next_id()
        self.inline_queries[query_id] = InlineQuery(user_id, query, time.monotonic())
        return query_id

    # Parameter helpers.

    def chat(self, p: dict[str, Any], *, sending: bool = True) -> dict[str, Any]:
        """The chat ``chat_id`` names; a user's private chat is created on first use."""
        chat_id = p.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        if isinstance(chat_id, str):
            found = [c for c in self.chats.values() if f"@{c.get('username', '')}" == chat_id]
            if not found:
                raise bad_request("chat not found")
            chat = found[0]
        elif chat_id in self.chats:
            chat = self.chats[chat_id]
        elif chat_id > 0:
            chat = self.register_chat(chat_id, "private", "User")
        else:
            raise bad_request("chat not found")
        if sending and chat["type"] == "private" and chat["id"] in self.blocked_users:
            raise ApiError(HTTPStatus.FORBIDDEN, "Forbidden: bot was blocked by the user")
        return chat

    def _formatted(
        self, p: dict[str, Any], *, allow_empty: bool = False
    ) -> tuple[str, list[dict[str, Any]]]:
        """The ``text`` with its ``entities``, checked for Telegram's limits (no parse_mode)."""
        raw = p.get("text")
        raw = "" if raw is None else str(raw)
        try:
            text, entities = format_text(
                raw,
                parse_mode=p.get("parse_mode") or None,
                entities=p.get("entities"),
                users=self.users,
            )
        except FormatError as error:
            raise bad_request(str(error)) from error
        if not text and not allow_empty:
            raise bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        return text, entities

    def _own_message(self, p: dict[str, Any], action: str) -> dict[str, Any]:
        message_id = p.get("message_id")
        if "chat_id" not in p or not isinstance(message_id, int):
            raise bad_request("message identifier is not specified")
        chat = self.chat(p, sending=action == "edit")
        message = self._messages.get((chat["id"], message_id))
        if message is None:
            raise bad_request(f"message to {action} not found")
        if action == "edit" and message["from"]["id"] != self.bot_user["id"]:
            raise bad_request("message can't be edited")
        return message

    def _inline_message(self, p: dict[str, Any]) -> dict[str, Any] | None:
        inline_message_id = p.get("inline_message_id")
        if inline_message_id is None:
            return None
        current = self.inline_messages.get(str(inline_message_id))
        if current is None:
            raise bad_request("MESSAGE_ID_INVALID")
        return current

    # Methods.

    def _get_me(self, _p: dict[str, Any]) -> dict[str, Any]:
        return self.bot_user | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _set_my_commands(self, p: dict[str, Any]) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            description = command.get("description") if isinstance(command, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= MAX_COMMAND:
                raise bad_request("BOT_COMMAND_INVALID")
            if not all(c.islower() or c.isdigit() or c == "_" for c in name) or not name.isascii():
                raise bad_request("BOT_COMMAND_INVALID")
            if (
                not isinstance(description, str)
                or not 1 <= len(description) <= MAX_COMMAND_DESCRIPTION
            ):
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        listed = [{"command": c["command"], "description": c["description"]} for c in commands]
        language = str(p.get("language_code", ""))
        scope = _scope_type(p.get("scope"))
        if scope == "default":
            self.commands[language] = listed
        else:
            self.scoped_commands[(scope, language)] = listed
        return True

    def _get_my_commands(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        language = str(p.get("language_code", ""))
        scope = _scope_type(p.get("scope"))
        if scope == "default":
            return copy.deepcopy(self.commands.get(language, []))
        return copy.deepcopy(self.scoped_commands.get((scope, language), []))

    def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        text, entities = self._formatted(p)
        chat = self.chat(p)
        markup = check_reply_markup(p.get("reply_markup"), inline_only=False)
        reply_to = None
        reply = p.get("reply_parameters")
        if isinstance(reply, dict) and "message_id" in reply:
            reply_to = self._messages.get((chat["id"], reply["message_id"]))
            if reply_to is None and not reply.get("allow_sending_without_reply"):
                raise bad_request("message to be replied not found")
        return self.send(
            chat,
            text=text,
            entities=entities,
            reply_markup=markup,
            reply_to_message=copy.deepcopy(reply_to),
        )

    def _edit_message_text(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        text, entities = self._formatted(p)
        markup = check_reply_markup(p.get("reply_markup"), inline_only=True)
        new = _content(text, entities, markup)
        if (inline := self._inline_message(p)) is not None:
            if inline == new:
                raise bad_request(NOT_MODIFIED)
            inline.update(new)
            return True
        message = self._own_message(p, "edit")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        old = _content(message["text"], message.get("entities", []), message.get("reply_markup"))
        if old == new:
            raise bad_request(NOT_MODIFIED)
        message["text"] = text
        message["edit_date"] = _now()
        for key in ("entities", "reply_markup"):
            message.pop(key, None)
            if new[key]:
                message[key] = new[key]
        return copy.deepcopy(message)

    def _edit_message_reply_markup(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        markup = check_reply_markup(p.get("reply_markup"), inline_only=True)
        if (inline := self._inline_message(p)) is not None:
            if inline["reply_markup"] == markup:
                raise bad_request(NOT_MODIFIED)
            inline["reply_markup"] = markup
            return True
        message = self._own_message(p, "edit")
        if message.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        message["edit_date"] = _now()
        return copy.deepcopy(message)

    def _delete_message(self, p: dict[str, Any]) -> bool:
        message = self._own_message(p, "delete")
        del self._messages[message["chat"]["id"], message["message_id"]]
        return True

    def _send_message_draft(self, p: dict[str, Any]) -> bool:
        chat = self.chat(p)
        draft_id = p.get("draft_id")
        if not isinstance(draft_id, int):
            raise bad_request('parameter "draft_id" is required')
        if draft_id == 0:
            raise bad_request("draft_id must be non-zero")
        if chat["type"] != "private":
            raise bad_request("TEXTDRAFT_PEER_INVALID")
        self._formatted(p, allow_empty=True)
        return True

    def _send_chat_action(self, p: dict[str, Any]) -> bool:
        self.chat(p)
        if p.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _answer_callback_query(self, p: dict[str, Any]) -> bool:
        query_id = str(p.get("callback_query_id", ""))
        if self._callback_queries.get(query_id, True):
            raise bad_request(QUERY_TOO_OLD)
        self._callback_queries[query_id] = True
        return True

    def _answer_inline_query(self, p: dict[str, Any]) -> bool:
        query = self.inline_queries.get(str(p.get("inline_query_id", "")))
        if (
            query is None
            or query.answered
            or time.monotonic() - query.received > self.inline_query_ttl
        ):
            raise bad_request(QUERY_TOO_OLD)
        results = p.get("results")
        if not isinstance(results, list):
            raise bad_request("can't parse results JSON object")
        if len(results) > MAX_INLINE_RESULTS:
            raise bad_request("RESULTS_TOO_MUCH")
        seen: set[str] = set()
        checked = [self._inline_result(result, seen) for result in results]
        query.answered, query.results = True, checked
        return True

    def _inline_result(self, result: object, seen: set[str]) -> dict[str, Any]:
        if not isinstance(result, dict) or not isinstance(result.get("type"), str):
            raise bad_request("can't parse inline query result: Can't find field \"type\"")
        result_id = result.get("id")
        if not isinstance(result_id, str) or not 1 <= len(result_id.encode()) <= MAX_RESULT_ID:
            raise bad_request("RESULT_ID_INVALID")
        if result_id in seen:
            raise bad_request("RESULT_ID_DUPLICATE")
        seen.add(result_id)
        markup = check_reply_markup(result.get("reply_markup"), inline_only=True)
        checked = {"id": result_id, "type": result["type"], "reply_markup": markup}
        if result["type"] == "article":
            if not result.get("title"):
                raise bad_request("can't parse inline query result: Can't find field \"title\"")
            content = result.get("input_message_content")
            if not isinstance(content, dict):
                raise bad_request(
                    "can't parse inline query result: Can't find field \"input_message_content\""
                )
            if not content.get("message_text"):
                raise bad_request("MESSAGE_EMPTY")
            params = {"text": content["message_text"]} | {
                key: content[key] for key in ("parse_mode", "entities") if key in content
            }
            checked["text"], checked["entities"] = self._formatted(params)
            checked["title"] = str(result["title"])
            checked["description"] = str(result.get("description") or "")
        return checked
