"""The TON payment parts over a real SQLite file and the fake toncenter, for the TON tests."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from models import MasterKey, Store
from services.credit import Credit
from services.prices import Prices
from services.ton.books import TonBooking, TonBooks
from services.ton.chain import WalletAddress
from services.ton.reader import ChainReader
from services.ton.shop import TonPack, TonShop
from services.ton.toncenter import ToncenterClient
from services.ton.watcher import TonWatcher
from tests.fakes.toncenter import USDT_MASTER, FakeToncenter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from models.ton import Asset

# The receiving wallet (any valid address does): its three forms.
WALLET_RAW = "0:" + "5f" * 32
WALLET = WalletAddress.parse(WALLET_RAW)
GRAM_PACKS = "1000000000:250000000,5000000000:1300000000"
USDT_PACKS = "1000000:70000000,5000000:375000000"
DUST: dict[Asset, int] = {"gram": 10_000_000, "usdt": 10_000}
ALICE, BOB, CAROL = 1001, 1002, 1003


@dataclass
class TonStack:
    """The parts a TON test drives, and the bookings the watcher told users about."""

    store: Store
    chain: FakeToncenter
    shop: TonShop
    books: TonBooks
    reader: ChainReader
    credit: Credit
    told: list[TonBooking] = field(default_factory=list)

    async def notify(self, booking: TonBooking) -> bool:
        """The watcher's way to tell a user: here, remember whom and what."""
        self.told.append(booking)
        return True

    def watcher(self, *, page_size: int = 100, interval: float = 0.05) -> TonWatcher:
        """A watcher over these parts (not started)."""
        return TonWatcher(
            self.books, self.reader, self.notify, interval=interval, page_size=page_size
        )

    async def balance(self, user_id: int) -> int:
        """The user's ledger balance in µ★."""
        return (await self.credit.balance(user_id)).units


@contextlib.asynccontextmanager
async def ton_stack(
    path: Path,
    *,
    chain: FakeToncenter | None = None,
    master_key: MasterKey | None = None,
    order_ttl: int = 3600,
) -> AsyncIterator[TonStack]:
    """Open the store at ``path`` and build the TON parts on the fake chain.

    A ``chain`` given must be running already; without one a new fake is started.
    """
    fake = chain or FakeToncenter()
    async with contextlib.AsyncExitStack() as stack:
        if chain is None:
            await stack.enter_async_context(fake)
        store = await Store.open(path, master_key or MasterKey.generate())
        stack.push_async_callback(store.close)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        master = WalletAddress.parse(USDT_MASTER)
        packs = TonPack.parse_list(GRAM_PACKS, "gram") + TonPack.parse_list(USDT_PACKS, "usdt")
        shop = TonShop(store, WALLET, packs, usdt_master=master, order_ttl=order_ttl)
        books = TonBooks(store, shop, DUST)
        reader = ChainReader(ToncenterClient(fake.url, session), WALLET, master)
        credit = Credit(store, Prices.parse("*=20/60"), 0)
        yield TonStack(store, fake, shop, books, reader, credit)
