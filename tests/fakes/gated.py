"""The fake Telegram with a gate on sendMessage, to stop the bot in the middle of telling a user.

``hold_messages_to`` makes sendMessage to one chat wait, unanswered, until ``release_messages``;
``holding`` is set while such a call waits. Every other method, sendPhoto included, is the
emulator's own (``playground.botapi``). The emulator's parts have no hook for holding a call, so
``GatedTelegram`` puts its sendMessage in the server's method table after it is built; once let
through, the call is answered by the emulator's sendMessage.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.fakes.telegram import FakeTelegram

if TYPE_CHECKING:
    from playground.state import Method


class GatedTelegram(FakeTelegram):
    """``FakeTelegram`` whose sendMessage to chosen chats waits; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.held_chats: set[int] = set()
        self.holding = asyncio.Event()  # set while a held sendMessage waits
        self._gate = asyncio.Event()
        self._answer_send_message: Method = self._methods["sendMessage"]
        self._methods["sendMessage"] = self._gated_send_message

    def hold_messages_to(self, chat_id: int) -> None:
        """Make sendMessage to ``chat_id`` wait (unanswered) until ``release_messages``."""
        self.held_chats.add(chat_id)
        self._gate.clear()

    def release_messages(self) -> None:
        """Let held sendMessage calls through."""
        self.held_chats.clear()
        self._gate.set()

    async def _gated_send_message(self, p: dict[str, Any]) -> object:
        if p.get("chat_id") in self.held_chats:
            self.holding.set()
            await self._gate.wait()
        answer = self._answer_send_message(p)
        return await answer if asyncio.iscoroutine(answer) else answer
