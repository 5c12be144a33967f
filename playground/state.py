"""What Telegram knows about one bot, and the Bot API methods on chats, messages and queries.

``TelegramState`` owns the users, chats and their members, messages (ephemeral ones apart),
inline messages, commands and open queries, and answers each of its methods from decoded
parameters, raising ``ApiError`` with Telegram's status and description where Telegram refuses.
The other parts of the emulator use it, never the other way round: ``payments`` (Stars) sends
invoices through it, ``media`` sends photos through it, ``updates`` (what a user does) registers
users, chats, messages and queries in it, and ``botapi`` (the HTTP server) routes requests to it.

Groups: a chat with a negative id, type ``group`` or ``supergroup``, with members and their
status (``set_member``; ``getChatMember`` answers ChatMemberOwner/Administrator/Member/Left).
Sends and edits into a group spend ``group_limit`` (off until turned on). A chat in
``chats_without_bot`` is one the bot was never added to: the bot can only answer a guest query
there (``answerGuestQuery``, Bot API 10.0); anything else addressed to it is refused with 403.
A basic group upgraded to a supergroup (``migrate``) is deactivated: every call naming it is
refused with 400 "group chat was upgraded to a supergroup chat" and the supergroup's id in
``parameters.migrate_to_chat_id``, as Telegram refuses it.

Ephemeral messages (Bot API 10.2): ``sendMessage``/``sendPhoto`` with
``ephemeral_message_parameters`` (or the deprecated ``receiver_user_id``) in a group post a
message only its receiver sees, ``message_id`` 0 and its own ``ephemeral_message_id``, kept
apart from the chat's messages (``ephemeral_messages``). ``ephemeral_support`` plays older
servers: "refused" answers such a send with 400 and the ephemeral methods with 404, "ignored"
posts the message for everyone, as a server that does not know the field would.

Topics in private chats (Bot API 9.3+) are ``topics`` (``playground.topics``): off until a test
or the playground turns ``topics.enabled`` on; sends, drafts and chat actions into a private
chat check their ``message_thread_id`` there, and a message sent into a topic carries it.
A supergroup's forum topics are any id a user writes in; the bot's reply to a message in one
goes into it. One closed (``closed_topics``, ``playground.topics``) takes no message from a
bot without the ``can_manage_topics`` right there (``manages_topics``; an administrator has it
unless ``set_member`` says otherwise, as Telegram's apps promote one): 400 ``TOPIC_CLOSED``.

An inline message (chosen inline result or guest answer) that was posted into a known chat is
"placed" (``inline_places``): edits by ``inline_message_id`` change that chat's message too.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from playground import rich, topics
from playground.limits import GroupRateLimit
from playground.text import FormatError, format_text, shows_nothing, utf16_len
from playground.wire import ApiError, bad_request, check_reply_markup

__all__ = ["GROUP_TYPES", "GuestQuery", "InlineQuery", "Method", "TelegramState", "one_level"]

Method = Callable[[dict[str, Any]], Any]

MAX_TEXT = 4096
MAX_CAPTION = 1024
GROUP_TYPES = frozenset({"group", "supergroup"})
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "left", "kicked"})
PRESENT = frozenset({"creator", "administrator", "member"})
EPHEMERAL_MODES = frozenset({"yes", "refused", "ignored"})
EPHEMERAL_REFUSED = "ephemeral messages are not supported"
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


@dataclass
class GuestQuery:
    """A guest query the fake sent: who summoned the bot, from which message in which chat."""

    user_id: int
    chat_id: int
    message_id: int
    received: float
    answered: bool = False
    inline_message_id: str | None = None


def _now() -> int:
    return int(time.time())


def one_level(message: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of ``message`` for a ``reply_to_message`` field: without its own reply."""
    if message is None:
        return None
    shown = copy.deepcopy(message)
    shown.pop("reply_to_message", None)
    return shown


