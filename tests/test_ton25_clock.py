"""toncenter's clock under a bot that was fast, and under a caching proxy's ``Date``.

A stream's first read starts earlier by the bot's lead on toncenter's clock (its ``Date``).
That start is kept with the cursor, so a bot set right and restarted before the stream's first
transaction reads from the same place; and a cached answer's ``Age`` is counted, so a proxy's
copy does not make toncenter look behind by that long.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import aiohttp
from structlog.testing import capture_logs

from models import MasterKey, Store
from services.credit import Credit
from services.prices import Prices
from services.ton.books import TonBooks
from services.ton.chain import WalletAddress
from services.ton.reader import ChainReader
from services.ton.shop import CURSOR_MARGIN_S, TonPack, TonShop
from services.ton.toncenter import MAX_AGE_S, ToncenterClient
from tests.books import inconsistent_users
from tests.fakes.toncenter import USDT_MASTER, FakeToncenter
from tests.tonstack import ALICE, DUST, GRAM_PACKS, USDT_PACKS, WALLET, WALLET_RAW, TonStack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

GRAM = 1_000_000_000
PACK_UNITS = 250_000_000
AHEAD_S = 900


@contextlib.asynccontextmanager
async def bot_life(
    path: Path, chain: FakeToncenter, key: MasterKey, clock: Callable[[], float]
) -> AsyncIterator[TonStack]:
    """The TON parts of one run of the bot whose clock is ``clock``, on the file at ``path``."""
    async with contextlib.AsyncExitStack() as stack:
        store = await Store.open(path, key)
        stack.push_async_callback(store.close)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        master = WalletAddress.parse(USDT_MASTER)
        packs = TonPack.parse_list(GRAM_PACKS, "gram") + TonPack.parse_list(USDT_PACKS, "usdt")
        shop = TonShop(store, WALLET, packs, usdt_master=master, clock=clock)
        books = TonBooks(store, shop, DUST, clock)
        client = ToncenterClient(chain.url, session, clock=clock)
        reader = ChainReader(client, WALLET)  # the Gram stream alone
        credit = Credit(store, Prices.parse("*=20/60"), 0)
        yield TonStack(store, chain, shop, books, reader, credit)


async def test_a_bot_fast_when_its_stream_began_then_set_right_and_restarted_loses_no_payment(
    tmp_path: Path,
) -> None:
    # Fast by fifteen minutes at its first pass, the bot read from ten minutes before its own
    # clock less its lead: right. Set right and restarted before any transaction came, it read
    # from ``since`` again (the lead was in memory only): five minutes in the chain's future,
    # so the payment made at once was never read and never credited.
    key, path = MasterKey.generate(), tmp_path / "veil.db"
    async with FakeToncenter() as chain:
        async with bot_life(path, chain, key, lambda: time.time() + AHEAD_S) as fast:
            with capture_logs() as logs:
                assert await fast.watcher().poll() == 0
            assert [e["ahead_s"] for e in logs if e["event"] == "ton.clock_ahead"] == [AHEAD_S]
            began = (await fast.books.cursor("gram")).since
        async with bot_life(path, chain, key, time.time) as right:
            invoice = await right.shop.create_order(ALICE, "gram", str(GRAM))
            chain.add_transaction(WALLET_RAW, value=GRAM, comment=invoice.order.id)
            assert (await right.books.cursor("gram")).since > time.time()  # the fast clock's
            assert await right.watcher().poll() == 1
            assert await right.watcher().poll() == 0
            assert await right.balance(ALICE) == PACK_UNITS
            assert [b.payment.units for b in right.told] == [PACK_UNITS]
            assert await inconsistent_users(right.store) == []
            # Read from where the fast run began, by toncenter's clock.
            first = chain.calls("/api/v3/transactions")[-2]
            assert int(first.params["start_utime"]) == began - AHEAD_S


async def test_a_lead_kept_only_moves_the_start_earlier(tmp_path: Path) -> None:
    # A later run faster still reads from earlier again (kept); one set right keeps the start.
    key, path = MasterKey.generate(), tmp_path / "veil.db"
    async with FakeToncenter() as chain:
        async with bot_life(path, chain, key, lambda: time.time() + AHEAD_S) as fast:
            await fast.watcher().poll()
            began = (await fast.books.cursor("gram")).since
        async with bot_life(path, chain, key, lambda: time.time() + 2 * AHEAD_S) as faster:
            await faster.watcher().poll()
            assert (await faster.books.cursor("gram")).chain_since == began - 2 * AHEAD_S
        async with bot_life(path, chain, key, time.time) as right:
            await right.watcher().poll()
            cursor = await right.books.cursor("gram")
            assert (cursor.since, cursor.chain_since) == (began, began - 2 * AHEAD_S)
            first = chain.calls("/api/v3/transactions")[-1]
            assert int(first.params["start_utime"]) == began - 2 * AHEAD_S


async def test_a_cached_answer_does_not_make_toncenter_look_behind(tmp_path: Path) -> None:
    # A caching proxy gives a copy 4 minutes old with its first ``Date`` and ``Age: 240``:
    # counted as toncenter's clock, a bot whose clock is right looked 4 minutes ahead, read
    # from 4 minutes further back and booked the wallet's older history (a stranger's
    # payment) as Veil's. (An Age past MAX_AGE_S is not counted: review25c's proxy.)
    key, path = MasterKey.generate(), tmp_path / "veil.db"
    async with FakeToncenter(cache_age=240) as chain:
        stranger = chain.add_transaction(
            WALLET_RAW, value=GRAM, comment="not ours", now=int(time.time()) - CURSOR_MARGIN_S - 120
        )
        async with bot_life(path, chain, key, time.time) as right:
            with capture_logs() as logs:
                assert await right.watcher().poll() == 0
            assert [e for e in logs if e["event"] == "ton.clock_ahead"] == []
            assert await right.books.recorded() == []
            assert stranger in chain.transactions
            cursor = await right.books.cursor("gram")
            assert cursor.chain_since is None


async def test_a_junk_age_is_ignored_and_logged_once(tmp_path: Path) -> None:
    # An Age that is no number of seconds, or past MAX_AGE_S, would hide a real lead: the
    # bot fast by fifteen minutes would read from the chain's future again.
    key = MasterKey.generate()
    for number, junk in enumerate(["-5", "1e3", "soon", str(MAX_AGE_S + 1)]):
        async with (
            FakeToncenter(cache_age=junk) as chain,
            bot_life(tmp_path / f"{number}.db", chain, key, lambda: time.time() + AHEAD_S) as fast,
        ):
            with capture_logs() as logs:
                await fast.watcher().poll()
                await fast.watcher().poll()
            ignored = [e for e in logs if e["event"] == "ton.clock_age_ignored"]
            assert [(e["log_level"], e["age"]) for e in ignored] == [("warning", junk)]
            leads = [e["ahead_s"] for e in logs if e["event"] == "ton.clock_ahead"]
            assert leads == [AHEAD_S]
