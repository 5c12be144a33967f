"""Topics in private chats (Bot API 9.3+): the bot's switch, the topics, and their methods.

``PrivateTopics`` is what Telegram knows about them: whether the bot has topics in private
chats (``enabled``, getMe's ``has_topics_enabled``; off by default, as for a new bot) and may
let users make them (``users_create``, ``allows_users_to_create_topics``), and each private
chat's topics by ``message_thread_id``. A topic's thread id is the id of the service message
that created it (``forum_topic_created``), as in Telegram.

``methods(state)`` answers ``createForumTopic`` and ``editForumTopic`` in a private chat
(groups here are not forums: refused), posting the service messages Telegram posts.
``thread`` checks the ``message_thread_id`` of a send, a draft or a chat action: in a private
chat it must name a topic of that chat (a message then carries it, with ``is_topic_message``);
in a group it is ignored, as before topics were emulated.

A supergroup's forum topics are not listed: a user writes in any thread id. A send there goes
into the topic it names, or into the topic of the message it replies to (``forum_thread``), as
in Telegram. A topic can be closed and reopened, by a user (``UserActions.close_topic``) or by
the bot (``closeForumTopic``, ``reopenForumTopic``), each with its service message
(``forum_topic_closed``, ``forum_topic_reopened``). Both need an administrator with the
``can_manage_topics`` right (``TelegramState.manages_topics``), as the Bot API's
closeForumTopic says; the creator of the topic may too in Telegram, not here (its topics are
not kept). Only those write in a closed topic: a send of the bot's into one, when it lacks the
right there (no admin, or an admin without it), is refused with 400
``Bad Request: TOPIC_CLOSED``, as the real Bot API answers it (seen by others, e.g.
github.com/rteixeirax/qbittorrent_telegram_notification/issues/12 and
github.com/Matt0550/TagEveryoneTelegramBot/issues/26), an ephemeral message's too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from playground.wire import bad_request

if TYPE_CHECKING:
    from playground.state import Method, TelegramState

__all__ = [
    "ICON_COLORS",
    "MAX_TOPIC_NAME",
    "PrivateTopics",
    "Topic",
    "forum_thread",
    "methods",
    "set_closed",
]

MAX_TOPIC_NAME = 128
ICON_COLORS = (0x6FB9F0, 0xFFD67E, 0xCB86DB, 0x8EEE98, 0xFF93B2, 0xFB6F5F)
NOT_A_FORUM = "the chat is not a forum"
THREAD_NOT_FOUND = "message thread not found"
TOPIC_CLOSED = "TOPIC_CLOSED"


@dataclass
class Topic:
    """One topic of a private chat."""

    thread_id: int
    name: str
    icon_color: int
    created_by_user: bool = False

    def as_api(self) -> dict[str, Any]:
        """The ForumTopic object the Bot API answers with."""
        return {"message_thread_id": self.thread_id, "name": self.name} | {
            "icon_color": self.icon_color
        }


class PrivateTopics:
    """Whether the bot has topics in private chats, and each private chat's topics."""

    def __init__(self) -> None:
        self.enabled = False  # getMe's has_topics_enabled
        self.users_create = True  # getMe's allows_users_to_create_topics
        self._topics: dict[int, dict[int, Topic]] = {}  # chat id -> thread id -> topic

    def of(self, chat_id: int) -> list[Topic]:
        """The chat's topics, oldest first (copies)."""
        return [copy.copy(topic) for topic in self._topics.get(chat_id, {}).values()]

    def get(self, chat_id: int, thread_id: int) -> Topic | None:
        """The topic itself, or None."""
        return self._topics.get(chat_id, {}).get(thread_id)

    def add(self, chat_id: int, topic: Topic) -> None:
        """Record a new topic of a private chat."""
        self._topics.setdefault(chat_id, {})[topic.thread_id] = topic

    def thread(self, chat: dict[str, Any], p: dict[str, Any]) -> int | None:
        """The topic a send into ``chat`` goes to (None: the chat itself); 400 for a bad one."""
        thread_id = p.get("message_thread_id")
        if thread_id is None or chat["type"] != "private":
            return None
        if not isinstance(thread_id, int) or self.get(chat["id"], thread_id) is None:
            raise bad_request(THREAD_NOT_FOUND)
        return thread_id


def _name(p: dict[str, Any], *, required: bool) -> str | None:
    name = p.get("name")
    if name is None and not required:
        return None
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TOPIC_NAME:
        raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")
    return name


