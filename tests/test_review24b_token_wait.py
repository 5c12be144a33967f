"""A look-up's 401 checked (``told_refused``) within the wait a look-up may take, in the turn.

A look-up refused 401 is handed to the session's middlewares, and in webhook mode
``bot.conflict.RefusedToken`` then asks Telegram about the token (``getMe``) through the
session (its retries: a flood wait on ``getMe`` is waited out, up to a minute). The getChat a
question's turn makes when its asker is out of a group remembered as members-only
(``Presence._was_in``) runs after the turn's own look-up, past its ``MEMBER_WAIT``: the
token check there held the group's turn, and every answer queued behind it, for as long as
``getMe`` took. It is now within the look-up's wait (``at_once``): past it, the question is
answered as where Telegram does not say, and the next call that goes through the session
(the placeholder, if the token is revoked) has the token checked.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from bot.conflict import RefusedToken
from tests.botstack import TOKEN, running_stack
from tests.fakes.telegram import FakeTelegram
from tests.test_bot_groups import ANSWER, BOB, FAST, GROUP
from tests.test_hostile22a_gone import (
    bob_asks_while_ann_is_answered,
    let_ann_and_carol_be_answered,
    to_bob,
)

if TYPE_CHECKING:
    from pathlib import Path

    from playground.state import Method


class HeldGetMe(FakeTelegram):
    """``FakeTelegram`` whose ``getMe`` waits (``holding`` set) until ``release``, once armed."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's
        super().__init__(**kwargs)
        self.armed = False
        self.holding = asyncio.Event()
        self._gate = asyncio.Event()
        self._answer: Method = self._methods["getMe"]
        self._methods["getMe"] = self._held

    def release(self) -> None:
        """Let the held getMe through, and every one after it."""
        self._gate.set()

    async def _held(self, p: dict[str, Any]) -> object:
        if self.armed:
            self.holding.set()
            await self._gate.wait()
        answer = self._answer(p)
        return await answer if asyncio.iscoroutine(answer) else answer


async def test_a_slow_token_check_of_a_turns_get_chat_does_not_hold_the_group(
    tmp_path: Path,
) -> None:
    telegram = HeldGetMe(token=TOKEN)
    async with running_stack(
        tmp_path, answer=ANSWER, webhook=True, telegram_server=telegram, **FAST
    ) as stack:
        watch = RefusedToken(asyncio.Event().set)  # as bot.app's webhook mode installs it
        stack.veil.bot.session.middleware(watch)
        stack.telegram.state.set_member(GROUP, BOB, "member")
        with structlog.testing.capture_logs() as logs:
            held = await bob_asks_while_ann_is_answered(stack)  # the group: members-only
            stack.telegram.state.set_member(GROUP, BOB, "left")
            # In Bob's turn: he reads "left", and whether he was in it is asked again (getChat),
            # refused 401; Telegram takes its time over the token check that follows.
            stack.telegram.fail_next("getChat", status=401, description="Unauthorized")
            telegram.armed = True
            try:
                await let_ann_and_carol_be_answered(stack, held)  # Carol's after Bob's turn
            finally:
                telegram.release()
            answers = to_bob(stack)
    events = [e["event"] for e in logs]
    assert telegram.holding.is_set()  # the check was made, and held
    assert watch.failure is None
    assert "groups.kind_unknown" in events
    assert answers == [ANSWER]  # Telegram not saying whether he was in: answered
