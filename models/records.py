"""The history's records: a user's settings, a conversation and one decrypted turn.

Storage hands out frozen dataclasses, never row dicts. A record never shows message text or a
key in its ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["user", "assistant"]


def as_role(value: str) -> Role:
    """Return ``value`` as a ``Role``, or raise ``ValueError`` for anything but the two roles."""
    if value == "user":
        return "user"
    if value == "assistant":
        return "assistant"
    raise ValueError("role must be 'user' or 'assistant'")


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user's settings; the data key never leaves the storage layer.

    ``cache_salt`` is sent with each inference request so the worker's prefix cache cannot be
    probed across users. ``created_at`` is Unix seconds. The salt stays out of ``repr``.
    ``inline_history``: the user opted in to inline answers joining their conversation.
    """

    user_id: int
    language: str | None
    model: str | None
    cache_salt: str = field(repr=False)
    created_at: int
    inline_history: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, decrypted; ``seq`` counts from 1 within the conversation.

    ``tokens``: an upper count of the text's tokens where one is known (an answer counted by
    its signed receipt, a question by its request's), else None: its UTF-8 bytes are the
    ceiling. The text stays out of ``repr`` so a logged record cannot leak it.
    """

    conversation_id: int
    seq: int
    role: Role
    text: str = field(repr=False)
    created_at: int
    tokens: TokenCount | None = None


@dataclass(frozen=True, slots=True)
class TokenCount:
    """An upper count of a text's tokens as ``model`` reads it (another model's may differ)."""

    tokens: int
    model: str

    def __post_init__(self) -> None:
        if self.tokens < 0 or not self.model:
            raise ValueError("a count of tokens is not negative and names its model")


@dataclass(frozen=True, slots=True)
class TurnPlace:
    """Where a turn is stored: what its sealed body is bound to, so it opens nowhere else."""

    user_id: int
    conversation_id: int
    seq: int
    role: Role


@dataclass(frozen=True, slots=True)
class Conversation:
    """One of a user's conversations, its title decrypted (None until the model named it).

    ``thread_id``: the private chat's topic it lives in (None: the chat itself). ``active``:
    the one a message in the chat itself continues. ``updated_at``: Unix seconds of its newest
    turn (or its start). The title stays out of ``repr``.
    """

    conversation_id: int
    thread_id: int | None
    title: str | None = field(repr=False)
    created_at: int
    updated_at: int
    active: bool = False
