"""Storage: frozen records, the SQLite store, its migrations and encryption of history at rest.

The only package that imports ``sqlite_utils``; ``Database`` is re-exported for functions that
other layers hand to ``Store.run`` (the ledger), so they need not import it themselves.
"""

from __future__ import annotations

from models.atrest import MasterKey
from models.migrations import Database
from models.records import (
    ConversationNotFound,
    DataKeyCorrupted,
    HistoryCorrupted,
    Role,
    StorageError,
    Turn,
    UserNotFound,
    UserRecord,
)
from models.store import Store

__all__ = [
    "ConversationNotFound",
    "DataKeyCorrupted",
    "Database",
    "HistoryCorrupted",
    "MasterKey",
    "Role",
    "StorageError",
    "Store",
    "Turn",
    "UserNotFound",
    "UserRecord",
]
