"""Cancelling the subscription a refunded plan payment paid: stored, sent once, recovered.

A refunded plan payment's subscription would go on charging every 30 days, so it is cancelled
(``editUserStarSubscription(is_canceled=True)``). The refund's booking stores the cancellation
as owed in its own transaction (``services.shop``); ``PlanCancels.send`` asks Telegram for the
owed ones and stores what came of it: done, failed (Telegram refused; the reason kept), or
owed still (Telegram could not take it now: the next pass asks again). The admin's /refund,
Telegram's ``refunded_payment``, each upkeep pass (the first at start, so a crash between the
refund and the call loses nothing) and ``reconcile --fix`` all send through here, so a done
cancellation is never sent again, and ``reconcile`` reads which refunded plans still charge.

The call itself is the caller's ``Canceller`` (the bot's, ``bot.subscriptions``: this layer
speaks no aiogram), which says how Telegram answered in a ``Refusal``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog

from models import orders
from models.orders import Payment, PlanCancel
from services.errors import ledger_failures

if TYPE_CHECKING:
    from collections.abc import Callable

    from models import Database, Store

__all__ = ["Canceller", "PlanCancel", "PlanCancels", "Refusal"]

log = structlog.get_logger("veil.stars")

# A cancellation Telegram could not take now (a 5xx, a flood wait, unreachable) is asked again
# after 1, 3, 7 … passes skipped, at most this many (an hour of upkeep's minute passes): a
# subscription Telegram answers 5xx for, for days, is not asked (and logged) every minute.
LATER_SKIPS_MAX = 63


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why Telegram did not cancel: ``reason`` in its words.

    ``unnamed``: the charge names no subscription of the user's (``CHARGE_ID_INVALID``; a
    renewal's, where the first payment was booked after it), so the next charge is tried.
    ``later``: it could not take the call now (a 5xx, a flood wait, unreachable, a reply that
    was not the Bot API's); the cancellation stays owed.
    """

    reason: str
    unnamed: bool = False
    later: bool = False


class Canceller(Protocol):
    """Ask Telegram to cancel ``user_id``'s subscription named by ``charge_id``."""

    async def __call__(self, user_id: int, charge_id: str) -> Refusal | None:
        """None when Telegram cancelled it (or had already); else how it refused."""


