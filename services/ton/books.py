"""The TON books: each incoming transfer recorded once, credited at its order's rate or kept.

``book`` records a transfer under its transaction hash (UNIQUE) and, in the same transaction,
credits the ledger (``ton:<hash>``, also UNIQUE): a transfer seen twice (a restart, a page
read again) changes nothing. What happens to a transfer:

- below the asset's dust minimum: recorded ``dust``, never credited;
- its comment names an order of the same asset that is not paid in full yet: ``credited``
  with what actually arrived at the order's rate (``underpaid`` or ``overpaid`` when it is not
  the exact rest; ``late`` after the order expired — credited all the same);
- no comment, a comment that names no order (or one for the other asset, or two orders), or
  an order already paid in full: recorded ``unmatched`` for the admins, who can ``assign`` it
  to a user (at the rate of the order it named, or of the one of two it most likely paid,
  else at the cheapest pack's).

Every credit is one ledger row written by ``_credit``; the balance after it is read in the same
transaction, for the message to the user. Whether the user was told is kept with the payment,
so a message lost to a crash or a Telegram outage is sent later (``unnotified``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import structlog

from models import ledger
from models import ton as storage
from models.ledger import LedgerEntry
from models.ton import LEDGER_PREFIX, Asset, TonCursor, TonOrder, TonPayment, TonTotals
from services.errors import BillingError, ledger_failures
from services.ton.errors import (
    PaymentAmbiguous,
    PaymentNotFound,
    PaymentNotUnmatched,
    PaymentUnpriced,
)
from services.ton.shop import CURSOR_MARGIN_S, comment_order_ids, format_amount

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from models import Database, Store
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
# A skipped transfer is remembered this long (seconds), and as long past the USDT cursor's
# transaction: far longer than the watcher reads behind its cursor
# (``services.ton.watcher.REREAD_S`` of chain time).
SKIPPED_KEPT_S = 86_400
# A watcher's claim to tell a payment's user lapses after this long (seconds) unless renewed
# (the watcher telling renews it every third of that): a watcher that died telling holds it
# no longer than this; then another replica's watcher tells.
NOTICE_CLAIM_S = 300


@dataclass(frozen=True, slots=True)
class TonBooking:
    """What booking (or assigning) one payment did; ``new`` is False when it was known already.

    ``balance`` is the user's balance right after (0 when no user is named), ``received`` what
    the order has had in all, ``language`` the one to speak to the user in.
    """

    payment: TonPayment
    new: bool
    balance: int = 0
    order: TonOrder | None = None
    received: int = 0
    language: str | None = None


class TonBooks:
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
        self._store = store
        self.shop = shop
        self._dust = dict(dust)
        self._clock = clock
        # How long a claim to tell lasts unless renewed; the watcher renews it every third.
        self.notice_claim = notice_claim

    def __repr__(self) -> str:
        return "TonBooks()"

    # -- the watcher's cursors ---------------------------------------------------------------

    async def cursor(self, asset: Asset) -> TonCursor:
        """Where the watcher of ``asset`` is (an order or this call starts it, a little back)."""
        since = int(self._clock()) - CURSOR_MARGIN_S
        with ledger_failures():
            return await self._store.write(lambda db: storage.get_cursor(db, asset, since))

    async def save_cursor(self, asset: Asset, lt: int, tx_hash: str, utime: int) -> None:
        """The watcher processed everything up to this transaction (of chain time ``utime``)."""
        now = int(self._clock())

        def write(db: Database) -> None:
            storage.save_cursor(db, asset, lt, tx_hash, utime=utime, now=now)

        with ledger_failures():
            await self._store.write(write)

    async def known(self, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` dealt with already: recorded (``book``) or ``skipped``."""
        if not hashes:
            return set()
        with ledger_failures():
            return await self._store.read(lambda db: storage.known(db, hashes))

    async def skipped(self, transfer: Transfer) -> None:
        """Remember a transfer the watcher skipped, so that one read again is passed over."""
        if transfer.skip is None:
            raise ValueError("only a skipped transfer is remembered as skipped")
        skip, now = transfer.skip, int(self._clock())

        def write(db: Database) -> None:
            storage.insert_skipped(
                db,
                transfer.hash,
                transfer.asset,
                lt=transfer.lt,
                reason=skip,
                now=now,
                amount=transfer.amount,
                sender=transfer.sender,
            )

        with ledger_failures():
            await self._store.write(write)

    async def jetton_gram(self, transfer: Transfer) -> bool:
        """Keep the Gram a jetton message brought when it is worth a look; whether it was.

        A ``transfer_notification`` or ``excesses`` body is no payment for an order, but anyone
        can send one with any amount: Gram at least the Gram dust minimum is kept for good
        (``models.ton.jetton_gram``), where the audit lists it for the admins.
        """
        if transfer.amount < self._dust.get("gram", 0):
            return False
        await self.skipped(transfer)
        return True

    # -- booking -----------------------------------------------------------------------------

    async def book(self, transfer: Transfer) -> TonBooking:
        """Record an incoming transfer and credit it if it pays an order (once per hash)."""
        if transfer.skip is not None:
            raise ValueError("a skipped transfer brings no money to book")
        now = int(self._clock())

        def write(db: Database) -> TonBooking:
            known = storage.get_payment(db, transfer.hash)
            if known is not None:
                return self._booking(db, known, new=False)
            payment = self._judge(db, transfer, now)
            storage.insert_payment(db, payment)
            if payment.status == "credited" and payment.user_id is not None:
                _credit(db, payment, now)
            return self._booking(db, payment, new=True)

        with ledger_failures():
            booking = await self._store.write(write)
        if booking.new:
            payment = booking.payment
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

    def _judge(self, db: Database, transfer: Transfer, now: int) -> TonPayment:
        payment = TonPayment(
            hash=transfer.hash,
            asset=transfer.asset,
            lt=transfer.lt,
            utime=transfer.utime,
            sender=transfer.sender,
            amount=transfer.amount,
            comment=transfer.comment,
            order_id=None,
            status="unmatched",
            reason=None,
            late=False,
            user_id=None,
            units=0,
            created_at=now,
        )
        if transfer.amount < self._dust.get(transfer.asset, 0):
            return replace(payment, status="dust", reason="dust")
        order, named = _named_order(db, transfer.comment)
        payment = replace(payment, named=named)
        if isinstance(order, str):
            return replace(payment, reason=order)
        payment = replace(payment, order_id=order.id, user_id=order.user_id)
        if order.asset != transfer.asset:
            return replace(payment, reason="wrong_asset")
        before = storage.received(db, order.id)
        if before >= order.amount:
            return replace(payment, reason="already_paid")
        total = before + transfer.amount
        reason = None
        if total < order.amount:
            reason = "underpaid"
        elif total > order.amount:
            reason = "overpaid"
        return replace(
            payment,
            status="credited",
            reason=reason,
            late=transfer.utime > order.expires_at,
            units=transfer.amount * order.units // order.amount,
            rate_amount=order.amount,
            rate_units=order.units,
            credited_at=now,
        )

    def _booking(self, db: Database, payment: TonPayment, *, new: bool) -> TonBooking:
        order = None if payment.order_id is None else storage.get_order(db, payment.order_id)
        user = payment.user_id
        return TonBooking(
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
        named, the one ``_assigned_order`` picks), else the cheapest pack's of its asset.
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
            order = _assigned_order(db, payment, user_id)
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
            _credit(db, assigned, now)
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

    async def purge_skipped(self, kept: int = SKIPPED_KEPT_S) -> int:
        """Forget the skipped transfers remembered more than ``kept`` seconds ago; how many.

        Only once they are as far behind the USDT cursor's transaction, too: until then the
        watcher may read them again behind it (``models.ton.purge_skipped``).
        """
        now = int(self._clock())
        with ledger_failures():
            return await self._store.write(lambda db: storage.purge_skipped(db, now, kept))

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


