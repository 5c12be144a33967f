"""Storage: frozen records, the SQLite store, its migrations and encryption of history at rest.

The only package that imports ``sqlite_utils``; ``Database`` is re-exported for the functions
other layers hand to ``Store.read`` and ``Store.write``, so they need not import it themselves.
One module a concern, each with its records beside it:

- ``store`` (users, conversations, sealed turns; ``records`` holds their records) and
  ``atrest`` (the master key, data keys, sealed bodies);
- ``ledger`` (entries, balances), ``holds`` (requests' holds and charges), ``orders`` (orders
  and payments), ``usage`` (the proof kept with each charge), ``stats`` (figures and the
  invariant the books keep);
- ``journal`` (the payment journal, a file of its own), ``backup`` (online copies);
- ``database`` (one connection on one thread, the write path that owns transactions),
  ``migrations`` (schema changes through sqlite-utils' ``Migrations``) and ``errors`` (the
  ``StorageError`` tree, and the one place SQLite's own errors become it).
"""

from __future__ import annotations

from models.atrest import MasterKey
from models.database import Database
from models.errors import (
    ConversationNotFound,
    DataFolderError,
    DataKeyCorrupted,
    HistoryCorrupted,
    MasterKeyFileError,
    StorageError,
    UserNotFound,
)
from models.records import Conversation, Role, TokenCount, Turn, UserRecord
from models.store import Store

__all__ = [
    "Conversation",
    "ConversationNotFound",
    "DataFolderError",
    "DataKeyCorrupted",
    "Database",
    "HistoryCorrupted",
    "MasterKey",
    "MasterKeyFileError",
    "Role",
    "StorageError",
    "Store",
    "TokenCount",
    "Turn",
    "UserNotFound",
    "UserRecord",
]
