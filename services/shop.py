"""The shop: packs of credit and the monthly plan, sold for Telegram Stars (currency XTR).

It makes orders, answers pre-checkout, books payments and refunds into the ledger, and
reconciles its books with Telegram's list of Star transactions. An invoice's payload is a
single-use order id stored as a pending order. Pre-checkout accepts only the owner's pending,
unexpired order at its exact amount. A successful payment is credited exactly once, in one
transaction with its payment row (UNIQUE charge id) and the order marked paid; a redelivered
update changes nothing (but for Telegram's own end of a plan period ``reconcile --fix`` booked
with a reckoned one). A payment that does not match a good order is still credited (the user
paid) and flagged for the admin. Credits are in µ★ (1 Star = 1_000_000). Every change is one
``Store.write``; a storage failure is ``LedgerUnavailable``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import structlog

from models import ledger, orders
from models.ledger import LedgerEntry
from models.orders import Order, Payment
from services.errors import (
    BillingError,
    LedgerUnavailable,
    NoPlan,
    TooManyOrders,
    UnknownPack,
    ledger_failures,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from models import Database, Store
    from models.ledger import Kind
    from models.orders import OrderKind

__all__ = [
    "CURRENCY",
    "MAX_OPEN_ORDERS",
    "ORDER_TTL_S",
    "PAYING_S",
    "RENEWAL_GRACE_S",
    "SUBSCRIPTION_PERIOD",
    "IncomingPayment",
    "Order",
    "Pack",
    "Payment",
    "PaymentResult",
    "Plan",
    "RefundResult",
    "Shop",
    "StarTransaction",
]

log = structlog.get_logger("veil.stars")

CURRENCY: Final = "XTR"
SUBSCRIPTION_PERIOD: Final = 2_592_000  # 30 days, the only period Telegram accepts
MAX_SUBSCRIPTION_STARS: Final = 10_000
ORDER_TTL_S: Final = 3600
# Unpaid orders are deleted this long after they expired (pre-checkout refuses them already).
ORDER_PURGE_AFTER_S: Final = 86_400
# Seconds after an order's pre-checkout was approved during which another is refused: its
# payment is on its way (Telegram takes it within seconds of the approval), and the same invoice
# paid on a second device meanwhile was a second charge for one order. After it (a payment that
# never came) the order may be paid again, and that approval opens a window of its own: each
# approval counts, the latest too, not only the first.
PAYING_S: Final = 60
# How long after a plan's period ended its renewal is waited for: Telegram charges the next
# period at the end of this one, and its payment may reach the bot minutes or hours later.
# Meanwhile the plan button sends no new link and pre-checkout refuses a plan order
# (``plan_renewal_due``): paid, it was a second subscription beside the one renewing. A plan
# cancelled in Telegram (the bot is not told) can be subscribed to here again after it.
RENEWAL_GRACE_S: Final = 86_400
# The flag of a subscription payment (first or renewal) made while another subscription of the
# user's has a period running: two plans, each charging every 30 days. Credited, and paying its
# order, as any; the admins are told, and their /refund of it cancels that subscription.
SECOND_PLAN: Final = "second_plan"
# The flag of a subscription payment booked after its subscription's cancellation (a refund's)
# was answered: Telegram charged it before the cancel took (delivered after the admin's /refund
# was answered, or booked by ``reconcile --fix``), or the cancel was refused. Credited, as any;
# the admins are told, who read "Telegram will not charge the user for it again" before.
REFUNDED_PLAN: Final = "refunded_plan"
ORDER_ID_BYTES: Final = 24  # 32 url-safe characters, well inside the 64 allowed
# A user's unpaid orders that have not expired (an hour's presses of "buy"); one more is
# refused with a polite word. Nobody pays this many invoices in an hour; a script that presses
# the button thousands of times would otherwise store a row for each, kept for days.
MAX_OPEN_ORDERS: Final = 20


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
    ``refunded`` marks a payment whose refund was booked before it: its credit was taken back
    in the transaction that credited it. ``taken_back`` marks a payment refunded by now, either
    way (a redelivered payment whose refund was booked since it was credited, say).
    """

    new: bool
    units: int
    flagged: bool
    flag_reason: str | None = None
    plan: bool = False
    refunded: bool = False
    taken_back: bool = False


