"""Records the storage layer returns, and the errors it raises.

Storage hands out frozen dataclasses, never row dicts. Messages never hold message text or keys.

    StorageError                 the database or a key file cannot be used as it is
    ├── HistoryCorrupted         a sealed turn does not open under its user, conversation,
    │                            position and role: tampered, moved, or its key is gone
    ├── DataKeyCorrupted         a user's wrapped data key does not open under the master key:
    │                            the wrong master key, or a row moved to another user
    ├── UserNotFound             no user row for that id (call ``Store.ensure_user`` first)
    └── ConversationNotFound     no such conversation for that user
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["user", "assistant"]
ROLES: tuple[Role, ...] = ("user", "assistant")


def as_role(value: str) -> Role:
    """Return ``value`` as a ``Role``, or raise ``ValueError`` for anything but the two roles."""
    if value == "user":
        return "user"
    if value == "assistant":
        return "assistant"
    raise ValueError("role must be 'user' or 'assistant'")


class StorageError(Exception):
    """Root of the storage layer's errors."""


class HistoryCorrupted(StorageError):
    """A stored turn fails to authenticate where it stands, so its text cannot be trusted."""


class DataKeyCorrupted(StorageError):
    """A wrapped data key fails to open under the master key in use."""


class UserNotFound(StorageError):
    """The user has no row; ``Store.ensure_user`` creates one."""


class ConversationNotFound(StorageError):
    """The conversation does not exist or belongs to another user."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user's settings; the data key never leaves the storage layer.

    ``cache_salt`` is sent with each inference request so the worker's prefix cache cannot be
    probed across users. ``created_at`` is Unix seconds. The salt stays out of ``repr``.
    """

    user_id: int
    language: str | None
    model: str | None
    cache_salt: str = field(repr=False)
    created_at: int


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, decrypted; ``seq`` counts from 1 within the conversation.

    The text stays out of ``repr`` so a logged record cannot leak it.
    """

    conversation_id: int
    seq: int
    role: Role
    text: str = field(repr=False)
    created_at: int
