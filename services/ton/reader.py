"""Reading the chain for the watcher: pages of incoming transfers, each proven before booking.

``ChainReader`` reads each stream (the Gram account's transactions, the USDT jetton transfers
to it) page by page from a cursor through toncenter, and reads the USDT stream again behind its
cursor (``behind``). A USDT transfer counts only from the real master's own wallet: ``proven``
asks the master (its ``get_wallet_address`` get-method, once per sender) for the sender's
wallet and skips any other as ``forged_jetton``; one the master's contract fails for (an exit
code: the same answer each time) is set aside as ``unproven`` after ``UNPROVEN_TRIES`` passes,
if the master answers for our own address. ``own_change`` tells the Gram the wallet's own jetton
transfers out bring back (their ``excesses``: same trace, from the receiver's jetton wallet)
from a stranger's. A 429 is asked again within the
pass (``_patiently``: toncenter without a key answers about one call a second); any other
toncenter failure goes up to the watcher (``services.ton.watcher``), which reads the page again
on its next pass.

A stream's first read (its cursor has no transaction yet) starts at the cursor's ``since``, a
time of the bot's clock, less how far that clock is ahead of toncenter's (``ahead``, whole
minutes; a lead under a minute is within the cursor's ten-minute margin): a bot fifteen minutes
fast would otherwise ask from five minutes in the chain's future and pass over the payments of
its first minutes. The lead is learnt from toncenter's answers (their ``Date``): a first page
read before it was known, or while it grew, is read again from the earlier start before
anything on it is booked (``ton.clock_ahead``, once a new lead). A lead past ``MAX_AHEAD_S``
(a day) is a ``Date`` that is wrong, not a clock: not used. The start a lead moved back is
kept with the cursor (``TonCursor.chain_since``, by the watcher): a bot fast when its stream
began, set right and restarted before the stream's first transaction, reads from there again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from services.ton.chain import gram_transfer, jetton_transfer, raw_address, trace_id
from services.ton.errors import (
    GetMethodFailed,
    ToncenterRateLimited,
    ToncenterRefused,
    ToncenterTooLarge,
    ToncenterUnavailable,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from models.ton import Asset, TonCursor
    from services.ton.chain import Transfer, WalletAddress
    from services.ton.toncenter import ToncenterClient

__all__ = ["PAGE", "ChainReader", "Page", "next_limit", "page_ends"]

log = structlog.get_logger("veil.ton")

PAGE = 100
WALLETS_KEPT = 10_000  # senders' USDT wallets (and traces' answers) kept; the oldest go first
# A page or wallet check toncenter rate-limits (429) is asked again after the wait its
# ``Retry-After`` asks for (``ToncenterRateLimited.retry_after``, capped), else after this long
# (seconds; its free tier answers about one call a second), up to this many tries, in the pass.
RATE_LIMIT_WAIT_S = 1.1
RATE_LIMIT_TRIES = 3
# A USDT transfer whose sender the master's get-method fails for (the contract itself: the
# same answer each time) is set aside (``unproven``) on this many passes' failure, when the
# master answers for our own address meanwhile: the later payments are not held back by it.
UNPROVEN_TRIES = 3
# An ``excesses`` is looked up among our own jetton transfers out of this long (seconds of chain
# time) before it (and up to its lt): a trace's messages follow each other within seconds.
OWN_CHANGE_S = 600
# Pages (of ``PAGE``) of our own jetton transfers out one lookup reads at most (``offset``).
SENT_PAGES = 10
# A first page is read at most this many times while the bot's lead on toncenter's clock grows.
FIRST_READS = 3
MINUTE = 60
# A lead past this is no clock (a clock set to local time is at most 14 hours off) but a
# ``Date`` that is wrong (a caching proxy's, a broken clock's): not used, or a first read would
# go back days and book the wallet's older history, strangers' payments, as Veil's.
MAX_AHEAD_S = 86_400

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Page:
    """One page read from toncenter: how many records it had, and them as transfers.

    ``limit``: the records it was asked for, fewer than the caller's where the answer to that
    was too large (``ToncenterTooLarge``): a page of ``limit`` records is full, and the
    stream goes on after it. ``since``: for a stream's first read, the chain time it began at
    (kept by the watcher).
    """

    size: int
    transfers: list[Transfer]
    limit: int
    since: int | None = None


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
        self._wallets: dict[str, str] = {}  # "master owner" -> the master's wallet of owner
        self._failed: dict[str, int] = {}  # transfer -> passes its sender's check failed on
        self._traces: dict[str, bool] = {}  # "trace sender" -> whether it is our own change
        self._sent: _Sent | None = None  # our own jetton transfers out, of the last window asked
        self._unchecked: dict[str, Transfer] = {}  # excesses toncenter could not answer for yet
        self._gram_read = 0  # the lt of the last Gram record read (the end of the window asked)
        # The end of the last window toncenter could not list (whole, or a trace at a time
        # where it was full): not asked again for the excesses it covers, on this page's read.
        self._unlisted = 0
        self._refused = False  # and whether toncenter refused the request itself (a 4xx)
        self._ahead = 0  # the most our clock was seen ahead of toncenter's (whole minutes, s)
        self._date_ignored = False  # whether a lead past MAX_AHEAD_S was logged
        self._disorder_logged = False  # whether a page out of order was logged

    def __repr__(self) -> str:
        return f"ChainReader({self._client!r})"

    @property
    def assets(self) -> tuple[Asset, ...]:
        """The streams read: Gram, and USDT when its master is known."""
        return ("gram", "usdt") if self._usdt_master is not None else ("gram",)

    async def page(self, asset: Asset, cursor: TonCursor, *, limit: int, offset: int) -> Page:
        """The records from the cursor on (from its own transaction), oldest first.

        A USDT transfer here is as the indexer files it: ``proven`` checks its sending wallet.
        Before the cursor's first transaction, from its ``since`` as toncenter's clock has it
        (see the module docstring).
        """
        if cursor.lt is not None:
            return await self._page(asset, cursor, limit=limit, offset=offset)
        for _ in range(FIRST_READS):
            used = self._ahead
            since = min(cursor.start, cursor.since - used)
            start = dataclasses.replace(cursor, since=since, chain_since=None)
            page = await self._page(asset, start, limit=limit, offset=offset)
            if self._lead() <= used:
                return dataclasses.replace(page, since=since)
            log.warning("ton.clock_ahead", asset=asset, ahead_s=self._ahead, since=start.since)
        raise ToncenterUnavailable("toncenter's clock kept moving away from ours")

    def _lead(self) -> int:
        """The most our clock was seen ahead of toncenter's, in whole minutes (seconds).

        Up to ``MAX_AHEAD_S``: a ``Date`` further behind is not used (``ton.clock_date_ignored``,
        once).
        """
        ahead = self._client.ahead
        if ahead is not None and ahead > MAX_AHEAD_S:
            if not self._date_ignored:
                self._date_ignored = True
                log.warning("ton.clock_date_ignored", ahead_s=int(ahead), most_s=MAX_AHEAD_S)
        elif ahead is not None and ahead >= MINUTE:
            self._ahead = max(self._ahead, int(ahead // MINUTE) * MINUTE)
        return self._ahead

    async def _page(self, asset: Asset, cursor: TonCursor, *, limit: int, offset: int) -> Page:
        """``page``'s records from ``cursor`` as it is."""
        account, client = self._wallet.raw, self._client
        if asset == "gram":
            records, limit = await _fitting(
                asset,
                limit,
                lambda fits: client.transactions(account, cursor, limit=fits, offset=offset),
            )
            transfers = self._in_order(
                asset, [gram_transfer(record, account) for record in records], limit=limit
            )
            if transfers:
                self._gram_read = max(self._gram_read, transfers[-1].lt)
            self._unlisted = 0  # a page read (again: a pass failed on it) asks toncenter anew
            return Page(len(records), transfers, limit)
        if self._usdt_master is None:
            raise ValueError("USDT is not watched")
        master = self._usdt_master.raw
        records, limit = await _fitting(
            asset,
            limit,
            lambda fits: client.jetton_transfers(account, cursor, limit=fits, offset=offset),
        )
        transfers = [jetton_transfer(r, account, master) for r in records]
        return Page(len(records), self._in_order(asset, transfers, limit=limit), limit)

    def _in_order(self, asset: Asset, transfers: list[Transfer], *, limit: int) -> list[Transfer]:
        """A page's transfers oldest first, as asked; ``ToncenterUnavailable`` if it cannot be.

        An indexer that lists newest first whatever ``sort`` asks fills a full page with the
        newest records: the cursor would go to the oldest of them, past the records before it
        that no page held (``ton.page_out_of_order``; the pass fails, the cursor stays). A page
        that is not full holds every record from the cursor on: put in order (logged once).
        """
        lts = [t.lt for t in transfers]
        if lts == sorted(lts):
            return transfers
        full = len(transfers) >= limit
        if full or not self._disorder_logged:
            self._disorder_logged = True
            log.warning("ton.page_out_of_order", asset=asset, full=full, records=len(transfers))
        if full:
            raise ToncenterUnavailable("toncenter listed a full page out of order")
        return sorted(transfers, key=lambda t: t.lt)  # stable: records sharing an lt as listed

    async def listed_up_to(self, asset: Asset, cursor: TonCursor, end_lt: int) -> bool:
        """Whether toncenter lists any record of the stream from the cursor's lt to ``end_lt``.

        Asked when a full page read from the cursor does not hold the cursor's own transaction
        (``TonWatcher``): an empty answer up to the page's first lt means the page began where
        it should; any record there, one the page passed over.
        """
        account, client = self._wallet.raw, self._client
        ask = client.transactions if asset == "gram" else client.jetton_transfers
        records = await _patiently(lambda: ask(account, cursor, limit=1, end_lt=end_lt))
        return bool(records)

    async def behind(self, cursor: TonCursor, *, since: int, limit: int, offset: int) -> Page:
        """USDT records of chain time ``since`` on, up to the cursor's lt, oldest first.

        The part of the USDT stream the cursor passed, read again: a transfer indexed late,
        with an lt below the cursor's, shows up here (see ``TonWatcher``).
        """
        if self._usdt_master is None or cursor.lt is None:
            raise ValueError("USDT is not watched, or its stream has no cursor yet")
        account, master, client = self._wallet.raw, self._usdt_master.raw, self._client
        end = cursor.lt
        records, limit = await _fitting(
            "usdt",
            limit,
            lambda fits: client.jetton_transfers_behind(
                account, start_utime=since, end_lt=end, limit=fits, offset=offset
            ),
        )
        return Page(len(records), [jetton_transfer(r, account, master) for r in records], limit)

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
            # kept while our own address is asked (it may fail)
            _remember(self._failed, transfer.hash, tries)
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
        as that transfer out (toncenter's ``trace_id``, which a message body cannot forge), and
        it comes from the receiver's jetton wallet (its master's ``get_wallet_address`` for the
        transfer's ``destination``, asked once a pair). Gram a stranger sent with an
        ``excesses`` body, left over from a transfer that was not ours, or sent with one by the
        contract we paid (its reply is in our trace too, but from its own address) is not.

        False when toncenter cannot say (``ton.own_change_unknown``): the Gram is then kept and
        warned of like a stranger's, for a person to look at, and asked again on the passes
        after unless toncenter refused the lookup itself (``rechecked``). Failing the pass
        instead would hold back every Gram payment behind it, for as long as toncenter's jetton
        index fails (an indexer without one: for good), and anyone can send such a body for a
        few cents.

        The answer is the trace's and the sender's, so it is asked once each (the last
        ``WALLETS_KEPT`` kept). And our own transfers out are few: one lookup lists them all
        from ``OWN_CHANGE_S`` before this ``excesses`` up to the last Gram record read
        (``_Sent``, up to ``SENT_PAGES`` pages), and answers every ``excesses`` of the page
        after it, whatever its trace: one external message sends up to 255 messages (a batch
        payout's change, or a stranger's flood of hand-built bodies), many such messages as
        many traces, and each lookup takes a toncenter call from the pass (about one a second
        without a key), holding back the payments behind them. Only a window holding more than
        ``SENT_PAGES`` pages of our own transfers out is asked again a trace at a time (a page
        each, until toncenter cannot answer one: the rest of that window's are not asked then).
        """
        if transfer.skip != "jetton_excesses" or transfer.trace is None:
            return False
        try:
            return await self._own(transfer)
        except ToncenterUnavailable as exc:
            refused = isinstance(exc, ToncenterRefused)
            log.warning("ton.own_change_unknown", tx=transfer.hash, error=str(exc), lasting=refused)
            if not refused:  # it may answer on a later pass: ``rechecked``
                _remember(self._unchecked, transfer.hash, transfer)
            return False

    async def rechecked(self) -> list[Transfer]:
        """The ``excesses`` ``own_change`` could not answer for, now known our own change.

        A 429 still refused, a 5xx, a timeout, a cut connection or an answer that is no JSON
        may pass: each such ``excesses`` (kept and warned of meanwhile) is asked again on the
        passes after, oldest first, until toncenter answers (the last ``WALLETS_KEPT`` of them;
        one forgotten, or a restart, leaves it kept: money shown, never hidden). A pass stops
        at the first that still fails, which goes to the back: one lookup a pass while
        toncenter cannot answer, and one that never passes holds back none after it. A
        refusal (``ToncenterRefused``: an HTTP 4xx but 408, 421 and 425, the same however often
        asked) is not asked again. Those answered a stranger's are forgotten: kept and warned
        of already.
        """
        ours: list[Transfer] = []
        for transfer in list(self._unchecked.values()):
            try:
                own = await self._own(transfer)
            except ToncenterRefused:
                own = False
            except ToncenterUnavailable:
                # To the back: one that never passes (a master whose get-method the VM always
                # fails) must not hold back the rest for good.
                self._unchecked[transfer.hash] = self._unchecked.pop(transfer.hash)
                break
            del self._unchecked[transfer.hash]
            if own:
                ours.append(transfer)
        return ours

    async def _own(self, transfer: Transfer) -> bool:
        """``own_change``'s answer; ``ToncenterUnavailable`` when toncenter cannot give it."""
        key = f"{transfer.trace} {transfer.sender}"
        known = self._traces.get(key)
        if known is not None:
            return known
        sent = self._sent
        if sent is None or not sent.covers(transfer):
            sent = self._sent = await self._window(transfer)
        if not sent.whole and transfer.trace not in sent.traces:
            sent = await self._trace_sent(transfer, sent)
        ours = await self._from_receiver(transfer, sent.traces.get(transfer.trace or "", ()))
        _remember(self._traces, key, ours)
        return ours

    async def _from_receiver(self, transfer: Transfer, sent: Iterable[tuple[str, str]]) -> bool:
        """Whether ``transfer`` came from the receiving jetton wallet of one of ``sent``.

        ``sent``: the (master, destination) of our transfers out of its trace. A master whose
        get-method fails (``GetMethodFailed``) names no wallet: not the change of that one.
        """
        for master, destination in sent:
            try:
                wallet = await self._master_wallet(master, destination)
            except GetMethodFailed:
                continue
            if wallet == transfer.sender:
                return True
        return False

    async def _window(self, transfer: Transfer) -> _Sent:
        """Our own transfers out from ``OWN_CHANGE_S`` before ``transfer`` to the last Gram read."""
        end = max(transfer.lt, self._gram_read)
        return await self._listed(transfer, end, unlisted=end, pages=SENT_PAGES)

    async def _trace_sent(self, transfer: Transfer, window: _Sent) -> _Sent:
        """Our own transfers out up to ``transfer``, for a ``window`` too full to answer it.

        One page, newest first: its trace's transfer out is the last one before it.
        """
        return await self._listed(transfer, transfer.lt, unlisted=window.end_lt, pages=1)

    async def _listed(self, transfer: Transfer, end_lt: int, *, unlisted: int, pages: int) -> _Sent:
        """Our own transfers out from ``OWN_CHANGE_S`` before ``transfer`` to ``end_lt``.

        What toncenter could not list (even after its 429 retries) is not asked again for the
        ``excesses`` up to ``unlisted`` (the window's end) that are not among the traces known:
        ``ToncenterUnavailable`` at once (``ToncenterRefused`` after a refusal), so a flood of
        them while toncenter refuses costs one lookup (and its waits) a window, not one each. A
        page read again (a pass that failed on it) asks anew for those not dealt with yet.
        """
        if transfer.lt <= self._unlisted:
            failure = ToncenterRefused if self._refused else ToncenterUnavailable
            raise failure("toncenter could not list our transfers out just now")
        try:
            return await self._sent_out(transfer, end_lt, pages)
        except ToncenterUnavailable as exc:
            self._unlisted = max(self._unlisted, unlisted)
            self._refused = isinstance(exc, ToncenterRefused)
            raise

    async def _sent_out(self, transfer: Transfer, end_lt: int, pages: int) -> _Sent:
        """Our own jetton transfers out from ``OWN_CHANGE_S`` before ``transfer`` to ``end_lt``.

        Up to ``pages`` pages (``offset``): ``whole`` when the last one was not full. One the
        same as the page before (an indexer that ignores ``offset``) lists nothing more, and
        will not when asked again: ``ToncenterRefused`` (lasting, as a 4xx).
        """
        account, client = self._wallet.raw, self._client
        start = transfer.utime - OWN_CHANGE_S
        traces: dict[str, set[tuple[str, str]]] = {}
        before: list[Any] | None = None
        records: list[Any] = []
        for page in range(pages):
            records = await _patiently(
                functools.partial(
                    client.jetton_transfers_sent,
                    account,
                    start_utime=start,
                    end_lt=end_lt,
                    limit=PAGE,
                    offset=page * PAGE,
                )
            )
            if records and records == before:  # and will again, however often asked
                raise ToncenterRefused("toncenter gave the same page again (offset ignored)")
            before = records
            for record in records:
                if (
                    isinstance(record, dict)
                    and (trace := trace_id(record.get("trace_id"))) is not None
                ):
                    traces.setdefault(trace, set()).update(_change_to(record, account))
            if len(records) < PAGE:
                break
        whole = len(records) < PAGE
        frozen = {trace: frozenset(pairs) for trace, pairs in traces.items()}
        return _Sent(start, end_lt, frozen, whole=whole)

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
        key = f"{master} {owner}"
        wallet = self._wallets.get(key)
        if wallet is None:
            wallet = await _patiently(lambda: self._client.jetton_wallet(master, owner))
            _remember(self._wallets, key, wallet)
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
        asking = limit
        while True:
            page = await self.page(asset, cursor, limit=asking, offset=offset)
            asking = next_limit(page, limit)
            ends = page_ends(page)
            if offset > 0 and ends == before:
                log.warning("ton.page_not_advancing", asset=asset, lt=cursor.lt, offset=offset)
                raise ToncenterUnavailable("toncenter gave the same page again (offset ignored)")
            before = ends
            found.extend(
                [await self._proven_at_last(t) for t in page.transfers if t.hash not in seen]
            )
            seen.update(t.hash for t in page.transfers)
            if page.size < page.limit:
                return found
            offset += page.size


@dataclass(frozen=True, slots=True)
class _Sent:
    """The traces of our own jetton transfers out of chain time ``start_utime`` on, to ``end_lt``.

    Each with the (master, destination) of its transfers out that named us their response
    address (an empty set if none did). ``whole`` when toncenter listed every one (its last
    page not full): a trace not among them then holds none of ours, for any ``excesses`` whose
    own window lies within this one.
    """

    start_utime: int
    end_lt: int
    traces: Mapping[str, frozenset[tuple[str, str]]]  # trace -> (master, destination) pairs
    whole: bool

    def covers(self, transfer: Transfer) -> bool:
        """Whether ``transfer``'s window (``OWN_CHANGE_S`` before it, up to it) is this one's."""
        return self.start_utime <= transfer.utime - OWN_CHANGE_S and transfer.lt <= self.end_lt


def _change_to(record: dict[str, Any], account: str) -> set[tuple[str, str]]:
    """Our transfer out's (master, destination), if its change comes back to ``account``.

    Only one naming us its response address sends its change to us; none without a master.
    """
    master, destination = (
        raw_address(record.get("jetton_master")),
        raw_address(record.get("destination")),
    )
    if master is None or destination is None:
        return set()
    if raw_address(record.get("response_destination")) != account:
        return set()
    return {(master, destination)}


def _remember(memory: dict[str, V], key: str, value: V) -> None:
    """Keep ``value`` under ``key`` in ``memory``, the oldest let go past ``WALLETS_KEPT``."""
    if len(memory) >= WALLETS_KEPT:
        del memory[next(iter(memory))]
    memory[key] = value


async def _fitting(
    asset: Asset, limit: int, ask: Callable[[int], Awaitable[list[Any]]]
) -> tuple[list[Any], int]:
    """A page of at most ``limit`` records, and the limit it was read with (``_patiently``).

    An answer too large to read (``ToncenterTooLarge``) is asked again for half as many
    records (``ton.page_too_large``, the limit asked next): anyone can send our wallet
    transfers whose bodies are as large as a message may be (256 KiB; any jetton's forward
    payload too), and a page of 100 of them is past what the client reads. Refused for good,
    every pass would stop at that page, and no payment after it would ever be credited. One
    record is far smaller than the client reads: an answer too large for one is a failure
    like any other (the pass stops, the cursor kept).
    """
    while True:
        try:
            return await _patiently(functools.partial(ask, limit)), limit
        except ToncenterTooLarge:
            if limit <= 1:
                raise
            limit //= 2
            log.warning("ton.page_too_large", asset=asset, limit=limit)


def next_limit(page: Page, most: int) -> int:
    """The records to ask for after ``page``: twice what fitted, up to ``most``.

    Past a run of large records, pages grow back to their size a page at a time.
    """
    return min(most, 2 * page.limit)


async def _patiently(ask: Callable[[], Awaitable[T]]) -> T:
    """``ask`` toncenter; a 429 waits as its ``Retry-After`` says (else ``RATE_LIMIT_WAIT_S``).

    ``RATE_LIMIT_TRIES`` in all: reading page after page (or checking sender after sender)
    keeps toncenter's pace within one pass rather than giving the pass up at the first refusal.
    A wait toncenter names is kept to: asked again sooner, it refuses again (and its limit
    may count the refusals); waited longer, the pass lags for nothing.
    """
    for tried in range(1, RATE_LIMIT_TRIES):
        try:
            return await ask()
        except ToncenterRateLimited as exc:
            wait = RATE_LIMIT_WAIT_S if exc.retry_after is None else exc.retry_after
            log.debug("ton.rate_limited", tried=tried, wait_s=wait)
            await asyncio.sleep(wait)
    return await ask()


def page_ends(page: Page) -> tuple[int, str, int, str] | None:
    """The first and last record of a page (lt and hash): a page that repeats has the same."""
    if not page.transfers:
        return None
    first, last = page.transfers[0], page.transfers[-1]
    return (first.lt, first.hash, last.lt, last.hash)
