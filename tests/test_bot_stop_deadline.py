"""The bot's stop keeps within the time the launcher and compose give it.

The launcher waits, and the image's entry point has compose wait, ``VEIL_SHUTDOWN_GRACE`` +
``VEIL_STOP_GRACE`` + ``BOT_STOP_SLACK_S`` seconds before killing the bot. After the grace,
stopping the answers (``ChatService.close``) and waiting for the updates share one deadline,
``VEIL_STOP_GRACE`` + ``CLOSE_SLACK_S``, and the teardown's own ``close`` after ``drain`` waits
only for what is left of it; the slack beyond is the store's and the sessions' to close in.

The worst case (an answer and an update that never end) would take minutes of real time, so the
stop runs on an event loop whose clock is its own: when nothing is ready, the clock moves on to
the next timer at once. The test reads that clock, never the wall's.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import TYPE_CHECKING, Any, cast

from structlog.testing import capture_logs

from bot.shutdown import InFlight, drain
from common.container import BOT_STOP_SLACK_S
from services.chat import CLOSE_SLACK_S, ChatService

if TYPE_CHECKING:
    from aiogram.types import TelegramObject

GRACE = 1.0  # VEIL_SHUTDOWN_GRACE
STOP_GRACE = 2.0  # VEIL_STOP_GRACE


class _SkippingSelector(selectors.DefaultSelector):
    """A selector that, with nothing ready, moves its loop's clock on instead of waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """What is ready now; else the clock moves on by ``timeout`` (the next timer's)."""
        ready = super().select(0)
        if ready or timeout is None:
            return ready or super().select(timeout)
        self.now += max(0.0, timeout)
        return []


class SkippingLoop(asyncio.SelectorEventLoop):
    """An event loop on a clock of its own, which only its idle waits move on."""

    def __init__(self) -> None:
        self._skipping = _SkippingSelector()
        super().__init__(self._skipping)

    def time(self) -> float:
        """The loop's own clock: the sum of the waits it skipped."""
        return self._skipping.now


async def never(_event: TelegramObject, _data: dict[str, Any]) -> None:
    """An update's handler that never ends."""
    await asyncio.Event().wait()


async def unreported(_exc: Exception) -> None:
    """Nothing to report: the answer never ends."""


async def stop_with_an_answer_and_an_update_that_never_end() -> float:
    """Drain, then close the chat as the bot's teardown does; the loop's time it took."""
    loop = asyncio.get_running_loop()
    # The store, the inference client and the ledger are never reached by an answer that
    # never ends; ``close`` only stops and waits.
    chat = ChatService(
        cast("Any", None), cast("Any", None), cast("Any", None), stop_grace=STOP_GRACE
    )
    in_flight = InFlight()
    update = asyncio.create_task(in_flight(never, cast("TelegramObject", None), {}))
    chat.detach(asyncio.Event().wait(), unreported)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert (in_flight.count, chat.running) == (1, 1)
    started = loop.time()
    await drain(in_flight, chat, GRACE)
    await chat.close()  # the teardown's (``bot.app._background``)
    spent = loop.time() - started
    update.cancel()
    for task in [update, *chat._detached_tasks]:
        task.cancel()
    await asyncio.gather(update, *chat._detached_tasks, return_exceptions=True)
    return spent


def test_a_stop_with_everything_stuck_keeps_within_the_time_compose_gives() -> None:
    with asyncio.Runner(loop_factory=SkippingLoop) as runner:
        spent = runner.run(stop_with_an_answer_and_an_update_that_never_end())
    # The grace, then one shared deadline: not one for the answers and another for the updates,
    # nor a third for the teardown's close.
    assert spent <= GRACE + STOP_GRACE + CLOSE_SLACK_S + 0.01
    assert spent >= GRACE + STOP_GRACE + CLOSE_SLACK_S - 0.01  # it did wait for them
    assert CLOSE_SLACK_S < BOT_STOP_SLACK_S  # the rest is the store's and the sessions'


def test_answers_left_after_the_stop_are_told_once() -> None:
    # The teardown's close, after drain's, found the same answer still running and told the
    # operator again: two chat.close_timed_out lines for one answer.
    with capture_logs() as logs, asyncio.Runner(loop_factory=SkippingLoop) as runner:
        runner.run(stop_with_an_answer_and_an_update_that_never_end())
    told = [line for line in logs if line["event"] == "chat.close_timed_out"]
    assert [line["answers"] for line in told] == [1]