def _named_order(db: Database, comment: str | None) -> tuple[TonOrder | str, tuple[str, ...]]:
    """The one order a payer's comment names, else why none; and the ids of all it names.

    Words naming two orders or more name none: whichever the payer meant, another may be
    another user's, and the admins decide (``two_orders``). The ids are kept with the payment
    (its comment is cut, and they may come after the cut) and shown in ``/stats``.
    """
    named = comment_order_ids(comment or "")
    if not named:
        return "no_comment", ()
    orders = (storage.get_order(db, order_id) for order_id in named)
    found = {order.id: order for order in orders if order is not None}
    ids = tuple(found)
    if not found:
        return "unknown_comment", ids
    if len(found) > 1:
        return "two_orders", ids
    (order,) = found.values()
    return order, ids


def _assigned_order(db: Database, payment: TonPayment, user_id: int) -> TonOrder | None:
    """The order whose rate an admin's assignment of ``payment`` to ``user_id`` credits at.

    A payment matched to one order: that order, when it is of the payment's asset. One whose
    comment named two orders or more (``two_orders``): of the named orders still stored and of
    its asset, ``user_id``'s own if any, the one whose price is nearest what arrived (the pack
    the payer most likely paid for; the first named on a tie). None: no order sets the rate.
    """
    if payment.order_id is not None:
        order = storage.get_order(db, payment.order_id)
        return order if order is not None and order.asset == payment.asset else None
    if payment.reason != "two_orders":
        return None
    orders = [storage.get_order(db, order_id) for order_id in payment.named]
    named = [o for o in orders if o is not None and o.asset == payment.asset]
    candidates = [o for o in named if o.user_id == user_id] or named
    return min(candidates, key=lambda o: abs(o.amount - payment.amount), default=None)


def _credit(db: Database, payment: TonPayment, now: int) -> None:
    """The one place a TON payment reaches the ledger: a purchase row, ``ton:<hash>``."""
    if payment.user_id is None:  # pragma: no cover -- callers credit only named users
        raise BillingError("a credit needs a user")
    entry = LedgerEntry(
        payment.user_id,
        "purchase",
        payment.units,
        LEDGER_PREFIX + payment.hash,
        now,
        note=format_amount(payment.asset, payment.amount),
    )
    if not ledger.record(db, entry):
        raise BillingError("the transaction hash is already a ledger source")


def payment_problems(payment: TonPayment, order: TonOrder | None) -> list[str]:
    """What the audit finds wrong with one credited payment (empty when it adds up).

    Its µ★ must be its amount at its stored rate, and a payment matched by its comment must
    have been credited at its order's rate, to that order's user.
    """
    found: list[str] = []
    if payment.rate_amount is None or payment.rate_units is None:
        return ["credited without a stored rate"]
    expected = payment.amount * payment.rate_units // payment.rate_amount
    if payment.units != expected:
        found.append(f"credited {payment.units} µ★, its amount at its rate is {expected}")
    if payment.assigned_by is None:
        if order is None:
            found.append("credited by comment, but its order is missing")
        elif (order.amount, order.units, order.user_id, order.asset) != (
            payment.rate_amount,
            payment.rate_units,
            payment.user_id,
            payment.asset,
        ):
            found.append("its rate, user or asset is not its order's")
    return found
