"""A private chat's updates handled in the order they were sent; other chats' side by side.

aiogram hands each update of a poll to a task of its own, and the webhook handles each update
in the background, so the updates of one batch (after the bot was down, say) ran at once: a
question and the ``/cancel`` after it could be handled the other way round ("nothing to
cancel", then the question answered and charged), a payment after the question that needed it.
``UpdateOrder`` (the dispatcher's outer update middleware) lets an update in a user's private
chat with the bot (a message, a button pressed there, its stop button) start only once the
chat's updates before it have been handled, in ``update_id`` order; a refusal raised in a
handler is told within its turn, by the dispatcher's errors router (``_telling_errors``), not
after it by aiogram's outermost middleware. An answer runs detached from its update
(``ChatService.start``): its handler waits only until the answer has started (its credit held,
the model asked) or been refused and the refusal told (``handlers.chat.answer_prompt``), so a
refusal comes before the reply to the next update, and nothing waits for an answer to be
written.

Updates from groups, inline queries and the like are not held: a group keeps its own queue, in
order, and its notices wait for the group's pace (``handlers.groups``), which must not hold a
member's next message, nor their private chat. A handler that must wait for the chat's next
update (a long text's next part, ``PasteParts``) lets it in first: ``data["let_next_in"]``. One
that takes longer than ``patience`` seconds (a flood wait past the retries' minute) no longer
holds the next: it goes in, logged. A chat with nothing in hand takes no memory. An update
waiting for its chat (behind the one before it, or for the next part) does not count among the
updates the bot takes in at once (``bot.intake``): one chat's backlog never holds up another's.

Nor does it grow without bound: past ``MOST_WAITING`` updates of one chat waiting behind the one
handled (a user sending hundreds of messages while each reply of theirs waits out Telegram's
flood control, say), the next is let go unhandled (``update.backlog_dropped``, counted in
``dropped``), and the user is told once, until their backlog has cleared, that the messages
past it were not read. A payment is never let go (its booking and thanks are in its handler),
nor a button's press (a /forget's "Yes, erase", a stop button), and a user's burst (a long
text's parts, an album, a few quick messages) is far below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import TYPE_CHECKING, Any

import structlog
from aiogram import BaseMiddleware, Bot, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.middlewares.error import ErrorsMiddleware
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.types import Update

from bot.intake import leaving, waits_elsewhere
from bot.payments import entry_from_update

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiogram.types import TelegramObject

    from common.texts import Catalogs

log = structlog.get_logger("veil.order")

PATIENCE = 90.0  # seconds an update waits for the one before it: beyond the retries' minute
# Updates of one chat that may wait behind the one handled: above a long text's 25 parts, a
# 10-file album and a dozen quick messages together; past it one is let go (``UpdateOrder``).
MOST_WAITING = 50
ORDER = "update_order"  # the dispatcher's workflow data key of its ``UpdateOrder``
TURN = "update_turn"  # the handler data key of a turn taken before the update was fed
LET_NEXT_IN = "let_next_in"  # the handler data key of the turn's ``done``


class Turn:
    """One update's place among its chat's: it may start once it is first (``come``)."""

    __slots__ = ("_came", "_order", "key", "started", "update_id")

    def __init__(self, order: UpdateOrder, key: int, update_id: int) -> None:
        self._order = order
        self.key = key
        self.update_id = update_id
        self.started = False
        self._came = asyncio.Event()

    async def come(self, patience: float) -> None:
        """Wait until the updates before this one are handled, or ``patience`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while not self._order.first(self):
            self._came.clear()
            left = deadline - loop.time()
            if left <= 0:
                log.warning("update.order_waited_out", update_id=self.update_id)
                break
            with contextlib.suppress(TimeoutError):  # (not wait_for: it can swallow a cancel)
                async with asyncio.timeout(left):
                    await self._came.wait()
        self.started = True

    def done(self) -> None:
        """This update is handled (or lets the next in): the chat's next one may start."""
        self._order.leave(self)

    def wake(self) -> None:
        """It is first now."""
        self._came.set()


class UpdateOrder(BaseMiddleware):
    """The outer update middleware that starts a private chat's updates one at a time, in order.

    The webhook takes an update's turn (``take``) as the update arrives, before it writes a
    payment to the journal, and hands it over as ``data[TURN]``; a poll's update takes it here.
    """

    def __init__(
        self,
        patience: float = PATIENCE,
        most_waiting: int = MOST_WAITING,
        catalogs: Catalogs | None = None,
    ) -> None:
        self.patience = patience
        self.most_waiting = most_waiting
        self.catalogs = catalogs  # the notice's texts; None: the user is not told
        self._queues: dict[int, list[Turn]] = {}
        self._dropping: dict[int, int] = {}  # chat -> updates let go since its backlog filled
        self.dropped = 0  # updates let go, in all
        self.on_dropped: Callable[[], None] | None = None  # told of each (``bot.metrics``)

    @property
    def chats(self) -> int:
        """How many chats have an update in hand (each with its queue)."""
        return len(self._queues)

    def take(self, update: Update) -> Turn | None:
        """The update's place after its chat's updates in hand; None when it is not held.

        Among updates still waiting it goes in ``update_id`` order, whichever came in first.
        """
        key = chat_of(update)
        if key is None:
            return None
        turn = Turn(self, key, update.update_id)
        queue = self._queues.setdefault(key, [])
        place = len(queue)
        while place > 0 and _later(queue[place - 1], turn):
            place -= 1
        queue.insert(place, turn)
        return turn

    def first(self, turn: Turn) -> bool:
        """Whether ``turn`` is the first of its chat's (nothing before it in hand)."""
        queue = self._queues.get(turn.key)
        return not queue or queue[0] is turn

    def leave(self, turn: Turn) -> None:
        """Take ``turn`` out of its chat's queue (once); the next one, if first now, may start."""
        queue = self._queues.get(turn.key)
        if queue is None or turn not in queue:
            return
        queue.remove(turn)
        if not queue:
            del self._queues[turn.key]
            if (dropped := self._dropping.pop(turn.key, None)) is not None:
                log.info("update.backlog_cleared", user_id=turn.key, dropped=dropped)
        else:
            queue[0].wake()

    def waiting(self, key: int) -> int:
        """How many of chat ``key``'s updates wait for their turn (not started)."""
        return sum(not turn.started for turn in self._queues.get(key, ()))

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:  # noqa: ANN401 -- whatever the handler returns
        """Handle the update once its chat's updates before it are handled."""
        turn = data.pop(TURN, None)
        if turn is None and isinstance(event, Update):
            turn = self.take(event)
        if not isinstance(turn, Turn):
            return await handler(event, data)
        try:
            if self._past_most(turn, event):
                await self._drop(turn, event, data)
                return UNHANDLED
            if not self.first(turn):  # it waits for its chat, not for the bot
                waits_elsewhere()
            await turn.come(self.patience)
            data[LET_NEXT_IN] = functools.partial(_let_next_in, turn, leaving())
            return await _telling_errors(handler, event, data)
        finally:
            turn.done()

    def _past_most(self, turn: Turn, event: TelegramObject) -> bool:
        """Whether ``turn``'s update is one too many waiting for its chat.

        Never a payment, nor a button's press: a press let go was lost without a word (the
        notice speaks of messages, and comes once), "Yes, erase" of /forget erased nothing, a
        stop button left its answer running and charged. A press is a tap on a message of the
        bot's, not text a user pastes by the hundred.
        """
        if self.first(turn) or self.waiting(turn.key) <= self.most_waiting:
            return False
        if not isinstance(event, Update):
            return True
        return event.callback_query is None and entry_from_update(event) is None

    async def _drop(self, turn: Turn, event: TelegramObject, data: dict[str, Any]) -> None:
        """Let ``turn``'s update go unhandled; the first of a backlog logged, and told the user.

        Each one counts (``dropped``, ``on_dropped``); the log line and the notice come once a
        backlog (until the chat has nothing waiting): a user sending hundreds is told once,
        and the operator reads one line, not a line a message.
        """
        turn.done()
        self.dropped += 1
        if self.on_dropped is not None:
            self.on_dropped()
        dropped = self._dropping.get(turn.key, 0)
        self._dropping[turn.key] = dropped + 1
        if dropped:
            return
        log.warning("update.backlog_dropped", user_id=turn.key, waiting=self.most_waiting)
        bot = data.get("bot")
        if self.catalogs is None or not isinstance(bot, Bot) or not isinstance(event, Update):
            return
        user = UserContextMiddleware.resolve_event_context(event).user
        texts = self.catalogs.for_language(None if user is None else user.language_code)
        try:
            await bot.send_message(turn.key, texts("one_at_a_time", most=self.most_waiting))
        except (TelegramAPIError, ClientDecodeError) as exc:
            log.info("update.backlog_untold", error=type(exc).__name__)


async def _telling_errors(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:  # noqa: ANN401 -- whatever the handler returns
    """Run ``handler``; an error it raises is told by the dispatcher's errors router here.

    aiogram's own ``ErrorsMiddleware`` is the dispatcher's outermost middleware, outside the
    order: a refusal raised in a handler was told only after its turn had ended, so the reply
    to the user's next update could come first. One that no errors handler takes goes on out,
    as before (the outer one finds none either).
    """
    dispatcher = data.get("dispatcher")
    if not isinstance(dispatcher, Router):
        return await handler(event, data)
    return await ErrorsMiddleware(dispatcher)(handler, event, data)


def _let_next_in(turn: Turn, leave: Callable[[], None]) -> None:
    """The handler waits for the chat's next update: it may start, and this one waits for it."""
    turn.done()
    leave()


def _later(waiting: Turn, turn: Turn) -> bool:
    """Whether ``waiting`` has not started and came after ``turn`` (a higher update_id)."""
    return not waiting.started and waiting.update_id > turn.update_id


def chat_of(update: Update) -> int | None:
    """The private chat an update belongs to (its id, the user's); None: none, not held."""
    chat = UserContextMiddleware.resolve_event_context(update).chat
    return chat.id if chat is not None and chat.type == "private" else None