@dataclass(frozen=True, slots=True)
class RefundResult:
    """What booking a refund did.

    ``new`` is whether the credit was taken back just now; ``applies`` whether this refund's
    booking is the one to tell the user: False for a refund of a charge the ledger does not
    have (kept, so the payment's booking takes it back and tells it), another user's, or one
    booked before its payment. ``units`` is the payment's credit (0 without one) and
    ``paid_at`` when the payment was booked (None without one).
    """

    new: bool
    applies: bool
    units: int = 0
    paid_at: int | None = None


@dataclass(frozen=True, slots=True)
class IncomingPayment:
    """A successful payment as Telegram reports it (``successful_payment``), to be booked.

    ``payload`` is the invoice payload (our order id), ``amount`` in the currency's whole units
    (Stars), ``charge_id`` Telegram's charge id; ``is_recurring`` marks a plan's payment and
    ``subscription_expires_at`` (Unix time) when its period ends. ``reckoned`` marks an end the
    bot worked out (``reconcile --fix``: the transaction's date plus its period) rather than
    Telegram's own ``subscription_expiration_date``: the live update, if it comes later, puts
    Telegram's in its place, never the other way round.
    """

    user_id: int
    payload: str
    currency: str
    amount: int
    charge_id: str
    is_recurring: bool = False
    subscription_expires_at: int | None = None
    reckoned: bool = False


@dataclass(frozen=True, slots=True)
class StarTransaction:
    """One Stars transaction with a user, as Telegram's ``getStarTransactions`` lists it.

    ``id`` is the charge id (a refund carries its payment's id), ``amount`` whole Stars,
    ``payload`` the invoice payload Telegram reports with it (our order id), if any;
    ``subscription`` whether it paid a subscription period, and ``subscription_expires_at``
    when that period ends (its ``date`` plus the source's ``subscription_period``; Telegram's
    list gives no end of its own).
    """

    id: str
    amount: int
    is_refund: bool
    user_id: int | None = None
    payload: str | None = None
    subscription: bool = False
    subscription_expires_at: int | None = None


def _paying(now: int, approved_at: int) -> bool:
    """Whether an approval at ``approved_at`` is within ``PAYING_S`` of ``now``, either side.

    An approval stamped by a clock ahead (another replica's, or this one's before NTP set it
    right) lies in the future: judged one way only, its window lasted the whole lead too.
    """
    return abs(now - approved_at) < PAYING_S


