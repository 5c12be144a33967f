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

A USDT transfer counts only from the real master's own wallet: ``ChainReader`` asks the master
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
whichever came first (clocks differ; older history is not Veil's).

The USDT stream is then read again behind its cursor (``REREAD_S`` of chain time before the
cursor's transaction, up to its lt): jetton transfers are listed by the lt of the senders'
jetton wallets' transactions, accounts on other shards, so one committed (and indexed) a little
later can carry an lt the cursor has already passed. A record there that was neither booked nor
skipped before is booked (``ton.indexed_late``); the rest are passed over with no wallet check
and no log line (the skipped ones' hashes are kept: ``TonBooks.skipped``). The Gram stream is
one account's transactions, whose lts are strictly ordered: nothing appears below its cursor.

A 429 to a page or a wallet check is asked again within the pass (``_patiently``: toncenter
without a key answers about one call a second). Failures never reach the bot: a 429 still
refused or any toncenter or ledger error logs one status line
(``ton.watcher_backoff``) and the next pass waits twice as long, up to ``max_backoff``; the
first good pass after that logs ``ton.watcher_resumed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import structlog

from services.errors import LedgerUnavailable
from services.ton.chain import JETTON_SKIPS, gram_transfer, jetton_transfer, trace_id
from services.ton.errors import GetMethodFailed, ToncenterRateLimited, ToncenterUnavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from models.ton import Asset, TonCursor
    from services.ton.books import TonBooking, TonBooks
    from services.ton.chain import Transfer, WalletAddress
    from services.ton.toncenter import ToncenterClient

__all__ = ["ChainReader", "Page", "TonWatcher"]

log = structlog.get_logger("veil.ton")

PAGE = 100
POLL_EVERY_S = 10.0
MAX_BACKOFF_S = 300.0
PURGE_EVERY_S = 3600.0
# Each pass reads the USDT stream again from this long (seconds of chain time) before its
# cursor's transaction up to it, for a transfer toncenter indexed after the cursor passed its lt.
REREAD_S = 60
WALLETS_KEPT = 10_000  # senders whose USDT wallet is remembered (the oldest go first)
# A page or wallet check toncenter rate-limits (429) is asked again after this long (seconds;
# its free tier answers about one call a second), up to this many tries, within the pass.
RATE_LIMIT_WAIT_S = 1.1
RATE_LIMIT_TRIES = 3
# A USDT transfer whose sender the master's get-method fails for (the contract itself: the
# same answer each time) is set aside (``unproven``) on this many passes' failure, when the
# master answers for our own address meanwhile: the later payments are not held back by it.
UNPROVEN_TRIES = 3
# An ``excesses`` is looked up among our own jetton transfers out of this long (seconds of chain
# time) before it (and up to its lt): a trace's messages follow each other within seconds.
OWN_CHANGE_S = 600
# The skips that name the sender and its jetton wallet in their warning line.
_SENDER_SKIPS = {"unproven": "ton.unproven_jetton", "forged_jetton": "ton.forged_jetton"}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page:
    """One page read from toncenter: how many records it had, and them as transfers."""

    size: int
    transfers: list[Transfer]


class ChainReader:
    """Reads pages of incoming transfers for each asset, from a cursor, via toncenter."""

    def __init__(
        self,
        client: ToncenterClient,
        wallet: WalletAddress,
        usdt_master: WalletAddress | None = None,
    ) -> None:
        self._client = client
        self._wallet = wallet
        self._usdt_master = usdt_master
        self._wallets: dict[str, str] = {}  # sender -> the real master's wallet of it
        self._failed: dict[str, int] = {}  # transfer -> passes its sender's check failed on

    def __repr__(self) -> str:
        return f"ChainReader({self._client!r})"

    @property
    def assets(self) -> tuple[Asset, ...]:
        """The streams read: Gram, and USDT when its master is known."""
        return ("gram", "usdt") if self._usdt_master is not None else ("gram",)

    async def page(self, asset: Asset, cursor: TonCursor, *, limit: int, offset: int) -> Page:
        """The records from the cursor on (from its own transaction), oldest first.

        A USDT transfer here is as the indexer files it: ``proven`` checks its sending wallet.
        """
        account, client = self._wallet.raw, self._client
        if asset == "gram":
            records = await _patiently(
                lambda: client.transactions(account, cursor, limit=limit, offset=offset)
            )
            return Page(len(records), [gram_transfer(record, account) for record in records])
        if self._usdt_master is None:
            raise ValueError("USDT is not watched")
        master = self._usdt_master.raw
        records = await _patiently(
            lambda: client.jetton_transfers(account, cursor, limit=limit, offset=offset)
        )
        return Page(len(records), [jetton_transfer(r, account, master) for r in records])

    async def behind(self, cursor: TonCursor, *, since: int, limit: int, offset: int) -> Page:
        """USDT records of chain time ``since`` on, up to the cursor's lt, oldest first.

        The part of the USDT stream the cursor passed, read again: a transfer indexed late,
        with an lt below the cursor's, shows up here (see ``TonWatcher``).
        """
        if self._usdt_master is None or cursor.lt is None:
            raise ValueError("USDT is not watched, or its stream has no cursor yet")
        account, master, client = self._wallet.raw, self._usdt_master.raw, self._client
        end = cursor.lt
        records = await _patiently(
            lambda: client.jetton_transfers_behind(
                account, start_utime=since, end_lt=end, limit=limit, offset=offset
            )
        )
        return Page(len(records), [jetton_transfer(r, account, master) for r in records])

    async def proven(self, transfer: Transfer) -> Transfer:
        """A USDT transfer whose sending wallet is the real master's, else ``forged_jetton``.

        The indexer files a transfer under the master its sending wallet names, and a fake
        wallet contract can name the real one. Only the master knows its wallets: its
        ``get_wallet_address`` for the sender must give the wallet that sent. A get-method that
        fails raises (``ToncenterUnavailable``): the page is read again on the next pass. Asked
        of each transfer just before it is booked, so the payments read before one whose check
        fails are booked meanwhile. A Gram transfer is returned as it is.

        One the master's contract fails for (``GetMethodFailed``: an exit code, the same every
        time) is ``unproven`` on its ``UNPROVEN_TRIES``-th such failure (one a pass), if the
        master answers for our own address then: the failure is that sender's, and it would
        hold back every later USDT payment for ever. While the master answers nobody, nothing
        is set aside: the pass fails, as for a toncenter outage.
        """
        if transfer.asset != "usdt" or transfer.skip is not None or self._usdt_master is None:
            return transfer
        owner, master = transfer.sender, self._usdt_master.raw
        try:
            expected = None if owner is None else await self._master_wallet(master, owner)
        except GetMethodFailed:
            tries = self._failed.pop(transfer.hash, 0) + 1
            if len(self._failed) >= WALLETS_KEPT:
                del self._failed[next(iter(self._failed))]
            self._failed[transfer.hash] = tries  # kept while our own address is asked (it may fail)
            if tries < UNPROVEN_TRIES or not await self._master_answers(master):
                raise
            del self._failed[transfer.hash]
            return dataclasses.replace(transfer, skip="unproven")
        self._failed.pop(transfer.hash, None)
        if expected is None or transfer.wallet != expected:
            return dataclasses.replace(transfer, skip="forged_jetton")
        return transfer

    async def own_change(self, transfer: Transfer) -> bool:
        """Whether Gram that came in an ``excesses`` is the change of our own jetton transfer.

        TEP-74: a jetton transfer's receiving wallet sends what is left of the Gram attached
        to it to the transfer's response address, and a wallet app names its own: the
        operator's USDT sent out of our wallet brings its change back so. It is the same trace
        as that transfer out (toncenter's ``trace_id``, which a message body cannot forge);
        Gram a stranger sent with an ``excesses`` body, or left over from a transfer that was
        not ours, is not. Raises ``ToncenterUnavailable`` when toncenter cannot say now (the
        page is read again): the operator's change is never warned of as a stranger's.
        """
        if transfer.skip != "jetton_excesses" or transfer.trace is None:
            return False
        account, client = self._wallet.raw, self._client
        records = await _patiently(
            lambda: client.jetton_transfers_sent(
                account, start_utime=transfer.utime - OWN_CHANGE_S, end_lt=transfer.lt, limit=PAGE
            )
        )
        return any(
            isinstance(record, dict) and trace_id(record.get("trace_id")) == transfer.trace
            for record in records
        )

    async def _master_answers(self, master: str) -> bool:
        """Whether the master's ``get_wallet_address`` runs now, asked for our own address.

        Asked afresh (never from memory): a master that fails for everybody (another contract
        at its address, a toncenter that cannot run it) must not have its payments set aside.
        """
        try:
            await _patiently(lambda: self._client.jetton_wallet(master, self._wallet.raw))
        except GetMethodFailed:
            return False
        return True

    async def _master_wallet(self, master: str, owner: str) -> str:
        """The master's jetton wallet of ``owner`` (asked once: the answer never changes).

        A 429 is asked again (``_patiently``): a page of new senders is checked at toncenter's
        pace in one pass, rather than one sender a pass with the watcher's backoff between
        (minutes each).
        """
        wallet = self._wallets.get(owner)
        if wallet is None:
            wallet = await _patiently(lambda: self._client.jetton_wallet(master, owner))
            if len(self._wallets) >= WALLETS_KEPT:
                del self._wallets[next(iter(self._wallets))]
            self._wallets[owner] = wallet
        return wallet

    async def _proven_at_last(self, transfer: Transfer) -> Transfer:
        """``proven``, asked up to ``UNPROVEN_TRIES`` times: ``reconcile`` reads each once."""
        for _ in range(UNPROVEN_TRIES - 1):
            with contextlib.suppress(GetMethodFailed):
                return await self.proven(transfer)
        return await self.proven(transfer)

    async def everything(
        self, asset: Asset, cursor: TonCursor, *, limit: int = PAGE
    ) -> list[Transfer]:
        """Every transfer from the cursor on, all pages (for ``reconcile``)."""
        found: list[Transfer] = []
        seen: set[str] = set()
        offset = 0
        before: tuple[int, str, int, str] | None = None
        while True:
            page = await self.page(asset, cursor, limit=limit, offset=offset)
            ends = _ends(page)
            if offset > 0 and ends == before:
                log.warning("ton.page_not_advancing", asset=asset, lt=cursor.lt, offset=offset)
                raise ToncenterUnavailable("toncenter gave the same page again (offset ignored)")
            before = ends
            found.extend(
                [await self._proven_at_last(t) for t in page.transfers if t.hash not in seen]
            )
            seen.update(t.hash for t in page.transfers)
            if page.size < limit:
                return found
            offset += page.size


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

    def __repr__(self) -> str:
        return f"TonWatcher(interval={self._interval})"

    async def run(self) -> None:
        """Poll until cancelled; back off on 429 and errors (never raises them)."""
        delay = self._interval
        failing = False
        while True:
            try:
                booked = await self.poll()
            except (ToncenterUnavailable, LedgerUnavailable) as exc:
                status = "rate_limited" if isinstance(exc, ToncenterRateLimited) else "error"
                if isinstance(exc, LedgerUnavailable):
                    status = "ledger_unavailable"
                log.warning("ton.watcher_backoff", status=status, error=str(exc), retry_in=delay)
            except Exception:  # the loop's edge: a bug must not stop payments for good
                log.exception("ton.watcher_backoff", status="unexpected", retry_in=delay)
            else:
                if failing:
                    log.info("ton.watcher_resumed", booked=booked)
                failing = False
                delay = self._interval
                await asyncio.sleep(self._interval)
                continue
            failing = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def poll(self) -> int:
        """One pass: every stream to its end, then the messages still owed; transfers booked."""
        booked = 0
        for asset in self._reader.assets:
            booked += await self._poll_stream(asset)
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
        before: tuple[int, str, int, str] | None = None
        while True:
            asked = cursor.lt
            page = await self._reader.page(asset, cursor, limit=self._page_size, offset=offset)
            ends = _ends(page)
            if offset > 0 and ends == before:
                # Asked to step over the records already read, an indexer that ignores
                # ``offset`` gives the same page again, and would forever: stop this pass (the
                # cursor stays where it is, nothing is skipped) and try again on the next.
                log.warning("ton.page_not_advancing", asset=asset, lt=cursor.lt, offset=offset)
                return booked, False
            before = ends
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
            if page.size < self._page_size:
                return booked, True
            # A full page: read on from its end; when it did not move past one lt (records of
            # many accounts can share one), step over the records already read instead.
            offset = offset + page.size if cursor.lt == asked else 0

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
        before: tuple[int, str, int, str] | None = None
        while True:
            page = await self._reader.behind(
                cursor, since=since, limit=self._page_size, offset=offset
            )
            ends = _ends(page)
            if offset > 0 and ends == before:  # an indexer that ignores ``offset``: as above
                log.warning("ton.page_not_advancing", asset="usdt", lt=cursor.lt, offset=offset)
                return booked
            before = ends
            known = await self._books.known([t.hash for t in page.transfers])
            for transfer in page.transfers:
                if transfer.hash not in known:
                    log.info("ton.indexed_late", tx=transfer.hash, lt=transfer.lt, cursor=cursor.lt)
                    booked += await self._take(await self._reader.proven(transfer))
            if page.size < self._page_size:
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


async def _patiently(ask: Callable[[], Awaitable[T]]) -> T:
    """``ask`` toncenter; a 429 waits ``RATE_LIMIT_WAIT_S`` and asks again.

    ``RATE_LIMIT_TRIES`` in all: reading page after page (or checking sender after sender)
    keeps toncenter's pace within one pass rather than giving the pass up at the first refusal.
    """
    for tried in range(1, RATE_LIMIT_TRIES):
        try:
            return await ask()
        except ToncenterRateLimited:
            log.debug("ton.rate_limited", tried=tried)
            await asyncio.sleep(RATE_LIMIT_WAIT_S)
    return await ask()


def _ends(page: Page) -> tuple[int, str, int, str] | None:
    """The first and last record of a page (lt and hash): a page that repeats has the same."""
    if not page.transfers:
        return None
    first, last = page.transfers[0], page.transfers[-1]
    return (first.lt, first.hash, last.lt, last.hash)


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
