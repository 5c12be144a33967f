"""Every kind of update Telegram may send, in every kind of chat, through the real bot.

A seeded generator (``SEED``; the same updates on every run) writes valid Bot API updates of
every type aiogram knows, one it does not (a newer Bot API's), and messages of every content
kind: media, service messages, payments, forwards, posts of channels, texts past the limits,
entities outside their text. The bot reads them by long polling (what Telegram sends for the
update types it asked for) and by webhook (every one, posted straight to it). Afterwards it
still answers a question; no update made it log a bug or an error line, or a user's words;
whatever it said to anyone is an answer of the model's or a text of its catalogs; no payment
update it was sent credited what it must not, every checkout was refused and every button's
press answered. Seed 2025 (webhook: 2026), 400 updates each way, about 3 s each. It found a
press under a message deleted since failing its handler (``test_fuzz25_pressed_gone``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from bot.shutdown import IN_FLIGHT, InFlight
from common.texts import Catalogs
from tests.botstack import WEBHOOK_SECRET, running_stack
from tests.fakes.telegram import user_deletes
from tests.test_bot_webhook import HEADER, post

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping, Sequence
    from pathlib import Path

    from tests.botstack import Stack
    from tests.fakes.telegram import FakeTelegram

SEED = 2025
UPDATES = 400
ANSWER = "Paris."
# Every word a user writes holds this; no log line may.
MARK = "quokka"
PEOPLE = (9601, 9602, 9603, 9604, 9605)
NEWCOMER = 9700  # asks a question once it is all over
PAYER = 9609  # sent only payments and checkouts that must credit nothing
LANGUAGES = ("en", "ru", "kk", "de", "pt-br", None)
SUPERGROUP = -1009601
FORUM = -1009602
GROUP = -9603
CHANNEL = -1009604
NOT_A_MEMBER = -1009605  # a group the bot is not in: guest summons come from there
GROUPS = (SUPERGROUP, FORUM, GROUP)
NOW = 1_780_000_000


@dataclass
class Fuzz:
    """Writes random valid updates; registers their chats and messages with the fake Telegram."""

    telegram: FakeTelegram
    rng: random.Random
    bot_name: str = ""
    checkouts: int = 0
    presses: set[str] = field(default_factory=set)
    words: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        state = self.telegram.state
        self.bot_name = state.bot_user["username"]
        for user in (*PEOPLE, PAYER):
            state.register_user(user, "Ann", "en")
            state.register_chat(user, "private", "Ann")
        state.register_chat(SUPERGROUP, "supergroup", "", title="Walkers")
        state.register_chat(FORUM, "supergroup", "", title="Forum")
        state.chats[FORUM]["is_forum"] = True
        state.register_chat(GROUP, "group", "", title="Old group")
        state.register_chat(CHANNEL, "channel", "", title="News")
        state.register_chat(NOT_A_MEMBER, "supergroup", "", title="Elsewhere", with_bot=False)
        for chat in GROUPS:
            for user in PEOPLE:
                state.set_member(chat, user, "member")

    # The pieces.

    def pick(self, items: Sequence[Any]) -> Any:  # noqa: ANN401 -- one of any items
        """One of ``items``."""
        return items[self.rng.randrange(len(items))]

    def user(self, user_id: int | None = None) -> dict[str, Any]:
        """A user as an update shows them, in a random language (some unknown here)."""
        found: dict[str, Any] = {"id": user_id or self.pick(PEOPLE), "is_bot": False}
        found["first_name"] = self.pick(("Ann", "Бек", "", "\u202e evil", "x" * 64))
        if (language := self.pick(LANGUAGES)) is not None:
            found["language_code"] = language
        return found

    def chat(self, chat_id: int) -> dict[str, Any]:
        """The chat ``chat_id`` as the fake Telegram knows it."""
        return dict(self.telegram.state.chats[chat_id])

    def words_of(self, size: int = 0) -> str:
        """Some words a user wrote (they hold ``MARK``), ``size`` long if given."""
        serial = len(self.words)
        text = f"{MARK}{serial} what is the capital of France?"
        if size:
            text = (text + " ") * (size // (len(text) + 1) + 1)
            text = text[:size]
        self.words.append(text)
        return text

    def text(self, chat_id: int) -> dict[str, Any]:  # noqa: PLR0911 -- one return a case
        """A text: a question, a command, empty, too long, with entities outside it."""
        mention = f"@{self.bot_name} " if chat_id < 0 else ""
        kind = self.rng.randrange(9)
        if kind == 0:
            return {"text": ""}
        if kind == 1:
            return {"text": mention + self.words_of(self.pick((4096, 4097, 5000, 9000)))}
        if kind == 2:
            words = mention + self.words_of()
            entities = [
                {"type": "bold", "offset": len(words) + 5, "length": 10},
                {"type": "bot_command", "offset": 0, "length": 400},
                {"type": "text_link", "offset": 3, "length": 2, "url": "http://127.0.0.1:1/"},
                {"type": "mention", "offset": 10**6, "length": 3},
            ]
            return {"text": words, "entities": entities}
        if kind == 3:
            command = self.pick(("/start", "/help", "/new", "/buy", "/ask", "/nonsense", "/"))
            tail = self.pick(("", f"@{self.bot_name}", "@other_bot", " " + self.words_of()))
            text = command + tail
            return {"text": text, "entities": [{"type": "bot_command", "offset": 0, "length": 1}]}
        if kind == 4:
            return {"text": "\u200b\n\t " + self.words_of() + "\x00\u202e"}
        words = mention + self.words_of()
        if mention:
            return {"text": words, "entities": [{"type": "mention", "offset": 0, "length": 17}]}
        return {"text": words}

    def media(self) -> dict[str, Any]:
        """A message's content of a kind that is no text."""
        serial = str(self.rng.randrange(10**9))
        file = {"file_id": f"file-{serial}", "file_unique_id": f"u{serial}"}
        caption = self.words_of() if self.rng.random() < 0.5 else None
        photo = [file | {"width": 90, "height": 90}, file | {"width": 1280, "height": 960}]
        user = self.user()
        kinds: list[dict[str, Any]] = [
            {
                "sticker": file
                | {"type": "regular", "width": 512, "height": 512}
                | {"is_animated": False, "is_video": False, "emoji": "🙂"}
            },
            {"photo": photo},
            {"photo": photo, "caption": self.words_of()},
            {"document": self.document()},
            {"voice": file | {"duration": 3, "mime_type": "audio/ogg"}},
            {"video_note": file | {"length": 240, "duration": 5}},
            {"audio": file | {"duration": 100, "title": "song"}},
            {"video": file | {"width": 10, "height": 10, "duration": 1}},
            {"animation": file | {"width": 10, "height": 10, "duration": 1}, "document": file},
            {"contact": {"phone_number": "+15550100", "first_name": "Bob", "vcard": "BEGIN"}},
            {"location": {"latitude": 51.5, "longitude": -0.12, "live_period": 60}},
            {
                "venue": {
                    "location": {"latitude": 1.0, "longitude": 2.0},
                    "title": self.words_of(),
                    "address": "Here",
                },
                "location": {"latitude": 1.0, "longitude": 2.0},
            },
            {"dice": {"emoji": self.pick(("🎲", "🎯", "🏀", "⚽", "🎳", "🎰")), "value": 64}},
            {
                "game": {
                    "title": "Game",
                    "description": self.words_of(),
                    "photo": photo,
                    "text": self.words_of(),
                }
            },
            {"poll": self.poll()},
            {"story": {"chat": self.chat(CHANNEL), "id": 7}},
            {
                "giveaway": {
                    "chats": [self.chat(CHANNEL)],
                    "winners_selection_date": NOW,
                    "winner_count": 3,
                    "prize_star_count": 10**9,
                }
            },
            {
                "paid_media": {
                    "star_count": 10**6,
                    "paid_media": [{"type": "preview", "width": 1, "height": 1}],
                },
                "caption": self.words_of(),
            },
            {"new_chat_members": [user, {"id": 123456, "is_bot": True, "first_name": "Veil"}]},
            {"left_chat_member": user},
            {"pinned_message": {"chat": self.chat(SUPERGROUP), "message_id": 5, "date": 0}},
            {"forum_topic_created": {"name": self.words_of(), "icon_color": 7322096}},
            {"forum_topic_closed": {}},
            {"forum_topic_reopened": {}},
            {"migrate_to_chat_id": -100999},
            {"migrate_from_chat_id": GROUP},
            {"group_chat_created": True},
            {"new_chat_title": self.words_of()},
            {"delete_chat_photo": True},
            {"write_access_allowed": {"from_request": True}},
            {"web_app_data": {"data": self.words_of() + "\x00{not json", "button_text": "Go"}},
            {"users_shared": {"request_id": 2**31 - 1, "users": [{"user_id": 1}]}},
            {"chat_shared": {"request_id": -5, "chat_id": CHANNEL}},
            {"message_auto_delete_timer_changed": {"message_auto_delete_time": 86400}},
            {"video_chat_started": {}},
            {"proximity_alert_triggered": {"traveler": user, "watcher": user, "distance": 1}},
            {"connected_website": "example.com"},
            {"boost_added": {"boost_count": 3}},
        ]
        content = self.pick(kinds)
        if caption is not None and "caption" not in content and self.rng.random() < 0.3:
            content["caption"] = caption
        return dict(content)

    def document(self) -> dict[str, Any]:
        """A document of an odd type (kept by the fake Telegram, so it can be read)."""
        name, mime = self.pick(
            (
                ("junk.bin", "application/x-junk"),
                ("notes.txt", "text/plain"),
                ("x", ""),
                ("a.pdf", "application/pdf"),
                ("..\\..\\evil.txt", "text/plain; charset=utf-1024"),
            )
        )
        data = self.rng.randbytes(self.rng.randrange(0, 300))
        if self.rng.random() < 0.5:
            data = self.words_of().encode()
        return self.telegram.media.receive(data, file_name=name, mime_type=mime or "x/y")

    def poll(self) -> dict[str, Any]:
        """A poll as Telegram sends it."""
        return {
            "id": str(self.rng.randrange(10**12)),
            "question": self.words_of(),
            "options": [
                {"persistent_id": "1", "text": "Pizza", "voter_count": 0},
                {"persistent_id": "2", "text": "Soup", "voter_count": 1},
            ],
            "total_voter_count": 1,
            "is_closed": False,
            "is_anonymous": False,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": True,
            "members_only": False,
        }

    def payment(self) -> dict[str, Any]:
        """A payment (never in Stars) or a refund (of Stars, as all are) the bot never took."""
        paid = {
            "currency": self.pick(("USD", "EUR", "xtr", "")),
            "total_amount": self.pick((1, 2**31 - 1, 10**15)),
            "invoice_payload": self.pick(("", "unknown-order", "x" * 128, "' OR 1=1 --")),
            "telegram_payment_charge_id": f"stxFUZZ{self.rng.randrange(10**9)}",
            "provider_payment_charge_id": "",
        }
        if self.rng.random() < 0.5:
            return {"refunded_payment": paid | {"currency": "XTR"}}
        return {"successful_payment": paid}

    def message(self, chat_id: int | None = None) -> dict[str, Any]:
        """A message in any kind of chat, of any content, stored in the fake Telegram."""
        state = self.telegram.state
        chat_id = chat_id or self.pick((*PEOPLE, *GROUPS, *GROUPS, CHANNEL))
        chat = self.chat(chat_id)
        if chat_id == CHANNEL:
            sender: dict[str, Any] = {}
            extra: dict[str, Any] = {"sender_chat": chat}
        elif chat_id < 0 and self.rng.random() < 0.2:
            sender, extra = {}, {"sender_chat": chat}
        else:
            sender = self.user(chat_id if chat_id > 0 else None)
            extra = {}
        content = self.text(chat_id) if self.rng.random() < 0.45 else self.media()
        if self.rng.random() < 0.1 and chat_id > 0:
            chat, sender, content = self.chat(PAYER), self.user(PAYER), self.payment()
        extra |= self.decorations(chat_id)
        stored = state.store_message(chat, sender, **content, **extra)
        stored["date"] = self.pick((stored["date"], 0, NOW))
        if not sender:
            stored.pop("from")
        if self.rng.random() < 0.05:
            return self.ephemeral(dict(stored))
        return dict(stored)

    def decorations(self, chat_id: int) -> dict[str, Any]:
        """What a message may carry beside its content: a forward, a reply, a topic."""
        found: dict[str, Any] = {}
        roll = self.rng.random()
        if roll < 0.15:
            found["forward_origin"] = self.pick(
                (
                    {"type": "hidden_user", "sender_user_name": "Bob", "date": NOW},
                    {"type": "user", "sender_user": self.user(), "date": NOW},
                    {"type": "channel", "chat": self.chat(CHANNEL), "message_id": 3, "date": NOW},
                    {"type": "chat", "sender_chat": self.chat(SUPERGROUP), "date": NOW},
                )
            )
        elif roll < 0.25:
            found["via_bot"] = self.pick(
                (
                    self.telegram.state.bot_user,
                    {"id": 77, "is_bot": True, "first_name": "Other", "username": "other_bot"},
                )
            )
        elif roll < 0.32 and chat_id < 0:
            found["is_automatic_forward"] = True
            found["sender_chat"] = self.chat(CHANNEL)
        elif roll < 0.45:
            found["reply_to_message"] = {
                "message_id": self.rng.randrange(1, 5),
                "date": 0,
                "chat": self.chat(chat_id),
                "from": self.pick((self.telegram.state.bot_user, self.user())),
                "text": self.words_of(),
            }
        if chat_id == FORUM and self.rng.random() < 0.7:
            found |= {"message_thread_id": self.rng.randrange(1, 40), "is_topic_message": True}
        return found

    def ephemeral(self, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` as an ephemeral command (Bot API 10.3): in a group, for the bot alone."""
        if message["chat"]["type"] not in {"group", "supergroup"} or "from" not in message:
            return message
        bot = self.telegram.state.bot_user
        return message | {"message_id": 0, "ephemeral_message_id": 1, "receiver_user": bot}

    # The updates.

    def update(self) -> dict[str, Any]:  # noqa: C901, PLR0911, PLR0912 -- one case a kind
        """One update of a random type."""
        kind = self.pick(KINDS)
        user = self.user()
        if kind in {"message", "edited_message", "channel_post", "edited_channel_post"}:
            message = self.message(CHANNEL if "channel" in kind else None)
            if kind.startswith("edited"):
                message["edit_date"] = NOW
            return {kind: message}
        if kind in {"business_message", "edited_business_message"}:
            message = self.message(self.pick(PEOPLE))
            return {kind: message | {"business_connection_id": "bc1"}}
        if kind == "business_connection":
            return {
                kind: {
                    "id": "bc1",
                    "user": user,
                    "user_chat_id": user["id"],
                    "date": NOW,
                    "is_enabled": True,
                }
            }
        if kind == "deleted_business_messages":
            chat = self.chat(self.pick(PEOPLE))
            return {kind: {"business_connection_id": "bc1", "chat": chat, "message_ids": [1, 2]}}
        if kind == "guest_message":
            chat = self.chat(NOT_A_MEMBER)
            message = self.telegram.state.store_message(chat, user, **self.guest_content())
            query = self.telegram.state.new_guest_query(user["id"], NOT_A_MEMBER, 1)
            return {kind: dict(message) | {"guest_query_id": query}}
        if kind in {"message_reaction", "message_reaction_count"}:
            return {kind: self.reaction(kind)}
        if kind == "inline_query":
            text = self.pick(("", self.words_of(), self.words_of(256), "@" + self.words_of()))
            query_id = self.telegram.state.new_inline_query(user["id"], text)
            return {
                kind: {"id": query_id, "from": user, "query": text, "offset": self.pick(("", "z"))}
                | self.pick(({}, {"chat_type": "sender"}, {"chat_type": "supergroup"}))
            }
        if kind == "chosen_inline_result":
            return {kind: self.chosen(user)}
        if kind == "callback_query":
            return {kind: self.press(user)}
        if kind == "shipping_query":
            address = {"country_code": "ZZ", "state": "", "city": "X"}
            address |= {"street_line1": "", "street_line2": "", "post_code": "0"}
            found = {"id": "sq1", "from": user, "invoice_payload": "unknown"}
            return {kind: found | {"shipping_address": address}}
        if kind == "pre_checkout_query":
            return {kind: self.checkout()}
        if kind == "purchased_paid_media":
            return {kind: {"from": user, "paid_media_payload": self.pick(("", "junk"))}}
        if kind == "poll":
            return {kind: self.poll()}
        if kind == "poll_answer":
            return {
                kind: {
                    "poll_id": "1",
                    "user": user,
                    "option_ids": [0],
                    "option_persistent_ids": ["1"],
                }
            }
        if kind in {"my_chat_member", "chat_member"}:
            return {kind: self.member_change(kind, user)}
        if kind == "chat_join_request":
            chat = self.chat(self.pick(GROUPS))
            request = {"chat": chat, "from": user, "user_chat_id": user["id"], "date": NOW}
            return {kind: request | {"bio": self.words_of()}}
        if kind == "chat_boost":
            return {kind: {"chat": self.chat(CHANNEL), "boost": self.boost(user)}}
        if kind == "removed_chat_boost":
            source = {"source": "premium", "user": user}
            removed = {"chat": self.chat(CHANNEL), "boost_id": "b", "remove_date": NOW}
            return {kind: removed | {"source": source}}
        if kind == "stopped_message_generation":
            chat = self.chat(self.pick(PEOPLE))
            return {kind: {"chat": chat, "draft_id": self.pick((1, 2**31, 10**15))}}
        # A newer Bot API's update, of a type no aiogram here knows.
        return {"hologram_summons": {"id": "1", "from": user, "text": self.words_of()}}

    def chosen(self, user: dict[str, Any]) -> dict[str, Any]:
        """A result the user chose: of the bot's own ids, its message posted or never asked for.

        Telegram names one of the results the bot gave; ``inline_message_id`` only where the
        result had a keyboard (every answer of Veil's has its stop button).
        """
        result_id = self.pick(("help", self.rng.randbytes(12).hex()[:16]))
        found = {"result_id": result_id, "from": user, "query": self.pick(("", self.words_of()))}
        if self.rng.random() < 0.7:
            placed = f"AgAAA{self.rng.randrange(10**9)}"
            self.telegram.state.inline_messages[placed] = {"text": "…", "entities": []}
            found["inline_message_id"] = placed
        return found

    def guest_content(self) -> dict[str, Any]:
        """What a guest summons says: a text that names the bot, or media."""
        if self.rng.random() < 0.6:
            text = f"@{self.bot_name} " + self.words_of()
            return {"text": text, "entities": [{"type": "mention", "offset": 0, "length": 16}]}
        return self.media() | {"caption": f"@{self.bot_name}"}

    def reaction(self, kind: str) -> dict[str, Any]:
        """A reaction to a message, or their count."""
        chat = self.chat(self.pick((*PEOPLE, *GROUPS)))
        found: dict[str, Any] = {"chat": chat, "message_id": self.rng.randrange(1, 9), "date": NOW}
        emoji = {"type": "emoji", "emoji": "👍"}
        if kind == "message_reaction_count":
            return found | {"reactions": [{"type": emoji, "total_count": 2**31 - 1}]}
        return found | {"user": self.user(), "old_reaction": [], "new_reaction": [emoji]}

    def press(self, user: dict[str, Any]) -> dict[str, Any]:
        """A press: data of no button (or huge), an inaccessible or a deleted message, a game's."""
        query_id = self.telegram.state.new_callback_query(user["id"])
        data = self.pick(
            (
                "retry:999999",
                "continue:1:2:3",
                "model:" + "x" * 60,
                "buy:nope",
                "buy-plan",
                "gram:-1",
                "usdt:1e309",
                "forget:0",
                "forget:no",
                "forget:yes",
                "model:veil-test",
                "stop:abc",
                "group:1",
                "group-set:a:b:c",
                "inline-history:2",
                "conv:-5",
                "x" * 64,
                "",
                ":::",
                "retry",
            )
        )
        found: dict[str, Any] = {"id": query_id, "from": user, "chat_instance": "ci"}
        found["data"] = data
        where = self.rng.randrange(4)
        if where == 0:  # an inaccessible message: date 0, no more than its chat and id
            chat = self.chat(self.pick((*PEOPLE, *GROUPS)))
            found["message"] = {"chat": chat, "message_id": 999, "date": 0}
        elif where == 1:
            found["inline_message_id"] = f"AgAAA{self.rng.randrange(10**9)}"
        elif where == 2:  # a message of the bot's, deleted by the user after the press
            sent = self.telegram.state.send(self.chat(user["id"]), text="Some answer.")
            found["message"] = sent
            user_deletes(self.telegram, user["id"], sent["message_id"])
        else:  # a game's button
            found.pop("data")
            found["game_short_name"] = "game"
            found["message"] = self.telegram.state.send(self.chat(user["id"]), text="Game")
        self.presses.add(query_id)
        return found

    def checkout(self) -> dict[str, Any]:
        """A checkout of no order: an unknown payload, a wrong currency, a huge amount."""
        payload = self.pick(("unknown", "", "x" * 128, "pack-1"))
        amount = self.pick((1, 2**31 - 1, 10**15))
        query_id = self.telegram.payments.new_pre_checkout(PAYER, payload, amount)
        self.checkouts += 1
        return {
            "id": query_id,
            "from": self.user(PAYER),
            "currency": self.pick(("XTR", "USD", "")),
            "total_amount": amount,
            "invoice_payload": payload,
        }

    def member_change(self, kind: str, user: dict[str, Any]) -> dict[str, Any]:
        """Someone (the bot, for ``my_chat_member``) joined, left, was banned or promoted."""
        member = self.telegram.state.bot_user if kind == "my_chat_member" else self.user()
        old = {"status": "member", "user": member}
        new = self.pick(
            (
                {"status": "left", "user": member},
                {"status": "kicked", "user": member, "until_date": 0},
                {"status": "member", "user": member},
                {
                    "status": "restricted",
                    "user": member,
                    "is_member": True,
                    "can_send_messages": False,
                    "can_send_audios": False,
                    "can_send_documents": False,
                    "can_send_photos": False,
                    "can_send_videos": False,
                    "can_send_video_notes": False,
                    "can_send_voice_notes": False,
                    "can_send_polls": False,
                    "can_send_other_messages": False,
                    "can_add_web_page_previews": False,
                    "can_change_info": False,
                    "can_invite_users": False,
                    "can_pin_messages": False,
                    "can_manage_topics": False,
                    "can_react_to_messages": False,
                    "can_edit_tag": False,
                    "until_date": 0,
                },
            )
        )
        chat = self.chat(self.pick((*GROUPS, CHANNEL, self.pick(PEOPLE))))
        return {"chat": chat, "from": user, "date": NOW, "old_chat_member": old} | {
            "new_chat_member": new
        }

    def boost(self, user: dict[str, Any]) -> dict[str, Any]:
        """A boost of a channel."""
        source = self.pick(
            (
                {"source": "premium", "user": user},
                {"source": "giveaway", "giveaway_message_id": 1, "prize_star_count": 10**9},
            )
        )
        return {"boost_id": "b", "add_date": NOW, "expiration_date": 0, "source": source}


KINDS = (
    *("message",) * 14,
    "edited_message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "guest_message",
    "guest_message",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "callback_query",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "stopped_message_generation",
    "hologram_summons",
)


def known_texts(catalogs: Catalogs) -> Callable[[str], bool]:
    """Whether a text is the model's answer or one of the catalogs' (any language, filled in).

    An inline or guest answer begins with its question (``inline_header``): what follows it
    is judged.
    """
    patterns = [re.escape(ANSWER)]
    for language in catalogs.languages:
        for key in catalogs.keys(language) - {"inline_header"}:
            template = catalogs.lookup(language, key)
            parts = re.split(r"\{[a-z_]*\}", re.sub(r"<[^>]+>", "", template))
            patterns.append(".*?".join(re.escape(part.strip()) for part in parts))
    known = re.compile("|".join(f"(?:{p})" for p in patterns), re.DOTALL)

    def said(text: str) -> bool:
        if text.startswith("❓ "):
            text = text.partition("\n\n")[2]
        return known.fullmatch(re.sub(r"<[^>]+>", "", text).strip()) is not None

    return said


def what_it_said(stack: Stack) -> list[str]:
    """Every text the bot sent or edited in, refused a checkout with, or put in an inline result.

    Drafts are left out: they show the model's answer as it comes.
    """
    said = []
    for call in stack.telegram.calls:
        if call.method == "sendMessageDraft":
            continue
        params = call.params
        said += [params[k] for k in ("text", "caption", "error_message") if params.get(k)]
        for name in ("results", "result"):
            if isinstance(params.get(name), str):
                found = json.loads(params[name])
                for result in found if isinstance(found, list) else [found]:
                    content = result.get("input_message_content") or {}
                    said += [content[k] for k in ("message_text",) if content.get(k)]
    return [str(text) for text in said]


def unknown_said(stack: Stack) -> list[str]:
    """What the bot said that is neither the model's answer nor a text of its catalogs."""
    known = known_texts(stack.veil.catalogs)
    return [text for text in what_it_said(stack) if not known(text)]


def test_a_text_of_no_catalog_is_unknown() -> None:
    known = known_texts(Catalogs())
    texts = Catalogs().for_language("ru")
    assert known(texts("busy"))
    assert known(ANSWER)
    assert known(f"❓ {MARK}?\n\n{ANSWER}")
    assert not known("Traceback (most recent call last):")
    assert not known(f"❓ {MARK}?\n\nValueError: boom")
    assert not known("")


async def fed(stack: Stack, *, webhook: bool) -> Fuzz:
    """Send the bot ``UPDATES`` random updates: queued for its polls, or posted to its webhook."""
    fuzz = Fuzz(stack.telegram, random.Random(SEED + webhook))  # noqa: S311 -- a fixed seed, no secret
    for _ in range(UPDATES):
        update = fuzz.update()
        if webhook:
            update = {"update_id": fuzz.rng.randrange(1, 2**31)} | update
            assert await post(stack, update, {HEADER: WEBHOOK_SECRET}) == 200, update
        else:
            stack.telegram.updates.push(update)
    return fuzz


async def all_handled(stack: Stack) -> None:
    """Wait until Telegram has handed over every update and the bot has handled each."""
    in_flight: InFlight = stack.veil.dispatcher[IN_FLIGHT]
    async with asyncio.timeout(20):
        while stack.telegram.updates.pending or not await in_flight.wait_idle(1):  # noqa: ASYNC110 -- polls the fake's queue
            await asyncio.sleep(0.05)


async def still_answers(stack: Stack) -> None:
    """A plain question after it all is answered, and sent to its asker.

    Asked by someone new: a member of the fuzz may still have an answer in a group's queue
    (about 20 messages a minute there), and a question while one's answer runs is refused.
    """
    question = "And the capital of Italy?"
    stack.telegram.send_text(NEWCOMER, question)
    (answer,) = await stack.final_messages(NEWCOMER, 1, within=20)
    assert answer["text"] == ANSWER
    assert stack.telegram.sent_messages(NEWCOMER) == [answer]


async def every_press_answered(stack: Stack, presses: set[str]) -> None:
    """Wait (10 s at most) for an answer to every press: the last ones are on their way."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while presses - answered(stack):  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.05)


def answered(stack: Stack) -> set[str]:
    """The presses the bot answered."""
    return {c.params["callback_query_id"] for c in stack.telegram.calls_of("answerCallbackQuery")}


def bugs_logged(
    logs: Sequence[MutableMapping[str, Any]], records: list[logging.LogRecord]
) -> list[object]:
    """Log lines of a failure (a bug's traceback, an error), in structlog's and the stdlib's."""
    found: list[object] = [e for e in logs if e["log_level"] in {"error", "critical", "exception"}]
    found += [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    found += [e for e in logs if e.get("exc_info")]
    return found


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_every_kind_of_update_leaves_the_bot_answering_and_saying_only_its_texts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, *, webhook: bool
) -> None:
    caplog.set_level(logging.WARNING)
    with structlog.testing.capture_logs() as logs:  # to the bot's stop, answers drained
        # Groups paced at 10 a second, not 20 a minute: the group answers of the fuzz are done
        # in seconds, not minutes (the pace has tests of its own).
        async with running_stack(
            tmp_path, answer=ANSWER, webhook=webhook, group_messages_per_minute=600
        ) as stack:
            fuzz = await fed(stack, webhook=webhook)
            await all_handled(stack)
            await still_answers(stack)
            await every_press_answered(stack, fuzz.presses)
            balance = await stack.veil.credit.balance(PAYER)
    assert bugs_logged(logs, caplog.records) == []
    assert MARK not in json.dumps(logs, default=str) + caplog.text
    assert unknown_said(stack) == []
    assert len(what_it_said(stack)) > 20
    assert balance.units == 0
    checkouts = stack.telegram.calls_of("answerPreCheckoutQuery")
    assert len(checkouts) == fuzz.checkouts
    assert [c.params.get("ok") for c in checkouts] == [False] * fuzz.checkouts
    assert answered(stack) == fuzz.presses  # every button stops spinning
