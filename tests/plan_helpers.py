"""The monthly plan's steps, as the plan, renewal, refund and reconcile tests take them.

Over the whole bot (``paying_stack``): the /buy menu's plan button and its subscription link,
Telegram's payments of it (the first, a renewal, one the bot never heard of), the admin's
answer, and ``python -m bot reconcile --fix`` run as the operator runs it. Over a ``Shop`` on a
real database alone: a plan paid by subscription at the clock's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from models import MasterKey, Store
from services.shop import ORDER_TTL_S, SUBSCRIPTION_PERIOD, IncomingPayment, Plan, Shop
from tests.botstack import bot_env
from tests.harness import run_python, wait_until
from tests.test_bot_payments import ADMIN, STAR, USER, pre_checkout

if TYPE_CHECKING:
    import subprocess
    from collections.abc import AsyncIterator, Iterable
    from pathlib import Path

    from services.shop import Pack
    from tests.botstack import Stack
    from tests.harness import Clock

PLAN = {"plan_stars": 300, "plan_units": 400 * STAR}
START = 1_750_000_000  # the shop tests' clock at the first payment
SHOP_PLAN = Plan(300, 400 * STAR)  # the plan of the shop tests' shop


def menus(stack: Stack) -> list[dict[str, Any]]:
    """The /buy menus the user was sent (the plan's is the last button)."""
    return [
        m
        for m in stack.telegram.sent_messages(USER)
        if "buy-plan" in str(m.get("reply_markup", {}).get("inline_keyboard", [[{}]])[-1])
    ]


def press_plan(stack: Stack, menu: dict[str, Any] | None = None) -> None:
    """The plan button of ``menu`` pressed (by default of the first message the user was sent)."""
    menu = menu or stack.telegram.sent_messages(USER)[0]
    plan = menu["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
    stack.telegram.press_button(USER, plan, message_id=menu["message_id"])


async def plan_link(stack: Stack) -> str:
    """/buy, the plan button, its pre-checkout approved: the link's payload."""
    stack.telegram.send_text(USER, "/buy")
    await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
    press_plan(stack)
    link = await stack.telegram.wait_for("createInvoiceLink")
    payload = str(link.params["payload"])
    assert (await pre_checkout(stack, USER, payload, 300))["ok"] is True
    return payload


def thank_yous(stack: Stack) -> int:
    """How many payments the user was thanked for."""
    return sum("Thank you" in m.get("text", "") for m in stack.telegram.sent_messages(USER))


async def pay_plan(stack: Stack, payload: str, until: int | None = None) -> str:
    """Telegram charges the plan link by subscription: the charge id, once thanked for.

    A first period or a renewal, its period ending ``until`` (a month from now by default).
    """
    thanks = thank_yous(stack)
    charge = stack.telegram.pay(
        USER,
        payload=payload,
        total_amount=300,
        is_recurring=True,
        subscription_expiration_date=until,
    )
    await wait_until(lambda: thank_yous(stack) > thanks)
    return charge


async def subscribe(stack: Stack) -> tuple[str, str]:
    """/buy, the plan button, its link paid by subscription: (payload, first charge id)."""
    payload = await plan_link(stack)
    return payload, await pay_plan(stack, payload)


def charged_unheard(stack: Stack, payload: str, charge: str = "stxFIRST") -> None:
    """Telegram charged the plan link; only its list has it (the bot never heard, or forgot)."""
    user = {"id": USER, "is_bot": False, "first_name": "User"}
    invoice = {"invoice_payload": payload, "total_amount": 300, "currency": "XTR"}
    stack.telegram.payments.record_payment(user, charge, invoice | {"is_recurring": True})


def telegram_refunds(stack: Stack, payload: str, charge: str) -> None:
    """Telegram refunds the plan payment ``charge`` on its own: a ``refunded_payment`` update."""
    stack.telegram.refunded(USER, payload=payload, total_amount=300, charge_id=charge)


def cancel_refused(stack: Stack, description: str) -> None:
    """Telegram refuses the bot's next cancellation of a subscription with a 400."""
    stack.telegram.fail_next("editUserStarSubscription", status=400, description=description)


async def cancelled(stack: Stack, charge: str) -> None:
    """Wait until Telegram has the subscription named by ``charge`` cancelled."""
    await wait_until(lambda: stack.telegram.payments.subscriptions[charge].canceled)


async def refund_cancels(stack: Stack, payload: str, refunded: str, subscription: str) -> None:
    """Telegram refunds the plan payment ``refunded`` on its own: wait for the cancellation.

    ``subscription`` names the subscription (its first charge) that must end up cancelled.
    """
    telegram_refunds(stack, payload, refunded)
    await cancelled(stack, subscription)


async def admin_told(stack: Stack, count: int) -> str:
    """The text of the ``count``-th message the admin was sent (waiting for it)."""
    return str((await stack.final_messages(ADMIN, count))[count - 1]["text"])


async def balance_text(stack: Stack) -> str:
    """/balance sent: the text of the bot's answer."""
    before = len(stack.telegram.sent_messages(USER))
    stack.telegram.send_text(USER, "/balance")
    return str((await stack.final_messages(USER, before + 1))[before]["text"])


def day(timestamp: int) -> str:
    """The UTC date of ``timestamp`` as the bot writes it."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def cancels(stack: Stack) -> list[dict[str, Any]]:
    """The parameters of every ``editUserStarSubscription`` call the bot made."""
    return [c.params for c in stack.telegram.calls_of("editUserStarSubscription")]


def cancel_of(charge: str) -> dict[str, object]:
    """The parameters that cancel the user's subscription named by ``charge``."""
    return {"user_id": USER, "telegram_payment_charge_id": charge, "is_canceled": "true"}


async def reconcile_fix(stack: Stack, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``python -m bot reconcile --fix`` on the stack's database, with its packs and plan."""
    env = bot_env(stack.telegram.url, stack.gateway.url, stack.gateway.verify_key, data_dir)
    env |= {"VEIL_STAR_PACKS": "50:50000000,250:275000000", "VEIL_PLAN_STARS": "300"}
    env |= {"VEIL_PLAN_UNITS": str(PLAN["plan_units"])}
    return await asyncio.to_thread(run_python, "-m", "bot", "reconcile", "--fix", env=env)


@contextlib.asynccontextmanager
async def opened_shop(
    tmp_path: Path,
    clock: Clock,
    packs: Iterable[Pack] = (),
    plan: Plan = SHOP_PLAN,
    order_ttl: int = ORDER_TTL_S,
) -> AsyncIterator[Shop]:
    """A shop over a fresh database file, on ``clock``; the database closed afterwards."""
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        yield Shop(store, list(packs), plan, clock=clock, order_ttl=order_ttl)
    finally:
        await store.close()


def plan_payment(order_id: str, charge: str, expires_at: int) -> IncomingPayment:
    """Telegram's payment of the user's plan order, by subscription, ending at ``expires_at``."""
    return IncomingPayment(
        USER, order_id, "XTR", 300, charge, is_recurring=True, subscription_expires_at=expires_at
    )


async def subscribed(shop: Shop, clock: Clock, charge: str = "first") -> str:
    """A plan order paid by subscription at the clock's time; its order id."""
    order = await shop.create_plan_order(USER)
    assert await shop.check_pre_checkout(USER, order.id, "XTR", 300) is None
    paid = await shop.record_payment(
        plan_payment(order.id, charge, int(clock()) + SUBSCRIPTION_PERIOD)
    )
    assert paid.new
    return order.id
