"""Whether the asker of a group question is still in the group once its turn comes.

A question whose asker left the group, or was banned, while it waited behind another answer
is let go in its turn, unanswered and uncharged (``Presence.gone``): one look-up of
Telegram's, never waited out (``GroupKit.look_up``); a second, as it waits, only in a
channel's discussion group that takes anyone's comments (``Presence.as_asked``), serving the
turn too when Telegram answers it once the turn came.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import structlog
from aiogram.methods import GetChatMember
from aiogram.types import ChatMemberBanned, ChatMemberLeft, ChatMemberRestricted

from handlers.groups.kit import MEMBER_WAIT, UNSAID

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from aiogram.types import ChatMember, ResultChatMemberUnion

    from handlers.failures import Asker
    from handlers.groups.kit import GroupKit

log = structlog.get_logger("veil.groups")

# What an asker was in the group as they asked (``Presence.as_asked``); None: not known.
Joined = Literal["in", "out", "members_only"] | None


def _outside(member: ChatMember) -> bool:
    """Whether ``member`` is not in the group: left (or never joined), or restricted outside it."""
    return isinstance(member, ChatMemberLeft) or (
        isinstance(member, ChatMemberRestricted) and not member.is_member
    )


@dataclass(eq=False)
class Presence:
    """What a group answer learns of its asker's membership, as it waits and in its turn."""

    kit: GroupKit
    asker: Asker
    basic: bool = False  # asked in a basic group (only members write there), not a supergroup
    joined: Joined = None  # what the asker was in the group as they asked, once learnt
    turn_came: bool = False  # the question's turn came: a reading made since serves it too
    read_in_turn: ResultChatMemberUnion | None = None  # ``as_asked``'s, once the turn came

    async def gone(self, joined: Awaitable[Joined] | None) -> bool:
        """Whether the asker left the group, or was banned, since they asked.

        Then the question is let go in its turn (``joined``: what they were as they asked,
        learnt while it waited): the answer would go to a group they no longer read (or whose
        admins banned them), charged to them. A failure is not told them either
        (``GroupAnswer.failed``).
        Asked of Telegram once, in the turn (``at_once``), and once more as the question waits
        only where one out of the group could have asked it (``as_asked``); that reading serves
        the turn too when Telegram gave it once the turn had come (a short wait, or a slow
        look-up): a second one, a moment later, would say the same. Out of the group now
        is no reason by itself: a channel's discussion group takes comments from anyone, and
        Telegram lists one who never joined as ``left``; only one who was in it when they asked,
        or is banned now, is gone. Telegram failing to say, or not saying within
        ``MEMBER_WAIT`` seconds, is no reason to drop it either (``groups.asker_unknown``,
        naming why): it is answered, or told.
        """
        asker = self.asker
        try:
            async with asyncio.timeout(MEMBER_WAIT):
                if joined is not None:
                    self.turn_came = True
                    self.joined = await joined
                now = self.read_in_turn
                if now is None:
                    now = await self.kit.look_up(
                        GetChatMember(chat_id=asker.chat_id, user_id=asker.user_id)
                    )
        except UNSAID as exc:
            log.info("groups.asker_unknown", error=type(exc).__name__)
            return False
        finally:
            # The turn's alone, used or not (a wait that ran out as it came): a failure's
            # look-up later asks again.
            self.read_in_turn = None
        gone = isinstance(now, ChatMemberBanned) or (_outside(now) and await self._was_in())
        if gone:
            log.info("groups.asker_gone", status=now.status)
        return gone

    async def as_asked(self) -> Joined:
        """What the asker was in the group as they asked, learnt while the question waits.

        Where only members write (``GroupKit.members_only``), they were in it: nothing to ask
        of them. Elsewhere, or Telegram not saying which, as Telegram lists them now.
        """
        asker = self.asker
        if await self.kit.members_only(asker.chat_id, basic=self.basic):
            return "members_only"
        method = GetChatMember(chat_id=asker.chat_id, user_id=asker.user_id)
        try:
            member = await self.kit.look_up(method)
        except UNSAID:
            return None
        if self.turn_came:  # Telegram said it once the turn came: what they are in it too
            self.read_in_turn = member
        return "out" if _outside(member) else "in"

    async def _was_in(self) -> bool:
        """Whether the asker, out of the group now, was in it as they asked.

        Learnt as they waited (``joined``). Else as the group takes messages now, asked of
        Telegram again where it is remembered as members-only: its admins may have opened it
        to comments since it was taken for such, by this question as it waited or by an
        earlier one (a failed answer's notice, ``GroupAnswer.failed``, is dropped for one
        taken as gone), and one who never joined asked. One remembered as open is not asked
        again (``GroupKit.members_only``).
        """
        if self.joined in {"in", "out"}:
            return self.joined == "in"
        return bool(await self.kit.members_only(self.asker.chat_id, basic=self.basic, fresh=True))
