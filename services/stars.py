"""Telegram Stars (currency XTR): packs, the monthly plan, orders, payments, refunds.

An invoice's payload is a single-use order id stored as a pending order. Pre-checkout accepts
only the owner's pending, unexpired order at its exact amount. A successful payment is credited
exactly once, in one transaction with its payment row (UNIQUE charge id) and the order marked
paid; a redelivered update changes nothing. A payment that does not match a good order is still
credited (the user paid) and flagged for the admin. Credits are in µ★ (1 Star = 1_000_000).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

import structlog

from models import StorageError
from models import ledger as storage
from models.ledger import Order, Payment, StarTx
from services.errors import BillingError, LedgerUnavailable, OrderRejected

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from models import Database, Store

__all__ = [
    "CURRENCY",
    "PRE_CHECKOUT_REASONS",
    "SUBSCRIPTION_PERIOD",
    "Order",
    "Pack",
    "Payment",
    "PaymentResult",
    "Plan",
    "StarTx",
    "StarsShop",
]

T = TypeVar("T")

log = structlog.get_logger("veil.stars")

CURRENCY: Final = "XTR"
SUBSCRIPTION_PERIOD: Final = 2_592_000  # 30 days, the only period Telegram accepts
MAX_SUBSCRIPTION_STARS: Final = 10_000
ORDER_TTL_S: Final = 3600
# Unpaid orders are deleted this long after they expired (pre-checkout refuses them already).
ORDER_PURGE_AFTER_S: Final = 86_400
ORDER_ID_BYTES: Final = 24  # 32 url-safe characters, well inside the 64 allowed
PRE_CHECKOUT_REASONS: Final = (
    "unknown_order",
    "foreign_order",
    "already_paid",
    "expired",
    "wrong_currency",
    "wrong_amount",
)


@dataclass(frozen=True, slots=True)
class Pack:
    """A pack of credit sold for ``stars``; ``id`` goes into the Buy button's data."""

    id: str
    stars: int
    units: int

    @classmethod
    def parse_list(cls, text: str) -> list[Pack]:
        """Parse ``stars:units,...`` (``50:50000000,250:275000000``); ids are the Star counts.

        Raises ``ValueError`` naming the entry that is wrong.
        """
        packs: list[Pack] = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            stars, sep, units = entry.partition(":")
            try:
                if not sep:
                    raise ValueError
                pack = cls(id=stars.strip(), stars=int(stars), units=int(units))
            except ValueError:
                raise ValueError(f"pack {entry!r} is not stars:units in whole numbers") from None
            if pack.stars <= 0 or pack.units <= 0:
                raise ValueError(f"pack {entry!r}: Stars and units must be positive")
            if any(other.stars == pack.stars for other in packs):
                raise ValueError(f"pack {entry!r}: two packs cost {pack.stars} Stars")
            packs.append(pack)
        return packs


