"""What the TON watcher remembers of the chain: where each stream is, and what it passed over.

The cursors (``cursor``, ``save_cursor``) say how far the watcher has read each stream; the
skipped transfers (``skipped``) let a USDT transfer read again behind the cursor be passed
over quietly, and are forgotten after a day (``purge_skipped``), except those kept for good for
the audit: the USDT transfers set aside ``unproven`` and the Gram that came with a jetton
message worth a look (``jetton_gram``). ``TonBooks`` is a ``ChainMemory``; ``known`` counts
its recorded payments as dealt with, too. All of it lives in the ledger's database.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from models import ton as storage
from services.errors import ledger_failures
from services.ton.shop import CURSOR_MARGIN_S

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from models import Database, Store
    from models.ton import Asset, TonCursor
    from services.ton.chain import Transfer

__all__ = ["SKIPPED_KEPT_S", "ChainMemory"]

# A skipped transfer is remembered this long (seconds), and as long past the USDT cursor's
# transaction: far longer than the watcher reads behind its cursor
# (``services.ton.watcher.REREAD_S`` of chain time).
SKIPPED_KEPT_S = 86_400


class ChainMemory:
    """The watcher's cursors and the transfers it skipped, kept in the ledger's database."""

    def __init__(
        self, store: Store, dust: Mapping[Asset, int], clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._dust = dict(dust)
        self._clock = clock

    def __repr__(self) -> str:
        return "ChainMemory()"

    async def cursor(self, asset: Asset) -> TonCursor:
        """Where the watcher of ``asset`` is (an order or this call starts it, a little back)."""
        since = int(self._clock()) - CURSOR_MARGIN_S

        def write(db: Database) -> TonCursor:
            cursor = storage.get_cursor(db, asset, since)
            return dataclasses.replace(cursor, chain_since=storage.get_chain_since(db, asset))

        with ledger_failures():
            return await self._store.write(write)

    async def save_cursor(self, asset: Asset, lt: int, tx_hash: str, utime: int) -> None:
        """The watcher processed everything up to this transaction (of chain time ``utime``)."""
        now = int(self._clock())

        def write(db: Database) -> None:
            storage.save_cursor(db, asset, lt, tx_hash, utime=utime, now=now)

        with ledger_failures():
            await self._store.write(write)

    async def save_chain_since(self, asset: Asset, chain_since: int) -> None:
        """The stream's first read began at ``chain_since`` by toncenter's clock (kept for good).

        A bot fast when the stream began, set right and restarted before its first
        transaction, reads from there again, not from ``since`` in the chain's future.
        """
        now = int(self._clock())

        def write(db: Database) -> None:
            storage.save_chain_since(db, asset, chain_since, now)

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
        if not self.worth_a_look(transfer):
            return False
        await self.skipped(transfer)
        return True

    async def not_jetton_gram(self, transfer: Transfer) -> None:
        """Let go of Gram kept from a jetton message that proved to be our own change."""
        with ledger_failures():
            await self._store.write(lambda db: storage.forget_skipped(db, transfer.hash))

    def worth_a_look(self, transfer: Transfer) -> bool:
        """Whether Gram that came with a jetton message is at least the Gram dust minimum."""
        return transfer.amount >= self._dust.get("gram", 0)

    async def purge_skipped(self, kept: int = SKIPPED_KEPT_S) -> int:
        """Forget the skipped transfers remembered more than ``kept`` seconds ago; how many.

        Only once they are as far behind the USDT cursor's transaction, too: until then the
        watcher may read them again behind it (``models.ton.purge_skipped``).
        """
        now = int(self._clock())
        with ledger_failures():
            return await self._store.write(lambda db: storage.purge_skipped(db, now, kept))
