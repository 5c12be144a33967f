"""A look-up of whether a queued question's asker stayed, refused 401, in webhook mode.

A webhook bot keeps getting its updates after its token is revoked in @BotFather: only its own
calls are refused, and the middleware that watches them (``bot.conflict.RefusedToken``) asks
Telegram about the token on a 401 and stops the bot. The look-ups of a group's queue go past
the session's middlewares (``handlers.groups.kit.at_once``, so that a flood wait is not waited out):
their 401 went unseen, logged as ``groups.asker_unknown`` and nothing else. They now hand it to
the middlewares, which check the token as for any other call.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
import structlog

from bot.conflict import RefusedToken
from tests.botstack import running_stack
from tests.test_bot_groups import ANSWER, BOB, FAST, GROUP
from tests.test_hostile22a_gone import (
    bob_asks_while_ann_is_answered,
    let_ann_and_carol_be_answered,
    to_bob,
)

if TYPE_CHECKING:
    from pathlib import Path

UNAUTHORIZED = "Unauthorized"


@pytest.mark.parametrize("revoked", [True, False])
async def test_a_look_up_refused_401_has_a_webhook_bot_check_its_token(
    tmp_path: Path, *, revoked: bool
) -> None:
    # revoked: getMe is refused too (the token is gone); else a passing 401 (getMe answers).
    async with running_stack(tmp_path, answer=ANSWER, webhook=True, **FAST) as stack:
        stopped = asyncio.Event()
        watch = RefusedToken(stopped.set)  # as bot.app's webhook mode installs it
        stack.veil.bot.session.middleware(watch)
        stack.telegram.state.set_member(GROUP, BOB, "member")
        with structlog.testing.capture_logs() as logs:
            held = await bob_asks_while_ann_is_answered(stack)
            stack.telegram.fail_next("getChatMember", status=401, description=UNAUTHORIZED)
            if revoked:
                stack.telegram.fail_next("getMe", status=401, description=UNAUTHORIZED)
                stack.vllm.chat_hold = None
                held.set()
                await asyncio.wait_for(stopped.wait(), 30)
            else:
                await let_ann_and_carol_be_answered(stack, held)
        checked = stack.telegram.calls_of("getMe")[-1:]
        answers = to_bob(stack)
    events = {e["event"]: e for e in logs}
    assert [call.answered for call in checked] == [UNAUTHORIZED if revoked else "ok"]
    assert events["groups.asker_unknown"]["error"] == "TelegramUnauthorizedError"
    if revoked:
        assert watch.failure is not None
        assert watch.failure.method == "getChatMember"
        assert events["telegram.token_refused"]["method"] == "getChatMember"
    else:
        assert not stopped.is_set()
        assert events["telegram.call_refused"]["method"] == "getChatMember"
        assert answers == [ANSWER]  # Telegram not saying is no reason to drop it
