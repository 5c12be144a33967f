"""Paying in Gram and USDT on TON: pack buttons, the invoice with its QR code, admin tools.

The invoice is one message with the address, amount, comment and expiry to copy, the
``ton://`` link in the text (Telegram refuses ``ton://`` on a URL button, and Telegram Desktop
does not open it) and a Tonkeeper ``https://`` link as its button; then the QR code of the
``ton://`` link as a photo. The watcher (``services.ton.watcher``) credits the payment and
tells the user through ``TonNotifier``.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import TYPE_CHECKING

import structlog
from aiogram import F, Router
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from services.billing import format_units
from services.errors import LedgerUnavailable, OrderRejected
from services.ton.errors import PaymentNotAssignable
from services.ton.shop import format_amount

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import CallbackQuery, Message

    from bot.texts import Catalogs, Texts
    from models.ton import Asset
    from services.ton.books import TonBooking, TonBooks
    from services.ton.shop import Invoice, TonShop

log = structlog.get_logger("veil.ton")

UNMATCHED_SHOWN = 10


class BuyGram(CallbackData, prefix="gram"):
    """The button of a Gram pack; ``pack_id`` is its id (the price in nanotons)."""

    pack_id: str


class BuyUsdt(CallbackData, prefix="usdt"):
    """The button of a USDT pack; ``pack_id`` is its id (the price in µUSDT)."""

    pack_id: str


def ton_rows(ton: TonShop | None, texts: Texts) -> list[list[InlineKeyboardButton]]:
    """The /buy keyboard's Gram and USDT rows (none when TON payments are off)."""
    if ton is None:
        return []
    rows: list[list[InlineKeyboardButton]] = []
    for asset in ton.assets:
        for pack in ton.packs(asset):
            data = BuyGram(pack_id=pack.id) if asset == "gram" else BuyUsdt(pack_id=pack.id)
            text = texts(
                f"ton_buy_{asset}",
                amount=format_amount(asset, pack.amount),
                credit=format_units(pack.units),
            )
            rows.append([InlineKeyboardButton(text=text, callback_data=data.pack())])
    return rows


