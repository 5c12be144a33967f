"""How many updates the bot takes in at once: a burst waits at Telegram, not in our memory.

aiogram hands every update of a poll to a task of its own and polls again at once, and the
webhook answers each delivery before it is handled: a burst (hundreds of users asking at the
same moment, the backlog of a bot that was down) had every update in hand at once, each in
aiogram's handler chain (its coroutine frames and the data dict it copies at every level,
~35 KB an update) while the claims queued for the database. At 500 questions that set the bot's
peak memory (~65 KB an answer above the floor), and the backlog of a day's downtime had no bound.

``Intake`` counts the updates taken in and not yet handled, at most ``VEIL_UPDATES_IN_HAND``:
a poll asks Telegram (``getUpdates``'s ``limit``) only for as many as there is room for, and
waits for room before it asks; a webhook delivery waits for room before its body is read (and
Telegram, its connections busy, holds the rest). An update leaves the count when it is handled
(the first of the dispatcher's own middlewares; aiogram's errors and user context come before
it, so an error raised outside a private chat's turn is told after), and earlier when it waits
for its chat rather than for the bot: behind the user's update before it (``bot.order``), or
once it lets the chat's next update in (a long text waiting for its next part), or waits for
Telegram (a group's pace, a flood wait: ``waits_elsewhere``). One still in hand after
``SLOW_S`` seconds leaves the count too: a slow chat never holds up the others' updates for
longer than that, and a count that was somehow never given back cannot stop the bot taking updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

import structlog
from aiogram import BaseMiddleware
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.methods import GetUpdates
from aiogram.types import Update

from common.logs import describe

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable

    from aiogram import Bot
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import TelegramMethod
    from aiogram.methods.base import Response, TelegramType
    from aiogram.types import TelegramObject

log = structlog.get_logger("veil.intake")

INTAKE = "intake"  # the dispatcher's workflow data key of its ``Intake``
# Lets the update this task handles out of the count (``waits_elsewhere``); set by ``Intake``.
_IN_HAND: ContextVar[Callable[[], None] | None] = ContextVar("in_hand", default=None)
SLOW_S = 2.0  # seconds an update counts at most: then it waits for its chat, not for the bot
MOST_A_POLL = 100  # getUpdates returns at most this many (Bot API)


class Intake(BaseMiddleware):
    """The updates in hand, at most ``limit``; the first of the dispatcher's own middlewares."""

    def __init__(self, limit: int, slow: float = SLOW_S) -> None:
        self.limit = limit
        self.slow = slow
        self._held: dict[Hashable, float] = {}  # key → when it stops counting, oldest first
        self._room = asyncio.Event()
        self._room.set()
        self.waited = 0  # times a poll or a delivery waited for room
        self._waiting = 0  # polls and deliveries waiting for room now
        self.on_full: Callable[[], None] | None = None  # told each time (bot.metrics counts)

    def held_back(self) -> bool:
        """Whether updates may be waiting at Telegram for room now (full, or one waiting)."""
        return self._waiting > 0 or self.full

    @property
    def full(self) -> bool:
        """Whether a poll or a delivery would wait for room now."""
        return self.count >= self.limit

    @property
    def count(self) -> int:
        """How many updates count now (taken in, not handled, not waiting for their chat)."""
        self._expire()
        return len(self._held)

    def take(self, key: Hashable) -> None:
        """``key`` (an ``update_id``, or a delivery not yet read) is in hand from now.

        Taken again (a batch fetched again), it goes last, as its time now runs out last: the
        others stop counting in the order they are kept (``_expire``).
        """
        self._held.pop(key, None)
        self._held[key] = asyncio.get_running_loop().time() + self.slow
        if len(self._held) >= self.limit:
            self._room.clear()

    def give_back(self, key: Hashable) -> None:
        """``key`` no longer counts (handled, or waiting for its chat); again is harmless."""
        if self._held.pop(key, None) is not None and len(self._held) < self.limit:
            self._room.set()

    async def room(self) -> int:
        """Wait until fewer than ``limit`` updates count; how many more may be taken in."""
        loop = asyncio.get_running_loop()
        waited = False
        while (free := self.limit - self.count) <= 0:
            if not waited:
                waited = True
                self.waited += 1
                log.debug("intake.full", held=len(self._held))
                if self.on_full is not None:
                    self.on_full()
            oldest = next(iter(self._held.values()))
            self._room.clear()  # full now: set again only by a count given back or expired
            self._waiting += 1
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, oldest - loop.time())):
                        await self._room.wait()
            finally:
                self._waiting -= 1
        return free

    def _expire(self) -> None:
        """Let go of what has counted for ``slow`` seconds (the oldest are first)."""
        now = asyncio.get_running_loop().time()
        expired = []
        for key, until in self._held.items():
            if until > now:
                break
            expired.append(key)
        for key in expired:
            del self._held[key]
        if expired and len(self._held) < self.limit:
            self._room.set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:  # noqa: ANN401 -- whatever the handler returns
        """Handle the update; once handled, or waiting elsewhere, it no longer counts."""
        if not isinstance(event, Update):
            return await handler(event, data)
        held = _IN_HAND.set(functools.partial(self.give_back, event.update_id))
        try:
            return await handler(event, data)
        finally:
            _IN_HAND.reset(held)
            self.give_back(event.update_id)


