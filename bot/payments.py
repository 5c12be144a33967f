"""The payment desk: journals payment updates before Telegram hears of them, books, tells users.

How an update is journaled before it is acknowledged depends on how it arrives:

- Long polling acknowledges an update when the next ``getUpdates`` carries an offset past it,
  and aiogram's dispatcher asks for the next batch as soon as it has handed this one to
  handler tasks, before any handler ran. So ``JournalMiddleware`` sits on the Bot session and
  journals the payment updates of a ``getUpdates`` reply before the dispatcher even sees them.
  If the journal cannot be written it raises: aiogram then backs off and fetches the same
  batch again (same offset), so nothing is acknowledged unwritten. A journal newer code has
  migrated will never take it: the bot stops then (``PaymentDesk.record``).
- The webhook answers Telegram only after the journal write (``bot.webhook``).

Then the payment handler asks the desk to book the entry at once; if the ledger cannot take it
within its busy timeout (the handler's budget), the user is told the credit is delayed and the
desk's loop books it with backoff (0.5 s doubling to a minute) until it sticks, then tells the
user it is credited. At start the loop books whatever a crash left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import structlog
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import GetUpdates

from bot.telegram import UnreadableReply
from models.journal import JournalOutdated
from services.errors import JournalUnavailable, LedgerUnavailable
from services.journal import JournalEntry
from services.prices import format_units

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from aiogram import Bot
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType
    from aiogram.types import Message, Update

    from common.texts import Catalogs, Texts
    from services.journal import Booking, PaymentJournal

log = structlog.get_logger("veil.payments")

RETRY_FIRST_S = 0.5
RETRY_MOST_S = 60.0
IDLE_CHECK_S = 60.0  # the loop looks for open entries at least this often
# The largest integer SQLite stores. Telegram never sends more Stars; an update that did could
# be journaled by no one, and the batch holding it would be fetched again forever.
MAX_AMOUNT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Backoff:
    """How the desk's loop waits between failed bookings: ``first``, doubling to ``most``."""

    first: float = RETRY_FIRST_S
    most: float = RETRY_MOST_S


def entry_from_message(
    message: Message, *, update_id: int | None = None, now: float | None = None
) -> JournalEntry | None:
    """The journal entry for a payment or refund message; None for any other message."""
    user = message.from_user
    if user is None:
        return None
    received = int(time.time() if now is None else now)
    event = message.successful_payment or message.refunded_payment
    if event is not None and not 0 <= event.total_amount <= MAX_AMOUNT:
        log.warning(
            "payments.amount_out_of_range",
            charge_id=event.telegram_payment_charge_id,
            user_id=user.id,
        )
        return None
    if (paid := message.successful_payment) is not None:
        return JournalEntry(
            kind="payment",
            user_id=user.id,
            language=user.language_code,
            payload=paid.invoice_payload,
            currency=paid.currency,
            total_amount=paid.total_amount,
            charge_id=paid.telegram_payment_charge_id,
            is_recurring=bool(paid.is_recurring),
            subscription_expires_at=paid.subscription_expiration_date,
            received_at=received,
            update_id=update_id,
        )
    if (refund := message.refunded_payment) is not None:
        return JournalEntry(
            kind="refund",
            user_id=user.id,
            language=user.language_code,
            payload=refund.invoice_payload,
            currency=refund.currency,
            total_amount=refund.total_amount,
            charge_id=refund.telegram_payment_charge_id,
            received_at=received,
            update_id=update_id,
        )
    return None


def entry_from_update(update: Update) -> JournalEntry | None:
    """The journal entry for a payment or refund update; None for any other update."""
    if update.message is None:
        return None
    return entry_from_message(update.message, update_id=update.update_id)


