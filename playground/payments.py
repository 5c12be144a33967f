"""Telegram Stars on the fake: invoices, pre-checkout answers, refunds and the transaction list.

Checks follow the Bot API's documented limits (title 1-32 characters, description 1-255, payload
1-128 bytes, one price and no provider token for XTR, subscriptions of exactly 30 days and at
most 10000 Stars on invoice links only). Where Telegram's exact description is known it is used
(``CHARGE_ALREADY_REFUNDED``, ``CHARGE_NOT_FOUND``, ``STARS_INVOICE_INVALID``...); the wording of
the length errors is the fake's own. ``StarsPayments`` owns the invoices, charges and the Star
transaction list; it reaches chats and messages through the ``TelegramState`` it is given.

A recurring payment of a payload the user has no subscription for opens one
(``StarSubscription``), named by its charge id; another of the same payload is its renewal.
``editUserStarSubscription(user_id, telegram_payment_charge_id, is_canceled)`` answers True, as
the Bot API does, for the user's subscription named by its first payment's charge id; any other
id is ``400 Bad Request: CHARGE_ID_INVALID`` (Telegram's error of
``payments.botCancelStarsSubscription``), and a missing ``is_canceled`` is refused.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from playground.state import QUERY_TOO_OLD, Method
from playground.wire import bad_request, check_reply_markup

if TYPE_CHECKING:
    from playground.state import TelegramState

__all__ = ["Charge", "PreCheckout", "StarSubscription", "StarsPayments"]

SUBSCRIPTION_PERIOD = 2592000
MAX_SUBSCRIPTION_STARS = 10000
MAX_TITLE = 32
MAX_DESCRIPTION = 255
MAX_PAYLOAD = 128
MAX_TRANSACTIONS = 100


@dataclass
class Charge:
    """A successful payment the fake delivered, and whether it was refunded since."""

    user_id: int
    payload: str
    amount: int
    currency: str
    refunded: bool = False


@dataclass
class StarSubscription:
    """A user's Stars subscription to the bot, named by its first payment's charge id.

    ``renewals`` are the charge ids of its later payments; ``canceled`` is set by the bot's
    ``editUserStarSubscription(is_canceled=True)`` (Telegram charges no further period then).
    """

    user_id: int
    payload: str
    renewals: list[str]
    canceled: bool = False


@dataclass
class PreCheckout:
    """A pre-checkout query the fake sent, and the bot's answer."""

    user_id: int
    payload: str
    amount: int
    answered: bool = False
    ok: bool | None = None


def _prices(prices: object) -> list[dict[str, Any]]:
    if not isinstance(prices, list) or not prices:
        raise bad_request("can't parse prices JSON object")
    for price in prices:
        if not isinstance(price, dict) or not isinstance(price.get("amount"), int):
            raise bad_request("can't parse prices JSON object")
        if not price.get("label"):
            raise bad_request("can't parse prices JSON object: Can't find field \"label\"")
    return prices


def _subscription(p: dict[str, Any], currency: str, total: int, *, link: bool) -> int:
    if not link:
        raise bad_request("subscription_period is supported only by createInvoiceLink")
    if p["subscription_period"] != SUBSCRIPTION_PERIOD or currency != "XTR":
        raise bad_request("SUBSCRIPTION_PERIOD_INVALID")
    if total > MAX_SUBSCRIPTION_STARS:
        raise bad_request("STARS_INVOICE_INVALID")
    return SUBSCRIPTION_PERIOD