class PollIntake(BaseRequestMiddleware):
    """The session middleware that asks Telegram for no more updates than there is room for.

    Telegram lets go of the updates a poll brought only when a ``getUpdates`` carries an offset
    past them (aiogram's next poll). One that must wait for room tells it first
    (``_confirm``): else the batch stayed unconfirmed while the intake was full, and a stop
    then (the waiting poll cancelled, the batch handled in the drain) had Telegram deliver it
    again at the next start, each question in it answered, and charged, twice.
    """

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self._confirmed: int | None = None  # the last offset told (or tried) to Telegram

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """A ``getUpdates`` waits for room, asks for what fits, and takes in what it got."""
        polling = isinstance(method, GetUpdates)  # (a test mypy would narrow ``method`` by)
        if not polling:
            return await make_request(bot, method)
        poll = cast("GetUpdates", method)
        if self.intake.full and poll.offset is not None and poll.offset != self._confirmed:
            self._confirmed = poll.offset  # tried once: a poll retried in a flood adds no more
            await _confirm(bot, poll)
        poll.limit = min(await self.intake.room(), MOST_A_POLL)
        response = await make_request(bot, method)
        self._confirmed = poll.offset
        # What the chain hands on is the method's result (aiogram's annotation says Response).
        got: object = response
        if isinstance(got, list):
            for update in got:
                if isinstance(update, Update):
                    self.intake.take(update.update_id)
        return response


async def _confirm(bot: Bot, poll: GetUpdates) -> None:
    """Tell Telegram the updates before ``poll``'s offset were taken, waiting for nothing.

    A ``getUpdates`` asks for one update at the least: the one it may bring is left alone (not
    taken in, not handed on, not confirmed), and a later poll brings it again. Sent past the
    session's middlewares: not retried (one that fails is left to the poll itself, which
    confirms them too, logged), and no sign of another poller (``bot.conflict``): a short poll
    going through is no proof that the long ones do.
    """
    confirming = GetUpdates(
        offset=poll.offset, limit=1, timeout=0, allowed_updates=poll.allowed_updates
    )
    try:
        await bot.session.make_request(bot, confirming)
    except (TelegramAPIError, ClientDecodeError) as exc:
        log.info("intake.confirm_failed", error=describe(exc))


def waits_elsewhere() -> None:
    """The update this task handles waits for its chat or for Telegram now: it leaves the count.

    Behind its chat's update before it, or letting the chat's next in (``bot.order``); for a
    chat's pace or a flood wait (``bot.pacing``, ``bot.telegram``): a group's notices
    waiting minutes for its pace, or every call waiting out a flood, held the bot's intake
    (each for ``SLOW_S``), and a group's burst of them kept every other chat's updates
    waiting at Telegram. In a task an update's handling started (a detached answer), it lets
    that update go, if still in hand; nothing once it was handled, nothing outside any.
    """
    leaving()()


def leaving() -> Callable[[], None]:
    """What lets the update this task handles out of the count, called from any task later.

    For a callback handed on (``let_next_in``), which its caller may run in a task of its own;
    one that does nothing outside an update's handling.
    """
    return _IN_HAND.get() or _stays


def _stays() -> None:
    """Outside an update's handling: nothing to let go."""