def _utc(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def invoice_text(invoice: Invoice, texts: Texts) -> str:
    """The invoice as HTML: every value in ``<code>``, so a tap copies it."""
    order = invoice.order
    number, _, symbol = invoice.amount_text.partition(" ")
    text = texts(
        "ton_invoice",
        amount=html.escape(invoice.amount_text),
        credit=format_units(order.units),
        address=html.escape(invoice.address),
        number=html.escape(number),
        symbol=html.escape(symbol),
        comment=html.escape(order.id),
        expires=_utc(order.expires_at),
        link=html.escape(invoice.ton_link),
    )
    if order.asset == "usdt":
        text += "\n\n" + texts("ton_invoice_usdt")
    return text


async def on_buy_gram(
    query: CallbackQuery, callback_data: BuyGram, bot: Bot, texts: Texts, ton: TonShop | None = None
) -> None:
    """Make a Gram order and send its invoice and QR code."""
    await _send_invoice(query, bot, texts, ton, asset="gram", pack_id=callback_data.pack_id)


async def on_buy_usdt(
    query: CallbackQuery, callback_data: BuyUsdt, bot: Bot, texts: Texts, ton: TonShop | None = None
) -> None:
    """Make a USDT order and send its invoice and QR code."""
    await _send_invoice(query, bot, texts, ton, asset="usdt", pack_id=callback_data.pack_id)


async def _send_invoice(  # noqa: PLR0913 -- the handler's injected parts and the choice
    query: CallbackQuery,
    bot: Bot,
    texts: Texts,
    ton: TonShop | None,
    *,
    asset: Asset,
    pack_id: str,
) -> None:
    if ton is None:
        await query.answer(texts("ton_unknown_pack"), show_alert=True)
        return
    user = query.from_user
    try:
        invoice = await ton.create_order(user.id, asset, pack_id, user.language_code)
    except OrderRejected:
        await query.answer(texts("ton_unknown_pack"), show_alert=True)
        return
    except LedgerUnavailable:
        log.warning("ton.order_failed", user_id=user.id)
        await query.answer(texts("ton_unavailable"), show_alert=True)
        return
    await query.answer()
    button = InlineKeyboardButton(text=texts("ton_open_tonkeeper"), url=invoice.tonkeeper_link)
    await bot.send_message(
        user.id,
        invoice_text(invoice, texts),
        parse_mode="HTML",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )
    photo = BufferedInputFile(invoice.qr_png(), filename=f"veil-{invoice.order.id}.png")
    await bot.send_photo(
        user.id,
        photo,
        caption=texts("ton_qr_caption", amount=invoice.amount_text, comment=invoice.order.id),
    )


class TonNotifier:
    """Tells a user their Gram or USDT payment was credited, in their language."""

    def __init__(self, bot: Bot, catalogs: Catalogs) -> None:
        self._bot = bot
        self._catalogs = catalogs

    def __repr__(self) -> str:
        return "TonNotifier()"

    def text(self, booking: TonBooking) -> str:
        """The message for a credited payment: what arrived, what it bought, the balance."""
        texts = self._catalogs.for_language(booking.language)
        payment, order = booking.payment, booking.order
        values = {
            "amount": format_amount(payment.asset, payment.amount),
            "credit": format_units(payment.units),
            "balance": format_units(booking.balance),
        }
        if payment.assigned_by is not None or order is None:
            return texts("ton_paid_assigned", **values)
        values["asked"] = format_amount(order.asset, order.amount)
        if payment.reason == "underpaid":
            rest = format_amount(order.asset, order.amount - booking.received)
            text = texts("ton_paid_under", order=order.id, rest=rest, **values)
        elif payment.reason == "overpaid":
            text = texts("ton_paid_over", **values)
        else:
            text = texts("ton_paid", **values)
        if payment.late:
            text += "\n" + texts("ton_paid_late")
        return text

    async def __call__(self, booking: TonBooking) -> bool:
        """Send the message; False when Telegram cannot take it now (the watcher tries again).

        Unreachable, a flood wait longer than the retries, a 5xx: False. True once sent, or
        refused for good (blocked, deleted: telling again would not help).
        """
        user_id = booking.payment.user_id
        if user_id is None:
            return True
        try:
            await self._bot.send_message(user_id, self.text(booking))
        except (TelegramNetworkError, TelegramRetryAfter, TelegramServerError) as exc:
            log.warning("ton.notify_later", tx=booking.payment.hash, error=type(exc).__name__)
            return False
        except TelegramAPIError as exc:  # blocked, deleted: telling again would not help
            log.warning("ton.notify_refused", tx=booking.payment.hash, error=type(exc).__name__)
        return True


async def stats_text(books: TonBooks, texts: Texts) -> str:
    """The /stats lines for Gram and USDT: totals and the newest unmatched payments."""
    totals = await books.totals()
    lines = [
        texts(
            "ton_stats",
            credited=totals.credited,
            gram=format_amount("gram", totals.nanotons),
            usdt=format_amount("usdt", totals.usdt),
            credit=format_units(totals.units),
            dust=totals.dust,
            unmatched=totals.unmatched,
        )
    ]
    lines.extend(
        texts(
            "ton_stats_entry",
            hash=payment.hash[:16],
            amount=format_amount(payment.asset, payment.amount),
            comment=payment.comment or "—",
            reason=payment.reason or "—",
            user=payment.user_id if payment.user_id is not None else "—",
        )
        for payment in await books.unmatched(UNMATCHED_SHOWN)
    )
    return "\n".join(lines)


async def cmd_tonassign(
    message: Message, command: CommandObject, texts: Texts, ton_books: TonBooks | None = None
) -> None:
    """Admins: credit an unmatched payment to a user (who is told on the watcher's next pass)."""
    parts = (command.args or "").split()
    if ton_books is None or len(parts) != 2 or not parts[1].lstrip("-").isdigit():  # noqa: PLR2004 -- HASH USER
        await message.answer(texts("ton_assign_usage"))
        return
    admin = message.from_user.id if message.from_user else message.chat.id
    try:
        booking = await ton_books.assign(parts[0], int(parts[1]), admin=admin)
    except PaymentNotAssignable as exc:
        await message.answer(texts(f"ton_assign_{exc.reason}"))
        return
    payment = booking.payment
    await message.answer(
        texts(
            "ton_assign_done",
            hash=payment.hash[:16],
            amount=format_amount(payment.asset, payment.amount),
            user=payment.user_id,
            credit=format_units(payment.units),
        )
    )


def build_router(admins: frozenset[int] = frozenset()) -> Router:
    """A fresh router with the TON handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.callback_query.register(on_buy_gram, BuyGram.filter())
    router.callback_query.register(on_buy_usdt, BuyUsdt.filter())
    is_admin = F.from_user.id.in_(admins)
    router.message.register(cmd_tonassign, Command("tonassign"), is_admin, F.chat.type == "private")
    return router
