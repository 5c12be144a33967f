"""What the bot keeps in memory about answers shown outside the private chat.

- ``LongAnswers``: whole answers too long for the message they streamed into.
- ``ReplyChains``: the turns behind each group answer, so a reply to it carries its thread.
- ``Showing``: where each update's answer is shown, for the one place that reports failures.
- ``Answered``: the places already answered, so an update delivered again is answered once.

Memory only, bounded, never on disk: a restart forgets all four (links then say the answer
expired; a reply then carries only the message it replies to; an update Telegram delivers
again after a restart, one long polling had not acknowledged, is answered again).

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

import structlog

from services.kept import Firsts

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

log = structlog.get_logger("veil.answers")

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
    """Where an update's answer is shown: an inline message, or a placeholder in a group.

    ``chat_id`` is the placeholder's group, or the chat a guest answer's inline message was
    posted in (where known: what is told there takes that chat's pace).
    """

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


class Answered:
    """The places answered already: an inline message, a guest query, a group's message.

    Telegram delivers an update again when it did not hear that the bot got it (a webhook's
    reply lost): the same chosen result, summons or mention is then not answered (nor charged)
    a second time, nor told "busy" in the message its first answer streams into. The newest
    ``size`` are remembered.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._seen: Firsts[Hashable] = Firsts(size)

    def first(self, place: Hashable) -> bool:
        """True the first time ``place`` is asked about (it is remembered then), else False."""
        if self._seen.first(place):
            return True
        log.info("answers.delivered_again")
        return False
