"""Updates a user would cause: messages, button presses, inline queries, payments.

``UserActions`` plays the user's side. Each action registers the user and chat it involves in
the ``TelegramState``, builds a complete update that aiogram's types accept, hands it to the
``push`` it was given (the server's update queue) and returns its ``update_id`` (``pay`` returns
the charge id instead). Payments are recorded in ``StarsPayments``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from playground.payments import SUBSCRIPTION_PERIOD
from playground.text import bot_command_entities

if TYPE_CHECKING:
    from collections.abc import Callable

    from playground.payments import StarsPayments
    from playground.state import TelegramState

__all__ = ["UserActions"]

_ROUTING = frozenset({"chat_id", "chat_type", "language_code", "first_name"})


def _media(kind: str, serial: str) -> list[dict[str, Any]] | dict[str, Any]:
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
    ) -> None:
        self._state = state
        self._payments = payments
        self._push = push

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
            chat = self._state.register_chat(target, chat_type or default_type, user["first_name"])
        return user, chat

    def _user_message(self, user_id: int, routing: dict[str, Any], **content: object) -> int:
        user, chat = self._sender(user_id, **routing)
        return self._push({"message": self._state.store_message(chat, user, **content)})

    def send_text(  # noqa: PLR0913 - the fake's API mirrors a message's fields
        self,
        user_id: int,
        text: str,
        *,
        language_code: str = "en",
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Ann",
    ) -> int:
        """A text message from ``user_id``; commands get their ``bot_command`` entities."""
        routing = {"chat_id": chat_id, "chat_type": chat_type}
        routing |= {"first_name": first_name, "language_code": language_code}
        return self._user_message(user_id, routing, text=text, entities=bot_command_entities(text))

    def send_message_of(self, user_id: int, kind: str, **fields: object) -> int:
        """A photo, voice, sticker or document message from ``user_id``.

        ``chat_id``, ``chat_type``, ``first_name`` and ``language_code`` route it like
        ``send_text``; any other field (``caption``, or the media object itself) is set on the
        message.
        """
        routing = {key: value for key, value in fields.items() if key in _ROUTING}
        content = {key: value for key, value in fields.items() if key not in _ROUTING}
        return self._user_message(
            user_id, routing, **({kind: _media(kind, self._state.next_id())} | content)
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
        query_id = self._state.new_callback_query()
        query = {
            "id": query_id,
            "from": user,
            "chat_instance": f"ci{chat['id']}",
            "message": message or {"chat": chat, "message_id": message_id, "date": 0},
            "data": data,
        }
        return self._push({"callback_query": query})

    def press_inline_button(self, user_id: int, data: str, inline_message_id: str) -> int:
        """A callback_query from a button under the inline message ``inline_message_id``."""
        user, _chat = self._sender(user_id)
        query_id = self._state.new_callback_query()
        query = {"id": query_id, "from": user, "chat_instance": f"ci{inline_message_id}"}
        query |= {"inline_message_id": inline_message_id, "data": data}
        return self._push({"callback_query": query})

    def stop_generation(self, user_id: int, draft_id: int) -> int:
        """The user pressed the stop button under the draft ``draft_id``."""
        _user, chat = self._sender(user_id)
        return self._push({"stopped_message_generation": {"chat": chat, "draft_id": draft_id}})

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

    def choose_inline_result(
        self, user_id: int, result_id: str, query: str, *, inline_message_id: str
    ) -> int:
        """The user picked a result; the message it posts becomes ``inline_message_id``."""
        user, _chat = self._sender(user_id)
        answered = [
            result
            for asked in self._state.inline_queries.values()
            if asked.user_id == user_id and asked.query == query
            for result in asked.results
            if result["id"] == result_id
        ]
        chosen = answered[-1] if answered else {}
        self._state.inline_messages[inline_message_id] = {
            "text": chosen.get("text", ""),
            "entities": chosen.get("entities", []),
            "reply_markup": chosen.get("reply_markup"),
        }
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
        self._user_message(user_id, {}, successful_payment=payment)
        return charge_id

    def refunded(self, user_id: int, *, payload: str, total_amount: int, charge_id: str) -> int:
        """A refunded_payment message; marks the charge refunded if the bot had not."""
        self._payments.record_refund(charge_id)
        refund = {"currency": "XTR", "total_amount": total_amount, "invoice_payload": payload}
        refund["telegram_payment_charge_id"] = charge_id
        return self._user_message(user_id, {}, refunded_payment=refund)
