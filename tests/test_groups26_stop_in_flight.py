"""``/stop`` while the placeholder's send is in flight, which Telegram then refuses with a 429.

A stop that finds the placeholder on its way (its ``sendMessage`` sent, not yet answered) is
the placeholder's to tell: once it is up it says "Stopped.". But when Telegram refuses that
very try with a flood wait, nothing is up: the try after the wait went out all the same (the
withdrawal was kept as "owed the placeholder's word"), so a placeholder was posted only to be
edited to "Stopped.", two of the group's slots for nothing, and the asker heard nothing until
then. Now a withdrawn question whose in-flight try Telegram refused is let go there, as a stop
before the first try is: nothing is posted, asked or charged, and its asker alone is told. So
too when Telegram takes that try but answers without naming the message (it cannot be
edited): no fresh placeholder goes up only to say "Stopped.".
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from playground.wire import ApiError
from tests.botstack import TOKEN, running_stack
from tests.fakes.gated import GatedTelegram
from tests.fakes.hostile import HostileTelegram
from tests.group_stop_helpers import WITHDRAWN, closed_holds, told
from tests.harness import wait_until
from tests.test_bot_groups import ANN, FAST, GROUP, QUESTION, answered_last, replies
from tests.test_bot_groups_placeholder import PLACEHOLDER, is_placeholder
from tests.test_pace25_stop import FLOOD_WAIT, withdrawn_unposted

if TYPE_CHECKING:
    from pathlib import Path

    from aiohttp import web

TOO_MANY = 429


class FloodedTelegram(GatedTelegram):
    """The gated fake, whose held ``sendMessage`` is refused with a flood wait once let go.

    As Telegram does with a message it counted against a group over its limit: the call was
    in flight all the while, and its answer is a 429 with ``retry_after``.
    """

    async def _gated_send_message(self, p: dict[str, Any]) -> object:
        if p.get("chat_id") not in self.held_chats:
            return await super()._gated_send_message(p)
        self.holding.set()
        await self._gate.wait()
        description = f"Too Many Requests: retry after {FLOOD_WAIT}"
        raise ApiError(TOO_MANY, description, retry_after=FLOOD_WAIT)


async def test_a_stop_as_the_placeholder_goes_up_and_is_flood_refused_posts_nothing(
    tmp_path: Path,
) -> None:
    telegram = FloodedTelegram(token=TOKEN)
    telegram.hold_messages_to(GROUP)
    async with running_stack(tmp_path, telegram_server=telegram, **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        async with asyncio.timeout(10):
            await telegram.holding.wait()  # the placeholder is in flight
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        kit = stack.veil.dispatcher["kit"]
        await wait_until(lambda: kit.asking[GROUP, ANN].withdrawn, within=10)
        telegram.release_messages()  # and Telegram refuses it: retry after FLOOD_WAIT s
        await withdrawn_unposted(stack)
        refused = [c for c in telegram.calls_of("sendMessage") if c.answered != "ok"]
        assert len(refused) == 1  # the in-flight try alone: none after the wait


class UnnamingTelegram(HostileTelegram):
    """The hostile fake, whose armed ``sendMessage`` waits until ``release`` before it runs.

    Then Telegram takes it (the message is in the group) and answers without naming it.
    """

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.holding = asyncio.Event()
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Let the held call go on."""
        self._gate.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]  # as HostileTelegram's
        if request.match_info["method"] == "sendMessage" and self._armed:
            self.holding.set()
            await self._gate.wait()
        return await super()._handle(request)


async def test_a_stop_as_the_placeholder_goes_up_and_comes_back_unnamed_posts_no_other(
    tmp_path: Path,
) -> None:
    telegram = UnnamingTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "unnamed", when=is_placeholder)
    async with running_stack(tmp_path, telegram_server=telegram, **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        async with asyncio.timeout(10):
            await telegram.holding.wait()  # the placeholder is in flight
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        kit = stack.veil.dispatcher["kit"]
        await wait_until(lambda: kit.asking[GROUP, ANN].withdrawn, within=10)
        telegram.release()  # it goes up, and its reply does not say which message it is
        assert await told(stack, GROUP, ANN) == [WITHDRAWN]
        carols = await answered_last(stack)
        orphan, *rest = replies(stack)
        assert telegram.misbehaved == [("sendMessage", "unnamed")]
        assert orphan["text"] == PLACEHOLDER  # the bot cannot tell which message it is
        assert rest == [carols]  # no fresh placeholder of Ann's, nor "Stopped."
        assert len(stack.vllm.requests) == 1  # Carol's
        assert await closed_holds(stack, ANN) == []