class PlanCancels:
    """The refunded subscriptions' cancellations: stored owed, sent, their outcome stored."""

    def __init__(
        self, store: Store, cancel: Canceller, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._cancel = cancel
        self._clock = clock
        # One pass at a time in this process: the admin's /refund and Telegram's report of it
        # arrive together, and the second must find the first's cancellation done, not send it.
        self._sending = asyncio.Lock()
        # The owed cancellations Telegram could not take: (times so, passes still to skip).
        # In memory: a restart asks each once at start, as a new /refund or report does.
        self._waiting: dict[tuple[str, int], tuple[int, int]] = {}

    async def owe(self, user_id: int, charge_id: str, payload: str) -> PlanCancel | None:
        """Store a refunded charge's cancellation as owed (again, if it failed); the row.

        By its payment, or, one not booked yet (the refund came first), by its invoice's
        plan order of the user's. None for a charge that paid no subscription of the user's.
        A done cancellation stays done. One waiting to be asked again (Telegram could not take
        it) is asked on the next pass: the admin's /refund or the report asks now.
        """
        now = int(self._clock())

        def subscription(db: Database) -> tuple[str, PlanCancel | None] | None:
            """The plan order the charge paid, and its cancellation stored; None for none."""
            payment = orders.get_payment(db, charge_id)
            if payment is not None:
                if payment.user_id != user_id or not payment.is_recurring:
                    return None
                order_id = payment.order_id
            else:
                order = orders.get_order(db, payload)
                if order is None or order.kind != "plan" or order.user_id != user_id:
                    return None
                order_id = order.id
            return order_id, orders.plan_cancel(db, order_id, user_id)

        def write(db: Database) -> PlanCancel | None:
            orders.owe_cancel(db, order_id, user_id, charge_id, now)
            return orders.plan_cancel(db, order_id, user_id)

        # Read first: the refund's booking stored it owed already (Telegram's report, the
        # admin's /refund), so a busy ledger holds up neither, nor the user's next update.
        with ledger_failures():
            found = await self._store.read(subscription)
            if found is None:
                return None
            order_id, owed = found
            if owed is None or owed.state == "failed":
                owed = await self._store.write(write)
        if owed is not None:
            self._waiting.pop((owed.order_id, owed.user_id), None)
        return owed

    async def send(self) -> list[PlanCancel]:
        """Ask Telegram for the owed cancellations, each stored as it came out; those asked.

        One Telegram could not take now waits its passes (``LATER_SKIPS_MAX``) before the next.
        """
        async with self._sending:
            with ledger_failures():
                owed = await self._store.read(lambda db: orders.plan_cancels(db, ("owed",)))
            keys = {(cancel.order_id, cancel.user_id) for cancel in owed}
            self._waiting = {key: wait for key, wait in self._waiting.items() if key in keys}
            asked: list[PlanCancel] = []
            for cancel in owed:
                key = (cancel.order_id, cancel.user_id)
                later, skips = self._waiting.get(key, (0, 0))
                if skips > 0:
                    self._waiting[key] = (later, skips - 1)
                    continue
                stored = await self._send_one(cancel)
                if stored.state == "owed":
                    self._waiting[key] = (later + 1, min(2 ** (later + 1) - 1, LATER_SKIPS_MAX))
                else:
                    self._waiting.pop(key, None)
                asked.append(stored)
            return asked

    async def settled(self, payment: Payment) -> PlanCancel | None:
        """The cancellation of the subscription ``payment`` paid, once no pass is sending it."""
        async with self._sending:
            with ledger_failures():
                return await self._store.read(
                    lambda db: orders.plan_cancel(db, payment.order_id, payment.user_id)
                )

    async def unsettled(self) -> list[PlanCancel]:
        """The cancellations owed or failed: refunded plans that may still charge."""
        with ledger_failures():
            return await self._store.read(lambda db: orders.plan_cancels(db, ("owed", "failed")))

    async def subscription_payments(self, payment: Payment) -> list[Payment]:
        """The payments of the subscription ``payment`` paid (refunded too), first booked first.

        Empty for a payment that paid no subscription.
        """
        if not payment.is_recurring:
            return []
        with ledger_failures():
            return await self._store.read(
                lambda db: orders.subscription_payments(db, payment.order_id, payment.user_id)
            )

    async def _send_one(self, cancel: PlanCancel) -> PlanCancel:
        """Ask by each charge that may name the subscription, in turn; store what came of it.

        A subscription is named by its first payment's charge id (Telegram's
        ``payments.botCancelStarsSubscription``, behind ``editUserStarSubscription``, takes
        it). The order's recurring payments are tried first booked first: the one booked first
        is not always the first paid (a first payment the bot missed, booked later by
        ``reconcile --fix``), so a charge Telegram says names none is followed by the next;
        the refunded charge comes last when it is not booked yet (its refund came first).
        """
        key = (cancel.order_id, cancel.user_id)
        with ledger_failures():
            charges = await self._store.read(lambda db: orders.recurring_charges(db, *key))
        if cancel.charge_id not in charges:
            charges.append(cancel.charge_id)
        refusal: Refusal | None = None
        named = charges[0]
        for named in charges:
            refusal = await self._cancel(cancel.user_id, named)
            if refusal is None or not refusal.unnamed:
                break
        if refusal is None:
            log.info("stars.plan_canceled", charge_id=named)
            state: orders.CancelState = "done"
        else:
            log.warning("stars.plan_not_canceled", charge_id=named, error=refusal.reason)
            state = "owed" if refusal.later else "failed"
        reason = None if refusal is None else refusal.reason
        unnamed = refusal is not None and refusal.unnamed
        now = int(self._clock())

        def write(db: Database) -> PlanCancel:
            orders.settle_cancel(
                db, *key, state=state, named=named, reason=reason, unnamed=unnamed, at=now
            )
            stored = orders.plan_cancel(db, *key)
            if stored is None:  # pragma: no cover -- rows are never deleted
                raise LookupError(key)
            return stored

        with ledger_failures():
            return await self._store.write(write)
