"""The TON books: each incoming transfer recorded once, credited at its order's rate or kept.

``book`` records a transfer under its transaction hash (UNIQUE) and, in the same transaction,
credits the ledger (``ton:<hash>``, also UNIQUE): a transfer seen twice (a restart, a page
read again) changes nothing. What happens to a transfer is ``services.ton.rules``' to say
(``dust``, ``credited`` at its order's rate (a part of it, or more after it was paid, at what
it buys as a pack), or ``unmatched`` for the admins to ``assign``);
what the watcher remembers of the chain (cursors, skipped transfers) is ``ChainMemory``'s, which
``TonBooks`` is.

Every credit is one ledger row written by ``rules.credit``; the balance after it is read in the
same transaction, for the message to the user. Whether the user was told is kept with the payment,
so a message lost to a crash or a Telegram outage is sent later (``unnotified``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from models import ledger
from models import ton as storage
from services.errors import ledger_failures
from services.ton.errors import (
    PaymentAmbiguous,
    PaymentNotFound,
    PaymentNotUnmatched,
    PaymentUnpriced,
)
from services.ton.memory import SKIPPED_KEPT_S, ChainMemory
from services.ton.rules import assigned_order, credit, judge, quiet_below
from services.ton.shop import format_amount

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from models import Database, Store
    from models.ton import Asset, TonOrder, TonPayment, TonTotals
    from services.ton.chain import Transfer
    from services.ton.shop import TonShop

__all__ = [
    "NOTICE_CLAIM_S",
    "ORDER_PURGE_AFTER_S",
    "SKIPPED_KEPT_S",
    "TonBooking",
    "TonBooks",
]

log = structlog.get_logger("veil.ton")

ORDER_PURGE_AFTER_S = 30 * 86_400  # unpaid orders are kept a month past expiry, then deleted
MIN_HASH_PREFIX = 8
# A watcher's claim to tell a payment's user lapses after this long (seconds) unless renewed
# (the watcher telling renews it every third of that): a watcher that died telling holds it
# no longer than this; then another replica's watcher tells.
NOTICE_CLAIM_S = 300


@dataclass(frozen=True, slots=True)
class TonBooking:
    """What booking (or assigning) one payment did; ``new`` is False when it was known already.

    ``balance`` is the user's balance right after (0 when no user is named), ``received`` what
    the order has had in all, ``language`` the one to speak to the user in, ``quiet_below``
    the amount of the payment's asset under which one beside its order's own is credited
    without a message (``rules.quiet_below``; 0: none).
    """

    payment: TonPayment
    new: bool
    balance: int = 0
    order: TonOrder | None = None
    received: int = 0
    language: str | None = None
    quiet_below: int = 0


class TonBooks(ChainMemory):
    """Records TON transfers, credits them once, and keeps the rest for the admins."""

    def __init__(
        self,
        store: Store,
        shop: TonShop,
        dust: Mapping[Asset, int],
        clock: Callable[[], float] = time.time,
        *,
        notice_claim: int = NOTICE_CLAIM_S,
    ) -> None:
        super().__init__(store, dust, clock)
        self.shop = shop
        # How long a claim to tell lasts unless renewed; the watcher renews it every third.
        self.notice_claim = notice_claim

    def __repr__(self) -> str:
        return "TonBooks()"

    # -- booking -----------------------------------------------------------------------------

    async def book(self, transfer: Transfer) -> TonBooking:
        """Record an incoming transfer and credit it if it pays an order (once per hash)."""
        if transfer.skip is not None:
            raise ValueError("a skipped transfer brings no money to book")
        now = int(self._clock())
        packs = self._packs(transfer.asset)

        def write(db: Database) -> TonBooking:
            known = storage.get_payment(db, transfer.hash)
            if known is not None:
                return self._booking(db, known, new=False)
            payment = judge(db, transfer, self._dust, now, packs)
            storage.insert_payment(db, payment)
            if payment.status == "credited" and payment.user_id is not None:
                credit(db, payment, now)
            return self._booking(db, payment, new=True)

        with ledger_failures():
            booking = await self._store.write(write)
        if booking.new:
            payment = booking.payment
            if transfer.unread:
                # Not parsed (``chain.MAX_BODY_CHARS``): any comment in it is not read.
                log.warning(
                    "ton.body_too_large",
                    asset=payment.asset,
                    tx=payment.hash,
                    chars=transfer.unread,
                )
            log.info(
                "ton.payment_recorded",
                asset=payment.asset,
                tx=payment.hash,
                status=payment.status,
                reason=payment.reason,
                amount=payment.amount,
                units=payment.units,
            )  # never the payer's user id: the hash is public, and names their wallet
        return booking

    def _packs(self, asset: Asset) -> list[tuple[int, int]]:
        """(amount, µ★) of each of the asset's packs sold now, cheapest first."""
        return [(pack.amount, pack.units) for pack in self.shop.packs(asset)]

    def _booking(self, db: Database, payment: TonPayment, *, new: bool) -> TonBooking:
        order = None if payment.order_id is None else storage.get_order(db, payment.order_id)
        user = payment.user_id
        return TonBooking(
            quiet_below=quiet_below(self._packs(payment.asset)),
            payment=payment,
            new=new,
            balance=0 if user is None else ledger.balance(db, user),
            order=order,
            received=0 if order is None else storage.received(db, order.id),
            language=(
                order.language
                if order is not None and order.user_id == user
                else (None if user is None else storage.latest_language(db, user))
            ),
        )

    # -- the admins' tools -------------------------------------------------------------------

    async def assign(self, hash_prefix: str, user_id: int, *, admin: int) -> TonBooking:
        """Credit an unmatched payment to ``user_id`` (the admin looked into it).

        ``hash_prefix`` is at least 8 hex digits of the transaction hash. The rate is its
        order's when the payment named one of the same asset (of those a ``two_orders`` payment
        named, the one ``rules.assigned_order`` picks), else the cheapest pack's of its asset.
        Raises a ``PaymentNotAssignable``: ``PaymentNotFound``, ``PaymentAmbiguous``,
        ``PaymentNotUnmatched``, or ``PaymentUnpriced`` (no pack of its asset is sold now).
        """
        prefix = hash_prefix.strip().lower()
        if len(prefix) < MIN_HASH_PREFIX or any(ch not in "0123456789abcdef" for ch in prefix):
            raise PaymentNotFound
        now = int(self._clock())

        def write(db: Database) -> TonBooking:
            found = storage.find_payments(db, prefix)
            if not found:
                raise PaymentNotFound
            if len(found) > 1:
                raise PaymentAmbiguous
            (payment,) = found
            if payment.status != "unmatched":
                raise PaymentNotUnmatched
            order = assigned_order(db, payment, user_id)
            rate: tuple[int, int] | None = self.shop.fallback_rate(payment.asset)
            if order is not None:
                rate = (order.amount, order.units)
            if rate is None:
                raise PaymentUnpriced
            storage.assign_payment(
                db,
                payment.hash,
                user_id=user_id,
                units=payment.amount * rate[1] // rate[0],
                rate=rate,
                admin=admin,
                now=now,
            )
            assigned = storage.get_payment(db, payment.hash)
            if assigned is None:  # pragma: no cover -- updated in this transaction
                raise PaymentNotFound
            credit(db, assigned, now)
            return self._booking(db, assigned, new=True)

        with ledger_failures():
            booking = await self._store.write(write)
        log.info(
            "ton.payment_assigned",
            tx=booking.payment.hash,
            admin=admin,  # not the payer's user id, as above
            units=booking.payment.units,
        )
        return booking

    async def unmatched(self, limit: int = 10) -> list[TonPayment]:
        """The newest payments kept for the admins."""
        with ledger_failures():
            return await self._store.read(lambda db: storage.payments(db, "unmatched", limit=limit))

    async def recorded(self) -> list[TonPayment]:
        """Every recorded payment (for ``reconcile``), newest first."""
        with ledger_failures():
            return await self._store.read(storage.payments)

    async def totals(self) -> TonTotals:
        """Counts and amounts for ``/stats`` and the audit."""
        with ledger_failures():
            return await self._store.read(storage.totals)

    # -- telling users -----------------------------------------------------------------------

    async def unnotified(self) -> list[TonBooking]:
        """Credited payments whose user has not been told yet, with their balances now.

        Those another watcher is telling (``claim_notice``) are left out.
        """
        now = int(self._clock())

        def read(db: Database) -> list[TonBooking]:
            return [self._booking(db, p, new=True) for p in storage.unnotified(db, now)]

        with ledger_failures():
            return await self._store.read(read)

    async def claim_notice(self, tx_hash: str) -> int | None:
        """Take the right to tell this payment's user; None if told already or another has it.

        Webhook replicas each run a watcher on one database: the one holding the claim tells,
        the others leave the payment alone until it lapses (``NOTICE_CLAIM_S``, a replica that
        died telling). The claim's end is returned, to renew it (``renew_notice``) or let go of
        it (``release_notice``).
        """
        now = int(self._clock())
        until = now + self.notice_claim
        with ledger_failures():
            claimed = await self._store.write(
                lambda db: storage.claim_notice(db, tx_hash, now, until)
            )
        return until if claimed else None

    async def renew_notice(self, tx_hash: str, held: int) -> int | None:
        """Hold the claim taken until ``held`` for ``notice_claim`` from now; its new end.

        None when it is not this watcher's any more (it lapsed, and another watcher took it).
        """
        until = int(self._clock()) + self.notice_claim
        with ledger_failures():
            renewed = await self._store.write(
                lambda db: storage.renew_notice(db, tx_hash, held, until)
            )
        return until if renewed else None

    async def release_notice(self, tx_hash: str, until: int) -> None:
        """Let go of a claim to tell (Telegram could not take the message now)."""
        with ledger_failures():
            await self._store.write(lambda db: storage.release_notice(db, tx_hash, until))

    async def release_notices(self) -> int:
        """Let go of every claim to tell: a process alone on its data, starting after a crash."""
        with ledger_failures():
            return await self._store.write(storage.release_notices)

    async def notified(self, tx_hash: str) -> None:
        """The user was told about this payment."""
        with ledger_failures():
            await self._store.write(lambda db: storage.mark_notified(db, tx_hash))

    async def purge_orders(self, grace: int = ORDER_PURGE_AFTER_S) -> int:
        """Delete unpaid orders that expired more than ``grace`` seconds ago; how many went."""
        cutoff = int(self._clock()) - grace
        with ledger_failures():
            purged = await self._store.write(lambda db: storage.purge_orders(db, cutoff))
        if purged:
            log.info("ton.orders_purged", count=purged)
        return purged

    # -- reconciling with the chain ----------------------------------------------------------

    async def reconcile(self, transfers: Sequence[Transfer]) -> list[str]:
        """Compare the chain's incoming transfers with the recorded ones; a line a difference.

        ``transfers`` must be every transfer since each watcher began (all pages).
        """
        recorded = {payment.hash: payment for payment in await self.recorded()}
        lines: list[str] = []
        on_chain: set[str] = set()
        for transfer in transfers:
            if transfer.skip is not None:
                continue
            on_chain.add(transfer.hash)
            ours = recorded.get(transfer.hash)
            if ours is None:
                lines.append(
                    f"ton {transfer.hash}: {format_amount(transfer.asset, transfer.amount)}"
                    f" (lt {transfer.lt}) is on the chain but not recorded"
                )
            elif (ours.amount, ours.asset) != (transfer.amount, transfer.asset):
                lines.append(
                    f"ton {transfer.hash}: recorded {format_amount(ours.asset, ours.amount)},"
                    f" the chain says {format_amount(transfer.asset, transfer.amount)}"
                )
        lines.extend(
            f"ton {tx_hash}: recorded ({format_amount(payment.asset, payment.amount)},"
            f" {payment.status}) but not on the chain"
            for tx_hash, payment in sorted(recorded.items())
            if tx_hash not in on_chain
        )
        return lines

    async def fix(self, transfers: Sequence[Transfer]) -> list[TonBooking]:
        """Book the chain's transfers that are not recorded yet (each once); the new bookings."""
        bookings = [await self.book(t) for t in transfers if t.skip is None]
        return [booking for booking in bookings if booking.new]
