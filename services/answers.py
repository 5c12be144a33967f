"""What the bot keeps in memory about answers shown outside the private chat.

- ``LongAnswers``: whole answers too long for the message they streamed into.
- ``ReplyChains``: the turns behind each group answer, so a reply to it carries its thread.
- ``Showing``: where each update's answer is shown, for the one place that reports failures.

Memory only, bounded, never on disk: a restart forgets all three (links then say the answer
expired; a reply then carries only the message it replies to).

An inline, guest or group answer lives in one message of at most 4096 characters; a longer one
ends with a button whose deep link (``/start a_<token>``) shows the whole answer in the private
chat, for ``ttl`` seconds, at most ``size`` answers (the oldest go first). Anyone with the link
may read it: the link sits under the answer's beginning, in the chat where everybody already
reads it.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

TOKEN_BYTES = 12  # 16 URL-safe characters: the deep link's payload stays well under 64


class LongAnswers:
    """Tokens for long answers, each readable until it expires or is pushed out."""

    def __init__(
        self,
        *,
        ttl: float = 86_400.0,
        size: int = 2_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def keep(self, text: str) -> str:
        """Keep ``text``; return the token its link carries."""
        self._expire()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._answers[token] = (self._clock() + self.ttl, text)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)
        return token

    def get(self, token: str) -> str | None:
        """The answer ``token`` names, or None when it expired or was never kept."""
        self._expire()
        kept = self._answers.get(token)
        return kept[1] if kept is not None else None

    def __len__(self) -> int:
        return len(self._answers)

    def _expire(self) -> None:
        now = self._clock()
        while self._answers:
            token, (until, _) = next(iter(self._answers.items()))
            if until > now:
                break
            del self._answers[token]


Said = tuple[str, str]  # (role, text), as services.chat takes context


class ReplyChains:
    """(chat, message) → the turns that message ends, for the ``size`` newest group answers.

    The turns are its question and answer and the thread before them, at most ``depth``.
    """

    def __init__(self, *, depth: int = 12, size: int = 5_000) -> None:
        self.depth = depth
        self.size = size
        self._chains: OrderedDict[tuple[int, int], tuple[Said, ...]] = OrderedDict()

    def remember(self, chat_id: int, message_id: int, turns: tuple[Said, ...]) -> None:
        """Message ``message_id`` in ``chat_id`` ends ``turns`` (oldest first)."""
        self._chains[(chat_id, message_id)] = turns[-self.depth :]
        self._chains.move_to_end((chat_id, message_id))
        while len(self._chains) > self.size:
            self._chains.popitem(last=False)

    def get(self, chat_id: int, message_id: int) -> tuple[Said, ...] | None:
        """The turns message ``message_id`` ends, or None if it is not (or no longer) known."""
        return self._chains.get((chat_id, message_id))


@dataclass(frozen=True)
class Shown:
    """Where an update's answer is shown: an inline message, or a placeholder in a group."""

    user_id: int
    inline_message_id: str | None = None
    chat_id: int | None = None
    message_id: int | None = None


class Showing:
    """Update id → ``Shown``, for the errors router; the oldest forgotten beyond ``size``."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._shown: OrderedDict[int, Shown] = OrderedDict()

    def remember(self, update_id: int, shown: Shown) -> None:
        """The answer to update ``update_id`` is shown in ``shown``."""
        self._shown[update_id] = shown
        while len(self._shown) > self.size:
            self._shown.popitem(last=False)

    def pop(self, update_id: int) -> Shown | None:
        """Where update ``update_id``'s answer was shown, once."""
        return self._shown.pop(update_id, None)
