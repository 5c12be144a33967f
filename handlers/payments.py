"""Stars payments: pre-checkout, successful and refunded payments, and the admin's tools."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject

from bot.payments import entry_from_message
from handlers.ton import stats_text
from services.billing import format_units

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import Message, PreCheckoutQuery

    from bot.payments import PaymentDesk
    from bot.settings import BotSettings
    from bot.texts import Texts
    from models import Store
    from services.billing import Billing
    from services.stars import StarsShop
    from services.ton.books import TonBooks


async def on_pre_checkout(query: PreCheckoutQuery, texts: Texts, shop: StarsShop) -> None:
    """Answer within Telegram's 10 s: ok only for this user's unexpired, unpaid order."""
    reason = await shop.check_pre_checkout(
        query.from_user.id, query.invoice_payload, query.currency, query.total_amount
    )
    if reason is None:
        await query.answer(ok=True)
    else:
        await query.answer(ok=False, error_message=texts(f"precheckout_{reason}"))


async def on_successful_payment(message: Message, desk: PaymentDesk) -> None:
    """Credit exactly once (the desk journals, books, retries); thank the user once."""
    entry = entry_from_message(message)
    if entry is not None:
        await desk.take(entry)


async def on_refunded_payment(message: Message, desk: PaymentDesk) -> None:
    """Telegram refunded a payment: take its credit back (once) and say so."""
    entry = entry_from_message(message)
    if entry is not None:
        await desk.take(entry)


async def cmd_refund(
    message: Message, command: CommandObject, bot: Bot, texts: Texts, shop: StarsShop
) -> None:
    """Admins: refund a charge with refundStarPayment and take its credit back."""
    charge_id = (command.args or "").strip()
    if not charge_id:
        await message.answer(texts("refund_usage"))
        return
    payment = await shop.payment(charge_id)
    if payment is None:
        await message.answer(texts("refund_not_found"))
        return
    try:
        await bot.refund_star_payment(user_id=payment.user_id, telegram_payment_charge_id=charge_id)
    except TelegramBadRequest as exc:
        if "CHARGE_ALREADY_REFUNDED" in exc.message:
            await shop.record_refund(payment.user_id, charge_id)
            await message.answer(texts("refund_already"))
        elif "CHARGE_NOT_FOUND" in exc.message:
            await message.answer(texts("refund_not_found"))
        else:
            await message.answer(texts("refund_failed", reason=exc.message))
        return
    newly = await shop.record_refund(payment.user_id, charge_id)
    await message.answer(
        texts(
            "refund_done",
            stars=payment.stars,
            user=payment.user_id,
            credit=format_units(payment.units if newly else 0),
        )
    )


async def cmd_stats(
    message: Message,
    texts: Texts,
    billing: Billing,
    store: Store,
    ton_books: TonBooks | None = None,
) -> None:
    """Admins: users, activity, tokens, Stars received and refunded (and Gram and USDT)."""
    stats = await billing.stats()
    ton = "" if ton_books is None else "\n" + await stats_text(ton_books, texts)
    await message.answer(
        texts(
            "stats",
            users=max(stats.users, await store.user_count()),
            active=stats.active_today,
            tokens=stats.tokens_today,
            stars=stats.stars_received,
            refunds=stats.refunds,
            stars_refunded=stats.stars_refunded,
            flagged=stats.flagged,
        )
        + ton
    )


async def cmd_paysupport(message: Message, texts: Texts, settings: BotSettings) -> None:
    """Required by Telegram for bots that sell in Stars."""
    await message.answer(settings.paysupport_text or texts("paysupport"))


async def cmd_terms(message: Message, texts: Texts, settings: BotSettings) -> None:
    """The terms of service."""
    await message.answer(settings.terms_text or texts("terms"))


def build_router(admins: frozenset[int] = frozenset()) -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.pre_checkout_query.register(on_pre_checkout)
    router.message.register(on_successful_payment, F.successful_payment)
    router.message.register(on_refunded_payment, F.refunded_payment)
    router.message.register(cmd_paysupport, Command("paysupport"))
    router.message.register(cmd_terms, Command("terms"))
    is_admin = F.from_user.id.in_(admins)
    router.message.register(cmd_refund, Command("refund"), is_admin)
    router.message.register(cmd_stats, Command("stats"), is_admin)
    return router
