"""``python -m bot reconcile [--fix]``: compare our payments with Telegram's and the TON chain's.

With ``--fix`` it also books what Telegram lists but the ledger lacks: a payment (by its charge
id, so running it again credits nothing twice; a plan's with the end of the period it paid) and
a refund the ledger did not take back; a plan payment so found refunded has its subscription
cancelled, as the admin's /refund does. With
Gram payments on, the incoming transfers toncenter lists since the watcher began are compared
with the recorded ones too, and ``--fix`` books the missing ones (by transaction hash, once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramBadRequest
from aiogram.types import TransactionPartnerUser

from bot.telegram import build_bot
from bot.ton import reconcile_ton, ton_parts
from common.logs import describe
from models import MasterKey, Store
from services.shop import Shop, StarTransaction

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiogram import Bot

    from bot.settings import BotSettings
    from services.shop import Payment

log = structlog.get_logger("veil.stars")

PAGE = 100
# editUserStarSubscription's word for a charge id that names none of the user's subscriptions.
NOT_A_SUBSCRIPTION = "CHARGE_ID_INVALID"
# The only Star transactions with users that are Veil's: invoice payments and their refunds.
# Stars moved in from a business account, paid media, and gifts or Premium the bot bought are
# transactions with a user too, and none of them is a payment to book or a refund to take back.
INVOICE_PAYMENT = "invoice_payment"


async def star_transactions(bot: Bot) -> list[StarTransaction]:
    """Every user payment and refund Telegram lists for the bot, all pages."""
    found: list[StarTransaction] = []
    offset = 0
    while True:
        page = await bot.get_star_transactions(offset=offset, limit=PAGE)
        for tx in page.transactions:
            partner = tx.source or tx.receiver
            if not isinstance(partner, TransactionPartnerUser):
                continue  # withdrawals, ads, Fragment: not ours to reconcile
            if partner.transaction_type != INVOICE_PAYMENT:
                continue
            period = partner.subscription_period
            found.append(
                StarTransaction(
                    id=tx.id,
                    amount=tx.amount,
                    is_refund=tx.receiver is not None,
                    user_id=partner.user.id,
                    payload=partner.invoice_payload,
                    subscription=period is not None,
                    # The live update's subscription_expiration_date, as near as the list
                    # tells it: the period runs from the charge.
                    subscription_expires_at=None
                    if period is None
                    else int(tx.date.timestamp()) + period,
                )
            )
        if len(page.transactions) < PAGE:
            return found
        offset += PAGE


async def reconcile(
    settings: BotSettings, *, fix: bool = False
) -> tuple[int, list[str], list[str]]:
    """(transactions Telegram listed, the differences, the fixes made) as lines.

    With ``fix`` the differences are those left after fixing.
    """
    store = await Store.open(
        settings.database_path,
        MasterKey.for_reading(settings.master_key_path),
        busy_timeout=settings.db_busy_timeout,
    )
    bot = build_bot(settings.bot_token.get_secret_value(), str(settings.telegram_api))
    try:
        transactions = await star_transactions(bot)
        shop = Shop(store, settings.packs, settings.plan)
        fixed: list[str] = []
        uncanceled: list[str] = []
        if fix:
            before = _refunded_plans(await shop.payments())
            fixed = await shop.fix(transactions)
            canceled, uncanceled = await _cancel_refunded_plans(bot, shop, before)
            fixed += canceled
        count, differences = len(transactions), await shop.reconcile(transactions)
        differences += uncanceled
        async with ton_parts(settings, store) as ton:
            if ton is not None:
                on_chain, ton_differences, ton_fixed = await reconcile_ton(ton, fix=fix)
                count += on_chain
                differences += ton_differences
                fixed += ton_fixed
        return count, differences, fixed
    finally:
        await bot.session.close()
        await store.close()


def _refunded_plans(payments: Sequence[Payment]) -> dict[tuple[int, str], Payment]:
    """A refunded subscription payment of each (user, plan order) that has one."""
    return {(p.user_id, p.order_id): p for p in payments if p.is_recurring and p.refunded}


async def _cancel_refunded_plans(
    bot: Bot, shop: Shop, before: dict[tuple[int, str], Payment]
) -> tuple[list[str], list[str]]:
    """Cancel the subscriptions whose payment ``fix`` found refunded; (done, failed) lines.

    A refund Telegram made without the bot hearing of it (or a plan payment booked now whose
    refund came first) left its subscription charging every 30 days, while the renewal grace
    counted it cancelled. A subscription with a payment refunded before this run was cancelled
    then (or its failure logged and told): it is not asked again. One Telegram refuses now is a
    difference for a person: the admin's ``/refund`` of that payment cancels it.
    """
    done: list[str] = []
    failed: list[str] = []
    after = _refunded_plans(await shop.payments())
    for key in sorted(after.keys() - before.keys()):
        payment = after[key]
        user = payment.user_id
        named, refused = await _cancel(bot, user, await shop.subscription_charges(payment))
        if named is None:
            continue
        if refused is None:
            done.append(
                f"cancelled subscription {named} of user {user}:"
                f" its plan payment {payment.charge_id} was refunded"
            )
        else:
            failed.append(
                f"subscription {named} of user {user} not cancelled ({refused}):"
                f" send /refund {payment.charge_id} to cancel it"
            )
    return done, failed


async def _cancel(bot: Bot, user_id: int, charges: Sequence[str]) -> tuple[str | None, str | None]:
    """Cancel the subscription one of ``charges`` names; (the charge, why it failed or None).

    As the admin's /refund does (``handlers.shop.cancel_subscription``, which ``bot`` may not
    import): the charges in turn while Telegram says one names no subscription
    (``CHARGE_ID_INVALID``), a failure logged (``stars.plan_not_canceled``), never raised.
    (None, None) for no charges.
    """
    for number, charge in enumerate(charges, 1):
        try:
            await bot.edit_user_star_subscription(
                user_id=user_id, telegram_payment_charge_id=charge, is_canceled=True
            )
        except (TelegramAPIError, ClientDecodeError) as exc:  # 5xx, flood waits, unreachable
            invalid = exc.message.rpartition(": ")[2].strip() == NOT_A_SUBSCRIPTION
            if isinstance(exc, TelegramBadRequest) and invalid and number < len(charges):
                continue  # not the charge that names it (a first payment booked late): the next
            log.warning("stars.plan_not_canceled", charge_id=charge, error=describe(exc))
            return charge, exc.message if isinstance(exc, TelegramAPIError) else type(exc).__name__
        log.info("stars.plan_canceled", charge_id=charge)
        return charge, None
    return None, None
