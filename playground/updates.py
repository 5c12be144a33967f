"""Updates a user would cause: messages, button presses, inline and guest queries, payments.

``UserActions`` plays the user's side. Each action registers the user and chat it involves in
the ``TelegramState``, builds a complete update that aiogram's types accept, hands it to the
``push`` it was given (the server's update queue) and returns its ``update_id`` (``pay`` returns
the charge id instead). Payments are recorded in ``StarsPayments``. Every message a user writes
is stored in its chat and handed to ``posted`` (the playground's page shows it).

In groups the bot is told what Telegram tells it: everything, or with ``state.privacy_mode``
only commands, messages that mention it, replies to its messages and messages sent via it
(the action then returns 0: no update). In a chat the bot is not a member of
(``state.chats_without_bot``) a message that mentions the bot summons it as a guest
(a ``guest_message`` update with a ``guest_query_id``); other messages there reach no one.
A message's ``reply_to_message`` is the replied message one level deep, as Telegram sends it.
``upgrade_group`` is a basic group becoming a supergroup: the bot is told both service
messages (``migrate_to_chat_id``, ``migrate_from_chat_id``), and the group's id is refused since.

Topics in private chats (``state.topics``): ``create_topic`` is the user making one in their
app (the bot is told of its ``forum_topic_created`` service message); ``send_text`` with
``thread_id`` writes in a topic, and ``stop_generation`` names the draft's topic.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from playground.payments import SUBSCRIPTION_PERIOD
from playground.state import GROUP_TYPES, one_level
from playground.text import entity_text, user_entities, utf16_len
from playground.topics import open_topic, set_closed

if TYPE_CHECKING:
    from collections.abc import Callable

    from playground.payments import StarsPayments
    from playground.state import TelegramState

__all__ = ["UserActions"]

# The pseudo-users Telegram names as the sender of a message sent on behalf of a chat.
ANONYMOUS_ADMIN: dict[str, Any] = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
CHANNEL_BOT: dict[str, Any] = {
    "id": 136817688,
    "is_bot": True,
    "first_name": "Channel",
    "username": "Channel_Bot",
}
_ROUTING = frozenset({"chat_id", "chat_type", "language_code", "first_name"})


# What a message may carry that is no file, as the Bot API writes it (Location, Dice, Contact,
# Poll); ``send_message_of`` sends these too.
_NOT_FILES: dict[str, dict[str, Any]] = {
    "location": {"latitude": 51.5007, "longitude": -0.1246},
    "dice": {"emoji": "🎲", "value": 4},
    "contact": {"phone_number": "+15550100", "first_name": "Bob"},
    "poll": {
        "question": "Lunch?",
        "options": [
            {"persistent_id": "1", "text": "Pizza", "voter_count": 0},
            {"persistent_id": "2", "text": "Soup", "voter_count": 0},
        ],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
        "allows_revoting": True,
        "members_only": False,
    },
}


def _media(kind: str, serial: str) -> list[dict[str, Any]] | dict[str, Any]:
    if kind in _NOT_FILES:
        poll_id = {"id": f"poll-{serial}"} if kind == "poll" else {}
        return poll_id | copy.deepcopy(_NOT_FILES[kind])
    file = {"file_id": f"fake-{kind}-{serial}", "file_unique_id": f"u{serial}", "file_size": 1024}
    if kind == "photo":
        return [
            file | {"file_id": f"fake-photo-{serial}-s", "width": 90, "height": 90},
            file | {"width": 800, "height": 600},
        ]
    extra: dict[str, dict[str, Any]] = {
        "voice": {"duration": 2, "mime_type": "audio/ogg"},
        "sticker": {"type": "regular", "width": 512, "height": 512, "is_animated": False}
        | {"is_video": False, "emoji": "🙂"},
        "document": {"file_name": "notes.txt", "mime_type": "text/plain"},
    }
    if kind not in extra:
        raise ValueError(f"unsupported message kind: {kind}")
    return file | extra[kind]


class UserActions:
    """What a user does in Telegram, as updates for the bot."""

    def __init__(
        self,
        state: TelegramState,
        payments: StarsPayments,
        push: Callable[[dict[str, Any]], int],
        posted: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._state = state
        self._payments = payments
        self._push = push
        self._posted = posted

    def _sender(
        self,
        user_id: int,
        *,
        chat_id: int | None = None,
        chat_type: str | None = None,
        first_name: str | None = None,
        language_code: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The user and chat of an update; what is not given stays as registered before."""
        known = self._state.users.get(user_id, {})
        user = self._state.register_user(
            user_id,
            first_name or known.get("first_name", "Ann"),
            known.get("language_code", "en") if language_code is None else language_code,
        )
        target = user_id if chat_id is None else chat_id
        chat = self._state.chats.get(target)
        if chat is None or (chat_type is not None and chat["type"] != chat_type):
            default_type = "private" if target > 0 else "supergroup"
            chat = self._state.register_chat(
                target,
                chat_type or default_type,
                user["first_name"],
                with_bot=target not in self._state.chats_without_bot,
            )
        if chat["type"] in GROUP_TYPES and self._state.member_status(target, user_id) is None:
            self._state.set_member(target, user_id, "member")
        return user, chat

    def _store(
        self,
        user: dict[str, Any],
        chat: dict[str, Any],
        reply_to: int | None,
        content: dict[str, object],
        *,
        inline_message_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a user's message (a reply to ``reply_to`` in that chat) and show it.

        With ``inline_message_id`` it is that inline message, posted into the chat.
        """
        replied = None
        if reply_to is not None:
            replied = one_level(self._state.message(chat["id"], reply_to))
            if replied is None:
                raise ValueError(f"no message {reply_to} in chat {chat['id']} to reply to")
        message = self._state.store_message(chat, user, reply_to_message=replied, **content)
        if inline_message_id is not None:
            self._state.place_inline(inline_message_id, chat["id"], message["message_id"])
        if self._posted is not None:
            self._posted(message)
        return message

    def _user_message(
        self,
        user_id: int,
        routing: dict[str, Any],
        content: dict[str, object],
        reply_to: int | None = None,
    ) -> int:
        user, chat = self._sender(user_id, **routing)
        message = self._store(user, chat, reply_to, content)
        return self._tell_bot(user, chat, message)

    def _tell_bot(self, user: dict[str, Any], chat: dict[str, Any], message: dict[str, Any]) -> int:
        """Queue the update Telegram sends the bot for ``message``; 0 when it sends none."""
        if chat["id"] in self._state.chats_without_bot:
            if not self._mentions_bot(message):
                return 0
            query_id = self._state.new_guest_query(user["id"], chat["id"], message["message_id"])
            return self._push({"guest_message": message | {"guest_query_id": query_id}})
        if chat["type"] in GROUP_TYPES and self._state.privacy_mode and not self._for_bot(message):
            return 0
        return self._push({"message": message})

    def _mentions_bot(self, message: dict[str, Any]) -> bool:
        text = str(message.get("text") or message.get("caption") or "")
        wanted = f"@{self._state.bot_user['username']}".lower()
        return any(
            entity_text(text, e).lower() == wanted
            for e in message.get("entities") or message.get("caption_entities") or []
            if e["type"] == "mention"
        )

    def _for_bot(self, message: dict[str, Any]) -> bool:
        """Whether a bot in privacy mode gets this group message."""
        bot = self._state.bot_user
        replied = message.get("reply_to_message") or {}
        text = str(message.get("text") or "")
        commands = [
            entity_text(text, e)
            for e in message.get("entities") or []
            if e["type"] == "bot_command"
        ]
        return (
            any(
                "@" not in c or c.split("@")[1].lower() == bot["username"].lower() for c in commands
            )
            or self._mentions_bot(message)
            or replied.get("from", {}).get("id") == bot["id"]
            or replied.get("via_bot", {}).get("id") == bot["id"]
            or message.get("via_bot", {}).get("id") == bot["id"]
        )

    def send_text(  # noqa: PLR0913 - the fake's API mirrors a message's fields
        self,
        user_id: int,
        text: str,
        *,
        language_code: str = "en",
        chat_id: int | None = None,
        chat_type: str | None = None,
        first_name: str = "Ann",
        reply_to: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        thread_id: int | None = None,
        quote: str | None = None,
    ) -> int:
        """A text message from ``user_id``: an update_id, or 0 if the bot is told nothing.

        In its private chat by default, in its topic ``thread_id`` if given (in a supergroup:
        a topic of the forum, any id, not checked; one closed takes it from a user who manages
        topics alone, else ValueError, as a client cannot send there); ``chat_id``
        (negative: a supergroup unless ``chat_type`` says "group") puts it in a group,
        ``reply_to`` makes it a reply to that message of the chat, quoting ``quote`` from it if
        given (a part of its text, as Telegram's ``TextQuote``). Commands and @mentions get
        their entities as a client sends them, unless ``entities`` are given. See the module
        docstring for who is told.
        """
        routing = {"chat_id": chat_id, "chat_type": chat_type}
        routing |= {"first_name": first_name, "language_code": language_code}
        found = user_entities(text) if entities is None else entities
        content: dict[str, object] = {"text": text, "entities": found}
        if quote is not None:
            content["quote"] = self._quote(user_id if chat_id is None else chat_id, reply_to, quote)
        if thread_id is not None:
            target = user_id if chat_id is None else chat_id
            forum = target < 0 and chat_type != "group"  # a supergroup's topic: any id
            if not forum and self._state.topics.get(target, thread_id) is None:
                raise ValueError(f"no topic {thread_id} in chat {target}")
            if forum and not self._writes_in(target, thread_id, user_id):
                raise ValueError(f"topic {thread_id} of chat {target} is closed to {user_id}")
            content |= {"message_thread_id": thread_id, "is_topic_message": True}
        return self._user_message(user_id, routing, content, reply_to)

    def _writes_in(self, chat_id: int, thread_id: int, user_id: int) -> bool:
        """Whether a user may send into forum topic ``thread_id``: open, or theirs to manage.

        A closed topic takes messages from those with ``can_manage_topics`` alone, users as bots
        (``TelegramState.manages_topics``): a member's question there cannot be asked.
        """
        closed = (chat_id, thread_id) in self._state.closed_topics
        return not closed or self._state.manages_topics(chat_id, user_id)

    def forward_text(  # noqa: PLR0913 - the fake's API mirrors a message's fields
        self,
        user_id: int,
        text: str,
        *,
        author: int | None = None,
        chat_id: int | None = None,
        first_name: str = "Ann",
        entities: list[dict[str, Any]] | None = None,
    ) -> int:
        """``user_id`` forwards a text someone else wrote: an update_id, or 0 if none is sent.

        As the Bot API sends a forward: the text keeps the entities its author's client marked
        (a ``bot_command``, a ``mention``), or ``entities`` (a bot's formatting, its answer's
        folded thinking), and ``forward_origin`` names who wrote it, a ``MessageOriginUser`` of
        ``author`` (the bot itself, or a user registered as "Bob" if new), or without
        ``author`` a ``MessageOriginHiddenUser`` (one whose privacy settings hide them). Routed
        like ``send_text`` (``chat_id``); in a chat without the bot (``post_text`` makes one) a
        forward that mentions the bot summons it as a guest, as any message there that does.
        """
        state = self._state
        if author is None:
            origin: dict[str, Any] = {"type": "hidden_user", "sender_user_name": "Bob"}
        elif author == state.bot_user["id"]:
            origin = {"type": "user", "sender_user": state.bot_user}
        else:
            known = state.users.get(author) or state.register_user(author, "Bob", "en")
            origin = {"type": "user", "sender_user": known}
        origin["date"] = int(time.time()) - 3600
        found = user_entities(text) if entities is None else entities
        content: dict[str, object] = {"text": text, "entities": found}
        content["forward_origin"] = origin
        return self._user_message(user_id, {"chat_id": chat_id, "first_name": first_name}, content)

    def edit_text(
        self, user_id: int, message_id: int, text: str, *, chat_id: int | None = None
    ) -> int:
        """The user edits their text message ``message_id`` in their private chat with the bot.

        As Telegram does: the stored message takes the new text (its commands' entities) and an
        ``edit_date``, and the bot is sent it as an ``edited_message`` update, if it asked for
        those (``allowed_updates``). Returns the update_id. ``chat_id``: in that group instead.
        """
        _user, chat = self._sender(user_id, chat_id=chat_id)
        message = self._state.message(chat["id"], message_id)
        if message is None or message["from"]["id"] != user_id or "text" not in message:
            raise ValueError(f"no text message {message_id} of user {user_id} to edit")
        message["text"] = text
        message.pop("entities", None)
        if found := user_entities(text):
            message["entities"] = found
        message["edit_date"] = int(time.time())
        return self._push({"edited_message": copy.deepcopy(message)})

    def send_as_chat(
        self,
        text: str,
        *,
        chat_id: int,
        channel_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """A group message sent on behalf of a chat: an update_id, or 0 if the bot is told nothing.

        As Telegram writes it: an anonymous admin's message (``channel_id`` None) comes from
        ``GroupAnonymousBot`` with the group itself as ``sender_chat``; a member posting as their
        channel ``channel_id`` from ``Channel_Bot``, the channel as ``sender_chat``. Neither
        pseudo-user is the person who wrote it, and each stands for many people.
        """
        chat = self._state.chats.get(chat_id) or self._state.register_chat(
            chat_id, "supergroup", ""
        )
        sender, sender_chat = self._pseudo_sender(chat, channel_id)
        content: dict[str, object] = {"text": text, "entities": user_entities(text)}
        content["sender_chat"] = sender_chat
        message = self._store(sender, chat, reply_to, content)
        return self._tell_bot(sender, chat, message)

    def _pseudo_sender(
        self, chat: dict[str, Any], channel_id: int | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pseudo-user and ``sender_chat`` of a message sent as ``chat`` or as a channel."""
        if channel_id is None:
            return dict(ANONYMOUS_ADMIN), chat
        known = self._state.chats.get(channel_id)
        channel = known or self._state.register_chat(
            channel_id, "channel", "", title="A channel", with_bot=False
        )
        return dict(CHANNEL_BOT), channel

    def upgrade_group(self, user_id: int, chat_id: int, supergroup_id: int) -> int:
        """``user_id`` upgrades basic group ``chat_id`` to supergroup ``supergroup_id``.

        As Telegram does: the group is deactivated (calls naming it are refused with the
        supergroup's id), and two service messages are posted and sent to the bot whatever its
        privacy mode (bots get every service message): ``migrate_to_chat_id`` in the group,
        then ``migrate_from_chat_id`` in the supergroup. Returns the second's update_id.
        """
        user, group = self._sender(user_id, chat_id=chat_id, chat_type="group")
        supergroup = self._state.migrate(chat_id, supergroup_id)
        moved = self._store(user, group, None, {"migrate_to_chat_id": supergroup_id})
        self._push({"message": moved})
        came = self._store(user, supergroup, None, {"migrate_from_chat_id": chat_id})
        return self._push({"message": came})

    def _quote(self, chat_id: int, reply_to: int | None, quote: str) -> dict[str, Any]:
        """A ``TextQuote`` of ``quote`` in message ``reply_to`` (Telegram: QUOTE_TEXT_INVALID)."""
        replied = None if reply_to is None else self._state.message(chat_id, reply_to)
        text = str((replied or {}).get("text") or (replied or {}).get("caption") or "")
        found = text.find(quote) if quote else -1
        if found < 0:
            raise ValueError("QUOTE_TEXT_INVALID: the quote is not in the replied message")
        return {"text": quote, "position": utf16_len(text[:found])}

    def create_topic(self, user_id: int, name: str, *, language_code: str = "en") -> int:
        """The user makes a topic in their private chat with the bot; returns its thread id.

        Only where the bot has topics and lets users make them (``state.topics``). The bot is
        told of the ``forum_topic_created`` service message, as Telegram tells it.
        """
        topics = self._state.topics
        if not (topics.enabled and topics.users_create):
            raise ValueError("this bot has no topics users may create in private chats")
        user, chat = self._sender(user_id, language_code=language_code)
        topic = open_topic(self._state, chat, user, name)
        message = self._state.message(chat["id"], topic.thread_id)
        assert message is not None  # noqa: S101 -- open_topic stored it
        if self._posted is not None:
            self._posted(message)
        self._tell_bot(user, chat, message)
        return topic.thread_id

    def close_topic(
        self, user_id: int, chat_id: int, thread_id: int, *, closed: bool = True
    ) -> int:
        """``user_id`` (an admin of the supergroup) closes forum topic ``thread_id``: an update_id.

        Or reopens it (``closed`` False). Its service message (``forum_topic_closed``,
        ``forum_topic_reopened``) is in the topic, and sent to the bot, as service messages are
        even in privacy mode. Only admins write there while it is closed (``playground.topics``).
        A user who is no admin is made one (with the ``can_manage_topics`` right); the creator
        stays the creator; an admin without the right cannot: ValueError, as the app refuses.
        """
        user, chat = self._sender(user_id, chat_id=chat_id)
        status = self._state.member_status(chat_id, user_id)
        if status == "administrator" and not self._state.manages_topics(chat_id, user_id):
            raise ValueError(f"user {user_id} may not manage the topics of chat {chat_id}")
        if status != "creator":
            self._state.set_member(chat_id, user_id, "administrator")
        message = set_closed(self._state, chat, user, thread_id, closed=closed)
        if self._posted is not None:
            self._posted(message)
        return self._push({"message": message})

    def guest_message(  # noqa: PLR0913 - the fake's API mirrors a message's fields
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int,
        chat_type: str = "supergroup",
        title: str = "Friends",
        reply_to: int | None = None,
        language_code: str = "en",
        first_name: str = "Ann",
        media: str | None = None,
    ) -> int:
        """A ``guest_message``: ``user_id`` summons the bot in ``chat_id``, a chat without it.

        The chat is made (titled ``title``) if it is new; it must not be one the bot is in.
        ``reply_to`` names an earlier message of that chat (``post_text`` writes some). The
        update's message carries ``guest_query_id``, for ``answerGuestQuery``. With ``media``
        (a kind ``send_message_of`` sends: "photo", "document"…) the summons is that media
        with ``text`` as its caption, the mention in the caption's entities.
        """
        if chat_id in self._state.chats and chat_id not in self._state.chats_without_bot:
            raise ValueError(f"the bot is a member of chat {chat_id}: no guest query there")
        if chat_id not in self._state.chats:
            self._state.register_chat(chat_id, chat_type, "", title=title, with_bot=False)
        user, chat = self._sender(
            user_id, chat_id=chat_id, first_name=first_name, language_code=language_code
        )
        content: dict[str, object] = {"text": text, "entities": user_entities(text)}
        if media is not None:
            content = {media: _media(media, self._state.next_id()), "caption": text}
            content["caption_entities"] = user_entities(text)
        message = self._store(user, chat, reply_to, content)
        query_id = self._state.new_guest_query(user_id, chat_id, message["message_id"])
        return self._push({"guest_message": message | {"guest_query_id": query_id}})

    def guest_message_as_chat(
        self, text: str, *, chat_id: int, channel_id: int | None = None, title: str = "Friends"
    ) -> int:
        """A ``guest_message`` sent on behalf of a chat, in ``chat_id``, a chat without the bot.

        From ``GroupAnonymousBot`` as the chat itself (``channel_id`` None: an anonymous admin)
        or from ``Channel_Bot`` as the channel ``channel_id``, as ``send_as_chat`` writes them.
        """
        if chat_id in self._state.chats and chat_id not in self._state.chats_without_bot:
            raise ValueError(f"the bot is a member of chat {chat_id}: no guest query there")
        chat = self._state.chats.get(chat_id) or self._state.register_chat(
            chat_id, "supergroup", "", title=title, with_bot=False
        )
        sender, sender_chat = self._pseudo_sender(chat, channel_id)
        content: dict[str, object] = {"text": text, "entities": user_entities(text)}
        content["sender_chat"] = sender_chat
        message = self._store(sender, chat, None, content)
        query_id = self._state.new_guest_query(sender["id"], chat_id, message["message_id"])
        return self._push({"guest_message": message | {"guest_query_id": query_id}})

    def post_text(  # noqa: PLR0913 - the fake's API mirrors a message's fields
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int,
        reply_to: int | None = None,
        first_name: str = "Ann",
        title: str = "Friends",
    ) -> int:
        """A message in a chat without the bot, which it never sees; returns its message_id.

        The chat (a supergroup titled ``title``) is made if it is new.
        """
        if chat_id not in self._state.chats:
            self._state.register_chat(chat_id, "supergroup", "", title=title, with_bot=False)
        if chat_id not in self._state.chats_without_bot:
            raise ValueError(f"the bot is a member of chat {chat_id}")
        user, chat = self._sender(user_id, chat_id=chat_id, first_name=first_name)
        message = self._store(user, chat, reply_to, {"text": text, "entities": user_entities(text)})
        return int(message["message_id"])

    def send_message_of(self, user_id: int, kind: str, **fields: object) -> int:
        """A photo, voice, sticker, document, location, dice, contact or poll from ``user_id``.

        ``chat_id``, ``chat_type``, ``first_name`` and ``language_code`` route it like
        ``send_text``; any other field (``caption``, or the media object itself) is set on the
        message. A caption gets its entities (commands, @mentions) as a client marks them
        (the Bot API's ``caption_entities``: "bot commands, etc. that appear in the caption").
        """
        routing = {key: value for key, value in fields.items() if key in _ROUTING}
        content = {key: value for key, value in fields.items() if key not in _ROUTING}
        caption = content.get("caption")
        found = user_entities(caption) if isinstance(caption, str) else []
        if found and "caption_entities" not in content:  # none: Telegram leaves the field out
            content["caption_entities"] = found
        return self._user_message(
            user_id, routing, {kind: _media(kind, self._state.next_id())} | content
        )

    def press_button(
        self,
        user_id: int,
        data: str,
        *,
        message_id: int,
        chat_id: int | None = None,
        language_code: str = "en",
    ) -> int:
        """A callback_query from pressing an inline button with ``data`` under ``message_id``."""
        user, chat = self._sender(user_id, chat_id=chat_id, language_code=language_code)
        message = self._state.message(chat["id"], message_id)
        query_id = self._state.new_callback_query(user_id)
        query = {
            "id": query_id,
            "from": user,
            "chat_instance": f"ci{chat['id']}",
            "message": message or {"chat": chat, "message_id": message_id, "date": 0},
            "data": data,
        }
        return self._push({"callback_query": query})

    def press_inline_button(
        self, user_id: int, data: str, inline_message_id: str, *, language_code: str | None = None
    ) -> int:
        """A callback_query from a button under the inline message ``inline_message_id``."""
        user, _chat = self._sender(user_id, language_code=language_code)
        query_id = self._state.new_callback_query(user_id)
        query = {"id": query_id, "from": user, "chat_instance": f"ci{inline_message_id}"}
        query |= {"inline_message_id": inline_message_id, "data": data}
        return self._push({"callback_query": query})

    def stop_generation(self, user_id: int, draft_id: int, thread_id: int | None = None) -> int:
        """The user pressed the stop button under the draft ``draft_id`` (in its topic, if any)."""
        _user, chat = self._sender(user_id)
        stopped: dict[str, Any] = {"chat": chat, "draft_id": draft_id}
        if thread_id is not None:
            stopped["message_thread_id"] = thread_id
        return self._push({"stopped_message_generation": stopped})

    def inline_query(
        self, user_id: int, query: str, *, language_code: str = "en", chat_type: str = "sender"
    ) -> int:
        """An inline query; it can be answered for the state's ``inline_query_ttl`` seconds.

        ``chat_type`` is where it was typed: "sender" (the bot's own chat), "private", "group",
        "supergroup" or "channel".
        """
        user, _chat = self._sender(user_id, language_code=language_code)
        query_id = self._state.new_inline_query(user_id, query)
        update = {"id": query_id, "from": user, "query": query, "offset": ""}
        update["chat_type"] = chat_type
        return self._push({"inline_query": update})

    def choose_inline_result(  # noqa: PLR0913 -- the fake's API mirrors an inline pick
        self,
        user_id: int,
        result_id: str,
        query: str,
        *,
        inline_message_id: str,
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """The user picked a result; the message it posts becomes ``inline_message_id``.

        With ``chat_id`` the message is also posted there (a reply to ``reply_to`` when given),
        from the user ``via_bot`` the bot, and the bot's edits of the inline message change it.
        In a group the bot is a member of, Telegram sends the bot that message too (privacy mode
        lets messages sent via the bot through).
        """
        user, _chat = self._sender(user_id)
        answered = [
            result
            for asked in self._state.inline_queries.values()
            if asked.user_id == user_id and asked.query == query
            for result in asked.results
            if result["id"] == result_id
        ]
        chosen = answered[-1] if answered else {}
        content = {
            "text": chosen.get("text", ""),
            "entities": chosen.get("entities", []),
            "reply_markup": chosen.get("reply_markup"),
        }
        self._state.inline_messages[inline_message_id] = content
        if chat_id is not None:
            _user, chat = self._sender(user_id, chat_id=chat_id)
            posted = copy.deepcopy(content) | {"via_bot": self._state.bot_user}
            message = self._store(user, chat, reply_to, posted, inline_message_id=inline_message_id)
            if chat["type"] in GROUP_TYPES and chat["id"] not in self._state.chats_without_bot:
                self._tell_bot(user, chat, message)
        update = {"result_id": result_id, "from": user, "query": query}
        update["inline_message_id"] = inline_message_id
        return self._push({"chosen_inline_result": update})

    def pre_checkout(
        self, user_id: int, *, payload: str, total_amount: int, currency: str = "XTR"
    ) -> int:
        """A pre_checkout_query the bot must answer with answerPreCheckoutQuery."""
        user, _chat = self._sender(user_id)
        query_id = self._payments.new_pre_checkout(user_id, payload, total_amount)
        query = {"id": query_id, "from": user, "currency": currency, "total_amount": total_amount}
        query["invoice_payload"] = payload
        return self._push({"pre_checkout_query": query})

    def pay(  # noqa: PLR0913 - the fake's API mirrors successful_payment's fields
        self,
        user_id: int,
        *,
        payload: str,
        total_amount: int,
        currency: str = "XTR",
        charge_id: str | None = None,
        is_recurring: bool = False,
        subscription_expiration_date: int | None = None,
    ) -> str:
        """A successful_payment message; records the charge and its Star transaction once.

        Passing an existing ``charge_id`` delivers the same payment again, as Telegram may.
        """
        charge_id = charge_id or f"stxFAKE{self._state.next_id()}"
        payment: dict[str, Any] = {"currency": currency, "total_amount": total_amount}
        payment |= {"invoice_payload": payload, "telegram_payment_charge_id": charge_id}
        payment["provider_payment_charge_id"] = ""
        if is_recurring:
            payment["is_recurring"] = True
            payment["subscription_expiration_date"] = subscription_expiration_date or int(
                time.time() + SUBSCRIPTION_PERIOD
            )
        user, _chat = self._sender(user_id)
        self._payments.record_payment(user, charge_id, payment)
        self._user_message(user_id, {}, {"successful_payment": payment})
        return charge_id

    def refunded(self, user_id: int, *, payload: str, total_amount: int, charge_id: str) -> int:
        """A refunded_payment message; marks the charge refunded if the bot had not."""
        self._payments.record_refund(charge_id)
        refund = {"currency": "XTR", "total_amount": total_amount, "invoice_payload": payload}
        refund["telegram_payment_charge_id"] = charge_id
        return self._user_message(user_id, {}, {"refunded_payment": refund})
