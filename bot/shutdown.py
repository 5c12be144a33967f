"""Graceful shutdown: no new updates, answers in progress finish, then everything closes.

On SIGTERM (or SIGINT) the bot stops taking updates (long polling ends; a webhook stops
listening, so Telegram keeps new updates and delivers them again later), and ``drain`` waits for
every update being handled and every answer streaming or waiting for a group's turn (answers
run detached from their update, ``ChatService.start``), up to ``VEIL_SHUTDOWN_GRACE`` seconds.
The Mini App's relay takes no new questions from then on (the page is told no model server is
available), and the answers it is relaying get the same grace. An answer still streaming then
is stopped the metered way (``ChatService.close``: the gateway ends it with a signed
``stopped`` receipt, the text so far is delivered, charged and stored; ``RelayService.close``:
the relay hangs up, the gateway stops the model and keeps its ``stopped`` receipt, and the
relay settles from it), and ``drain`` waits for those to end too. A second signal during the
grace cuts it short, and so does one that came before the grace (while the webhook's listener
was still cutting its requests, ``Stopping``); one after it changes nothing. Stopping the
answers and waiting for the updates share one deadline, ``VEIL_STOP_GRACE`` + ``CLOSE_SLACK_S``
after the grace, and the teardown's own ``close`` calls wait only for what is left of it: the
whole stop keeps within ``VEIL_SHUTDOWN_GRACE`` + ``VEIL_STOP_GRACE`` + ``CLOSE_SLACK_S`` and the
listeners' cuts (``WEBHOOK_STOP_WAIT_S`` before the grace, ``WEBAPP_STOP_WAIT_S`` after), inside
the rule the launcher and the image's entry point check (``BOT_STOP_SLACK_S`` beyond the two
graces). Only then do the store, the journal and the sessions close, and the process exits 0.

``InFlight`` is the dispatcher's first outer update middleware that counts the updates in hand:
being handled, or waiting for their turn behind the user's update before (``bot.order``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import TYPE_CHECKING, Any

import structlog
from aiogram import BaseMiddleware

from services.chat import CLOSE_SLACK_S

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiogram.types import TelegramObject

    from services.chat import ChatService
    from services.relay import RelayService

log = structlog.get_logger("veil.shutdown")

IN_FLIGHT = "in_flight"  # the dispatcher's workflow data key of its ``InFlight``


class InFlight(BaseMiddleware):
    """Counts the updates being handled; ``idle`` is set while there are none."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:  # noqa: ANN401 -- whatever the handler returns
        """Handle the update, counted."""
        self.count += 1
        self.idle.clear()
        try:
            return await handler(event, data)
        finally:
            self.count -= 1
            if not self.count:
                self.idle.set()

    async def wait_idle(self, within: float) -> bool:
        """Wait until no update is being handled, at most ``within`` seconds; True if none is."""
        # Updates fetched just before the stop start on the next turns of the loop: let them.
        for _ in range(3):
            await asyncio.sleep(0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.idle.wait()
        return not self.count


class Stopping:
    """A stop asked for by a signal, and whether another signal asked to cut the grace short.

    The first SIGTERM or SIGINT sets ``stop``. A second one before ``drain`` takes the signals
    over (while the webhook's listener cuts its requests, up to ``WEBHOOK_STOP_WAIT_S``) was
    lost: it set the stop set already. It sets ``hurry`` now, and ``drain`` begins with its
    grace cut short, as a second signal during the grace cuts it. Not an exit on the spot (a
    second Ctrl-C in many programs): the answers streaming are then stopped the metered way,
    within ``VEIL_STOP_GRACE``, so each is delivered, charged and stored, where an exit would
    leave them unsaid and their holds open until the next start; SIGKILL remains for that.
    """

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()

    def signalled(self, signum: signal.Signals) -> None:
        """A signal's handler: stop, or, once stopping, cut the grace short.

        The event first, the line after: a line that cannot be written (stderr a pipe to a
        launcher that was killed: ``BrokenPipeError``) must not keep the bot from stopping.
        """
        if self.hurry.is_set():
            _already_stopping(signum)  # a third: nothing is left to cut short
        elif self.stop.is_set():
            self.hurry.set()
            log.info("bot.stop_hurried", signal=signum.name)
        else:
            self.stop.set()
            log.info("bot.stopping", signal=signum.name)


def _already_stopping(signum: signal.Signals) -> None:
    log.info("bot.already_stopping", signal=signum.name)


async def drain(
    in_flight: InFlight,
    chat: ChatService,
    grace: float,
    relay: RelayService | None = None,
    *,
    stopping: Stopping | None = None,
) -> None:
    """Let updates, answers and relayed answers in progress finish within ``grace``; then stop.

    Call once no new update can arrive. A SIGTERM or SIGINT while waiting ends the grace
    (``Stopping.signalled``: the stop is asked for by now), as ``stopping.hurry`` set before
    does.
    Answers run detached from their update (``ChatService.start``, ``detach``), so they are
    waited for beside the updates.
    """
    chat.stop_titles()  # an answer finishing now is not followed by a title nobody would see
    if relay is not None:
        relay.stop_taking()
    relayed = relay.running if relay is not None else 0
    if in_flight.count or chat.running or relayed:
        log.info(
            "bot.draining",
            updates=in_flight.count,
            answers=chat.running,
            relayed=relayed,
            grace=grace,
        )
    started = time.monotonic()
    stopping = Stopping() if stopping is None else stopping
    stopping.stop.set()  # draining is stopping: a signal now cuts the grace short
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stopping.signalled, signum)
    try:
        waiting = asyncio.create_task(_wait_idle(in_flight, chat, relay, grace))
        cutting = asyncio.create_task(stopping.hurry.wait())
        await asyncio.wait([waiting, cutting], return_when=asyncio.FIRST_COMPLETED)
        cutting.cancel()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    finally:
        # From here on the bot is closing anyway: another signal must not kill it mid-write.
        for signum in signals:
            loop.add_signal_handler(signum, _already_stopping, signum)
    relayed = relay.running if relay is not None else 0
    if not in_flight.count and not chat.running and not relayed:
        if time.monotonic() - started > 0.1:  # noqa: PLR2004 -- something was waited for
            log.info("bot.drained", seconds=round(time.monotonic() - started, 1))
        return
    log.warning(
        "bot.grace_over",
        updates=in_flight.count,
        answers=chat.running,
        relayed=relayed,
        cut_short=stopping.hurry.is_set(),
    )
    # One deadline for what follows the grace: stopping the answers, then the updates.
    within = chat.stop_grace + CLOSE_SLACK_S
    deadline = loop.time() + within
    closing = [chat.close(within)] + ([relay.close(within)] if relay is not None else [])
    await asyncio.gather(*closing)
    if not await in_flight.wait_idle(max(0.0, deadline - loop.time())):
        log.warning("bot.drain_timed_out", updates=in_flight.count)


async def _wait_idle(
    in_flight: InFlight, chat: ChatService, relay: RelayService | None, within: float
) -> None:
    """Wait until no update is handled and no answer runs or is relayed, at most ``within`` s.

    Updates first: one being handled may still start an answer.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    await in_flight.wait_idle(within)
    await chat.wait_idle(max(0.0, deadline - loop.time()))
    if relay is not None:
        await relay.wait_idle(max(0.0, deadline - loop.time()))