def _chat_member(
    user: dict[str, Any], status: str, *, supergroup: bool = False, topics: bool = True
) -> dict[str, Any]:
    """A ChatMember object of ``status`` with the fields its type requires.

    An administrator of a supergroup says whether it may manage its forum topics (``topics``).
    """
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member |= {"can_be_edited": False, "is_anonymous": False, "can_manage_chat": True}
        member |= {"can_delete_messages": True, "can_manage_video_chats": True}
        member |= {"can_restrict_members": True, "can_promote_members": False}
        member |= {"can_change_info": True, "can_invite_users": True, "can_pin_messages": True}
        member |= {"can_post_stories": False, "can_edit_stories": False}
        member |= {"can_delete_stories": False, "can_send_welcome_messages": False}
        if supergroup:
            member["can_manage_topics"] = topics
    elif status == "kicked":
        member["until_date"] = 0
    return member


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
        self.chats_without_bot: set[int] = set()
        self.migrated: dict[int, int] = {}  # basic group id -> the supergroup it became
        self.members: dict[int, dict[int, str]] = {}  # chat id -> user id -> status
        self.blocked_users: set[int] = set()
        self.inline_messages: dict[str, dict[str, Any]] = {}
        self.inline_places: dict[str, tuple[int, int]] = {}  # inline id -> chat id, message id
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.scoped_commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.inline_queries: dict[str, InlineQuery] = {}
        self.inline_query_ttl = 10.0  # seconds an inline query can be answered
        self.guest_queries: dict[str, GuestQuery] = {}
        self.guest_query_ttl = 10.0  # seconds a guest query can be answered
        self.group_title = "Test group"
        self.group_limit = GroupRateLimit()
        self.privacy_mode = False  # True: the bot sees only group messages meant for it
        self.supports_guest_queries = True  # getMe's supports_guest_queries
        self.rich_messages = True  # False: a server without rich messages (400)
        self.ephemeral_support = "yes"  # "yes", "refused" or "ignored"; see the module docstring
        self.topics = topics.PrivateTopics()
        self.closed_topics: set[tuple[int, int]] = set()  # (supergroup, thread id) closed
        # A channel's discussion groups: group → (its channel, join_to_send_messages), as getChat
        # says; any other group is linked to none (only its members can write in it).
        self.linked: dict[int, tuple[int, bool]] = {}
        self._no_topic_rights: set[tuple[int, int]] = set()  # (chat, admin) without the right
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._last_message_id: dict[int, int] = {}
        self._sent: dict[int, list[int]] = {}
        self._ephemeral: dict[tuple[int, int], dict[str, Any]] = {}
        self._last_ephemeral_id: dict[int, int] = {}
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._callback_opened: dict[str, float] = {}  # id -> when it was pressed (monotonic)
        # Seconds a callback query can be answered (Telegram's are "too old" after a few
        # seconds); None: for ever, as most tests need on a loaded machine.
        self.callback_query_ttl: float | None = None
        self.callback_users: dict[str, int] = {}  # callback query id -> who pressed
        self._ids = itertools.count(1)

    def methods(self) -> dict[str, Method]:
        """The Bot API methods this state answers, by their canonical names."""
        return (
            {
                "getMe": self._get_me,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "getChat": self._get_chat,
                "getChatMember": self._get_chat_member,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "editEphemeralMessageText": self._edit_ephemeral_message_text,
                "deleteEphemeralMessage": self._delete_ephemeral_message,
                "sendMessageDraft": self._send_message_draft,
                "sendChatAction": self._send_chat_action,
                "answerCallbackQuery": self._answer_callback_query,
                "answerInlineQuery": self._answer_inline_query,
                "answerGuestQuery": self._answer_guest_query,
            }
            | rich.methods(self)
            | topics.methods(self)
        )

    def sent_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The messages the bot sent to ``chat_id`` and has not deleted, as they are now."""
        return [
            copy.deepcopy(self._messages[chat_id, message_id])
            for message_id in self._sent.get(chat_id, [])
            if (chat_id, message_id) in self._messages
        ]

    def chat_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Every message in ``chat_id`` not deleted, both ways, oldest first, as they are now.

        Ephemeral messages are not among them (``ephemeral_messages``).
        """
        found = [message for (chat, _id), message in self._messages.items() if chat == chat_id]
        return copy.deepcopy(sorted(found, key=lambda message: int(message["message_id"])))

    def ephemeral_messages(
        self, chat_id: int, receiver_user_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The ephemeral messages in ``chat_id`` not deleted (only ``receiver_user_id``'s)."""
        return [
            copy.deepcopy(message)
            for (chat, _id), message in sorted(self._ephemeral.items())
            if chat == chat_id
            and (receiver_user_id is None or message["receiver_user"]["id"] == receiver_user_id)
        ]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The stored message itself (not a copy), or None if there is none or it was deleted."""
        return self._messages.get((chat_id, message_id))

    def ephemeral_message(self, chat_id: int, ephemeral_message_id: int) -> dict[str, Any] | None:
        """The stored ephemeral message itself, or None if there is none or it was deleted."""
        return self._ephemeral.get((chat_id, ephemeral_message_id))

    def placed_message(self, inline_message_id: str) -> dict[str, Any] | None:
        """The chat message an inline message was posted as, if it was posted into a known chat."""
        place = self.inline_places.get(inline_message_id)
        return None if place is None else self._messages.get(place)

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

    def register_chat(
        self,
        chat_id: int,
        chat_type: str,
        first_name: str,
        *,
        title: str | None = None,
        with_bot: bool = True,
    ) -> dict[str, Any]:
        """Record (or replace) a chat: a private chat is named for its user, a group titled.

        A group is titled ``title`` (``group_title`` by default); ``with_bot=False`` makes it a
        chat the bot is not a member of (where only guest queries reach it).
        """
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            default = self.group_title if chat_type != "channel" else "Test channel"
            chat["title"] = title or default
        self.chats[chat_id] = chat
        if with_bot:
            self.chats_without_bot.discard(chat_id)
            if chat_type in GROUP_TYPES:
                self.members.setdefault(chat_id, {}).setdefault(self.bot_user["id"], "member")
        else:
            self.chats_without_bot.add(chat_id)
            self.members.setdefault(chat_id, {}).pop(self.bot_user["id"], None)
        return chat

    def set_member(
        self, chat_id: int, user_id: int, status: str, *, can_manage_topics: bool = True
    ) -> None:
        """Give ``user_id`` a status in a group: creator, administrator, member, left, kicked.

        An administrator has the ``can_manage_topics`` right unless told otherwise.
        """
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown member status: {status}")
        self.members.setdefault(chat_id, {})[user_id] = status
        if status == "administrator" and not can_manage_topics:
            self._no_topic_rights.add((chat_id, user_id))
        else:
            self._no_topic_rights.discard((chat_id, user_id))

    def migrate(self, chat_id: int, supergroup_id: int) -> dict[str, Any]:
        """Upgrade basic group ``chat_id`` to a new supergroup ``supergroup_id``; return it.

        The supergroup has the group's title and members; the group is deactivated (``chat``
        refuses it from now on). Its messages stay where they are, under the group's id.
        """
        group = self.chats[chat_id]
        if group["type"] != "group":
            raise ValueError(f"chat {chat_id} is not a basic group")
        supergroup = self.register_chat(supergroup_id, "supergroup", "", title=group["title"])
        self.members[supergroup_id] = dict(self.members.get(chat_id, {}))
        kept = {(supergroup_id, user) for chat, user in self._no_topic_rights if chat == chat_id}
        self._no_topic_rights |= kept
        self.migrated[chat_id] = supergroup_id
        return supergroup

    def member_status(self, chat_id: int, user_id: int) -> str | None:
        """The status ``user_id`` has in ``chat_id``, or None if never recorded."""
        return self.members.get(chat_id, {}).get(user_id)

    def manages_topics(self, chat_id: int, user_id: int) -> bool:
        """Whether ``user_id`` may close, reopen and write in closed topics of ``chat_id``.

        Its creator, or an administrator with the ``can_manage_topics`` right.
        """
        status = self.member_status(chat_id, user_id)
        if status == "administrator":
            return (chat_id, user_id) not in self._no_topic_rights
        return status == "creator"

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

    def spend(self, chat: dict[str, Any], method: str) -> None:
        """Count a send or edit into a group against ``group_limit`` (429 past it)."""
        if chat["type"] in GROUP_TYPES:
            self.group_limit.spend(chat["id"], method)

    def deliver(
        self, chat: dict[str, Any], p: dict[str, Any], method: str, **content: object
    ) -> dict[str, Any]:
        """Post the bot's message for a send method: ephemeral or a reply as ``p`` asks.

        Checks the reply target and the ephemeral receiver, spends the group's budget, stores
        the message and returns the Message the Bot API answers with.
        """
        receiver = self._ephemeral_receiver(chat, p)
        reply_to = None if receiver is not None else self._reply_target(chat, p)
        thread_id = self.topics.thread(chat, p) or topics.forum_thread(self, chat, p, reply_to)
        if thread_id is not None:
            content |= {"message_thread_id": thread_id, "is_topic_message": True}
        self.spend(chat, method)
        if receiver is not None:
            return self._post_ephemeral(chat, receiver, **content)
        return self.send(chat, reply_to_message=reply_to, **content)

    def place_inline(self, inline_message_id: str, chat_id: int, message_id: int) -> None:
        """Record that inline message ``inline_message_id`` is message ``message_id`` there."""
        self.inline_places[inline_message_id] = (chat_id, message_id)

    def new_callback_query(self, user_id: int) -> str:
        """Open a callback query from ``user_id``: answered once, within ``callback_query_ttl``."""
        query_id = self.next_id()
        self._callback_queries[query_id] = False
        self._callback_opened[query_id] = time.monotonic()
        self.callback_users[query_id] = user_id
        return query_id

    def new_inline_query(self, user_id: int, query: str) -> str:
        """Open an inline query the bot may answer once, within ``inline_query_ttl``; its id."""
        query_id = self.next_id()
        self.inline_queries[query_id] = InlineQuery(user_id, query, time.monotonic())
        return query_id

    def new_guest_query(self, user_id: int, chat_id: int, message_id: int) -> str:
        """Open a guest query for a summoning message; answerable once, within the ttl."""
        query_id = self.next_id()
        self.guest_queries[query_id] = GuestQuery(user_id, chat_id, message_id, time.monotonic())
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
        if chat["id"] in self.migrated:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=self.migrated[chat["id"]],
            )
        if chat["id"] in self.chats_without_bot:
            kind = "supergroup chat" if chat["type"] == "supergroup" else "group chat"
            raise ApiError(HTTPStatus.FORBIDDEN, f"Forbidden: bot is not a member of the {kind}")
        if sending and chat["type"] == "private" and chat["id"] in self.blocked_users:
            raise ApiError(HTTPStatus.FORBIDDEN, "Forbidden: bot was blocked by the user")
        return chat

    def formatted(
        self,
        p: dict[str, Any],
        *,
        allow_empty: bool = False,
        field: str = "text",
        limit: int = MAX_TEXT,
    ) -> tuple[str, list[dict[str, Any]]]:
        """The ``text`` (or caption) with its entities, checked for Telegram's limits.

        ``field`` "caption" reads ``caption``, ``caption_entities`` and ``parse_mode`` (refused,
        as for text: no parse mode is implemented).
        """
        raw = p.get(field)
        raw = "" if raw is None else str(raw)
        entities = p.get("entities" if field == "text" else f"{field}_entities")
        try:
            text, parsed = format_text(
                raw, parse_mode=p.get("parse_mode") or None, entities=entities, users=self.users
            )
        except FormatError as error:
            raise bad_request(str(error)) from error
        if shows_nothing(text) and not allow_empty:
            raise bad_request("message text is empty")
        if utf16_len(text) > limit:
            raise bad_request(
                "message is too long" if field == "text" else "message caption is too long"
            )
        return text, parsed

    def _reply_target(self, chat: dict[str, Any], p: dict[str, Any]) -> dict[str, Any] | None:
        """What a send replies to: ``reply_parameters`` or the older ``reply_to_message_id``."""
        reply = p.get("reply_parameters")
        allow = bool(p.get("allow_sending_without_reply"))
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = bool(reply.get("allow_sending_without_reply", allow))
        else:
            message_id = p.get("reply_to_message_id")
        if message_id is None:
            return None
        found = (
            self._messages.get((chat["id"], message_id)) if isinstance(message_id, int) else None
        )
        if found is None and not allow:
            raise bad_request("message to be replied not found")
        return one_level(found)

    def _ephemeral_receiver(self, chat: dict[str, Any], p: dict[str, Any]) -> dict[str, Any] | None:
        """The user an ephemeral send is for; None for an ordinary send."""
        params = p.get("ephemeral_message_parameters")
        if params is None and p.get("receiver_user_id") is not None:  # the 10.2 form
            params = {"receiver_user_id": p["receiver_user_id"]}
            params |= (
                {"callback_query_id": p["callback_query_id"]} if "callback_query_id" in p else {}
            )
        if params is None or self.ephemeral_support == "ignored":
            return None
        if self.ephemeral_support == "refused":
            raise bad_request(EPHEMERAL_REFUSED)
        if not isinstance(params, dict) or not isinstance(params.get("receiver_user_id"), int):
            raise bad_request("can't parse ephemeral message parameters JSON object")
        if chat["type"] not in GROUP_TYPES:
            raise bad_request("ephemeral messages can be sent only to groups and supergroups")
        receiver_id = params["receiver_user_id"]
        receiver = self.users.get(receiver_id)
        if receiver is None or self.member_status(chat["id"], receiver_id) not in PRESENT:
            raise bad_request("the receiver of an ephemeral message must be a member of the chat")
        query_id = params.get("callback_query_id")
        if query_id is not None and str(query_id) not in self._callback_queries:
            raise bad_request(QUERY_TOO_OLD)
        return receiver

    def _post_ephemeral(
        self, chat: dict[str, Any], receiver: dict[str, Any], **content: object
    ) -> dict[str, Any]:
        ephemeral_id = self._last_ephemeral_id.get(chat["id"], 0) + 1
        self._last_ephemeral_id[chat["id"]] = ephemeral_id
        message = {"message_id": 0, "from": self.bot_user, "chat": chat, "date": _now()}
        message |= {key: value for key, value in content.items() if value not in (None, [])}
        message |= {"receiver_user": receiver, "ephemeral_message_id": ephemeral_id}
        self._ephemeral[chat["id"], ephemeral_id] = message
        return copy.deepcopy(message)

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

    def _ephemeral_target(self, p: dict[str, Any], action: str) -> dict[str, Any]:
        if self.ephemeral_support == "refused":
            raise ApiError(HTTPStatus.NOT_FOUND, "Not Found")
        chat = self.chat(p, sending=action == "edit")
        ephemeral_id, receiver_id = p.get("ephemeral_message_id"), p.get("receiver_user_id")
        if not isinstance(ephemeral_id, int) or not isinstance(receiver_id, int):
            raise bad_request("message identifier is not specified")
        message = self._ephemeral.get((chat["id"], ephemeral_id))
        if message is None or message["receiver_user"]["id"] != receiver_id:
            raise bad_request(f"message to {action} not found")
        return message

    def _inline_message(self, p: dict[str, Any]) -> dict[str, Any] | None:
        inline_message_id = p.get("inline_message_id")
        if inline_message_id is None:
            return None
        current = self.inline_messages.get(str(inline_message_id))
        if current is None:
            raise bad_request("MESSAGE_ID_INVALID")
        return current

    def _edit_inline(self, p: dict[str, Any], method: str, new: dict[str, Any]) -> bool:
        """Change an inline message (and the chat message it was posted as) to ``new``."""
        inline_id = str(p["inline_message_id"])
        inline = self.inline_messages[inline_id]
        if _holds(inline, new):
            raise bad_request(NOT_MODIFIED)
        placed = self.placed_message(inline_id)
        if placed is not None:
            self.spend(placed["chat"], method)
            _apply(placed, new)
        inline.update(new)
        for key in ("text", "rich_message"):  # a text, or rich content: the other goes
            if inline.get(key) is None:
                inline.pop(key, None)
        return True

    # Methods.

    def _get_me(self, _p: dict[str, Any]) -> dict[str, Any]:
        return self.bot_user | {
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": True,
            "supports_guest_queries": self.supports_guest_queries,
            "has_topics_enabled": self.topics.enabled,
            "allows_users_to_create_topics": self.topics.enabled and self.topics.users_create,
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

    def _get_chat(self, p: dict[str, Any]) -> dict[str, Any]:
        """A ChatFullInfo: the chat, the fields Telegram always sends, and a discussion's link."""
        chat = self.chat(p, sending=False)
        full: dict[str, Any] = {
            **copy.deepcopy(chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }
        if chat["id"] in self.linked:
            channel, join_to_send = self.linked[chat["id"]]
            full["linked_chat_id"] = channel
            if join_to_send:
                full["join_to_send_messages"] = True
        return full

    def _get_chat_member(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self.chat(p, sending=False)
        user_id = p.get("user_id")
        if not isinstance(user_id, int):
            raise bad_request("invalid user_id specified")
        user = self.bot_user if user_id == self.bot_user["id"] else self.users.get(user_id)
        if user is None:
            raise bad_request("user not found")
        if chat["type"] == "private":
            if user_id not in {chat["id"], self.bot_user["id"]}:
                raise bad_request("user not found")
            return _chat_member(user, "member")
        status = self.member_status(chat["id"], user_id) or "left"
        topics = (chat["id"], user_id) not in self._no_topic_rights
        return _chat_member(user, status, supergroup=chat["type"] == "supergroup", topics=topics)

    def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        text, entities = self.formatted(p)
        chat = self.chat(p)
        markup = check_reply_markup(p.get("reply_markup"), inline_only=False)
        return self.deliver(
            chat, p, "sendMessage", text=text, entities=entities, reply_markup=markup
        )

    def _edit_message_text(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        markup = check_reply_markup(p.get("reply_markup"), inline_only=True)
        new = self._edited_content(p, markup)
        if self._inline_message(p) is not None:
            return self._edit_inline(p, "editMessageText", new)
        message = self._own_message(p, "edit")
        if "text" not in message and "rich_message" not in message:
            raise bad_request("there is no text in the message to edit")
        if _holds(message, new):
            raise bad_request(NOT_MODIFIED)
        self.spend(message["chat"], "editMessageText")
        _apply(message, new)
        return copy.deepcopy(message)

    def _edited_content(self, p: dict[str, Any], markup: dict[str, Any] | None) -> dict[str, Any]:
        """What editMessageText puts in the message: a text with entities, or rich content.

        A text message may become a rich one and back (Bot API 10.1); a server without rich
        messages refuses ``rich_message`` as ``sendRichMessage`` does.
        """
        raw = p.get("rich_message")
        if raw is None:
            text, entities = self.formatted(p)
            return _content(text, entities, markup) | {"rich_message": None}
        if not self.rich_messages:
            raise bad_request(rich.UNSUPPORTED)
        if p.get("text") not in (None, ""):
            raise bad_request("exactly one of text and rich_message must be specified")
        blocks = rich.parse_rich(raw, draft=False)
        rich_message = {"blocks": blocks}
        return {"text": None, "entities": [], "rich_message": rich_message, "reply_markup": markup}

    def _edit_message_reply_markup(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        markup = check_reply_markup(p.get("reply_markup"), inline_only=True)
        if self._inline_message(p) is not None:
            return self._edit_inline(p, "editMessageReplyMarkup", {"reply_markup": markup})
        message = self._own_message(p, "edit")
        if message.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        self.spend(message["chat"], "editMessageReplyMarkup")
        _apply(message, {"reply_markup": markup})
        return copy.deepcopy(message)

    def _delete_message(self, p: dict[str, Any]) -> bool:
        message = self._own_message(p, "delete")
        del self._messages[message["chat"]["id"], message["message_id"]]
        return True

    def _edit_ephemeral_message_text(self, p: dict[str, Any]) -> bool:
        text, entities = self.formatted(p)
        markup = check_reply_markup(p.get("reply_markup"), inline_only=True)
        message = self._ephemeral_target(p, "edit")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        new = _content(text, entities, markup)
        if (
            _content(message["text"], message.get("entities", []), message.get("reply_markup"))
            == new
        ):
            raise bad_request(NOT_MODIFIED)
        self.spend(message["chat"], "editEphemeralMessageText")
        _apply(message, new)
        return True

    def _delete_ephemeral_message(self, p: dict[str, Any]) -> bool:
        message = self._ephemeral_target(p, "delete")
        del self._ephemeral[message["chat"]["id"], message["ephemeral_message_id"]]
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
        self.topics.thread(chat, p)
        self.formatted(p, allow_empty=True)
        return True

    def _send_chat_action(self, p: dict[str, Any]) -> bool:
        self.topics.thread(self.chat(p), p)
        if p.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _answer_callback_query(self, p: dict[str, Any]) -> bool:
        query_id = str(p.get("callback_query_id", ""))
        ttl = self.callback_query_ttl
        opened = self._callback_opened.get(query_id, 0.0)
        if self._callback_queries.get(query_id, True) or (
            ttl is not None and time.monotonic() - opened > ttl
        ):
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

    def _answer_guest_query(self, p: dict[str, Any]) -> dict[str, Any]:
        """Post the bot's answer into the chat it was summoned to, as an inline message."""
        query = self.guest_queries.get(str(p.get("guest_query_id", "")))
        if (
            query is None
            or query.answered
            or time.monotonic() - query.received > self.guest_query_ttl
        ):
            raise bad_request(QUERY_TOO_OLD)
        result = p.get("result")
        if not isinstance(result, dict):
            raise bad_request("can't parse inline query result JSON object")
        checked = self._inline_result(result, set())
        if checked["type"] != "article":  # the emulator posts text; other kinds are not modelled
            raise bad_request("RESULT_TYPE_INVALID")
        chat = self.chats[query.chat_id]
        self.spend(chat, "answerGuestQuery")
        content = _content(checked["text"], checked["entities"], checked["reply_markup"])
        summon = self._messages.get((query.chat_id, query.message_id))
        caller = self.users.get(query.user_id)
        posted = self.send(
            chat, **content, reply_to_message=one_level(summon), guest_bot_caller_user=caller
        )
        inline_id = f"guest-{self.next_id()}"
        self.inline_messages[inline_id] = content
        self.place_inline(inline_id, query.chat_id, posted["message_id"])
        query.answered, query.inline_message_id = True, inline_id
        return {"inline_message_id": inline_id}

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
            checked["text"], checked["entities"] = self.formatted(params)
            checked["title"] = str(result["title"])
            checked["description"] = str(result.get("description") or "")
        return checked


def _holds(message: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``message`` already shows ``new`` (an empty or missing field: the same)."""
    return all((message.get(key) or None) == (value or None) for key, value in new.items())


def _apply(message: dict[str, Any], new: dict[str, Any]) -> None:
    """Edit a stored message in place: text or rich content, entities, keyboard (empty: gone)."""
    for key, value in new.items():
        message.pop(key, None)
        if value:
            message[key] = value
    message["edit_date"] = _now()