@dataclass(frozen=True, slots=True)
class Plan:
    """The monthly plan: ``stars`` a period, granting ``units`` each time it is paid."""

    stars: int
    units: int
    period: int = SUBSCRIPTION_PERIOD

    def __post_init__(self) -> None:
        if not 0 < self.stars <= MAX_SUBSCRIPTION_STARS:
            raise ValueError(f"a plan costs 1 to {MAX_SUBSCRIPTION_STARS} Stars")
        if self.units <= 0:
            raise ValueError("a plan must grant a positive number of units")


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What recording a payment did: ``new`` is False for a redelivered one (nothing changed).

    ``units`` is what the payment credited; ``flagged`` (with ``flag_reason``, a pre-checkout
    reason code) marks a payment the admin should look at; ``plan`` that it paid the plan.
    """

    new: bool
    units: int
    flagged: bool
    flag_reason: str | None = None
    plan: bool = False


class StarsShop:
    """Sells packs and the plan for Stars, and books payments and refunds in the ledger."""

    def __init__(
        self,
        store: Store,
        packs: Sequence[Pack],
        plan: Plan | None = None,
        *,
        order_ttl: int = ORDER_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not packs and plan is None:
            raise ValueError("the shop needs at least one pack or a plan")
        if len({pack.id for pack in packs}) != len(packs):
            raise ValueError("pack ids must be unique")
        self._store = store
        self.packs: tuple[Pack, ...] = tuple(sorted(packs, key=lambda pack: pack.stars))
        self.plan = plan
        self._order_ttl = order_ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"StarsShop(packs={len(self.packs)}, plan={self.plan is not None})"

    # -- orders ------------------------------------------------------------------------------

    async def create_order(self, user_id: int, pack_id: str) -> Order:
        """Store a pending order for a pack; its id is the invoice payload.

        Raises ``OrderRejected("unknown_pack")`` for a pack that is not (or no longer) sold.
        """
        pack = next((pack for pack in self.packs if pack.id == pack_id), None)
        if pack is None:
            raise OrderRejected("unknown_pack")
        return await self._new_order(user_id, "pack", pack.id, pack.stars, pack.units)

    async def create_plan_order(self, user_id: int) -> Order:
        """Store a pending order for the monthly plan (for ``createInvoiceLink``).

        Raises ``OrderRejected("no_plan")`` when no plan is configured.
        """
        if self.plan is None:
            raise OrderRejected("no_plan")
        return await self._new_order(user_id, "plan", None, self.plan.stars, self.plan.units)

    async def order(self, order_id: str) -> Order | None:
        """The order with this payload, or None."""
        return await self._run(lambda db: storage.get_order(db, order_id))

    async def _new_order(
        self, user_id: int, kind: storage.OrderKind, pack_id: str | None, stars: int, units: int
    ) -> Order:
        now = int(self._clock())
        order = Order(
            id=secrets.token_urlsafe(ORDER_ID_BYTES),
            user_id=user_id,
            kind=kind,
            pack_id=pack_id,
            stars=stars,
            units=units,
            status="pending",
            created_at=now,
            expires_at=now + self._order_ttl,
        )
        await self._run(lambda db: storage.insert_order(db, order))
        return order

    async def purge_expired_orders(self, grace: int = ORDER_PURGE_AFTER_S) -> int:
        """Delete unpaid orders that expired more than ``grace`` seconds ago; how many went.

        Pre-checkout refuses an expired order, so it can no longer be paid; a payment that
        raced it is still credited (and flagged) without its order.
        """
        cutoff = int(self._clock()) - grace
        purged = await self._run(lambda db: storage.purge_orders(db, cutoff))
        if purged:
            log.info("stars.orders_purged", count=purged)
        return purged

    async def check_pre_checkout(
        self, user_id: int, payload: str, currency: str, total_amount: int
    ) -> str | None:
        """None if the checkout may go ahead, else a reason code from ``PRE_CHECKOUT_REASONS``.

        Fast (one indexed read), for answering within Telegram's 10 seconds.
        """
        order = await self.order(payload)
        if order is None:
            return "unknown_order"
        failed = (
            ("foreign_order", order.user_id != user_id),
            ("already_paid", order.status == "paid"),
            ("expired", self._clock() > order.expires_at),
            ("wrong_currency", currency != CURRENCY),
            ("wrong_amount", total_amount != order.stars),
        )
        return next((reason for reason, fails in failed if fails), None)

    # -- payments ----------------------------------------------------------------------------

    async def record_payment(  # noqa: PLR0913 -- the fields of Telegram's successful_payment
        self,
        user_id: int,
        payload: str,
        currency: str,
        total_amount: int,
        charge_id: str,
        *,
        is_recurring: bool = False,
        subscription_expiration: int | None = None,
    ) -> PaymentResult:
        """Book a successful payment: payment row, order paid and ledger credit, atomically.

        A charge id already booked returns ``new=False`` and changes nothing. A payment that
        does not match the user's pending order is credited anyway (the order's units when the
        amount matches, else the Stars at the cheapest pack's rate) and flagged. A plan renewal
        (``is_recurring`` on a paid plan order) credits the plan's units once per charge id.
        """
        if not charge_id:
            raise ValueError("charge_id must not be empty")
        now = int(self._clock())

        def write(db: Database) -> PaymentResult:
            with storage.write_transaction(db):
                existing = storage.get_payment(db, charge_id)
                if existing is not None:
                    order = storage.get_order(db, existing.order_id)
                    return PaymentResult(
                        new=False,
                        units=existing.units,
                        flagged=existing.flagged,
                        flag_reason=existing.flag_reason,
                        plan=order is not None and order.kind == "plan",
                    )
                order = storage.get_order(db, payload)
                reason, units = self._judge(
                    order, user_id, currency, total_amount, is_recurring=is_recurring, now=now
                )
                plan = order is not None and order.kind == "plan"
                storage.insert_payment(
                    db,
                    Payment(
                        charge_id=charge_id,
                        user_id=user_id,
                        order_id=payload,
                        stars=total_amount,
                        units=units,
                        is_recurring=is_recurring,
                        flagged=reason is not None,
                        flag_reason=reason,
                        refunded=False,
                        created_at=now,
                        subscription_expires_at=subscription_expiration,
                    ),
                )
                if order is not None and order.user_id == user_id:
                    storage.mark_order_paid(db, order.id)
                kind: storage.Kind = "subscription" if plan else "purchase"
                if not storage.add_entry(
                    db, user_id, kind, units, source=charge_id, created_at=now
                ):
                    raise BillingError("the charge id is already a ledger source")
                return PaymentResult(
                    new=True, units=units, flagged=reason is not None, flag_reason=reason, plan=plan
                )

        result = await self._run(write)
        if result.new and result.flagged:
            log.warning(
                "stars.payment_flagged",
                user_id=user_id,
                charge_id=charge_id,
                reason=result.flag_reason,
                stars=total_amount,
                units=result.units,
            )
        return result

    def _judge(  # noqa: PLR0911, PLR0913 -- one return per verdict; the payment's fields
        self,
        order: Order | None,
        user_id: int,
        currency: str,
        total_amount: int,
        *,
        is_recurring: bool,
        now: int,
    ) -> tuple[str | None, int]:
        """The flag reason (None if in order) and the units a payment credits."""
        if currency != CURRENCY:
            return "wrong_currency", 0
        if order is None:
            return "unknown_order", self._at_pack_rate(total_amount)
        if order.user_id != user_id:
            return "foreign_order", self._at_pack_rate(total_amount)
        if total_amount != order.stars:
            return "wrong_amount", self._at_pack_rate(total_amount)
        if order.status == "paid":
            renewal = is_recurring and order.kind == "plan"
            return (None if renewal else "already_paid"), order.units
        if now > order.expires_at:
            return "expired", order.units
        return None, order.units

    def _at_pack_rate(self, stars: int) -> int:
        """Stars at the rate of the cheapest pack (or the plan when no pack is sold)."""
        if self.packs:
            cheapest = self.packs[0]
            return stars * cheapest.units // cheapest.stars
        if self.plan is None:  # pragma: no cover -- the constructor requires one of them
            raise BillingError("no pack or plan sets a rate")
        return stars * self.plan.units // self.plan.stars

    async def record_refund(self, user_id: int, charge_id: str) -> bool:
        """Take a refunded payment's credit back (the balance may go negative).

        Returns False, changing nothing, for an unknown charge, another user's, or one already
        refunded.
        """
        now = int(self._clock())

        def write(db: Database) -> bool:
            with storage.write_transaction(db):
                payment = storage.get_payment(db, charge_id)
                if payment is None or payment.user_id != user_id or payment.refunded:
                    return False
                if not storage.add_entry(
                    db,
                    user_id,
                    "refund",
                    -payment.units,
                    source=f"refund:{charge_id}",
                    created_at=now,
                ):
                    raise BillingError("the refund is already a ledger source")
                storage.mark_refunded(db, charge_id)
                return True

        return await self._run(write)

    async def payment(self, charge_id: str) -> Payment | None:
        """The payment with this charge id (for the admin's ``/refund``), or None."""
        return await self._run(lambda db: storage.get_payment(db, charge_id))

    async def plan_until(self, user_id: int) -> int | None:
        """When the user's paid plan period ends (Unix time), or None if never subscribed."""
        return await self._run(lambda db: storage.plan_until(db, user_id))

    async def reconcile(self, transactions: Sequence[StarTx]) -> list[str]:
        """Compare our payments and refunds with Telegram's; one line per difference.

        ``transactions`` must be every Stars transaction with users (all pages of
        ``getStarTransactions``). An empty list means the books agree.
        """
        payments = {p.charge_id: p for p in await self._run(storage.all_payments)}
        paid: dict[str, StarTx] = {}
        refunded: set[str] = set()
        for tx in transactions:
            if tx.is_refund:
                refunded.add(tx.id)
            else:
                paid[tx.id] = tx
        lines: list[str] = []
        for charge_id in sorted(paid.keys() - payments.keys()):
            tx = paid[charge_id]
            lines.append(
                f"payment {charge_id}: {tx.amount} Stars from user {tx.user_id}"
                " is in Telegram's list but not in the ledger"
            )
        for charge_id in sorted(payments.keys() - paid.keys()):
            ours = payments[charge_id]
            lines.append(
                f"payment {charge_id}: {ours.stars} Stars from user {ours.user_id}"
                " is in the ledger but not in Telegram's list"
            )
        for charge_id in sorted(payments.keys() & paid.keys()):
            ours, tx = payments[charge_id], paid[charge_id]
            if ours.stars != tx.amount:
                lines.append(
                    f"payment {charge_id}: the ledger has {ours.stars} Stars, Telegram {tx.amount}"
                )
            if tx.user_id is not None and ours.user_id != tx.user_id:
                lines.append(
                    f"payment {charge_id}: the ledger has user {ours.user_id},"
                    f" Telegram user {tx.user_id}"
                )
        ours_refunded = {p.charge_id for p in payments.values() if p.refunded}
        lines.extend(
            f"refund {charge_id}: Telegram refunded it but the ledger did not take the credit back"
            for charge_id in sorted(refunded - ours_refunded)
        )
        lines.extend(
            f"refund {charge_id}: the ledger took the credit back but Telegram lists no refund"
            for charge_id in sorted(ours_refunded - refunded)
        )
        return lines

    async def fix(self, transactions: Sequence[StarTx]) -> list[str]:
        """Book what Telegram lists but the ledger lacks; one line per change made.

        A payment missing from the ledger is credited (by its charge id, so running this twice
        credits it once; a payment that does not match a good order is flagged as usual); a
        refund Telegram made but the ledger did not is taken back. Other differences are for
        a person to look at (``reconcile``).
        """
        payments = {p.charge_id: p for p in await self._run(storage.all_payments)}
        lines: list[str] = []
        refunds = [tx for tx in transactions if tx.is_refund]
        for tx in transactions:
            if tx.is_refund or tx.id in payments or tx.user_id is None:
                continue
            result = await self.record_payment(
                tx.user_id,
                tx.payload or "",
                CURRENCY,
                tx.amount,
                tx.id,
                is_recurring=tx.subscription,
            )
            if result.new:
                flag = f" (flagged: {result.flag_reason})" if result.flagged else ""
                lines.append(
                    f"credited payment {tx.id}: {tx.amount} Stars from user {tx.user_id},"
                    f" {result.units} µ★{flag}"
                )
        for tx in refunds:
            payment = await self.payment(tx.id)
            if payment is None or payment.refunded:
                continue
            if await self.record_refund(payment.user_id, tx.id):
                lines.append(
                    f"took back refund {tx.id}: {payment.units} µ★ from user {payment.user_id}"
                )
        return lines

    async def _run(self, fn: Callable[[Database], T]) -> T:
        try:
            return await self._store.run(fn)
        except (sqlite3.Error, StorageError) as exc:
            raise LedgerUnavailable("the ledger cannot be used right now") from exc
