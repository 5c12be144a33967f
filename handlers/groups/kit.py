"""What a group answer needs from the bot (``GroupKit``), and its look-ups of Telegram.

The kit holds the chat service, the editors, the settings and the answers asked in groups
(``asking``); it learns, once a supergroup, whether only its members can write there
(``members_only``), and asks Telegram whether an asker is still in the group once
(``at_once``), never waiting out a flood wait with the group's turn held.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Literal, NoReturn, TypeVar, cast

import structlog
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetChat

from handlers.groups.posted import InlinePosts
from handlers.replies import EDITS_REMEMBERED
from services.kept import Firsts

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import TelegramMethod

    from handlers.groups.answer import GroupAnswer
    from handlers.sinks import Editors
    from services.chat import ChatService
    from services.groups import Groups

log = structlog.get_logger("veil.groups")

GROUPS = frozenset({"group", "supergroup"})  # the chats this feature serves
MEMBER_WAIT = 3.0  # seconds a look-up of whether an asker stayed may take (``at_once``)
# Telegram not saying what a member is (refused, a flood wait, unreadable, not within the wait).
UNSAID = (TelegramAPIError, ClientDecodeError, TimeoutError)
GROUPS_REMEMBERED = 10_000  # supergroups whose kind (``GroupKit.members_only``) is remembered
# How long a getChat that failed (``GroupKit.members_only``) is not asked again, in seconds.
# Telegram refusing (400 "chat not found", 403 the bot removed) is its considered answer about
# the chat, which asking again within minutes does not change; a 5xx, a network failure, an
# unreadable reply or one not within ``MEMBER_WAIT`` is Telegram (or the path to it) passing
# trouble, usually over in seconds: asked again a minute on. Meanwhile a question there is
# looked up as where Telegram does not say what the group is.
KIND_REFUSED_FOR = 600.0
KIND_UNSAID_FOR = 60.0
KIND_REFUSALS = (TelegramBadRequest, TelegramForbiddenError, TelegramNotFound)
T = TypeVar("T")


async def at_once(bot: Bot, method: TelegramMethod[T]) -> T:
    """``method`` asked of Telegram once, within ``MEMBER_WAIT``: a flood wait is not waited out.

    For the look-ups that decide whether an asker is still in the group: a courtesy, never a
    gate. Through the session's retries a flood wait was waited out with the group's turn held
    (up to ``MEMBER_WAIT``, every answer queued behind it waiting too); asked once, Telegram's
    429 is an answer like any other refusal, and the question is answered at once. The call
    goes past the session's middlewares (its retries among them), so it is not counted in the
    Bot API metrics. A 401 is handed to them all the same (``told_refused``): a webhook bot
    learns from it that its token was revoked (and the metrics count it). Within the same
    wait: the token check it makes (``getMe``, through the retries) held the group's turn
    for as long as it took; one not done by then is dropped, and the next call that goes
    through the session (the placeholder) is checked instead.
    """
    async with asyncio.timeout(MEMBER_WAIT):
        try:
            return await bot.session.make_request(bot, method)
        except TelegramUnauthorizedError as exc:
            return await told_refused(bot, method, exc)


async def told_refused(bot: Bot, method: TelegramMethod[T], exc: TelegramUnauthorizedError) -> T:
    """Raise ``exc``, ``method``'s 401, through the session's middlewares, as if made there.

    A webhook bot gets its updates after its token is revoked: only its own calls are refused,
    and the middleware that watches them for a 401 (``bot.conflict.RefusedToken``) asks
    Telegram about the token and stops the bot. A look-up made past the middlewares (``at_once``)
    left that to the next call that went through them, if any came. Nothing is asked again
    here: the middlewares see the refusal Telegram gave.
    """

    async def refused(bot: Bot, method: TelegramMethod[T]) -> NoReturn:
        del bot, method  # the chain's own: the refusal is Telegram's, ``exc``
        raise exc

    chain: NextRequestMiddlewareType[T] = bot.session.middleware.wrap_middlewares(refused)
    return cast("T", await chain(bot, method))


class GroupKit:
    """What a group answer needs from the bot: the chat service, the editors, the settings.

    ``asking``: (group, member) → the answer to their question waiting for its group's turn or
    being written; let go once written (``GroupAnswer.written``).
    """

    def __init__(self, chat: ChatService, editors: Editors, groups: Groups) -> None:
        self.chat = chat
        self.editors = editors
        self.groups = groups
        self.asking: dict[tuple[int, int], GroupAnswer] = {}
        # the inline answers members posted in groups, for their ``/stop`` there
        self.inline_posts = InlinePosts()
        # (group, message) of the edited questions told of, newest ``EDITS_REMEMBERED`` kept
        self.edits_told: Firsts[tuple[int, int]] = Firsts(EDITS_REMEMBERED)
        # supergroup → what ``members_only`` learnt, the newest ``GROUPS_REMEMBERED`` kept
        self._members_only: dict[int, bool] = {}
        # supergroup → until when (``time.monotonic``) a getChat that failed is not asked
        # again, and whether Telegram refused it (``KIND_REFUSALS``)
        self._kind_unsaid: dict[int, tuple[float, bool]] = {}
        # supergroup → the getChat about it in flight, which every question there then waits for
        self._kind_asking: dict[int, asyncio.Future[bool | None]] = {}
        # When (``time.monotonic``) the flood wait Telegram last set on a look-up ends.
        self._flood_ends = 0.0

    def stop_pressed(
        self, chat_id: int, stop_tag: str, user_id: int
    ) -> Literal["stopped", "opening", "held"] | None:
        """A press of the stop button ``stop_tag`` in group ``chat_id`` by ``user_id``.

        The placeholder shows the button as soon as Telegram takes it, a round trip (a slow
        Telegram's timeout) before the bot learns its id and asks the model, whose answer
        ``ChatService`` knows only then: the asker's press then withdraws it, as ``/stop``
        does (``stopped``), anyone else's stops nothing (``opening``). Once it streams, or
        tells its end in its message, it is ``held`` (the chat service stops it, if anything
        does). None: no answer of the group's is behind that button.
        """
        for (chat, _), answer in self.asking.items():
            if chat != chat_id or answer.stop_tag != stop_tag:
                continue
            if answer.sink is not None:
                return "held"
            if answer.asker.user_id == user_id and answer.stop() is not None:
                return "stopped"
            return "opening"
        return None

    async def look_up(self, method: TelegramMethod[T]) -> T:
        """``method`` asked ``at_once``, unless a flood wait Telegram set on a look-up lasts.

        ``at_once`` goes past the session's retries, which keep every other call out of a
        flood wait: a look-up within one would make it longer (Telegram counts the calls
        there too), and each queued question in its turn made one. Until it ends, a look-up
        raises ``TelegramRetryAfter`` without asking: the question is answered as when
        Telegram does not say.
        """
        left = self._flood_ends - time.monotonic()
        if left > 0:
            raise TelegramRetryAfter(method, "the flood wait is not over", math.ceil(left))
        try:
            return await at_once(self.editors.bot, method)
        except TelegramRetryAfter as exc:
            self._flood_ends = max(self._flood_ends, time.monotonic() + exc.retry_after)
            raise

    async def members_only(self, chat_id: int, *, basic: bool, fresh: bool = False) -> bool | None:
        """Whether only the group's members can write in it; None: Telegram did not say.

        A basic group, always. A supergroup too, unless it is a channel's discussion group
        (``linked_chat_id``) that lets anyone comment without joining (``join_to_send_messages``
        off): there, one out of the group may have asked from outside it. Asked of Telegram
        (getChat) once a supergroup. ``fresh``: a group remembered as members-only is asked
        again (its admins may have opened it to comments since); one remembered as open is
        not: were it closed since, one out of it is taken for a commenter, as where Telegram
        does not say. A getChat that failed is not asked again for a while
        (``KIND_REFUSED_FOR``, ``KIND_UNSAID_FOR``): each question waiting there made one,
        each failing as the one before it. Nor is one in flight: a question there meanwhile
        waits for its answer (two made at once each failed, each a call).
        """
        if basic:
            return True
        remembered = self._members_only.get(chat_id)
        if remembered is not None and not (fresh and remembered):
            return remembered
        if self._kind_unsaid.get(chat_id, (0.0, False))[0] > time.monotonic():
            return None
        asking = self._kind_asking.get(chat_id)
        if asking is None:
            asking = self._kind_asking[chat_id] = asyncio.ensure_future(self._ask_kind(chat_id))
            asking.add_done_callback(lambda _: self._kind_asking.pop(chat_id, None))
        return await asyncio.shield(asking)  # one asker's cancel is not the others'

    async def _ask_kind(self, chat_id: int) -> bool | None:
        """``members_only``'s getChat, its answer or its failure remembered."""
        try:
            chat = await self.look_up(GetChat(chat_id=chat_id))
        except UNSAID as exc:
            log.info("groups.kind_unknown", error=type(exc).__name__)
            if not isinstance(exc, TelegramRetryAfter):  # kept by ``look_up`` already
                refused = isinstance(exc, KIND_REFUSALS)
                wait = KIND_REFUSED_FOR if refused else KIND_UNSAID_FOR
                _remember(self._kind_unsaid, chat_id, (time.monotonic() + wait, refused))
            return None
        only = chat.linked_chat_id is None or bool(chat.join_to_send_messages)
        self._kind_unsaid.pop(chat_id, None)
        _remember(self._members_only, chat_id, only)
        return only

    def posted(self, chat_id: int) -> None:
        """Telegram took a post of the bot's in ``chat_id``: a getChat refusal there is stale.

        Telegram refuses getChat (403, 400 "chat not found") about a group the bot was taken
        out of; put back, it is in the group again, and its refusal, kept ``KIND_REFUSED_FOR``,
        had each question looked up as where Telegram does not say (an asker who left taken
        for a commenter). Passing trouble is kept its minute: a post says nothing of it.
        """
        if self._kind_unsaid.get(chat_id, (0.0, False))[1]:
            del self._kind_unsaid[chat_id]


def _remember(kept: dict[int, T], chat_id: int, value: T) -> None:
    """Keep ``value`` for ``chat_id`` as the newest; the oldest beyond ``GROUPS_REMEMBERED`` go."""
    kept.pop(chat_id, None)
    kept[chat_id] = value
    if len(kept) > GROUPS_REMEMBERED:
        del kept[next(iter(kept))]