class PaymentDesk:
    """Books journaled payments and refunds and tells the users; retries until each sticks."""

    def __init__(
        self,
        journal: PaymentJournal,
        bot: Bot,
        catalogs: Catalogs,
        admins: frozenset[int] = frozenset(),
        backoff: Backoff = Backoff(),
    ) -> None:
        self.journal = journal
        self._bot = bot
        self._catalogs = catalogs
        self._admins = admins
        self._backoff = backoff
        # One pass at a time over each entry; a lock is kept while any pass holds or awaits it.
        self._locks: dict[str, asyncio.Lock] = {}
        self._passes: Counter[str] = Counter()
        self._wake = asyncio.Event()
        # What this desk sent for each open entry ("pending", "thanks", "admin:<id>"), kept
        # until the entry is finished: a message Telegram took whose journal record then failed
        # is not sent again by this process's next pass (see "Delivery" in docs/money.md).
        self._sent: defaultdict[str, set[str]] = defaultdict(set)
        # Set once newer code has migrated the journal (``record``); ``stop_serving`` is called
        # then (long polling sets it to stop the bot).
        self.outdated: JournalOutdated | None = None
        self.stop_serving: Callable[[], None] = _serve_on

    def __repr__(self) -> str:
        return "PaymentDesk()"

    async def record(self, entries: Sequence[JournalEntry]) -> None:
        """Journal entries durably; raises ``JournalUnavailable`` (do not acknowledge then).

        A journal newer code has migrated (``JournalOutdated``: a rolling upgrade, this process
        the older) takes no entry again, ever: ``stop_serving`` is called, once. A long-polling
        bot then stops: its update batch is not acknowledged (offsets acknowledge every update
        before them, so the updates after a payment cannot be answered without giving that
        payment up), and the newer process, which migrated the file, gets it whole. Going on
        polling fetched the same batch again and again until it was stopped by hand, every
        update in it unanswered.
        """
        try:
            await self.journal.record(entries)
        except JournalUnavailable as exc:
            if isinstance(exc.__cause__, JournalOutdated) and self.outdated is None:
                self._outdated(exc.__cause__, len(entries))
            raise

    def _outdated(self, error: JournalOutdated, entries: int) -> None:
        """Newer code migrated the journal: say so, and stop serving (once)."""
        self.outdated = error
        log.error("payments.journal_outdated", entries=entries)
        self.stop_serving()

    async def take_message(self, message: Message) -> None:
        """A payment or refund message reached its handler: ``take`` its entry (others: none)."""
        entry = entry_from_message(message)
        if entry is not None:
            await self.take(entry)

    async def take(self, entry: JournalEntry) -> None:
        """A payment or refund arrived (the handler): journal it if not yet, then book it now.

        If even the journal cannot be written, the entry is booked straight away and its user
        told once (nothing of it is written to the journal: the credit must not wait for it);
        if the ledger cannot take it either, the error goes up (the update was not journaled,
        so it was not acknowledged by the middleware or the webhook either). What was sent is
        remembered, so a pass over the entry, if the journal had it after all, does not send it
        again. That booking takes the entry's turn, and tells only what it booked itself: one
        booked before was booked by a pass over the journaled entry (the middleware or the
        webhook wrote it before this handler ran), and that pass tells it.
        """
        try:
            await self.journal.record([entry])
        except JournalUnavailable:
            log.exception("payments.journal_unavailable", charge_id=entry.charge_id)
            async with self._turn(entry.key):
                booking = await self.journal.book(entry, journaled=False)
                if booking.new:
                    await self._tell(booking, late=False, durable=False)
            return
        if not await self.process(entry.key):
            # The loop takes it from here, with its backoff. Only this path wakes it: a wake
            # set by the loop's own failed try would cut its wait short, and a ledger that
            # refuses at once would be asked again at once, forever.
            self._wake.set()

    async def process(self, key: str) -> bool:
        """Book one entry and tell its user; True when it is finished, False to retry later.

        The entry's claim is renewed every third of its lease while this works on it, so a
        pass that waits out long flood waits keeps it, and no other desk tells the user again.
        """
        async with self._turn(key):
            if not await self.journal.claim(key):  # another replica's desk has it now
                return False
            renewing = asyncio.create_task(self._keep_claim(key))
            try:
                return await self._process(key)
            finally:
                renewing.cancel()
                await asyncio.wait({renewing})
                await self.journal.release(key)

    @contextlib.asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        """This desk's passes over ``key`` one at a time, in the order they came.

        The entry's lock is let go of when the last pass that holds or awaits it ends: one
        freed while a pass still awaited it would let a newcomer's fresh lock run beside it.
        """
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._passes[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._passes[key] -= 1
            if not self._passes[key]:
                del self._passes[key], self._locks[key]

    async def _keep_claim(self, key: str) -> None:
        """Renew this desk's claim on ``key`` every third of its lease until cancelled.

        A renewal the journal cannot take now is tried again at the next beat; a claim another
        desk took meanwhile (this one's lapsed) is not taken back: the writes that follow are
        then refused (``PaymentJournal.finished`` and the others return False).
        """
        while True:
            await asyncio.sleep(self.journal.claim_lease / 3)
            try:
                held = await self.journal.claim(key)
            except JournalUnavailable:
                log.warning("payments.claim_not_renewed", key=key)
                continue
            if not held:
                log.warning("payments.claim_lost", key=key)
                return

    async def _process(self, key: str) -> bool:
        entry = await self.journal.get(key)
        if entry is None or entry.notified_at is not None:
            self._sent.pop(key, None)
            return True
        if entry.kind == "refund" and not await self._payment_booked(entry):
            return False
        try:
            booking = await self.journal.book(entry)
        except LedgerUnavailable:
            await self.journal.failed(entry)
            log.warning(
                "payments.booking_deferred", charge_id=entry.charge_id, attempts=entry.attempts + 1
            )
            if _owes_pending(entry, self._sent[key]):
                await self._send(entry.user_id, self._texts(entry)("payment_pending"))
                self._sent[key].add("pending")
                await self.journal.told(entry)
            return False
        late = entry.attempts > 0
        if not await self._in_turn(booking) or not await self._tell(booking, late=late):
            return False
        if not await self.journal.finished(entry):
            # Another desk holds it now and finishes it; if it lets go unfinished, this desk
            # may take it back: what it sent is remembered until the entry is finished.
            log.warning("payments.claim_lost", key=entry.key)
            return False
        self._sent.pop(key, None)
        return True

    async def _payment_booked(self, refund: JournalEntry) -> bool:
        """Whether the refund's payment is in the ledger, if the journal has it (booked first).

        A refund booked before its payment finds nothing to take back (the payment's booking
        takes it back later, and tells the refund in place of the thank-you). So a refund whose
        payment is still open in the journal books (and tells) that payment first, and waits if
        it cannot: the user is thanked, then told of the refund, in the order things happened.
        """
        paid = await self.journal.get(f"payment:{refund.charge_id}")
        if paid is None or paid.booked_at is not None:
            return True
        await self.process(paid.key)
        paid = await self.journal.get(paid.key)
        return paid is None or paid.booked_at is not None

    async def _in_turn(self, booking: Booking) -> bool:
        """Whether the booking may be told now: a refund once its payment's user is thanked.

        A payment booked before its refund whose thank-you Telegram could not take yet is still
        open in the journal: the refund took the credit back at once, but tells its user only
        after that thank-you (this desk sends it first if it can), never before it. A flagged
        payment's admins are not waited for.
        """
        if booking.entry.kind != "refund" or not booking.applies:
            return True
        paid = await self.journal.get(f"payment:{booking.entry.charge_id}")
        if paid is None or paid.notified_at is not None or paid.thanked:
            return True
        await self.process(paid.key)
        paid = await self.journal.get(paid.key)
        return paid is None or paid.notified_at is not None or paid.thanked

    async def process_pending(self) -> bool:
        """Book every open entry in arrival order; True when none is left open.

        What this desk remembers sending for an entry no longer open is forgotten: another
        replica's desk finished it, and it never comes back here (an entry is never reopened).
        """
        remembered = set(self._sent)
        entries = await self.journal.pending()
        for key in remembered - {entry.key for entry in entries}:
            self._sent.pop(key, None)
        finished = True
        for entry in entries:
            try:
                done = await self.process(entry.key)
            except (JournalUnavailable, LedgerUnavailable):
                raise
            except Exception:  # one entry that cannot be booked must not hold up the others
                log.exception("payments.booking_failed", charge_id=entry.charge_id)
                done = False
            finished = done and finished
        return finished

    async def run(self) -> None:
        """Book open entries until cancelled: at once, after each failure with backoff."""
        delay = self._backoff.first
        while True:
            self._wake.clear()
            try:
                done = await self.process_pending()
            except Exception:  # the loop's edge: nothing may stop the retries for good
                log.exception("payments.retry_failed")
                done = False
            if done:
                delay, wait = self._backoff.first, IDLE_CHECK_S
            else:
                wait, delay = delay, min(delay * 2, self._backoff.most)
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that comes in the turn
            # the event is set (a payment handed over as the bot stops), and the loop ran on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _tell(self, booking: Booking, *, late: bool, durable: bool = True) -> bool:
        """Tell the user (and the admins, for a flagged payment); False to try again later.

        A flagged payment's user is thanked once (``thanked`` is journaled when admins are
        owed its notice), then each admin not yet told gets it; one Telegram cannot take now
        keeps the entry open, and the desk's loop sends it again with its backoff. Without the
        journal (``durable`` False) everyone is told once, as well as can be.
        """
        entry = booking.entry
        sent = self._sent[entry.key]
        told = entry.admins_told | {a for a in self._admins if f"admin:{a}" in sent}
        owed = self._admins - told if booking.flagged else frozenset()
        if not entry.thanked and "thanks" not in sent:
            if not await self._thank(booking, late=late):
                return False
            sent.add("thanks")
            if owed and durable and not await self.journal.thanked(entry):
                log.warning("payments.claim_lost", key=entry.key)  # the admins: another desk's
                return False
        if entry.kind != "payment" or not (owed or self._uncorrected(entry, sent)):
            return True
        try:  # a refund booked since the booking (the thank-you may have waited a minute)
            taken_back = booking.taken_back or await self.journal.taken_back(entry)
        except LedgerUnavailable:
            log.warning("payments.notice_deferred", charge_id=entry.charge_id)
            return False  # the loop tries again: the admins are told what is true, or nothing
        everyone = True
        key = _admin_notice(refunded=booking.refunded, taken_back=taken_back)
        for admin in sorted(owed):
            if not await self._send(admin, self._admin_text(booking, key)):  # refused: told
                everyone = False
                continue
            sent.add(f"admin:{admin}")
            credited = key == "admin_flagged"  # true as it went out: a refund may come meanwhile
            if credited:
                sent.add(f"plain:{admin}")
            if durable and not await self.journal.admin_told(entry, admin, credited=credited):
                log.warning("payments.claim_lost", key=entry.key)  # the rest: another desk's
                return False
        return await self._corrected(booking, durable=durable) and (everyone or not durable)

    async def _corrected(self, booking: Booking, *, durable: bool = True) -> bool:
        """Tell the admins sent "credited as N ★" of a refund booked while that notice went out.

        The payment is read again after the notices: one refunded by then (between the read
        before them and their sending, which may wait out a flood wait) was credited and taken
        back, and each admin told otherwise gets the notice that says so. False while one is
        owed that Telegram (or the ledger, to read it) cannot take now: the loop tries again.
        Who was told what is journaled (``admins_credited``, ``admins_corrected``), so a restart
        in between still owes each such admin the correction, once.
        """
        entry = booking.entry
        sent = self._sent[entry.key]
        waiting = self._uncorrected(entry, sent)
        if not waiting:
            return True
        try:
            taken_back = await self.journal.taken_back(entry)
        except LedgerUnavailable:
            log.warning("payments.notice_deferred", charge_id=entry.charge_id)
            return False
        if not taken_back:
            return True
        log.info("payments.notice_corrected", charge_id=entry.charge_id, admins=len(waiting))
        everyone = True
        for admin in waiting:
            if not await self._send(admin, self._admin_text(booking, "admin_flagged_taken_back")):
                everyone = False
                continue
            sent.add(f"corrected:{admin}")
            if durable and not await self.journal.admin_corrected(entry, admin):
                log.warning("payments.claim_lost", key=entry.key)  # the rest: another desk's
                return False
        return everyone

    def _uncorrected(self, entry: JournalEntry, sent: set[str]) -> list[int]:
        """The admins told "credited as N ★" and not told of a refund since, admins still.

        As the journal has it (``entry``, read before this pass), and as this desk sent since.
        One the operator has taken off the admins meanwhile (the journal keeps every admin told,
        and a restart may drop one) is sent nothing more of the payment, as no other notice is.
        """
        plain = entry.admins_credited | _marked(sent, "plain:")
        corrected = entry.admins_corrected | _marked(sent, "corrected:")
        return sorted((plain - corrected) & self._admins)

    def _admin_text(self, booking: Booking, key: str) -> str:
        """A flagged payment's notice to the admins (in the bot's default language)."""
        entry = booking.entry
        return self._catalogs.for_language(None)(
            key,
            reason=booking.flag_reason,
            user=entry.user_id,
            charge=entry.charge_id,
            stars=entry.total_amount,
            credit=format_units(booking.units),
        )

    async def _thank(self, booking: Booking, *, late: bool) -> bool:
        """The user's thank-you or refund notice; False when Telegram could not take it now."""
        entry = booking.entry
        texts = self._texts(entry)
        if entry.kind == "payment" and booking.refunded:
            # Its refund came first: the credit was taken back at once, and that is the news.
            text = texts(
                "refunded_notice",
                credit=format_units(booking.units),
                balance=format_units(booking.balance),
            )
        elif entry.kind == "payment":
            # Refunded since it was credited (its thank-you waited): the refund's notice, which
            # follows, gives the balance; "Balance: 0 ★" under "50 ★ added" would read oddly.
            key = "paid_thanks_late" if late else "paid_thanks"
            text = texts(
                f"{key}_then_refunded" if booking.taken_back else key,
                stars=entry.total_amount,
                credit=format_units(booking.units),
                balance=format_units(booking.balance),
            )
        elif booking.applies:
            text = texts(
                "refunded_notice",
                credit=format_units(booking.units),
                balance=format_units(booking.balance),
            )
        else:
            return True  # a refund of a payment we never had: nothing to take back or say
        return await self._send(entry.user_id, text)

    async def _send(self, chat_id: int, text: str) -> bool:
        """Send a message; False when Telegram cannot take it now (worth a retry).

        Unreachable, a 5xx the session's retry did not get past, a flood wait longer than the
        session waits, a reply that is not the Bot API's: the entry stays open and the loop
        tries again. A refusal for good (the bot blocked) is not tried again, nor a message
        Telegram said ok to whose result does not validate (it went out).
        """
        try:
            await self._bot.send_message(chat_id, text)
        except (
            TelegramNetworkError,
            TelegramRetryAfter,
            TelegramServerError,
            ClientDecodeError,
        ) as exc:
            if isinstance(exc, UnreadableReply) and exc.taken:  # Telegram said ok: it went out
                log.warning("payments.notify_unreadable", error=type(exc).__name__)
                return True
            log.warning("payments.notify_unreachable", error=type(exc).__name__)
            return False
        except TelegramAPIError as exc:  # blocked, deleted: telling again would not help
            log.warning("payments.notify_refused", error=type(exc).__name__)
        return True

    def _texts(self, entry: JournalEntry) -> Texts:
        return self._catalogs.for_language(entry.language)


def _owes_pending(entry: JournalEntry, sent: set[str]) -> bool:
    """Whether a payment the ledger cannot book now owes its user the "taking longer" word.

    Once only, and never to a user thanked already: a flagged payment booked and thanked
    stays open while its admins' notice waits, and the ledger may go down meanwhile.
    """
    if entry.kind != "payment" or entry.told or entry.thanked:
        return False
    return not {"pending", "thanks"} & sent


def _marked(sent: set[str], prefix: str) -> frozenset[int]:
    """The admins of this desk's marks that start with ``prefix`` (``plain:<id>``, ...)."""
    return frozenset(int(mark.removeprefix(prefix)) for mark in sent if mark.startswith(prefix))


def _admin_notice(*, refunded: bool, taken_back: bool) -> str:
    """The text key of a flagged payment's admin notice: what is true as it goes out.

    Its refund came first (``refunded``): credited and taken back at once. A refund booked
    since the payment was credited (``taken_back``: while the notice waited for Telegram, or
    the user's thank-you did): credited, then taken back.
    """
    if refunded:
        return "admin_flagged_refunded"
    return "admin_flagged_taken_back" if taken_back else "admin_flagged"


def _serve_on() -> None:
    """``PaymentDesk.stop_serving`` where the bot is not to stop (a webhook answers 503)."""


class JournalMiddleware(BaseRequestMiddleware):
    """Journals the payment updates of each ``getUpdates`` reply before aiogram sees them.

    The next ``getUpdates`` (whose offset acknowledges this batch) cannot be sent before this
    returns. A journal failure raises, so aiogram backs off and fetches the same batch again.
    """

    def __init__(self, desk: PaymentDesk) -> None:
        self.desk = desk

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Call the method; journal the payment updates of a ``getUpdates`` reply."""
        response = await make_request(bot, method)
        # aiogram's chain hands back the method's result (here the updates), not a Response.
        result: object = response
        if isinstance(method, GetUpdates) and isinstance(result, list):
            updates = cast("list[Update]", result)
            entries = [e for u in updates if (e := entry_from_update(u)) is not None]
            if entries:
                await self.desk.record(entries)
        return response
