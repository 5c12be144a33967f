"""Paying in Gram and USDT on TON: the invoice with its QR code, the credit notice, /tonassign.

The pack buttons are on the /buy keyboard (``handlers.replies.buy_keyboard``). The invoice is
one message with the address, amount, comment and expiry to copy, the
``ton://`` link in the text (Telegram refuses ``ton://`` on a URL button, and Telegram Desktop
does not open it) and a Tonkeeper ``https://`` link as its button; then the QR code of the
``ton://`` link as a photo. The watcher (``services.ton.watcher``) credits the payment and
tells the user through ``TonNotifier``. A pack no longer sold, a ledger that cannot be written or
an assignment that names no unmatched payment is let through to ``handlers.errors``.
"""

from __future__ import annotations

import datetime as dt
import string
from typing import TYPE_CHECKING

import structlog
from aiogram import F, Router
from aiogram.exceptions import (
    TelegramAPIError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.formatting import Bold, Code, Text

from handlers.callbacks import BuyGram, BuyUsdt
from handlers.commands import TextCommand
from handlers.replies import TELEGRAM_LATER, went_out
from services.errors import UnknownPack
from services.prices import format_units
from services.ton.shop import format_amount

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.filters import CommandObject
    from aiogram.types import CallbackQuery, Message

    from common.texts import Catalogs, Texts
    from models.ton import Asset
    from services.ton.books import TonBooking, TonBooks
    from services.ton.shop import Invoice, TonShop

log = structlog.get_logger("veil.ton")

# The invoice's values shown as code (a tap copies them) and in bold; the rest is plain.
_CODE = frozenset({"address", "number", "comment", "link"})
_BOLD = frozenset({"amount"})
# A Telegram user id: positive, at most 52 significant bits (the Bot API's promise).
_MAX_USER_ID = 2**52 - 1


def _utc(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def invoice_text(invoice: Invoice, texts: Texts) -> Text:
    """The invoice as text with entities: each value to copy is a code entity (a tap copies it).

    The catalog's ``ton_invoice`` is filled field by field, so the entities fall exactly on
    the values whatever the language's word order; no parse mode is used.
    """
    order = invoice.order
    number, _, symbol = invoice.amount_text.partition(" ")
    values = {
        "amount": invoice.amount_text,
        "credit": format_units(order.units),
        "address": invoice.address,
        "number": number,
        "symbol": symbol,
        "comment": order.id,
        "expires": _utc(order.expires_at),
        "link": invoice.ton_link,
    }
    template = texts.catalogs.lookup(texts.language, "ton_invoice")
    parts: list[str | Text] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        if field is None:
            continue
        value = values[field]
        parts.append(Code(value) if field in _CODE else Bold(value) if field in _BOLD else value)
    if order.asset == "usdt":
        parts.append("\n\n" + texts("ton_invoice_usdt"))
    return Text(*parts)


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
    if ton is None:  # a button from before TON payments were turned off
        raise UnknownPack
    user = query.from_user
    await query.answer()  # first: the order is stored, which may take a while
    invoice = await ton.create_order(user.id, asset, pack_id, user.language_code)
    button = InlineKeyboardButton(text=texts("ton_open_tonkeeper"), url=invoice.tonkeeper_link)
    await bot.send_message(
        user.id,
        **invoice_text(invoice, texts).as_kwargs(),
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
        beside = True  # a payment beside the order's own, told of the floor (below)
        if payment.reason == "wrong_asset":
            text = texts("ton_paid_other_asset", order=order.id, **values)
        elif payment.reason == "underpaid" and booking.received < order.amount:
            # (An underpayment told only after the rest arrived asks for nothing more.)
            rest = format_amount(order.asset, order.amount - booking.received)
            pack = format_units(order.units)  # the pack's credit, which the rest completes
            text = texts("ton_paid_under", order=order.id, rest=rest, pack=pack, **values)
        elif payment.reason == "already_paid":
            text = texts("ton_paid_again", order=order.id, **values)
        else:
            beside = False
            key = "ton_paid_over" if payment.reason == "overpaid" else "ton_paid"
            text = texts(key, **values)
        if payment.late:
            text += "\n" + texts("ton_paid_late")
        if beside and booking.quiet_below:
            # Smaller ones are credited without a message (``rules.quiet_below``): said here.
            floor = format_amount(payment.asset, booking.quiet_below)
            text += "\n" + texts("ton_paid_quiet", floor=floor)
        return text

    async def __call__(self, booking: TonBooking) -> bool:
        """Send the message; False when Telegram cannot take it now (the watcher tries again).

        Unreachable, a flood wait longer than the retries, a 5xx, a reply that is not the Bot
        API's: False. True once sent (Telegram's ok to a result that does not validate too), or
        refused for good (blocked, deleted: telling again would not help).
        """
        user_id = booking.payment.user_id
        if user_id is None:
            return True
        try:
            await self._bot.send_message(user_id, self.text(booking))
        except TELEGRAM_LATER as exc:
            if went_out(exc):
                log.warning("ton.notify_unreadable", tx=booking.payment.hash)
                return True
            log.warning("ton.notify_later", tx=booking.payment.hash, error=type(exc).__name__)
            return False
        except TelegramAPIError as exc:  # blocked, deleted: telling again would not help
            log.warning("ton.notify_refused", tx=booking.payment.hash, error=type(exc).__name__)
        return True


async def cmd_tonassign(
    message: Message, command: CommandObject, texts: Texts, ton_books: TonBooks | None = None
) -> None:
    """Admins: credit an unmatched payment to a user (who is told on the watcher's next pass)."""
    parts = (command.args or "").split()
    user_id = _user_id(parts[1]) if len(parts) == 2 else None  # noqa: PLR2004 -- HASH USER
    if ton_books is None or user_id is None:
        await message.answer(texts("ton_assign_usage"))
        return
    admin = message.from_user.id if message.from_user else message.chat.id
    booking = await ton_books.assign(parts[0], user_id, admin=admin)
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


def _user_id(typed: str) -> int | None:
    """The user id an admin typed, or None when no Telegram user has it (a group's, 0, huge)."""
    if not (typed.isascii() and typed.isdigit()):
        return None
    user_id = int(typed)
    return user_id if 0 < user_id <= _MAX_USER_ID else None


def build_router(admins: frozenset[int] = frozenset()) -> Router:
    """A fresh router with the TON handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.callback_query.register(on_buy_gram, BuyGram.filter())
    router.callback_query.register(on_buy_usdt, BuyUsdt.filter())
    is_admin = F.from_user.id.in_(admins)
    router.message.register(
        cmd_tonassign,
        TextCommand("tonassign", ignore_case=True),
        is_admin,
        F.chat.type == "private",
    )
    return router