class Shop:
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
        return f"Shop(packs={len(self.packs)}, plan={self.plan is not None})"

    # -- orders ------------------------------------------------------------------------------

    async def create_order(self, user_id: int, pack_id: str) -> Order:
        """Store a pending order for a pack; its id is the invoice payload.

        Raises ``UnknownPack`` for a pack that is not (or no longer) sold.
        """
        pack = next((pack for pack in self.packs if pack.id == pack_id), None)
        if pack is None:
            raise UnknownPack
        return await self._new_order(user_id, "pack", pack.id, pack.stars, pack.units)

    async def create_plan_order(self, user_id: int) -> Order:
        """Store a pending order for the monthly plan (for ``createInvoiceLink``).

        Raises ``NoPlan`` when no plan is configured.
        """
        if self.plan is None:
            raise NoPlan
        return await self._new_order(user_id, "plan", None, self.plan.stars, self.plan.units)

    async def order(self, order_id: str) -> Order | None:
        """The order with this payload, or None."""
        with ledger_failures():
            return await self._store.read(lambda db: orders.get_order(db, order_id))

    async def _new_order(
        self, user_id: int, kind: OrderKind, pack_id: str | None, stars: int, units: int
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

        def write(db: Database) -> bool:
            if orders.open_orders(db, user_id, now) >= MAX_OPEN_ORDERS:
                return False
            orders.insert_order(db, order)
            return True

        with ledger_failures():
            stored = await self._store.write(write)
        if not stored:
            log.warning("stars.orders_capped", user_id=user_id, open=MAX_OPEN_ORDERS)
            raise TooManyOrders
        return order

    async def purge_expired_orders(self, grace: int = ORDER_PURGE_AFTER_S) -> int:
        """Delete unpaid orders that expired more than ``grace`` seconds ago; how many went.

        Pre-checkout refuses an expired order, so it can no longer be paid; a payment that
        raced it is still credited (and flagged) without its order.
        """
        cutoff = int(self._clock()) - grace
        with ledger_failures():
            purged = await self._store.write(lambda db: orders.purge_orders(db, cutoff))
        if purged:
            log.info("stars.orders_purged", count=purged)
        return purged

    async def check_pre_checkout(
        self, user_id: int, payload: str, currency: str, total_amount: int
    ) -> str | None:
        """None if the checkout may go ahead, else why not: a reason code (``unknown_order``…).

        An order approved less than ``PAYING_S`` ago is refused (``being_paid``): the invoice
        paid on the phone and on the laptop at once was charged twice (both credited, the
        second flagged). The window runs from the latest approval: one anchored on the first
        let a double payment through after a failed attempt more than a minute old.

        A plan order is refused while the user's plan runs (``plan_active``): a second plan
        link (the plan button pressed on the phone and on the laptop) paid as well subscribed
        them twice, two charges every 30 days for one plan. Renewals come without a
        pre-checkout, and a plan cancelled in Telegram is renewed there. For
        ``RENEWAL_GRACE_S`` after a renewing plan's end its renewal is awaited
        (``plan_renewal_due``): Telegram's payment for the next period may come hours late,
        and a plan order paid meanwhile was a second subscription. Nor may a plan order be
        paid within ``PAYING_S`` of another's approval (``plan_being_paid``): the two links
        paid in the same minute, before the first payment was booked, were two subscriptions
        too.

        Fast (an indexed read or two, and one write for an approval), for answering within
        Telegram's 10 seconds. An approval is recorded on the order, so that its payment is
        not judged expired when it lands after the order's expiry; a ledger too busy to record
        it does not refuse the checkout (the payment would at worst be flagged ``expired``).
        """
        order = await self.order(payload)
        if order is None:
            return "unknown_order"
        now = int(self._clock())
        plan = order.kind == "plan"
        until = await self.plan_running(user_id) if plan else None
        due = await self.renewal_due(user_id) if plan and until is None else None
        another = plan and await self._plan_being_paid(user_id, order.id, now)
        last = order.last_approved_at
        failed = (
            ("foreign_order", order.user_id != user_id),
            ("already_paid", order.status == "paid"),
            ("being_paid", last is not None and _paying(now, last)),
            ("plan_active", until is not None),
            ("plan_renewal_due", due is not None),
            ("plan_being_paid", another),
            ("expired", now > order.expires_at),
            ("wrong_currency", currency != CURRENCY),
            ("wrong_amount", total_amount != order.stars),
        )
        reason = next((reason for reason, fails in failed if fails), None)
        if reason is None:
            try:
                with ledger_failures():
                    reason = await self._store.write(lambda db: _approve(db, order, now))
            except LedgerUnavailable:
                log.warning("stars.approval_unrecorded", user_id=user_id)
        return reason

    async def _plan_being_paid(self, user_id: int, order_id: str, now: int) -> bool:
        """Whether another plan order of the user's was approved within ``PAYING_S``, unpaid."""
        since, until = now - PAYING_S + 1, now + PAYING_S - 1
        with ledger_failures():
            return await self._store.read(
                lambda db: orders.plan_being_paid(db, user_id, since, until, order_id)
            )

    async def approval_lost(self, payload: str) -> None:
        """The approval just given for ``payload`` never reached Telegram: take it back.

        Refused as too late (the bot slow) or held by a flood wait, it opened no payment, and
        Telegram told the user theirs failed; kept, it refused their tap of Pay again for
        ``PAYING_S`` as "being paid already". Only an approval inside that window is taken
        back: an earlier one, whose payment may yet come, was answered already. Never raises
        (a ledger too busy leaves the window to close by itself).
        """
        since = int(self._clock()) - PAYING_S
        try:
            with ledger_failures():
                await self._store.write(lambda db: orders.withdraw_approval(db, payload, since))
        except LedgerUnavailable:
            log.warning("stars.approval_kept")

    # -- payments ----------------------------------------------------------------------------

    async def record_payment(self, paid: IncomingPayment) -> PaymentResult:
        """Book a successful payment: payment row, order paid and ledger credit, atomically.

        A charge id already booked returns ``new=False`` and changes nothing, except a plan
        period's end ``reconcile --fix`` reckoned, which Telegram's own end (the live update's,
        come after all) replaces. A payment that does not match the user's pending order is
        credited anyway (the order's units when the amount matches, else the Stars at the
        cheapest pack's rate) and flagged. A plan renewal
        (``is_recurring`` on a paid plan order) credits the plan's units once per charge id.
        """
        if not paid.charge_id:
            raise ValueError("charge_id must not be empty")
        now = int(self._clock())

        def write(db: Database) -> PaymentResult:
            existing = orders.get_payment(db, paid.charge_id)
            if existing is not None:
                _telegrams_end(db, existing, paid)
                order = orders.get_order(db, existing.order_id)
                return PaymentResult(
                    new=False,
                    units=existing.units,
                    flagged=existing.flagged,
                    flag_reason=existing.flag_reason,
                    plan=order is not None and order.kind == "plan",
                    refunded=existing.refunded
                    and orders.early_refund(db, paid.charge_id, paid.user_id),
                    taken_back=existing.refunded,
                )
            order = orders.get_order(db, paid.payload)
            reason, units = self._judge(order, paid, now)
            if reason is None and paid.is_recurring:
                reason = _subscription_flag(db, paid, now)
            plan = order is not None and order.kind == "plan"
            orders.insert_payment(
                db,
                Payment(
                    charge_id=paid.charge_id,
                    user_id=paid.user_id,
                    order_id=paid.payload,
                    stars=paid.amount,
                    units=units,
                    is_recurring=paid.is_recurring,
                    flagged=reason is not None,
                    flag_reason=reason,
                    refunded=False,
                    created_at=now,
                    subscription_expires_at=paid.subscription_expires_at,
                ),
            )
            if reason in {
                None,
                "expired",
                SECOND_PLAN,
                REFUNDED_PLAN,
            }:  # Stars of its price, from its user
                # Only such a payment pays the order: one in another currency or of another
                # amount is credited for what it was, and leaves the order payable (its real
                # payment was refused at pre-checkout as already paid).
                orders.mark_order_paid(db, paid.payload)
            kind: Kind = "subscription" if plan else "purchase"
            if not ledger.record(db, LedgerEntry(paid.user_id, kind, units, paid.charge_id, now)):
                raise BillingError("the charge id is already a ledger source")
            # Its refund was booked first (in a transaction of its own, before this one took
            # the write lock): the credit goes back in this same transaction.
            refunded = orders.early_refund(db, paid.charge_id, paid.user_id)
            if refunded:
                plan_order = paid.payload if paid.is_recurring else None
                _take_back(db, paid.user_id, paid.charge_id, units, now, plan_order=plan_order)
            return PaymentResult(
                new=True,
                units=units,
                flagged=reason is not None,
                flag_reason=reason,
                plan=plan,
                refunded=refunded,
                taken_back=refunded,
            )

        with ledger_failures():
            result = await self._store.write(write)
        if result.new and result.refunded:
            log.warning("journal.refund_before_payment", charge_id=paid.charge_id)
        if result.new and result.flagged:
            log.warning(
                "stars.payment_flagged",
                user_id=paid.user_id,
                charge_id=paid.charge_id,
                reason=result.flag_reason,
                stars=paid.amount,
                units=result.units,
            )
        return result

    def _judge(  # noqa: PLR0911 -- one return per verdict
        self, order: Order | None, paid: IncomingPayment, now: int
    ) -> tuple[str | None, int]:
        """The flag reason (None if in order) and the units a payment credits."""
        if paid.currency != CURRENCY:
            return "wrong_currency", 0
        if order is None:
            return "unknown_order", self._at_pack_rate(paid.amount)
        if order.user_id != paid.user_id:
            return "foreign_order", self._at_pack_rate(paid.amount)
        if paid.amount != order.stars:
            return "wrong_amount", self._at_pack_rate(paid.amount)
        if order.status == "paid":
            renewal = paid.is_recurring and order.kind == "plan"
            return (None if renewal else "already_paid"), order.units
        approved_in_time = order.approved_at is not None and order.approved_at <= order.expires_at
        if now > order.expires_at and not approved_in_time:
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

        Returns False, changing nothing in the ledger, for an unknown charge (its refund is
        kept for its payment's booking: ``book_refund``), another user's, or one already
        refunded.
        """
        return (await self.book_refund(user_id, charge_id)).new

    async def book_refund(self, user_id: int, charge_id: str) -> RefundResult:
        """Take a refunded payment's credit back, deciding in one write transaction.

        A refund of a charge the ledger has no payment for is kept (``early_refunds``): the
        payment's booking takes the credit back when it comes. The write lock orders this
        transaction and the payment's, so whichever comes second sees the other, and the
        credit is taken back exactly once, however the two replicas that book them interleave.
        """
        now = int(self._clock())

        def write(db: Database) -> RefundResult:
            payment = orders.get_payment(db, charge_id)
            if payment is None:
                orders.record_early_refund(db, charge_id, user_id, now)
                return RefundResult(new=False, applies=False)
            if payment.user_id != user_id:
                return RefundResult(new=False, applies=False, units=payment.units)
            if payment.refunded:
                # Taken back before: by this refund (it tells), or by its payment's booking
                # because this refund came first (that booking tells).
                first = orders.early_refund(db, charge_id, user_id)
                return RefundResult(
                    new=False, applies=not first, units=payment.units, paid_at=payment.created_at
                )
            plan_order = payment.order_id if payment.is_recurring else None
            _take_back(db, user_id, charge_id, payment.units, now, plan_order=plan_order)
            return RefundResult(
                new=True, applies=True, units=payment.units, paid_at=payment.created_at
            )

        with ledger_failures():
            return await self._store.write(write)

    async def payment(self, charge_id: str) -> Payment | None:
        """The payment with this charge id (for the admin's ``/refund``), or None."""
        with ledger_failures():
            return await self._store.read(lambda db: orders.get_payment(db, charge_id))

    async def plan_until(self, user_id: int) -> int | None:
        """When the user's paid plan period ends (Unix time), or None if never subscribed."""
        with ledger_failures():
            return await self._store.read(lambda db: orders.plan_until(db, user_id))

    async def plan_running(self, user_id: int) -> int | None:
        """When the user's plan period ends (Unix time) if it has not yet; None otherwise."""
        until = await self.plan_until(user_id)
        return until if until is not None and until > int(self._clock()) else None

    async def renewal_due(self, user_id: int) -> int | None:
        """When the user's plan ended, while its renewal is awaited; None otherwise.

        Awaited for ``RENEWAL_GRACE_S`` after the end of a plan that renews by itself (paid by
        a subscription that was not refunded, so not cancelled by the bot).
        """
        now = int(self._clock())

        def read(db: Database) -> int | None:
            until = orders.plan_until(db, user_id)
            if until is None or not until <= now < until + RENEWAL_GRACE_S:
                return None
            return until if orders.renewal_expected(db, user_id) else None

        with ledger_failures():
            return await self._store.read(read)

    async def reconcile(self, transactions: Sequence[StarTransaction]) -> list[str]:
        """Compare our payments and refunds with Telegram's; one line per difference.

        ``transactions`` must be every Stars transaction with users (all pages of
        ``getStarTransactions``). An empty list means the books agree.
        """
        payments = {p.charge_id: p for p in await self.payments()}
        paid: dict[str, StarTransaction] = {}
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

    async def fix(self, transactions: Sequence[StarTransaction]) -> list[str]:
        """Book what Telegram lists but the ledger lacks; one line per change made.

        A payment missing from the ledger is credited (by its charge id, so running this twice
        credits it once; a payment that does not match a good order is flagged as usual, and
        one whose refund was booked before it is taken back as it is credited); a refund
        Telegram made but the ledger did not is taken back. Other differences are for
        a person to look at (``reconcile``).
        """
        payments = {p.charge_id: p for p in await self.payments()}
        lines: list[str] = []
        refunds = [tx for tx in transactions if tx.is_refund]
        for tx in transactions:
            if tx.is_refund or tx.id in payments or tx.user_id is None:
                continue
            result = await self.record_payment(
                IncomingPayment(
                    tx.user_id,
                    tx.payload or "",
                    CURRENCY,
                    tx.amount,
                    tx.id,
                    is_recurring=tx.subscription,
                    subscription_expires_at=tx.subscription_expires_at,
                    reckoned=True,
                )
            )
            if result.new:
                flag = f" (flagged: {result.flag_reason})" if result.flagged else ""
                lines.append(
                    f"credited payment {tx.id}: {tx.amount} Stars from user {tx.user_id},"
                    f" {result.units} µ★{flag}"
                )
            if result.new and result.refunded:  # its refund was booked first: taken back with it
                lines.append(f"took back refund {tx.id}: {result.units} µ★ from user {tx.user_id}")
        for tx in refunds:
            payment = await self.payment(tx.id)
            if payment is None or payment.refunded:
                continue
            if await self.record_refund(payment.user_id, tx.id):
                lines.append(
                    f"took back refund {tx.id}: {payment.units} µ★ from user {payment.user_id}"
                )
        return lines

    async def payments(self) -> list[Payment]:
        """Every payment, oldest first (``reconcile``)."""
        with ledger_failures():
            return await self._store.read(orders.all_payments)


def _approve(db: Database, order: Order, now: int) -> str | None:
    """Record the approval of ``order``, unless one came in since it was judged; the refusal.

    Judged on reads of their own, two pre-checkouts handled at once (the invoice paid on the
    phone and on the laptop, or two plan links) both found no approval and both were approved:
    two charges, or two subscriptions. Under the write lock, what another approval or payment
    changed meanwhile is looked at again.
    """
    current = orders.get_order(db, order.id)
    if current is None:  # purged meanwhile: expired long ago
        return "expired"
    last = current.last_approved_at
    if current.status == "paid":
        return "already_paid"
    if last is not None and _paying(now, last):
        return "being_paid"
    if current.kind == "plan":
        until = orders.plan_until(db, order.user_id)
        if until is not None and until > now:
            return "plan_active"
        window = (now - PAYING_S + 1, now + PAYING_S - 1)
        if orders.plan_being_paid(db, order.user_id, *window, order.id):
            return "plan_being_paid"
    orders.mark_order_approved(db, order.id, now)
    return None


def _telegrams_end(db: Database, booked: Payment, paid: IncomingPayment) -> None:
    """Telegram's own end of a booked plan period in place of the one reckoned for it.

    ``reconcile --fix`` books a missed plan payment with its transaction's date plus its
    period; the live ``successful_payment``, if Telegram delivers it after all, carries
    Telegram's ``subscription_expiration_date``, which is the end Telegram charges by. Only the
    end changes (nothing is credited again); a reckoned end never replaces a booked one.
    """
    end = paid.subscription_expires_at
    if paid.reckoned or end is None or end == booked.subscription_expires_at:
        return
    if booked.is_recurring:
        orders.set_subscription_end(db, booked.charge_id, end)
        log.info(
            "stars.plan_end_corrected",
            charge_id=booked.charge_id,
            shift_s=end - (booked.subscription_expires_at or end),
        )


def _subscription_flag(db: Database, paid: IncomingPayment, now: int) -> str | None:
    """The flag of a subscription payment otherwise in order, for the admins; None if none.

    A second subscription beside one running (an old plan's renewal after a new plan was
    bought): each charges every 30 days. Or a payment of a subscription whose cancellation a
    refund asked and Telegram answered: charged before the cancel took, the admin told it
    would charge no more.
    """
    if orders.other_subscription_runs(db, paid.user_id, paid.payload, now):
        return SECOND_PLAN
    if orders.cancel_settled(db, paid.payload, paid.user_id, paid.charge_id):
        return REFUNDED_PLAN
    return None


def _take_back(  # noqa: PLR0913 -- the refund and the subscription it ends
    db: Database, user_id: int, charge_id: str, units: int, now: int, *, plan_order: str | None
) -> None:
    """The refund's ledger row and the payment marked refunded (inside the caller's write).

    A refunded subscription payment (``plan_order`` its order) owes its subscription's
    cancellation, stored in the same transaction (``services.shop_cancel``): a crash after
    this write and before Telegram was asked leaves it owed, and the next pass sends it.
    """
    if not ledger.record(db, LedgerEntry(user_id, "refund", -units, f"refund:{charge_id}", now)):
        raise BillingError("the refund is already a ledger source")
    orders.mark_refunded(db, charge_id)
    if plan_order is not None:
        orders.owe_cancel(db, plan_order, user_id, charge_id, now)
