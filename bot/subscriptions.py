"""Telegram's side of cancelling a refunded plan's subscription (``services.shop_cancel``).

``cancel_subscription`` is the one ``editUserStarSubscription(is_canceled=True)`` the bot
makes: the wiring (``bot.app``) hands it to the handlers' and upkeep's ``PlanCancels``, and
``reconcile --fix`` to its own. It reads Telegram's answer once, for all of them: which
refusal names no subscription, which may pass if asked later, which is for good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from services.shop_cancel import Refusal

if TYPE_CHECKING:
    from aiogram import Bot

# editUserStarSubscription's word for a charge id that names none of the user's subscriptions.
NOT_A_SUBSCRIPTION = "CHARGE_ID_INVALID"
# Answers that say nothing of the call: it may pass when made again (the next upkeep pass).
LATER = (TelegramNetworkError, TelegramRetryAfter, TelegramServerError)


async def cancel_subscription(bot: Bot, user_id: int, charge_id: str) -> Refusal | None:
    """Cancel ``user_id``'s subscription named by ``charge_id``; None once Telegram did.

    Sent again for a subscription cancelled already it changes nothing. The error name is
    compared whole (``Bad Request: CHARGE_ID_INVALID``), never searched for in the text. A
    reply that is not the Bot API's (``ClientDecodeError``: a proxy's page) may hide a call
    that went through: asked again later, it changes nothing then either.
    """
    try:
        await bot.edit_user_star_subscription(
            user_id=user_id, telegram_payment_charge_id=charge_id, is_canceled=True
        )
    except TelegramBadRequest as exc:
        named = exc.message.rpartition(": ")[2].strip()
        return Refusal(exc.message, unnamed=named == NOT_A_SUBSCRIPTION)
    except LATER as exc:
        return Refusal(exc.message, later=True)
    except ClientDecodeError as exc:
        return Refusal(type(exc).__name__, later=True)
    except TelegramAPIError as exc:  # forbidden, unauthorized, not found: for good
        return Refusal(exc.message)
    return None
