"""The chain watcher: polls toncenter from the persisted cursor and books what arrives.

One background task (``TonWatcher.run``) for the Gram stream (the receiving account's
transactions) and, when USDT is sold, the USDT stream (jetton transfers to the account). Each
pass reads every stream page by page from its cursor, books each transfer (``TonBooks.book``:
once per transaction hash), tells the user, and saves the cursor after each page. A crash
anywhere in a page leaves the cursor before it: the page is read again and every transfer
already booked or skipped is passed over (its hash is recorded), so nothing is missed and
nothing is counted twice. Messages a crash or a Telegram outage swallowed are sent on the next
pass. A user is told only by the watcher holding the payment's claim
(``TonBooks.claim_notice``): webhook replicas each run one on the same database, and each
payment is told once, not once a replica.

A USDT transfer counts only from the real master's own wallet: ``ChainReader``
(``services.ton.reader``) asks the master
(its ``get_wallet_address`` get-method, once per sender) for the sender's wallet and skips any
other as ``forged_jetton``; a get-method toncenter cannot answer fails the pass like any toncenter
failure, so the page is read again (nothing credited on faith, nothing skipped). One the master's
contract fails for (an exit code: the same answer each time) is set aside as ``unproven`` after
``UNPROVEN_TRIES`` passes, if the master answers for our own address: it holds back no later
payment for ever. Each transfer is
checked just before it is booked: the payments read before one whose check fails are booked.
A page that comes back the same for a later ``offset`` (an indexer that ignores it) stops the
pass with ``ton.page_not_advancing``, the cursor kept.

Reading from the cursor asks for ``start_lt`` = the cursor's own lt, so the first record
returned is normally the cursor's own transaction (its hash is checked: a different one is
logged as ``ton.cursor_mismatch`` and booked like any new one). Before its first transaction a
stream reads from ``since``: ten minutes before the first order or the watcher's first pass,
whichever came first (clocks differ; older history is not Veil's), by the bot's clock, less
its lead on toncenter's clock (``ChainReader.page``): a fast clock loses no payment. That
earlier start is kept with the cursor (``chain_since``) before anything read from it is booked,
so a restart with the clock set right reads from the same place.

The USDT stream is then read again behind its cursor (``REREAD_S`` of chain time before the
cursor's transaction, up to its lt): jetton transfers are listed by the lt of the senders'
jetton wallets' transactions, accounts on other shards, so one committed (and indexed) a little
later can carry an lt the cursor has already passed. A record there that was neither booked nor
skipped before is booked (``ton.indexed_late``); the rest are passed over with no wallet check
and no log line (the skipped ones' hashes are kept: ``TonBooks.skipped``). The Gram stream is
one account's transactions, whose lts are strictly ordered: nothing appears below its cursor.

A 429 to a page or a wallet check is asked again within the pass (by the reader: toncenter
without a key answers about one call a second). Failures never reach the bot: a 429 still
refused or any toncenter or ledger error logs one status line
(``ton.watcher_backoff``) and the next pass waits twice as long, up to ``max_backoff``, and
never less than the last 429's ``Retry-After`` asked (capped: ``MAX_RETRY_AFTER_S``); the
first good pass after that logs ``ton.watcher_resumed``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import structlog

from services.errors import LedgerUnavailable
from services.ton.chain import JETTON_SKIPS
from services.ton.errors import ToncenterRateLimited, ToncenterUnavailable
from services.ton.reader import PAGE, next_limit, page_ends

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from models.ton import Asset, TonCursor
    from services.ton.books import TonBooking, TonBooks
    from services.ton.chain import Transfer
    from services.ton.reader import ChainReader, Page

__all__ = ["TonWatcher"]

log = structlog.get_logger("veil.ton")

POLL_EVERY_S = 10.0
MAX_BACKOFF_S = 300.0
PURGE_EVERY_S = 3600.0
# Each pass reads the USDT stream again from this long (seconds of chain time) before its
# cursor's transaction up to it, for a transfer toncenter indexed after the cursor passed its lt.
REREAD_S = 60
# The skips that name the sender and its jetton wallet in their warning line.
_SENDER_SKIPS = {"unproven": "ton.unproven_jetton", "forged_jetton": "ton.forged_jetton"}


class TonWatcher:
    """Polls the chain and books incoming payments; see the module docstring.

    ``notify`` tells a user that a payment was credited; it returns False when Telegram could
    not be reached, and the message is sent again on the next pass.
    """

    def __init__(  # noqa: PLR0913 -- its parts and its timing
        self,
        books: TonBooks,
        reader: ChainReader,
        notify: Callable[[TonBooking], Awaitable[bool]],
        *,
        interval: float = POLL_EVERY_S,
        max_backoff: float = MAX_BACKOFF_S,
        page_size: int = PAGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or page_size < 2:  # noqa: PLR2004 -- a page holds the cursor and more
            raise ValueError("the interval must be positive and a page at least 2 records")
        self._books = books
        self._reader = reader
        self._notify = notify
        self._interval = interval
        self._max_backoff = max(max_backoff, interval)
        self._page_size = page_size
        self._clock = clock
        self._next_purge = 0.0
        self._vanished: dict[Asset, str] = {}  # the cursor transaction last found missing

    def __repr__(self) -> str:
        return f"TonWatcher(interval={self._interval})"

    async def run(self) -> None:
        """Poll until cancelled; back off on 429 and errors (never raises them)."""
        delay = self._interval
        failing = False
        while True:
            wait = delay
            try:
                booked = await self.poll()
            except (ToncenterUnavailable, LedgerUnavailable) as exc:
                status = "rate_limited" if isinstance(exc, ToncenterRateLimited) else "error"
                if isinstance(exc, LedgerUnavailable):
                    status = "ledger_unavailable"
                elif isinstance(exc, ToncenterRateLimited) and exc.retry_after is not None:
                    wait = max(delay, exc.retry_after)  # sooner, it is refused again
                log.warning("ton.watcher_backoff", status=status, error=str(exc), retry_in=wait)
            except Exception:  # the loop's edge: a bug must not stop payments for good
                log.exception("ton.watcher_backoff", status="unexpected", retry_in=wait)
            else:
                if failing:
                    log.info("ton.watcher_resumed", booked=booked)
                failing = False
                delay = self._interval
                await asyncio.sleep(self._interval)
                continue
            failing = True
            await asyncio.sleep(wait)
            delay = min(delay * 2, self._max_backoff)

    async def poll(self) -> int:
        """One pass: every stream to its end, then the messages still owed; transfers booked."""
        booked = 0
        for asset in self._reader.assets:
            booked += await self._poll_stream(asset)
        for change in await self._reader.rechecked():
            # Kept and warned of when toncenter could not say: the operator's own money back.
            await self._books.not_jetton_gram(change)
            log.info("ton.own_jetton_change", tx=change.hash, amount=change.amount, later=True)
        for booking in await self._books.unnotified():
            await self._tell(booking)
        if self._clock() >= self._next_purge:
            self._next_purge = self._clock() + PURGE_EVERY_S
            await self._books.purge_orders()
            await self._books.purge_skipped()
        return booked

    async def _poll_stream(self, asset: Asset) -> int:
        """One stream read on from its cursor; then, for USDT, read again behind it."""
        booked, whole = await self._read_on(asset)
        if asset == "usdt" and whole:
            booked += await self._read_behind()
        return booked

    async def _read_on(self, asset: Asset) -> tuple[int, bool]:
        """The stream from its cursor to its end: transfers booked, and whether it got there."""
        cursor = await self._books.cursor(asset)
        booked = 0
        offset = 0
        limit = self._page_size  # fewer after an answer too large (``Page.limit``)
        before: tuple[int, str, int, str] | None = None
        while True:
            asked = cursor.lt
            page = await self._reader.page(asset, cursor, limit=limit, offset=offset)
            limit = next_limit(page, self._page_size)
            if cursor.lt is None and page.since is not None and page.since < cursor.start:
                # Before anything on it is booked: a restart reads from there again.
                await self._books.save_chain_since(asset, page.since)
                cursor = await self._books.cursor(asset)
            ends = page_ends(page)
            if offset > 0 and ends == before:
                # Asked to step over the records already read, an indexer that ignores
                # ``offset`` gives the same page again, and would forever: stop this pass (the
                # cursor stays where it is, nothing is skipped) and try again on the next.
                log.warning("ton.page_not_advancing", asset=asset, lt=cursor.lt, offset=offset)
                return booked, False
            before = ends
            if offset == 0:
                await self._check_cursor_listed(asset, cursor, page)
            # A page read again (a later record's check failed the pass before its end, or a
            # crash) holds records dealt with already: passed over, not checked again (one set
            # aside would be counted from one again, holding back the rest a few passes more).
            known = await self._books.known([t.hash for t in page.transfers])
            for transfer in page.transfers:
                if _after(transfer, cursor, check_hash=asset == "gram") and (
                    transfer.hash not in known
                ):
                    booked += await self._take(await self._reader.proven(transfer))
            if page.transfers:
                last = page.transfers[-1]
                await self._books.save_cursor(asset, last.lt, last.hash, last.utime)
                cursor = await self._books.cursor(asset)
            if page.size < page.limit:
                return booked, True
            # A full page: read on from its end; when it did not move past one lt (records of
            # many accounts can share one), step over the records already read instead.
            offset = offset + page.size if cursor.lt == asked else 0

    async def _check_cursor_listed(self, asset: Asset, cursor: TonCursor, page: Page) -> None:
        """Warn once when toncenter no longer lists the cursor's own transaction.

        Read from the cursor's lt, the page starts with it. A page that is not full holds every
        record from the cursor on, so one without it means toncenter forgot a transaction it
        listed (a lite-server behind the one that answered before, or history rewritten): what
        came after is booked all the same, what it credited stays credited (once), and the
        operator is told once for that cursor (``ton.cursor_vanished``). A full page without it
        may not begin where it was asked to: a proxy that asks for the newest records and sorts
        each page gives one that looks in order, and the cursor would go past the payments no
        page held. toncenter is asked whether it lists any record from the cursor up to the
        page's first: if it does, the page passed it over, and the pass stops, the cursor kept
        (``ton.page_out_of_order``, ``full=true``, each time; the watcher's backoff spaces
        the passes out); if not, the transaction is gone, as above.
        """
        if cursor.lt is None or cursor.hash is None:
            return
        full = page.size >= page.limit
        past = not full or (bool(page.transfers) and page.transfers[-1].lt > cursor.lt)
        if not past or any(t.hash == cursor.hash for t in page.transfers):
            return
        first = page.transfers[0].lt if page.transfers else cursor.lt
        if full and first > cursor.lt and await self._reader.listed_up_to(asset, cursor, first - 1):
            log.warning("ton.page_out_of_order", asset=asset, full=True, records=page.size)
            raise ToncenterUnavailable("toncenter listed a full page past records it did not give")
        if cursor.hash != self._vanished.get(asset):
            self._vanished[asset] = cursor.hash
            log.warning("ton.cursor_vanished", asset=asset, lt=cursor.lt, tx=cursor.hash)

    async def _read_behind(self) -> int:
        """The USDT stream again from ``REREAD_S`` of chain time behind its cursor to it.

        A transfer toncenter indexed after the cursor passed its lt (its sender's wallet is on
        another shard, committed a little later) is booked here. The records dealt with
        before (recorded, or skipped) are passed over quietly: no wallet check, no log line.
        """
        cursor = await self._books.cursor("usdt")
        if cursor.lt is None or cursor.utime is None:
            return 0
        since = cursor.utime - REREAD_S
        booked = 0
        offset = 0
        limit = self._page_size
        before: tuple[int, str, int, str] | None = None
        while True:
            page = await self._reader.behind(cursor, since=since, limit=limit, offset=offset)
            limit = next_limit(page, self._page_size)
            ends = page_ends(page)
            if offset > 0 and ends == before:  # an indexer that ignores ``offset``: as above
                log.warning("ton.page_not_advancing", asset="usdt", lt=cursor.lt, offset=offset)
                return booked
            before = ends
            known = await self._books.known([t.hash for t in page.transfers])
            for transfer in page.transfers:
                if transfer.hash not in known:
                    log.info("ton.indexed_late", tx=transfer.hash, lt=transfer.lt, cursor=cursor.lt)
                    booked += await self._take(await self._reader.proven(transfer))
            if page.size < page.limit:
                return booked
            offset += page.size

    async def _take(self, transfer: Transfer) -> int:
        """Book one new record (tell its user when it credits); 1 if it was booked just now."""
        if transfer.skip is not None:
            await self._skipped(transfer)
            return 0
        booking = await self._books.book(transfer)
        if not booking.new:
            return 0
        if booking.payment.status == "credited":
            await self._tell(booking)
        return 1

    async def _skipped(self, transfer: Transfer) -> None:
        """Log a skipped record as it deserves, and remember it where it must be.

        The Gram of a jetton message worth a look is kept for the audit and warned of: the
        money is on our wallet, and a hand-built body from anyone's wallet looks like one.
        """
        if transfer.skip in JETTON_SKIPS:
            if self._books.worth_a_look(transfer) and await self._reader.own_change(transfer):
                # The operator's own money back (see ``ChainReader.own_change``): no stranger's
                # Gram to look into, nobody's payment. Not kept: the Gram stream never reads
                # behind its cursor, so nothing needs to pass it over again.
                log.info("ton.own_jetton_change", tx=transfer.hash, amount=transfer.amount)
                return
            if await self._books.jetton_gram(transfer):
                log.warning(
                    "ton.jetton_message_gram",
                    tx=transfer.hash,
                    reason=transfer.skip,
                    amount=transfer.amount,
                    sender=transfer.sender,
                )
            else:
                log.debug("ton.transfer_skipped", tx=transfer.hash, reason=transfer.skip)
            return
        if transfer.skip == "foreign_jetton":
            log.warning("ton.foreign_jetton", tx=transfer.hash, amount=transfer.amount)
        elif transfer.skip in _SENDER_SKIPS:
            log.warning(
                _SENDER_SKIPS[transfer.skip],
                tx=transfer.hash,
                amount=transfer.amount,
                sender=transfer.sender,
                wallet=transfer.wallet,
            )
        else:
            log.debug("ton.transfer_skipped", tx=transfer.hash, reason=transfer.skip)
        if transfer.asset == "usdt":  # read again behind the cursor: passed over then
            await self._books.skipped(transfer)

    async def _tell(self, booking: TonBooking) -> None:
        """Tell the user once: only while holding the claim (another replica may be telling).

        The claim is renewed every third of its length while Telegram keeps the message
        waiting (flood waits, a slow answer): it lapses only for a watcher that died telling.
        """
        tx_hash = booking.payment.hash
        held = await self._books.claim_notice(tx_hash)
        if held is None:
            return
        sending = asyncio.ensure_future(self._notify(booking))
        try:
            while not (await asyncio.wait([sending], timeout=self._books.notice_claim / 3))[0]:
                held = await self._renewed(tx_hash, held)
            told = sending.result()
        except Exception:  # a bug: the claim goes, and the loop's edge logs it
            await self._books.release_notice(tx_hash, held)
            raise
        finally:
            sending.cancel()  # (done already, unless this pass was cancelled)
        if told:
            await self._books.notified(tx_hash)
        else:  # Telegram cannot take it now: the next pass (of any replica) tries again
            await self._books.release_notice(tx_hash, held)

    async def _renewed(self, tx_hash: str, held: int) -> int:
        """The claim held until ``held``, renewed: its new end (``held`` if it could not be).

        A renewal the database cannot take now is tried at the next beat; a claim that lapsed
        and another watcher took is left to it (this message goes out all the same).
        """
        try:
            until = await self._books.renew_notice(tx_hash, held)
        except LedgerUnavailable:
            log.warning("ton.notice_claim_not_renewed", tx=tx_hash)
            return held
        if until is None:
            log.warning("ton.notice_claim_lost", tx=tx_hash)
            return held
        return until


def _after(transfer: Transfer, cursor: TonCursor, *, check_hash: bool) -> bool:
    """Whether a record read from the cursor on is new: past the cursor's own transaction.

    One account's transactions never share an lt, so for the Gram stream another hash at the
    cursor's lt means the history changed under it (``check_hash``): logged, and booked.
    """
    if cursor.lt is None:
        return True
    if transfer.lt != cursor.lt:
        return transfer.lt > cursor.lt
    if transfer.hash == cursor.hash:
        return False
    if check_hash:
        log.warning("ton.cursor_mismatch", lt=transfer.lt, tx=transfer.hash)
    return True