def methods(state: TelegramState) -> dict[str, Method]:
    """The topic methods on ``state``, by their canonical names."""
    topics = state.topics

    def private_forum(p: dict[str, Any]) -> dict[str, Any]:
        chat = state.chat(p)
        if chat["type"] != "private" or not topics.enabled:
            raise bad_request(NOT_A_FORUM)
        return chat

    def create_forum_topic(p: dict[str, Any]) -> dict[str, Any]:
        chat = private_forum(p)
        name = _name(p, required=True)
        assert name is not None  # noqa: S101 -- required above
        color = p.get("icon_color", ICON_COLORS[0])
        if color not in ICON_COLORS:
            raise bad_request("TOPIC_ICON_COLOR_INVALID")
        topic = open_topic(state, chat, state.bot_user, name, color)
        return topic.as_api()

    def edit_forum_topic(p: dict[str, Any]) -> bool:
        chat = private_forum(p)
        thread_id = p.get("message_thread_id")
        topic = topics.get(chat["id"], thread_id) if isinstance(thread_id, int) else None
        if topic is None:
            raise bad_request("TOPIC_ID_INVALID")
        name = _name(p, required=False)
        if name is None or name == topic.name:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.name = name
        state.store_message(
            chat,
            state.bot_user,
            forum_topic_edited={"name": name},
            message_thread_id=topic.thread_id,
            is_topic_message=True,
        )
        return True

    return {
        "createForumTopic": create_forum_topic,
        "editForumTopic": edit_forum_topic,
    } | _closing_methods(state)


def _closing_methods(state: TelegramState) -> dict[str, Method]:
    """``closeForumTopic`` and ``reopenForumTopic`` in a supergroup: the bot manages topics."""

    def closing(*, closed: bool) -> Method:
        def close_or_reopen(p: dict[str, Any]) -> bool:
            chat = state.chat(p)
            thread_id = p.get("message_thread_id")
            if chat["type"] != "supergroup" or not isinstance(thread_id, int):
                raise bad_request("TOPIC_ID_INVALID")
            if not state.manages_topics(chat["id"], state.bot_user["id"]):
                raise bad_request("CHAT_ADMIN_REQUIRED")
            set_closed(state, chat, state.bot_user, thread_id, closed=closed)
            return True

        return close_or_reopen

    return {"closeForumTopic": closing(closed=True), "reopenForumTopic": closing(closed=False)}


def set_closed(
    state: TelegramState,
    chat: dict[str, Any],
    by: dict[str, Any],
    thread_id: int,
    *,
    closed: bool,
) -> dict[str, Any]:
    """Close (or reopen) a supergroup's forum topic: its service message, which it returns.

    400 ``TOPIC_NOT_MODIFIED`` when it is closed (or open) already.
    """
    key = (chat["id"], thread_id)
    if (key in state.closed_topics) == closed:
        raise bad_request("TOPIC_NOT_MODIFIED")
    if closed:
        state.closed_topics.add(key)
    else:
        state.closed_topics.discard(key)
    kind = "forum_topic_closed" if closed else "forum_topic_reopened"
    content: dict[str, Any] = {kind: {}, "message_thread_id": thread_id, "is_topic_message": True}
    return state.store_message(chat, by, **content)


def forum_thread(
    state: TelegramState,
    chat: dict[str, Any],
    p: dict[str, Any],
    reply_to: dict[str, Any] | None,
) -> int | None:
    """The forum topic a bot's send into a supergroup goes to; 400 when it is closed to it.

    The one it names, else the one of the message it replies to; None: the General topic.
    """
    if chat["type"] != "supergroup":
        return None
    thread_id = p.get("message_thread_id")
    if thread_id is None and reply_to is not None and reply_to.get("is_topic_message"):
        thread_id = reply_to.get("message_thread_id")
    if not isinstance(thread_id, int):
        return None
    closed = (chat["id"], thread_id) in state.closed_topics
    if closed and not state.manages_topics(chat["id"], state.bot_user["id"]):
        raise bad_request(TOPIC_CLOSED)
    return thread_id


def open_topic(
    state: TelegramState,
    chat: dict[str, Any],
    creator: dict[str, Any],
    name: str,
    color: int = ICON_COLORS[0],
) -> Topic:
    """Make a topic in a private chat: its service message (whose id is the thread's), and it.

    Returns the topic; the service message is the chat's newest message.
    """
    created = {"name": name, "icon_color": color}
    message = state.store_message(chat, creator, forum_topic_created=created)
    thread_id = int(message["message_id"])
    message |= {"message_thread_id": thread_id, "is_topic_message": True}
    topic = Topic(thread_id, name, color, created_by_user=not creator.get("is_bot", False))
    state.topics.add(chat["id"], topic)
    return topic
