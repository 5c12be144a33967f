"""Another process polling with the bot's token: told once, and the polling bot stops.

Telegram serves one long poll per token: a ``getUpdates`` ends the one already waiting with
409 ``Conflict: terminated by other getUpdates request`` (and one made while a webhook is set
gets 409 ``can't use getUpdates method while webhook is active``). Two bots with one token on
different data folders would take turns at the updates for ever (aiogram logs each 409 and
polls again), each serving half the users from its own database: a payment booked in one, the
history in the other.

A single 409 is Telegram's own at a restart (the old process's poll still held): it is waited
out as aiogram does. When every poll has met a 409 for ``VEIL_POLL_CONFLICT_LIMIT`` seconds
(and at least ``CONFLICT_POLLS`` in a row), ``PollingConflicts`` logs ``telegram.token_in_use``
once and asks the bot to stop: it stops gracefully (answers in progress finish), and
``python -m bot`` ends with one line naming the cause (``TokenInUse``) and exit code 2.

A poll refused with 401 may mean the token itself is no longer good (revoked or replaced in
@BotFather while the bot ran): aiogram would poll again for ever, serving no one. The token is
then asked about once (``getMe``): refused too, it is logged (``telegram.token_refused``) and
stops the bot the same way (``TokenRefused``). Answered (or not answered at all), the 401 was
not the token's (a proxy's refusal in the Bot API's shape, one of Telegram's passing ones):
it is logged (``telegram.poll_refused``) and polled past, as aiogram does.

A webhook bot makes no polls, and Telegram keeps posting it updates after its token is revoked:
only its own calls are refused. ``RefusedToken`` asks about the token (``getMe``) on any call's
401 and stops the bot the same way (``TokenRefused`` naming the call); a 401 ``getMe`` does not
share is logged (``telegram.call_refused``) and served past.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramConflictError,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetMe, GetUpdates

from common.logs import describe

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiogram import Bot
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType

log = structlog.get_logger("veil.telegram")

CONFLICT_POLLS = 3  # polls in a row that met a 409, at the least, before the bot gives up


class TokenInUse(Exception):
    """Telegram kept refusing the bot's polls: another process uses its token."""

    def __init__(self, seconds: float, description: str) -> None:
        super().__init__(description)
        self.seconds = seconds
        self.description = description

    def line(self) -> str:
        """The one line for the operator (Telegram's description names no token)."""
        return (
            "veil: another process uses this bot's token (VEIL_BOT_TOKEN): Telegram refused its"
            f' update polls for {self.seconds:.0f} s or more ("{self.description}"): stop the'
            " other one (one token, one long-polling bot), or give each bot its own token"
        )


class TokenRefused(Exception):
    """Telegram refused a call with 401 while the bot served: its token is no longer good."""

    def __init__(self, method: str = "getUpdates") -> None:
        super().__init__(method)
        self.method = method  # the Bot API method refused first (getUpdates, sendMessage, …)

    def line(self) -> str:
        """The one line for the operator, as for a token refused at start."""
        return (
            f"veil: Telegram refused the bot token ({self.method}: Unauthorized) while the bot"
            " was serving: set VEIL_BOT_TOKEN to the token @BotFather gave this bot (/revoke"
            " there replaces it)"
        )


class PollingConflicts(BaseRequestMiddleware):
    """Watch ``getUpdates`` for 409s and 401s; on one that stops the bot, log it, ``stop`` once."""

    def __init__(
        self,
        limit: float,
        stop: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._stop = stop
        self._clock = clock
        self._since: float | None = None
        self._polls = 0
        self.failure: TokenInUse | TokenRefused | None = None

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Call the next handler; count a poll's 409, forget them after a poll that went through."""
        polls = isinstance(method, GetUpdates)  # (a test mypy would narrow ``method`` by)
        if not polls:
            return await make_request(bot, method)
        try:
            response = await make_request(bot, method)
        except TelegramConflictError as exc:
            self._conflict(exc.message)
            raise
        except TelegramUnauthorizedError:
            if self.failure is None and await self._token_refused(bot):
                self._refused()
            raise
        self._since, self._polls = None, 0
        return response

    def _conflict(self, description: str) -> None:
        now = self._clock()
        if self._since is None:
            self._since = now
        self._polls += 1
        lasted = now - self._since
        if self.failure is not None or self._polls < CONFLICT_POLLS or lasted < self.limit:
            return
        self.failure = TokenInUse(self.limit, description)
        log.error(
            "telegram.token_in_use",
            polls=self._polls,
            seconds=round(lasted, 1),
            description=description,
            setting="VEIL_BOT_TOKEN",
        )
        self._stop()

    @staticmethod
    async def _token_refused(bot: Bot) -> bool:
        """Whether Telegram refuses the token itself (``token_refused``)."""
        return await token_refused(bot, "getUpdates", "telegram.poll_refused")

    def _refused(self) -> None:
        if self.failure is not None:
            return
        self.failure = TokenRefused()
        log.error("telegram.token_refused", method="getUpdates", setting="VEIL_BOT_TOKEN")
        self._stop()


class RefusedToken(BaseRequestMiddleware):
    """Watch every call of a webhook bot for a 401; on a refused token, log it, ``stop`` once.

    A webhook bot makes no polls: Telegram keeps posting its updates after the token is revoked,
    and only the bot's own calls (its replies) are refused. On a call's 401 the token is asked
    about (``getMe``, one check at a time): refused too, the bot stops as a poller does.
    """

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._checking = False
        self.failure: TokenRefused | None = None

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Call the next handler; on a 401 (not getMe's own), ask whether the token is refused."""
        try:
            return await make_request(bot, method)
        except TelegramUnauthorizedError:
            name = method.__api_method__
            if isinstance(method, GetMe) or self.failure is not None or self._checking:
                raise
            self._checking = True
            try:
                refused = await token_refused(bot, name, "telegram.call_refused")
            finally:
                self._checking = False
            if refused:
                self._refused(name)
            raise

    def _refused(self, method: str) -> None:
        if self.failure is not None:
            return
        self.failure = TokenRefused(method)
        log.error("telegram.token_refused", method=method, setting="VEIL_BOT_TOKEN")
        self._stop()


async def token_refused(bot: Bot, method: str, passed: str) -> bool:
    """Whether Telegram refuses the token itself: ``getMe`` is refused 401 too.

    A ``getMe`` that answers, or fails otherwise (Telegram away, a proxy's page), tells
    nothing: the 401 of ``method`` is logged as ``passed`` (a warning), and the next 401, if
    it comes, asks again.
    """
    try:
        await bot.get_me()
    except TelegramUnauthorizedError:
        return True
    except (TelegramAPIError, ClientDecodeError) as exc:
        log.warning(passed, method=method, get_me=describe(exc))
        return False
    log.warning(passed, method=method, get_me="ok")
    return False
