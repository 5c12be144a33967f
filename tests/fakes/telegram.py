"""The fake Telegram Bot API server the tests use: the playground's emulator, with additions.

The emulator lives in the dev-only package ``playground`` (never in the product wheel), which the
local playground serves to a browser and the benchmarks use too; tests import it from here. The
docstring of ``playground.botapi`` describes its API and its parts. ``FakeTelegram`` here adds
what the tests need before the emulator has it: ``editUserStarSubscription``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playground.botapi import Call
from playground.botapi import FakeTelegram as _Emulator
from playground.delivery import CONFLICT_POLLER, CONFLICT_WEBHOOK
from playground.wire import bad_request

__all__ = ["CONFLICT_POLLER", "CONFLICT_WEBHOOK", "Call", "FakeTelegram", "StarSubscription"]


def user_deletes(fake: _Emulator, chat_id: int, message_id: int) -> None:
    """The user deletes their message ``message_id`` in ``chat_id``: gone, the bot told nothing.

    As Telegram does it for a private chat (no update); a reply to it then needs
    ``allow_sending_without_reply``. The emulator has no user action for it.
    """
    del fake.state._messages[chat_id, message_id]


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


class FakeTelegram(_Emulator):
    """The emulator, plus ``editUserStarSubscription`` over the subscriptions ``pay`` opens.

    A recurring payment (``pay(..., is_recurring=True)``) of a payload the user has no
    subscription for opens one, named by its charge id; another of the same payload is its
    renewal. ``editUserStarSubscription(user_id, telegram_payment_charge_id, is_canceled)``
    answers True, as the Bot API does, for the user's subscription named by its first
    payment's charge id; any other id is ``400 Bad Request: CHARGE_ID_INVALID`` (Telegram's
    error of ``payments.botCancelStarsSubscription``), and a missing ``is_canceled`` is refused.
    """

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- the emulator's keywords
        super().__init__(**kwargs)
        self.subscriptions: dict[str, StarSubscription] = {}
        self._open: dict[tuple[int, str], str] = {}  # (user, payload): first charge id
        self._pay = self.pay
        self.pay = self._pay_subscribing
        self._methods["editUserStarSubscription"] = self._edit_user_star_subscription
        self._canonical["edituserstarsubscription"] = "editUserStarSubscription"

    def _pay_subscribing(  # noqa: PLR0913 -- the emulator's ``pay``, keyword for keyword
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
        charge = self._pay(
            user_id,
            payload=payload,
            total_amount=total_amount,
            currency=currency,
            charge_id=charge_id,
            is_recurring=is_recurring,
            subscription_expiration_date=subscription_expiration_date,
        )
        if is_recurring:
            first = self._open.setdefault((user_id, payload), charge)
            subscription = self.subscriptions.setdefault(
                first, StarSubscription(user_id, payload, [])
            )
            if charge != first and charge not in subscription.renewals:
                subscription.renewals.append(charge)
        return charge

    def _edit_user_star_subscription(self, p: dict[str, Any]) -> bool:
        # Form-encoded as "true"/"false" (the emulator decodes only the fields it knows).
        canceled = {"true": True, "false": False}.get(str(p.get("is_canceled")).lower())
        if canceled is None:
            raise bad_request('parameter "is_canceled" is required')
        subscription = self.subscriptions.get(str(p.get("telegram_payment_charge_id", "")))
        if subscription is None or subscription.user_id != p.get("user_id"):
            raise bad_request("CHARGE_ID_INVALID")
        subscription.canceled = canceled
        return True
