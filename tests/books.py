"""Test-only ways into the books: grant credit straight into the ledger, and check it agrees.

The bot itself credits only through the shop (payments) and charges only through holds; tests
need a balance without buying one, and a check after each scenario that every hold, payment,
refund and proof row has exactly the ledger rows it implies (``models.stats``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from models import ledger, stats
from models.ledger import LedgerEntry

if TYPE_CHECKING:
    from models import Store
    from models.ledger import Kind

# Kinds ``grant`` may write; hold, release, usage and free rows belong to requests.
CREDIT_KINDS: frozenset[Kind] = frozenset({"purchase", "grant", "refund", "subscription"})
_REQUEST_SOURCE_PREFIXES = ("hold:", "release:", "usage:", "free:")


async def grant(store: Store, user_id: int, units: int, kind: Kind, source: str) -> bool:
    """Write one credit (or, negative, a debit) with a unique ``source`` key.

    Returns False, writing nothing, if ``source`` was already recorded. ``kind`` is one of
    ``CREDIT_KINDS``: request rows (hold, release, usage, free) come from holds only.
    """
    if kind not in CREDIT_KINDS:
        raise ValueError(f"credit kind must be one of {sorted(CREDIT_KINDS)}")
    if not source or source.startswith(_REQUEST_SOURCE_PREFIXES):
        raise ValueError("source must be non-empty and not a request's key")
    entry = LedgerEntry(user_id, kind, units, source, int(time.time()))
    return await store.write(lambda db: ledger.record(db, entry))


async def inconsistent_users(store: Store) -> list[int]:
    """Users whose holds, payments and ledger rows disagree; empty when the books agree."""
    return await store.read(stats.inconsistent_users)
