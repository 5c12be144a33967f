"""Group settings: whether Veil answers in a group, and whether reply chains are context.

A group's admins choose (``/groupsettings``; the handler checks they are admins with Telegram).
Both default to on; a group never configured has no row. Nothing here holds message text.
Also ``Posting``: a group answer's placeholder on its way, which its asker may withdraw.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from services.errors import history_failures

if TYPE_CHECKING:
    from models import Store

GroupSetting = Literal["answers", "reply_context"]


@dataclass
class Posting:
    """A group answer's placeholder on its way (``Editors.post``), and whether it is wanted.

    ``withdrawn``: its asker stopped it (``/stop``) before the model was asked: the post sends
    nothing more (a post waiting for its slot lets that slot go to the next call). ``out``: a
    try is in flight, or went out; a stop then is told by the placeholder itself, once up.
    ``owed``: the stop came as a try was in flight, and its asker was told nothing yet: when
    Telegram refuses that try with a flood wait, nothing went up and nothing more goes; the
    asker is told alone, as for a stop before the first try (``withdraw``).
    """

    withdrawn: bool = False
    out: bool = False
    owed: bool = False

    def withdraw(self) -> bool:
        """Withdraw it; whether before a try went out (its stopper is told now, not later)."""
        self.withdrawn = True
        self.owed = self.owed or self.out
        return not self.out


@dataclass(frozen=True)
class GroupSettings:
    """One group's choices.

    ``answers``: Veil replies at all; ``reply_context``: a reply to Veil's answer carries the
    thread before it to the model.
    """

    answers: bool = True
    reply_context: bool = True


@dataclass
class Groups:
    """Reads and flips group settings (a storage failure: ``HistoryUnavailable``)."""

    store: Store
    _changing: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def settings(self, chat_id: int) -> GroupSettings:
        """The group's settings (the defaults when it never chose)."""
        with history_failures("cannot read the group's settings"):
            stored = await self.store.group_settings(chat_id)
        if stored is None:
            return GroupSettings()
        answers, reply_context = stored
        return GroupSettings(answers=answers, reply_context=reply_context)

    async def flip(self, chat_id: int, setting: GroupSetting) -> GroupSettings:
        """Turn ``setting`` the other way; return the group's settings after."""
        async with self._changing:
            now = await self.settings(chat_id)
            return await self._save(chat_id, replace(now, **{setting: not getattr(now, setting)}))

    async def set(self, chat_id: int, setting: GroupSetting, *, on: bool) -> GroupSettings:
        """Turn ``setting`` ``on`` (or off); return the group's settings after.

        Changes are made one at a time (each reads both settings and writes both), so two
        admins changing the two settings at once both have their way.
        """
        async with self._changing:
            now = await self.settings(chat_id)
            return await self._save(chat_id, replace(now, **{setting: on}))

    async def moved(self, chat_id: int, to_chat_id: int) -> None:
        """Group ``chat_id`` became chat ``to_chat_id`` (a supergroup): its settings go along."""
        async with self._changing:
            with history_failures("cannot move the group's settings"):
                await self.store.move_group_settings(chat_id, to_chat_id)

    async def _save(self, chat_id: int, after: GroupSettings) -> GroupSettings:
        with history_failures("cannot save the group's settings"):
            await self.store.set_group_settings(
                chat_id, answers=after.answers, reply_context=after.reply_context
            )
        return after