class StarsPayments:
    """Invoices and Telegram Stars: what was offered, paid and refunded, and the methods on it."""

    def __init__(self, state: TelegramState) -> None:
        self._state = state
        self.invoice_links: dict[str, dict[str, Any]] = {}
        self.invoices: dict[tuple[int, int], dict[str, Any]] = {}
        self.pre_checkouts: dict[str, PreCheckout] = {}
        self.charges: dict[str, Charge] = {}
        self.subscriptions: dict[str, StarSubscription] = {}  # by first charge id
        self._subscribed: dict[tuple[int, str], str] = {}  # (user, payload): first charge id
        self._transactions: list[dict[str, Any]] = []

    def methods(self) -> dict[str, Method]:
        """The payment methods, by their canonical names."""
        return {
            "sendInvoice": self._send_invoice,
            "createInvoiceLink": self._create_invoice_link,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "refundStarPayment": self._refund_star_payment,
            "editUserStarSubscription": self._edit_user_star_subscription,
            "getStarTransactions": self._get_star_transactions,
        }

    # Records the update builders write.

    def new_pre_checkout(self, user_id: int, payload: str, amount: int) -> str:
        """Open a pre-checkout query the bot must answer once; return its id."""
        query_id = self._state.next_id()
        self.pre_checkouts[query_id] = PreCheckout(user_id, payload, amount)
        return query_id

    def record_payment(self, user: dict[str, Any], charge_id: str, invoice: dict[str, Any]) -> None:
        """Remember a charge and its incoming transaction, once per charge id."""
        if charge_id in self.charges:
            return
        self.charges[charge_id] = Charge(
            user["id"], invoice["invoice_payload"], invoice["total_amount"], invoice["currency"]
        )
        source: dict[str, Any] = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": user,
            "invoice_payload": invoice["invoice_payload"],
        }
        if invoice.get("is_recurring"):
            source["subscription_period"] = SUBSCRIPTION_PERIOD
            first = self._subscribed.setdefault((user["id"], invoice["invoice_payload"]), charge_id)
            subscription = self.subscriptions.setdefault(
                first, StarSubscription(user["id"], invoice["invoice_payload"], [])
            )
            if charge_id != first:
                subscription.renewals.append(charge_id)
        self._transactions.append(
            {
                "id": charge_id,
                "amount": invoice["total_amount"],
                "date": int(time.time()),
                "source": source,
            }
        )

    def record_refund(self, charge_id: str) -> None:
        """Mark a charge refunded and add the outgoing transaction, once."""
        charge = self.charges.get(charge_id)
        if charge is None or charge.refunded:
            return
        charge.refunded = True
        user = self._state.users.get(charge.user_id, {"id": charge.user_id, "is_bot": False})
        receiver = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": user | {"first_name": user.get("first_name", "User")},
            "invoice_payload": charge.payload,
        }
        self._transactions.append(
            {
                "id": charge_id,
                "amount": charge.amount,
                "date": int(time.time()),
                "receiver": receiver,
            }
        )

    def record_transfer(
        self, user: dict[str, Any], amount: int, transaction_type: str, *, outgoing: bool
    ) -> str:
        """A Star transaction with a user that is no invoice payment; returns its id.

        ``transaction_type`` is Telegram's: ``business_account_transfer`` (Stars moved in from a
        business account the bot manages), ``paid_media_payment``, or, ``outgoing``,
        ``gift_purchase`` and ``premium_purchase`` (the bot spent Stars on the user).
        """
        tx_id = f"tx{self._state.next_id()}"
        partner = {"type": "user", "transaction_type": transaction_type, "user": user}
        side = "receiver" if outgoing else "source"
        self._transactions.append(
            {"id": tx_id, "amount": amount, "date": int(time.time()), side: partner}
        )
        return tx_id

    # Methods.

    def _invoice(self, p: dict[str, Any], *, link: bool) -> dict[str, Any]:
        """Check an invoice as sendInvoice/createInvoiceLink would; return its fields."""
        title, description = str(p.get("title", "")), str(p.get("description", ""))
        payload, currency = str(p.get("payload", "")), str(p.get("currency", ""))
        if not 1 <= len(title) <= MAX_TITLE:
            raise bad_request(f"invoice title must be 1-{MAX_TITLE} characters long")
        if not 1 <= len(description) <= MAX_DESCRIPTION:
            raise bad_request(f"invoice description must be 1-{MAX_DESCRIPTION} characters long")
        if not 1 <= len(payload.encode()) <= MAX_PAYLOAD:
            raise bad_request("INVOICE_PAYLOAD_INVALID")
        if not currency:
            raise bad_request('parameter "currency" is required')
        prices = _prices(p.get("prices"))
        total = sum(price["amount"] for price in prices)
        if total <= 0:
            raise bad_request("total price must be positive")
        if currency == "XTR" and (len(prices) != 1 or p.get("provider_token")):
            raise bad_request("STARS_INVOICE_INVALID")
        if currency != "XTR" and not p.get("provider_token"):
            raise bad_request("PAYMENT_PROVIDER_INVALID")
        invoice: dict[str, Any] = {"title": title, "description": description}
        invoice |= {"payload": payload, "currency": currency, "total_amount": total}
        if "subscription_period" in p:
            invoice["subscription_period"] = _subscription(p, currency, total, link=link)
        return invoice

    def _send_invoice(self, p: dict[str, Any]) -> dict[str, Any]:
        invoice = self._invoice(p, link=False)
        chat = self._state.chat(p)
        markup = check_reply_markup(p.get("reply_markup"), inline_only=True)
        shown = {key: invoice[key] for key in ("title", "description", "currency", "total_amount")}
        shown["start_parameter"] = str(p.get("start_parameter", ""))
        self._state.spend(chat, "sendInvoice")
        message = self._state.send(chat, invoice=shown, reply_markup=markup)
        self.invoices[chat["id"], message["message_id"]] = invoice
        return message

    def _create_invoice_link(self, p: dict[str, Any]) -> str:
        invoice = self._invoice(p, link=True)
        url = f"https://t.me/$FakeInvoice{self._state.next_id()}"
        self.invoice_links[url] = invoice
        return url

    def _answer_pre_checkout_query(self, p: dict[str, Any]) -> bool:
        query = self.pre_checkouts.get(str(p.get("pre_checkout_query_id", "")))
        if query is None:
            raise bad_request("QUERY_ID_INVALID")
        ok = p.get("ok")
        if not isinstance(ok, bool):
            raise bad_request('parameter "ok" is required')
        if not ok and not p.get("error_message"):
            raise bad_request('parameter "error_message" is required')
        if query.answered:
            raise bad_request(QUERY_TOO_OLD)
        query.answered, query.ok = True, ok
        return True

    def _refund_star_payment(self, p: dict[str, Any]) -> bool:
        charge_id = str(p.get("telegram_payment_charge_id", ""))
        charge = self.charges.get(charge_id)
        if charge is None or charge.user_id != p.get("user_id"):
            raise bad_request("CHARGE_NOT_FOUND")
        if charge.refunded:
            raise bad_request("CHARGE_ALREADY_REFUNDED")
        self.record_refund(charge_id)
        return True

    def _edit_user_star_subscription(self, p: dict[str, Any]) -> bool:
        # Form-encoded as "true"/"false" (the wire decodes only the fields it knows).
        canceled = {"true": True, "false": False}.get(str(p.get("is_canceled")).lower())
        if canceled is None:
            raise bad_request('parameter "is_canceled" is required')
        subscription = self.subscriptions.get(str(p.get("telegram_payment_charge_id", "")))
        if subscription is None or subscription.user_id != p.get("user_id"):
            raise bad_request("CHARGE_ID_INVALID")
        subscription.canceled = canceled
        return True

    def _get_star_transactions(self, p: dict[str, Any]) -> dict[str, Any]:
        offset, limit = p.get("offset", 0), p.get("limit", MAX_TRANSACTIONS)
        if not isinstance(offset, int) or offset < 0:
            raise bad_request("OFFSET_INVALID")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_TRANSACTIONS:
            raise bad_request("LIMIT_INVALID")
        return {"transactions": copy.deepcopy(self._transactions[offset : offset + limit])}
