"""``python -m bot reconcile [--fix]``: compare our payments with Telegram's and the TON chain's.

With ``--fix`` it also books what Telegram lists but the ledger lacks: a payment (by its charge
id, so running it again credits nothing twice; a plan's with the end of the period it paid) and
a refund the ledger did not take back; a refunded plan's subscription whose cancellation is
owed (one so found refunded, or one the bot has not sent yet) is cancelled, as the admin's
/refund does (``services.shop_cancel``). Without it, the refunded plans whose cancellation is
owed or failed are differences: their subscriptions may still charge. With
Gram payments on, the incoming transfers toncenter lists since the watcher began are compared
with the recorded ones too, and ``--fix`` books the missing ones (by transaction hash, once).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from aiogram.types import TransactionPartnerUser

from bot.subscriptions import cancel_subscription
from bot.telegram import build_bot
from bot.ton import reconcile_ton, ton_parts
from models import MasterKey, Store
from services.shop import Shop, StarTransaction
from services.shop_cancel import PlanCancels

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiogram import Bot

    from bot.settings import BotSettings
    from services.shop_cancel import PlanCancel

PAGE = 100
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
        cancels = PlanCancels(store, functools.partial(cancel_subscription, bot))
        fixed: list[str] = []
        if fix:
            # A refund booked now owes its subscription's cancellation (in its transaction),
            # as one the bot's pass has not sent yet does: all are asked here.
            fixed = await shop.fix(transactions)
            fixed += _canceled_lines(await cancels.send())
        count, differences = len(transactions), await shop.reconcile(transactions)
        differences += _cancel_lines(await cancels.unsettled())
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


def _cancel_lines(cancels: Sequence[PlanCancel]) -> list[str]:
    """One line for each refunded plan whose subscription may still charge, and what to do.

    Failed: Telegram refused (its words), and the admin's ``/refund`` of that payment asks
    again. Owed: not asked yet, or Telegram could not take it then; the bot's next upkeep
    pass (or ``--fix``) asks.
    """
    lines: list[str] = []
    for cancel in cancels:
        who = f"user {cancel.user_id}"
        if cancel.state == "failed":
            lines.append(
                f"subscription {cancel.named} of {who} not cancelled ({cancel.reason}):"
                f" send /refund {cancel.charge_id} to cancel it"
            )
        else:
            why = f" ({cancel.reason})" if cancel.reason else ""
            lines.append(
                f"subscription of {who} not cancelled yet{why}: its plan payment"
                f" {cancel.charge_id} was refunded; the running bot or reconcile --fix cancels it"
            )
    return lines


def _canceled_lines(cancels: Sequence[PlanCancel]) -> list[str]:
    """The fixes: each subscription ``--fix`` cancelled, with the refunded payment that owed it."""
    return [
        f"cancelled subscription {cancel.named} of user {cancel.user_id}:"
        f" its plan payment {cancel.charge_id} was refunded"
        for cancel in cancels
        if cancel.state == "done"
    ]
