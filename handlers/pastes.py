"""A long text the Telegram app sent in parts is asked once, whole.

The app cuts a text past 4096 characters into messages wherever it fits; each arrives as an
update of its own. ``PasteParts`` (the dispatcher's outer message middleware) puts a private
chat's texts through ``Pastes``, which holds a part of ``PASTE_PART`` or more for the next and
hands the joined text to ``handlers.chat.on_text`` as ``pasted``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.types import Message

from handlers.reading import asked_text
from handlers.replies import topic_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiogram.types import TelegramObject

PASTE_PART = 3500  # UTF-16 units: a message this long may be one part of a longer text
PASTE_WAIT = 1.0  # seconds such a message waits for the next part
PASTE_MOST = 25  # parts (~100,000 characters) joined at most: then it is asked as it is
PASTE_HELD_MOST = 10.0  # seconds a part waits at most while the bot's intake holds updates back


@dataclass(slots=True)
class _Paste:
    """The parts of one long text so far (by message id), and when it is asked."""

    due: float
    parts: dict[int, str] = field(default_factory=dict)
    came: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False  # its last part came (a shorter one, or the most joined)


class Pastes:
    """Long texts that a Telegram app sent as several messages, joined into one question.

    The apps send a text over 4096 characters as messages of up to 4096, one right after
    another; each was a question of its own (the next ones told to wait for the first's
    answer), the first part answered without the rest. A message of at least ``PASTE_PART``
    UTF-16 units now waits up to ``wait`` seconds for the user's next message in the same chat
    and topic: a long one joins it and waits again, a shorter one joins it as the last part;
    the parts are asked as one question, in message order, joined by a line break. At most
    ``PASTE_MOST`` parts are joined (a sender who never stops would otherwise grow one question
    without end); the next message then starts afresh.

    ``held``: whether the bot holds updates back at Telegram now (its intake full, a poll
    waiting for room: ``bot.intake``). The next part may be among them, so a part whose wait
    ends then waits on, and once more after, up to ``PASTE_HELD_MOST`` seconds: else a burst of
    other users' questions split the text into two questions, each answered and charged.
    """

    def __init__(self, wait: float = PASTE_WAIT, held: Callable[[], bool] | None = None) -> None:
        self._wait = wait
        self._held = held
        self._open: dict[tuple[int, int | None], _Paste] = {}

    def join(self, key: tuple[int, int | None], message_id: int, text: str, sent: str) -> bool:
        """Add this message to the text waiting for its next part, if one is; whether it did."""
        paste = self._open.get(key)
        if paste is None:
            return False
        now = asyncio.get_running_loop().time()
        paste.parts[message_id] = text
        full = len(paste.parts) == PASTE_MOST
        paste.ended = full or not _is_long(sent)
        paste.due = now if paste.ended else now + self._wait
        paste.came.set()
        if full:
            del self._open[key]  # asked now: a next part starts a paste of its own
        return True

    async def whole(
        self,
        key: tuple[int, int | None],
        message_id: int,
        text: str,
        waiting: Callable[[], None] | None = None,
        *,
        sent: str | None = None,
    ) -> str | None:
        """The text to ask for this message; None when it joined a text another call asks.

        ``waiting`` is called when this message waits for its next part (which may then come).
        ``sent``: the message's text as the app sent it, if ``text`` (what it asks) is less:
        its length says whether it may be a part (a forward of Veil's answer, its thinking
        left out, is as long as Veil sent it).
        """
        loop = asyncio.get_running_loop()
        sent = text if sent is None else sent
        if self.join(key, message_id, text, sent):
            return None
        if not _is_long(sent):
            return text
        paste = self._open[key] = _Paste(loop.time() + self._wait, {message_id: text})
        if waiting is not None:
            waiting()
        held_until = loop.time() + PASTE_HELD_MOST
        held = False  # updates held back at the last wait's end
        try:
            while True:
                if (left := paste.due - loop.time()) <= 0:
                    # Held back, or it was at the last wait's end: one more wait, for the part
                    # a poll may be bringing.
                    was, held = held, self._held is not None and self._held()
                    if paste.ended or loop.time() >= held_until or not (was or held):
                        break
                    paste.due = loop.time() + self._wait
                    continue
                with contextlib.suppress(TimeoutError):  # (not wait_for: it can swallow a cancel)
                    async with asyncio.timeout(left):
                        await paste.came.wait()
                paste.came.clear()
        finally:
            if self._open.get(key) is paste:
                del self._open[key]
        return "\n".join(paste.parts[index] for index in sorted(paste.parts))


def _is_long(text: str) -> bool:
    """Whether ``text`` may be one part of a longer text (``PASTE_PART`` UTF-16 units or more)."""
    return len(text.encode("utf-16-le")) >= 2 * PASTE_PART


class PasteParts(BaseMiddleware):
    """The dispatcher's outer message middleware: texts in a private chat go through ``Pastes``.

    Here, before any router: the app cuts a long text wherever it fits, so a part may begin
    with a line that reads as a command (``/new starts a new conversation.``); it joins the text
    it is part of instead of reaching that command's router. The text to ask reaches the
    handler as ``pasted`` (``on_text``); a part that joined another is handled no further.
    The user's updates start one at a time (``bot.order``): a part that waits for the next
    lets it in (``let_next_in``), or it would wait behind the part it is to join.
    """

    def __init__(self, pastes: Pastes) -> None:
        self.pastes = pastes

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:  # noqa: ANN401 -- whatever the handler returns
        """Join the text waiting in this chat and topic, or handle the message (its whole text)."""
        if (
            isinstance(event, Message)
            and event.chat.type == "private"
            and event.text is not None
            and event.from_user is not None
        ):
            key = (event.from_user.id, topic_of(event))
            text = asked_text(event, data["bot"].id, data["texts"].catalogs)
            waiting = data.get("let_next_in")
            pasted = await self.pastes.whole(key, event.message_id, text, waiting, sent=event.text)
            if pasted is None:
                return None
            data["pasted"] = pasted
        return await handler(event, data)
