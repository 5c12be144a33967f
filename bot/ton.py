"""Wiring for paying in Gram and USDT on TON: the shop, the books, the chain reader.

``ton_parts`` builds them from the settings (nothing when ``VEIL_TON_ADDRESS`` is empty) with
their own HTTP session to toncenter; ``bot.app`` hands them to the handlers and runs the
watcher, and ``python -m bot reconcile`` compares the books with the chain (``reconcile_ton``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from models.ton import TonCursor
from services.ton.books import TonBooks
from services.ton.reader import ChainReader
from services.ton.shop import TonShop
from services.ton.toncenter import ToncenterClient
from services.ton.watcher import TonWatcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from bot.settings import BotSettings
    from models import Store
    from services.ton.books import TonBooking
    from services.ton.chain import Transfer


@dataclass(frozen=True)
class TonParts:
    """The TON payment parts of a running bot (or of a ``reconcile`` run)."""

    shop: TonShop
    books: TonBooks
    reader: ChainReader

    def watcher(
        self, notify: Callable[[TonBooking], Awaitable[bool]], settings: BotSettings
    ) -> TonWatcher:
        """The background watcher that books payments and tells users with ``notify``."""
        return TonWatcher(self.books, self.reader, notify, interval=settings.ton_poll_interval)


@contextlib.asynccontextmanager
async def ton_parts(settings: BotSettings, store: Store) -> AsyncIterator[TonParts | None]:
    """The TON parts for these settings, or None when TON payments are off."""
    wallet = settings.ton_wallet
    if wallet is None:
        yield None
        return
    key = settings.toncenter_key.get_secret_value() if settings.toncenter_key else None
    async with aiohttp.ClientSession() as session:
        client = ToncenterClient(settings.toncenter, session, api_key=key)
        master = settings.usdt_master
        shop = TonShop(
            store,
            wallet,
            settings.ton_pack_list,
            usdt_master=master,
            order_ttl=settings.ton_order_ttl,
        )
        books = TonBooks(store, shop, {"gram": settings.ton_dust, "usdt": settings.ton_usdt_dust})
        yield TonParts(shop, books, ChainReader(client, wallet, master))


async def reconcile_ton(parts: TonParts, *, fix: bool = False) -> tuple[int, list[str], list[str]]:
    """(transfers on the chain, the differences, the fixes made) for every watched stream.

    Reads each stream from the time its watcher began. With ``fix``, books the transfers the
    books lack (each once, by its hash; the running bot tells their users); the differences
    are then those left.
    """
    transfers: list[Transfer] = []
    for asset in parts.reader.assets:
        cursor = await parts.books.cursor(asset)
        start = TonCursor(asset, cursor.since, None, None, chain_since=cursor.chain_since)
        transfers.extend(await parts.reader.everything(asset, start))
    fixed: list[str] = []
    if fix:
        fixed = [
            f"booked ton {b.payment.hash}: {b.payment.status}"
            + (f", {b.payment.units} µ★ to user {b.payment.user_id}" if b.payment.units else "")
            for b in await parts.books.fix(transfers)
        ]
    counted = sum(1 for transfer in transfers if transfer.skip is None)
    return counted, await parts.books.reconcile(transfers), fixed
