"""/balance and /buy: credit, the free allowance, packs and the monthly plan."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice

from handlers.ton import ton_rows
from services.billing import format_units
from services.errors import OrderRejected

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import CallbackQuery, Message

    from bot.settings import BotSettings
    from bot.texts import Texts
    from services.billing import Billing
    from services.chat import ChatService
    from services.stars import StarsShop
    from services.ton.shop import TonShop

BUY_PREFIX = "buy:"
PLAN = "buy-plan"
CURRENCY = "XTR"
SUBSCRIPTION_PERIOD = 2_592_000  # 30 days: the only period Telegram allows


def per_thousand(units_per_token: int) -> str:
    """A per-token price in µ★ as Stars per 1000 tokens."""
    return format_units(units_per_token * 1000)


def prices_line(texts: Texts, settings: BotSettings, model: str) -> str:
    """The ``model_prices`` text for one model."""
    price = settings.price_table.for_model(model)
    return texts(
        "model_prices", price_in=per_thousand(price.input), price_out=per_thousand(price.output)
    )


def buy_keyboard(shop: StarsShop, texts: Texts, ton: TonShop | None = None) -> InlineKeyboardMarkup:
    """One button a pack, then the plan's, then the Gram and USDT packs (``handlers.ton``)."""
    rows = [
        [
            InlineKeyboardButton(
                text=texts("buy_pack", stars=pack.stars, credit=format_units(pack.units)),
                callback_data=BUY_PREFIX + pack.id,
            )
        ]
        for pack in shop.packs
    ]
    if shop.plan is not None:
        rows.append(
            [
                InlineKeyboardButton(
                    text=texts(
                        "buy_plan", stars=shop.plan.stars, credit=format_units(shop.plan.units)
                    ),
                    callback_data=PLAN,
                )
            ]
        )
    rows.extend(ton_rows(ton, texts))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _date(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d")


async def cmd_balance(  # noqa: PLR0913 -- the handler's injected services
    message: Message,
    *,
    texts: Texts,
    billing: Billing,
    shop: StarsShop,
    chat: ChatService,
    settings: BotSettings,
    ton: TonShop | None = None,
) -> None:
    """Balance, free tokens left today, the plan, prices, and the latest entries."""
    user_id = message.from_user.id if message.from_user else message.chat.id
    balance = await billing.balance(user_id)
    entries = [
        texts(
            "entry",
            date=_date(entry.created_at),
            kind=texts(f"kind_{entry.kind}"),
            amount=("+" if entry.amount > 0 else "") + format_units(entry.amount),
        )
        for entry in await billing.history(user_id, limit=8)
    ]
    until = await shop.plan_until(user_id)
    plan = texts("balance_plan", until=_date(until)) if until else texts("balance_no_plan")
    model = await chat.current_model(user_id)
    price = settings.price_table.for_model(model)
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


async def cmd_buy(
    message: Message, texts: Texts, shop: StarsShop, ton: TonShop | None = None
) -> None:
    """The packs and the plan as buttons (and Gram and USDT packs when sold)."""
    await message.answer(texts("buy_choose"), reply_markup=buy_keyboard(shop, texts, ton))


async def on_buy_pack(query: CallbackQuery, bot: Bot, texts: Texts, shop: StarsShop) -> None:
    """Send an invoice for the chosen pack; its payload is a single-use order id."""
    pack_id = (query.data or "").removeprefix(BUY_PREFIX)
    try:
        order = await shop.create_order(query.from_user.id, pack_id)
    except OrderRejected:
        await query.answer(texts("precheckout_unknown_order"), show_alert=True)
        return
    await query.answer()
    credit = format_units(order.units)
    await bot.send_invoice(
        chat_id=query.from_user.id,
        title=texts("invoice_title"),
        description=texts("invoice_description", credit=credit),
        payload=order.id,
        currency=CURRENCY,
        prices=[LabeledPrice(label=texts("invoice_label", credit=credit), amount=order.stars)],
    )


async def on_buy_plan(query: CallbackQuery, bot: Bot, texts: Texts, shop: StarsShop) -> None:
    """Send a subscription link for the monthly plan."""
    try:
        order = await shop.create_plan_order(query.from_user.id)
    except OrderRejected:
        await query.answer(texts("precheckout_unknown_order"), show_alert=True)
        return
    await query.answer()
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


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(cmd_balance, Command("balance"))
    router.message.register(cmd_buy, Command("buy"))
    router.callback_query.register(on_buy_pack, F.data.startswith(BUY_PREFIX))
    router.callback_query.register(on_buy_plan, F.data == PLAN)
    return router
