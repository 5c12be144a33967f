"""No payment lost: payment updates journaled before Telegram is told, booked until they stick.

The bot writes every ``successful_payment`` and ``refunded_payment`` update to the journal
(``models.journal``, a file of its own with ``synchronous=FULL``) before the update is
acknowledged: in polling mode before ``getUpdates`` can move its offset past it, in webhook
mode before the HTTP answer. Booking then goes through the shop, which credits each
charge id once, so an entry can be booked again and again until it sticks: after a locked or
full ledger, an I/O error, or a crash between the journal write and the booking (the entries
still open are booked at the next start). An entry is finished once its user was told, and
for a flagged payment every admin too (each told once, however often the entry is retried).
Webhook replicas each run a desk on the one journal: a desk books and tells an entry only while
it holds the entry's claim (``claim``, ``release``), so a user is told once. The desk renews
the claim while it works (a pass that waits out long flood waits can outlast one lease), and
what it writes afterwards (``told``, ``thanked``, ``admin_told``, ``finished``) is written only
while it still holds the claim: a desk that lost it leaves the entry to the one that has it.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from models.journal import JournalEntry
from services.errors import JournalUnavailable, journal_failures
from services.shop import IncomingPayment

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from models.journal import Journal
    from services.credit import Credit
    from services.shop import Shop

__all__ = ["Booking", "JournalEntry", "PaymentJournal"]

log = structlog.get_logger("veil.journal")

KEEP_FINISHED_S = 30 * 86_400  # finished entries are kept a month, then purged
# How long a desk's claim on an entry lasts: longer than booking and telling it take (each
# message may wait out a minute of flood control), short enough that an entry whose desk died
# is taken by another (or the restarted bot) within minutes.
CLAIM_LEASE_S = 300.0


@dataclass(frozen=True, slots=True)
class Booking:
    """What booking one entry did.

    ``applies`` is False for a refund of a payment the ledger does not know (nothing to take
    back, nothing to tell). ``units`` is what the payment credited or the refund took back;
    ``new`` whether the ledger changed just now; ``balance`` the user's balance afterwards.
    ``refunded`` marks a payment whose refund was booked before it (nothing to take back then):
    its credit was taken back as soon as it was booked; ``taken_back`` a payment refunded by
    the time it was booked (this time), before or after it was credited.
    """

    entry: JournalEntry
    applies: bool
    new: bool
    units: int
    balance: int
    flagged: bool = False
    flag_reason: str | None = None
    refunded: bool = False
    taken_back: bool = False


class PaymentJournal:
    """Records payment updates durably and books them into the ledger, idempotently."""

    def __init__(
        self,
        journal: Journal,
        shop: Shop,
        credit: Credit,
        clock: Callable[[], float] = time.time,
        *,
        claim_lease: float = CLAIM_LEASE_S,
    ) -> None:
        self._journal = journal
        self._shop = shop
        self._credit = credit
        self._clock = clock
        # How long a claim lasts unless renewed; the desk renews it every third of that.
        self.claim_lease = claim_lease
        # This desk's name in the journal's claims (webhook replicas share the file).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def __repr__(self) -> str:
        return "PaymentJournal()"

    async def record(self, entries: Sequence[JournalEntry]) -> int:
        """Write entries durably before their update is acknowledged; how many were new.

        Raises ``JournalUnavailable``: then the update must not be acknowledged.
        """
        with journal_failures():
            new = await self._journal.record(entries)
        if new:
            log.info("journal.recorded", entries=new, charges=[e.charge_id for e in entries])
        return new

    async def get(self, key: str) -> JournalEntry | None:
        """The entry with this key, or None."""
        with journal_failures():
            return await self._journal.get(key)

    async def pending(self) -> list[JournalEntry]:
        """Entries whose user has not been told yet, oldest first."""
        with journal_failures():
            return await self._journal.pending()

    async def claim(self, key: str) -> bool:
        """Hold (or renew) the entry for this desk for ``claim_lease`` seconds from now.

        False while another desk holds it.
        """
        with journal_failures():
            return await self._journal.claim(
                key, self.owner, now=self._clock(), lease=self.claim_lease
            )

    async def release(self, key: str) -> None:
        """Let go of this desk's claim on the entry."""
        with journal_failures():
            await self._journal.release(key, self.owner)

    async def release_all(self) -> int:
        """Let go of every claim: only for the one process on the journal, at start."""
        with journal_failures():
            return await self._journal.release_all()

    async def book(self, entry: JournalEntry, *, journaled: bool = True) -> Booking:
        """Put the entry's money event in the ledger (once, however often this is called).

        Raises ``LedgerUnavailable`` when the ledger cannot be written: try again later. An
        entry the journal could not take (``journaled`` False) is booked without it: no mark
        written, and a journal that cannot be read either does not undo the booking's news.
        """
        if entry.kind == "payment":
            result = await self._shop.record_payment(
                IncomingPayment(
                    entry.user_id,
                    entry.payload,
                    entry.currency,
                    entry.total_amount,
                    entry.charge_id,
                    is_recurring=entry.is_recurring,
                    subscription_expires_at=entry.subscription_expires_at,
                )
            )
            # Its refund booked first (kept in the ledger's database): taken back in the
            # payment's own transaction. One booked by older code (the journal's mark alone):
            # taken back now.
            refunded = result.refunded or await self._refund_booked_before(
                entry, journaled=journaled
            )
            booking = Booking(
                entry,
                applies=True,
                new=result.new,
                units=result.units,
                balance=(await self._credit.balance(entry.user_id)).units,
                flagged=result.flagged,
                flag_reason=result.flag_reason,
                refunded=refunded,
                taken_back=refunded or result.taken_back,
            )
        else:
            refund = await self._shop.book_refund(entry.user_id, entry.charge_id)
            booking = Booking(
                entry,
                # Booked unmatched before by older code (a stop since): its payment's booking
                # tells it.
                applies=refund.applies
                and not (refund.paid_at is not None and _booked_unmatched(entry, refund.paid_at)),
                new=refund.new,
                units=refund.units,
                balance=(await self._credit.balance(entry.user_id)).units,
            )
            if not booking.applies and entry.booked_at is None and refund.paid_at is None:
                # Booking its payment, if it ever comes, takes it back (the ledger says so). A
                # payment that came meanwhile took it back already, and logged so.
                log.warning(
                    "journal.refund_unmatched", charge_id=entry.charge_id, user_id=entry.user_id
                )
        if not journaled:
            return self._logged(booking)
        with journal_failures():
            await self._journal.mark_booked(
                entry.key,
                int(self._clock()),
                unmatched=entry.kind == "refund" and not booking.applies,
            )
        return self._logged(booking)

    @staticmethod
    def _logged(booking: Booking) -> Booking:
        """The booking, logged when it changed the ledger."""
        entry = booking.entry
        if booking.new:
            log.info(
                "journal.booked",
                kind=entry.kind,
                charge_id=entry.charge_id,
                user_id=entry.user_id,
                attempts=entry.attempts + 1,
            )
        return booking

    async def _refund_booked_before(self, paid: JournalEntry, *, journaled: bool = True) -> bool:
        """Take the payment's credit back if older code booked its refund before it; whether so.

        Today a refund that finds no payment is kept in the ledger's database, and the
        payment's own transaction takes the credit back (``Shop.record_payment``). A refund
        booked by code from before that kept it only in the journal, marked ``unmatched``;
        booking the payment then takes the credit back here (once: the refund's ledger row is
        keyed by the charge id), so it is not kept for good, and tells the refund. A refund
        still open in the journal is left to its own booking, which follows. A refund booked
        after its payment (it took the credit back itself, and told its user) is not this case: the
        journal's mark says which it was, not the two bookings' times, which may fall in one
        second (or come from two replicas' clocks). A refund booked by code that kept no mark
        (``unmatched`` None, from before ``j0004``) is judged by those times, as that code did.
        """
        try:
            with journal_failures():
                refund = await self._journal.get(f"refund:{paid.charge_id}")
        except JournalUnavailable:
            if journaled:
                raise
            # Booked without the journal: a refund older code booked before it is taken back
            # by the entry's own pass, if the journal has the entry (the middleware wrote it).
            log.warning("journal.unread_for_early_refund", charge_id=paid.charge_id)
            return False
        if (
            refund is None
            or refund.booked_at is None
            or refund.unmatched is False
            or refund.user_id != paid.user_id
        ):
            return False
        # (A refund booked by older code has no mark, None: one that found its payment took
        # the credit back then, and its ledger row stops this one.)
        if await self._shop.record_refund(paid.user_id, paid.charge_id):
            log.warning("journal.refund_before_payment", charge_id=paid.charge_id)
            return True
        # Booked again (a stop after the take-back, or its notice not taken): taken back then.
        payment = await self._shop.payment(paid.charge_id)
        return (
            payment is not None
            and payment.refunded
            and _booked_unmatched(refund, payment.created_at)
        )

    async def taken_back(self, entry: JournalEntry) -> bool:
        """Whether the payment's credit has been taken back by now (its refund booked).

        Raises ``LedgerUnavailable`` when the ledger cannot be read.
        """
        payment = await self._shop.payment(entry.charge_id)
        return payment is not None and payment.refunded

    async def failed(self, entry: JournalEntry) -> None:
        """Booking the entry failed once more (counted; the entry stays open)."""
        with journal_failures():
            await self._journal.mark_failed(entry.key)

    async def told(self, entry: JournalEntry) -> bool:
        """The user was told the credit is delayed; False if this desk lost the entry's claim."""
        with journal_failures():
            return await self._journal.mark_told(entry.key, self.owner)

    async def thanked(self, entry: JournalEntry) -> bool:
        """The user was thanked; False if this desk lost the entry's claim (nothing written)."""
        with journal_failures():
            return await self._journal.mark_thanked(entry.key, self.owner)

    async def admin_told(self, entry: JournalEntry, admin: int, *, credited: bool = False) -> bool:
        """The admin got the flagged payment's notice; False if this desk lost the claim.

        ``credited``: it said "credited as N ★" (a refund booked meanwhile then owes that admin
        the correction, even after a restart).
        """
        with journal_failures():
            return await self._journal.mark_admin_told(
                entry.key, admin, self.owner, credited=credited
            )

    async def admin_corrected(self, entry: JournalEntry, admin: int) -> bool:
        """An admin told "credited as N ★" got the correction; False if this desk lost its claim."""
        with journal_failures():
            return await self._journal.mark_admin_corrected(entry.key, admin, self.owner)

    async def finished(self, entry: JournalEntry) -> bool:
        """The entry is finished (everyone told); False if this desk lost its claim meanwhile.

        A desk whose claim lapsed and was taken by another leaves the entry to that desk, so
        it never overwrites the progress of the desk that holds it now.
        """
        with journal_failures():
            return await self._journal.mark_notified(entry.key, int(self._clock()), self.owner)

    async def purge(self) -> int:
        """Delete entries finished more than ``KEEP_FINISHED_S`` ago; how many went."""
        with journal_failures():
            return await self._journal.purge(int(self._clock()) - KEEP_FINISHED_S)


def _booked_unmatched(refund: JournalEntry, paid_at: int) -> bool:
    """Whether ``refund`` was booked already, before its payment (credited at ``paid_at``).

    The journal's mark says so; a refund booked by code that kept no mark (``unmatched``
    None, from before ``j0004``) is judged by the ledger's times, as that code did.
    """
    if refund.booked_at is None:
        return False
    if refund.unmatched is None:
        return refund.booked_at <= paid_at
    return refund.unmatched
