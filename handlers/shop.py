"""The money commands: /balance, /buy and its buttons, pre-checkout, payments, refunds, /stats.

Also /paysupport and /terms, which Telegram requires of bots that sell in Stars. When Gram and
USDT on TON are sold (``ton``), /balance and /buy show their packs too (``handlers.ton`` answers
those buttons) and /stats adds their figures. Handlers read
the update, call the credit or the shop service, and reply; a ``VeilError`` they let through
(an order that cannot be made, a ledger that cannot be read) is answered by ``handlers.errors``.
Payments and refunds go to the payment desk (``desk``), which journals, books and tells.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import TYPE_CHECKING, Protocol

import structlog
from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice

from common.logs import describe
from handlers.callbacks import BuyPack, BuyPlan
from handlers.commands import TextCommand
from handlers.replies import TELEGRAM_LATER, buy_keyboard, per_thousand
from services.errors import LedgerUnavailable
from services.prices import format_units
from services.shop import CURRENCY, RENEWAL_GRACE_S, SUBSCRIPTION_PERIOD
from services.ton.shop import format_amount

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.filters import CommandObject
    from aiogram.types import CallbackQuery, Message, PreCheckoutQuery

    from common.texts import Texts
    from models import Store
    from services.chat import ChatService
    from services.credit import Credit
    from services.shop import Payment, Shop
    from services.shop_cancel import PlanCancel, PlanCancels
    from services.ton.books import TonBooks
    from services.ton.shop import TonShop

# Controls, format characters (direction marks, zero-width ones), line and paragraph separators.
_UNSHOWN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
ORDERS_SHOWN = 3  # order ids a payer's comment named shown in /stats, then "…"
COMMENT_SHOWN = 64  # characters of a payer's comment shown in /stats (an escape's six counted)
log = structlog.get_logger("veil.stars")

# Telegram's refusals of refundStarPayment, as its description names them.
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
# The ledger's payment is not this bot's at Telegram (another bot's database, a playground
# started afresh): told in Telegram's words, not as "no payment with that charge id"; one whose
# refund the ledger booked already is told as refunded.
NOT_FOUND = "CHARGE_NOT_FOUND"
UNMATCHED_SHOWN = 10  # the newest unmatched Gram and USDT payments /stats lists
# A pre-checkout answer Telegram refused: the query answered already (delivered again) or too
# old, or held back by a flood wait longer than the session waits. Nothing is charged; a bug's
# traceback and a second answer (a refusal, refused in turn) were all the errors router added.
CHECKOUT_GONE = (TelegramBadRequest, TelegramRetryAfter)


def _date(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d")


def _moment(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _user_id(message: Message) -> int:
    return message.from_user.id if message.from_user else message.chat.id


# -- credit --------------------------------------------------------------------------------------


async def cmd_balance(  # noqa: PLR0913 -- the handler's injected services
    message: Message,
    texts: Texts,
    credit: Credit,
    shop: Shop,
    chat: ChatService,
    *,
    ton: TonShop | None = None,
) -> None:
    """Balance, free tokens left today, the plan, prices, and the latest entries."""
    user_id = _user_id(message)
    balance = await credit.balance(user_id)
    entries = [
        texts(
            "entry",
            date=_date(entry.created_at),
            kind=texts(f"kind_{entry.kind}"),
            amount=("+" if entry.amount > 0 else "") + format_units(entry.amount),
        )
        for entry in await credit.history(user_id, limit=8)
    ]
    plan = await _plan_line(texts, shop, user_id)
    model = await chat.current_model(user_id)
    price = credit.prices.for_model(model)
    await message.answer(
        texts(
            "balance",
            balance=format_units(balance.units),
            free=balance.free_tokens_left,
            plan=plan,
            model=model,
            price_in=per_thousand(price.input),
            price_out=per_thousand(price.output),
            entries="\n".join(entries) or texts("balance_empty"),
        ),
        reply_markup=buy_keyboard(shop, texts, ton),
    )


# -- buying --------------------------------------------------------------------------------------


async def cmd_buy(message: Message, texts: Texts, shop: Shop, ton: TonShop | None = None) -> None:
    """The packs and the plan as buttons (and the Gram and USDT packs when sold)."""
    await message.answer(texts("buy_choose"), reply_markup=buy_keyboard(shop, texts, ton))


async def on_buy_pack(
    query: CallbackQuery, callback_data: BuyPack, bot: Bot, texts: Texts, shop: Shop
) -> None:
    """Send an invoice for the chosen pack; its payload is a single-use order id."""
    await query.answer()  # first: the order is stored, which may take a while
    order = await shop.create_order(query.from_user.id, callback_data.pack_id)
    credit = format_units(order.units)
    await bot.send_invoice(
        chat_id=query.from_user.id,
        title=texts("invoice_title"),
        description=texts("invoice_description", credit=credit),
        payload=order.id,
        currency=CURRENCY,
        prices=[LabeledPrice(label=texts("invoice_label", credit=credit), amount=order.stars)],
    )


async def _plan_line(texts: Texts, shop: Shop, user_id: int) -> str:
    """/balance's word on the plan: until when it runs, or that it ended (and its renewal due).

    The latest period's end alone read "active until" a date gone by for a plan that ended.
    """
    until = await shop.plan_until(user_id)
    if until is None:
        return texts("balance_no_plan")
    if await shop.plan_running(user_id) is not None:
        return texts("balance_plan", until=_date(until))
    if await shop.renewal_due(user_id) is not None:
        return texts("balance_plan_renewing", ended=_date(until))
    return texts("balance_plan_ended", ended=_date(until))


async def on_buy_plan(query: CallbackQuery, bot: Bot, texts: Texts, shop: Shop) -> None:
    """Send a subscription link for the monthly plan; while the plan runs, say so instead.

    The plan pressed again once subscribed (on the laptop, say, after paying on the phone)
    sent a link that pre-checkout refuses (``plan_active``): a second subscription. So did
    the plan pressed after its end while Telegram's renewal was still on its way: for
    ``RENEWAL_GRACE_S`` the button says the renewal is due instead.
    """
    await query.answer()  # first: the order is stored, which may take a while
    until = await shop.plan_running(query.from_user.id)
    if until is not None:
        await bot.send_message(query.from_user.id, texts("plan_running", until=_date(until)))
        return
    ended = await shop.renewal_due(query.from_user.id)
    if ended is not None:
        after = _moment(ended + RENEWAL_GRACE_S)
        await bot.send_message(
            query.from_user.id, texts("plan_renewal_due", ended=_moment(ended), after=after)
        )
        return
    order = await shop.create_plan_order(query.from_user.id)
    credit = format_units(order.units)
    link = await bot.create_invoice_link(
        title=texts("plan_title"),
        description=texts("plan_description", credit=credit),
        payload=order.id,
        currency=CURRENCY,
        prices=[LabeledPrice(label=texts("plan_title"), amount=order.stars)],
        subscription_period=SUBSCRIPTION_PERIOD,
    )
    button = InlineKeyboardButton(text=texts("plan_button", stars=order.stars), url=link)
    await bot.send_message(
        query.from_user.id,
        texts("plan_link"),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )


async def on_pre_checkout(query: PreCheckoutQuery, texts: Texts, shop: Shop) -> None:
    """Answer within Telegram's 10 s: ok only for this user's unexpired, unpaid order."""
    reason = await shop.check_pre_checkout(
        query.from_user.id, query.invoice_payload, query.currency, query.total_amount
    )
    try:
        if reason is None:
            await query.answer(ok=True)
        else:
            await query.answer(ok=False, error_message=texts(f"precheckout_{reason}"))
    except CHECKOUT_GONE as exc:
        log.info("stars.checkout_unanswered", error=describe(exc), approved=reason is None)
        if reason is None:  # no payment comes of it: Pay tapped again must not be refused
            await shop.approval_lost(query.invoice_payload)


# -- payments and refunds ------------------------------------------------------------------------


class Desk(Protocol):
    """The payment desk (the bot provides it as ``desk``): journals, books, retries, tells."""

    async def take_message(self, message: Message) -> None:
        """Journal and book the payment or refund ``message`` carries."""


async def on_successful_payment(message: Message, desk: Desk) -> None:
    """Credit exactly once (the desk journals, books, retries); thank the user once."""
    await desk.take_message(message)


async def on_refunded_payment(message: Message, desk: Desk, plan_cancels: PlanCancels) -> None:
    """Telegram refunded a payment: take its credit back (once) and say so; end its plan.

    A refunded plan payment is one whose subscription renews no more (the renewal grace
    counts it cancelled), and a refund Telegram made itself (not the admin's /refund) left it
    charging every 30 days. Its booking stored the cancellation as owed; it is sent here
    (``services.shop_cancel``), once: after the admin's /refund, which Telegram reports too,
    it is done already. The report delivered again asks again only for one that failed. One
    not sent (a busy ledger, a crash) is sent by the next upkeep pass.
    """
    await desk.take_message(message)
    refund, user = message.refunded_payment, message.from_user
    if refund is None or user is None:
        return
    charge = refund.telegram_payment_charge_id
    try:
        # The refund that came before its payment is owed by its plan order (not booked yet).
        await plan_cancels.owe(user.id, charge, refund.invoice_payload)
        await plan_cancels.send()
    except LedgerUnavailable:
        log.warning("stars.plan_cancel_unsent", charge_id=charge)


def telegram_error(error: TelegramBadRequest) -> str:
    """The error Telegram names (``CHARGE_NOT_FOUND``) in ``Bad Request: CHARGE_NOT_FOUND``.

    aiogram gives no type or field finer than ``TelegramBadRequest`` and its description, so
    the name is compared whole, never searched for in the text.
    """
    return error.message.rpartition(": ")[2].strip()


async def cmd_refund(  # noqa: PLR0913 -- the handler's injected services
    message: Message,
    command: CommandObject,
    bot: Bot,
    texts: Texts,
    shop: Shop,
    *,
    plan_cancels: PlanCancels,
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
    # The subscription's payments before Telegram is asked: one booked after is a renewal
    # Telegram charged between the refund and the cancellation, which the refund left alone.
    known = {paid.charge_id for paid in await plan_cancels.subscription_payments(payment)}
    try:
        await bot.refund_star_payment(user_id=payment.user_id, telegram_payment_charge_id=charge_id)
    except TELEGRAM_LATER as exc:
        # Refunded or not, the same /refund again settles it: a refund Telegram made already
        # comes back as CHARGE_ALREADY_REFUNDED and takes the credit back once.
        log.warning("stars.refund_not_taken", charge_id=charge_id, error=type(exc).__name__)
        await message.answer(texts("refund_retry"))
        return
    except TelegramBadRequest as exc:  # Telegram's answer to the admin, not a failure of ours
        refused = telegram_error(exc)
        if refused == ALREADY_REFUNDED:
            await shop.record_refund(payment.user_id, charge_id)
            # A /refund before may have refunded and then failed to cancel: this one does.
            plan = await _cancel_plan(texts, plan_cancels, payment, known)
            await message.answer(texts("refund_already") + plan)
        elif payment.refunded:  # booked once Telegram made it; now NOT_FOUND (a fresh playground)
            await message.answer(texts("refund_already"))
        else:  # CHARGE_NOT_FOUND too: the ledger has the payment, Telegram knows no such charge
            await message.answer(texts("refund_failed", reason=exc.message))
        return
    # Telegram also reports the refund (refunded_payment), and its booking may have taken the
    # credit back before this answer came: taken back either way, once.
    await shop.record_refund(payment.user_id, charge_id)
    done = texts(
        "refund_done", stars=payment.stars, user=payment.user_id, credit=format_units(payment.units)
    )
    await message.answer(done + await _cancel_plan(texts, plan_cancels, payment, known))


async def _cancel_plan(
    texts: Texts, cancels: PlanCancels, payment: Payment, known: set[str]
) -> str:
    """Cancel the subscription a refunded plan payment paid; the lines that tell the admin.

    Refunded, the plan stayed subscribed: Telegram charged the user again every 30 days for a
    plan the admin had refunded. ``editUserStarSubscription`` ends its renewals (the period
    paid for runs out as it would); sent once (``services.shop_cancel``), Telegram's report of
    this refund asks nothing again. Its failure undoes nothing of the refund: the admin is
    told, and the same /refund again (``CHARGE_ALREADY_REFUNDED`` then) asks again. A renewal
    booked since the admin asked (not in ``known``: Telegram charged it before the
    cancellation took) is kept and credited: the admin is told which, and that its own /refund
    refunds it. Empty for a payment that paid no subscription.
    """
    if not payment.is_recurring:
        return ""
    await cancels.owe(payment.user_id, payment.charge_id, payment.order_id)
    await cancels.send()
    cancel = await cancels.settled(payment)
    if cancel is None:
        return ""
    lines = [_cancel_line(texts, cancel, payment)]
    lines.extend(
        texts("refund_plan_renewed", charge=renewal.charge_id, stars=renewal.stars)
        for renewal in await cancels.subscription_payments(payment)
        if renewal.charge_id not in known and not renewal.refunded
    )
    return "".join("\n" + line for line in lines)


def _cancel_line(texts: Texts, cancel: PlanCancel, payment: Payment) -> str:
    """The admin's line for where the cancellation stands, and what to do about it.

    Failed, ``unnamed`` (``CHARGE_ID_INVALID`` for the last of the order's charges): none in
    the books names the subscription, its first payment is missing (a restored database).
    The same /refund again fails the same way until ``reconcile --fix`` books that payment
    from Telegram's list. Owed still: Telegram could not take it now; upkeep asks again.
    """
    reason = cancel.reason or ""
    if cancel.state == "done":
        return texts("refund_plan_canceled")
    if cancel.state == "owed":
        return texts("refund_plan_cancel_later", reason=reason)
    key = "refund_plan_unknown" if cancel.unnamed else "refund_plan_not_canceled"
    return texts(key, reason=reason, charge=payment.charge_id)


# -- the admin's figures and the texts Telegram requires -----------------------------------------


async def cmd_stats(
    message: Message,
    texts: Texts,
    credit: Credit,
    store: Store,
    ton_books: TonBooks | None = None,
) -> None:
    """Admins: users, activity, tokens, Stars received and refunded (and Gram and USDT)."""
    stats = await credit.stats()
    ton = "" if ton_books is None else "\n" + await _ton_stats(ton_books, texts)
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


async def _ton_stats(books: TonBooks, texts: Texts) -> str:
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
            comment=_shown_comment(payment.comment),
            orders=_shown_orders(payment.named),
            reason=payment.reason or "—",
            user=payment.user_id if payment.user_id is not None else "—",
        )
        for payment in await books.unmatched(UNMATCHED_SHOWN)
    )
    return "\n".join(lines)


def _shown_comment(comment: str | None) -> str:
    """A payer's comment as one line of text: what could break or turn the line, escaped.

    Anyone can send a payment with any comment: a line break in it would forge lines of the
    admin's /stats (another "credited" entry), a direction mark would turn the line around.
    At most ``COMMENT_SHOWN`` characters are shown, escapes counted, then "…": a stored
    comment's 120 characters escaped are 720, and a few such would make /stats too long to
    send.
    """
    if not comment:
        return "—"
    shown = ""
    for char in comment:
        piece = f"\\u{ord(char):04x}" if unicodedata.category(char) in _UNSHOWN else char
        if len(shown) + len(piece) > COMMENT_SHOWN:
            return shown + "…"
        shown += piece
    return shown


def _shown_orders(named: tuple[str, ...]) -> str:
    """The orders a payer's comment named (at most ``ORDERS_SHOWN``, then "…"), or "—".

    The comment itself is cut, and an id past the cut decided the payment: the admins see it
    here. A comment can name many orders (a payer's own, made for it): a few are enough to
    see that it named more than one, and /stats stays short enough to send.
    """
    if not named:
        return "—"
    shown = ", ".join(named[:ORDERS_SHOWN])
    return shown + ", …" if len(named) > ORDERS_SHOWN else shown


async def cmd_paysupport(message: Message, texts: Texts, paysupport_text: str | None) -> None:
    """Required by Telegram for bots that sell in Stars (the operator's text, if set)."""
    await message.answer(paysupport_text or texts("paysupport"))


async def cmd_terms(message: Message, texts: Texts, terms_text: str | None) -> None:
    """The terms of service (the operator's text, if set)."""
    await message.answer(terms_text or texts("terms"))


def build_router(admins: frozenset[int] = frozenset()) -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    private = F.chat.type == "private"
    router.message.register(cmd_balance, TextCommand("balance", ignore_case=True), private)
    router.message.register(cmd_buy, TextCommand("buy", ignore_case=True), private)
    router.callback_query.register(on_buy_pack, BuyPack.filter())
    router.callback_query.register(on_buy_plan, BuyPlan.filter())
    router.pre_checkout_query.register(on_pre_checkout)
    router.message.register(on_successful_payment, F.successful_payment)
    router.message.register(on_refunded_payment, F.refunded_payment)
    # In a group: told to the member alone, at the group's pace (``handlers.groups``).
    router.message.register(cmd_paysupport, TextCommand("paysupport", ignore_case=True), private)
    router.message.register(cmd_terms, TextCommand("terms", ignore_case=True), private)
    # The private chat only: in a group the figures and charge ids would be everyone's to read.
    is_admin = F.from_user.id.in_(admins)
    router.message.register(cmd_refund, TextCommand("refund", ignore_case=True), is_admin, private)
    router.message.register(cmd_stats, TextCommand("stats", ignore_case=True), is_admin, private)
    return router
