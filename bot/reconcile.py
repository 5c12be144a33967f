"""``python -m bot reconcile [--fix]``: compare our payments with Telegram's and the TON chain's.

With ``--fix`` it also books what Telegram lists but the ledger lacks: a payment (by its charge
id, so running it again credits nothing twice) and a refund the ledger did not take back. With
Gram payments on, the incoming transfers toncenter lists since the watcher began are compared
with the recorded ones too, and ``--fix`` books the missing ones (by transaction hash, once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.types import TransactionPartnerUser

from bot.telegram import build_bot
from bot.ton import reconcile_ton, ton_parts
from models import MasterKey, Store
from services.shop import Shop, StarTransaction

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.settings import BotSettings

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
            found.append(
                StarTransaction(
                    id=tx.id,
                    amount=tx.amount,
                    is_refund=tx.receiver is not None,
                    user_id=partner.user.id,
                    payload=partner.invoice_payload,
                    subscription=partner.subscription_period is not None,
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
        fixed = await shop.fix(transactions) if fix else []
        count, differences = len(transactions), await shop.reconcile(transactions)
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
