"""``python -m bot reconcile``: compare our payments with Telegram's Star transactions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.types import TransactionPartnerUser

from bot.telegram import build_bot
from models import MasterKey, Store
from models.ledger import StarTx
from services.stars import StarsShop

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.settings import BotSettings

PAGE = 100


async def star_transactions(bot: Bot) -> list[StarTx]:
    """Every user payment and refund Telegram lists for the bot, all pages."""
    found: list[StarTx] = []
    offset = 0
    while True:
        page = await bot.get_star_transactions(offset=offset, limit=PAGE)
        for tx in page.transactions:
            partner = tx.source or tx.receiver
            if not isinstance(partner, TransactionPartnerUser):
                continue  # withdrawals, ads, Fragment: not ours to reconcile
            found.append(
                StarTx(
                    id=tx.id,
                    amount=tx.amount,
                    is_refund=tx.receiver is not None,
                    user_id=partner.user.id,
                )
            )
        if len(page.transactions) < PAGE:
            return found
        offset += PAGE


async def reconcile(settings: BotSettings) -> tuple[int, list[str]]:
    """(transactions Telegram listed, the differences from our ledger as lines)."""
    store = await Store.open(
        settings.database_path, MasterKey.load_or_create(settings.master_key_path)
    )
    bot = build_bot(settings.bot_token.get_secret_value(), str(settings.telegram_api))
    try:
        transactions = await star_transactions(bot)
        shop = StarsShop(store, settings.packs, settings.plan)
        return len(transactions), await shop.reconcile(transactions)
    finally:
        await bot.session.close()
        await store.close()
