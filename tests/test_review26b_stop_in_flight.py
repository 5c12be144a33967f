"""``/stop`` while the placeholder's send is in flight, which Telegram then fails or refuses.

A stop that finds the placeholder on its way is the placeholder's to tell ("Stopped." once it
is up); groups26 let it go, its asker told alone, when Telegram refuses that try with a flood
wait. Two other answers to that try were left out:

- a 5xx: the session's one retry (``RetryMiddleware``) went out a second later without looking
  at the withdrawal, so a placeholder went up only to be edited to "Stopped.", two of the
  group's slots for nothing, the asker hearing nothing until then;
- a 400 (the question deleted meanwhile): nothing went up, and the member who stopped was told
  nothing at all, their ``/stop`` having left the word to a placeholder that never came;
- a reply the network cut, or a proxy's page in its place: the member who stopped was told
  "Telegram did not take my reply just now. Please send that again in a moment.", asked to
  send again the question they had just stopped.

And after a placeholder Telegram took without naming it, the question stayed marked as on its
way: a stop as the fresh placeholder waited for its slot was left to that one, which went up
only to be edited to "Stopped.".

Now each ends as the flood-refused try does: nothing more is posted, asked or charged, and the
asker alone is told once that their question was stopped.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from playground.wire import ApiError
from tests.botstack import TOKEN, running_stack
from tests.fakes.gated import GatedTelegram
from tests.group_stop_helpers import WITHDRAWN, closed_holds, told
from tests.harness import wait_until
from tests.test_bot_groups import ANN, FAST, GROUP, QUESTION, answered_last, replies
from tests.test_bot_groups_placeholder import PLACEHOLDER, is_placeholder
from tests.test_groups26_stop_in_flight import UnnamingTelegram
from tests.test_pace25_stop import HELD_FOR, withdrawn_unposted

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from aiohttp import web

    from tests.botstack import Stack

SERVER_ERROR = 500
BAD_REQUEST = 400


class FailingTelegram(GatedTelegram):
    """The gated fake, whose held ``sendMessage`` fails with ``status`` once let go."""

    def __init__(self, status: int, description: str, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.status = status
        self.description = description

    async def _gated_send_message(self, p: dict[str, Any]) -> object:
        if p.get("chat_id") not in self.held_chats:
            return await super()._gated_send_message(p)
        self.holding.set()
        await self._gate.wait()
        raise ApiError(self.status, self.description)


async def stop_in_flight(stack: Stack, telegram: GatedTelegram) -> None:
    """Ann asks; her ``/stop`` comes as her placeholder's send is in flight; then it is answered."""
    stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
    async with asyncio.timeout(10):
        await telegram.holding.wait()  # the placeholder is in flight
    stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
    kit = stack.veil.dispatcher["kit"]
    await wait_until(lambda: kit.asking[GROUP, ANN].withdrawn, within=10)
    telegram.release_messages()


async def test_a_stop_as_the_placeholder_goes_up_and_meets_a_5xx_posts_nothing(
    tmp_path: Path,
) -> None:
    telegram = FailingTelegram(SERVER_ERROR, "Internal Server Error", token=TOKEN)
    telegram.hold_messages_to(GROUP)
    async with running_stack(tmp_path, telegram_server=telegram, **FAST) as stack:
        await stop_in_flight(stack, telegram)
        await withdrawn_unposted(stack)  # told alone; no placeholder, no "Stopped."
        refused = [c for c in telegram.calls_of("sendMessage") if c.answered != "ok"]
        assert len(refused) == 1  # the in-flight try alone: the session retried none


async def test_a_stop_as_the_placeholder_goes_up_and_is_refused_is_told(tmp_path: Path) -> None:
    telegram = FailingTelegram(
        BAD_REQUEST, "Bad Request: message to be replied not found", token=TOKEN
    )
    telegram.hold_messages_to(GROUP)
    async with running_stack(tmp_path, telegram_server=telegram, **FAST) as stack:
        await stop_in_flight(stack, telegram)
        assert await told(stack, GROUP, ANN) == [WITHDRAWN]  # once, alone
        carols = await answered_last(stack)
        assert replies(stack) == [carols]
        assert len(stack.vllm.requests) == 1  # Carol's
        assert await closed_holds(stack, ANN) == []
        assert len(stack.telegram.ephemeral_messages(GROUP, ANN)) == 1


@pytest.mark.parametrize("mode", ["cut", "page"])
async def test_a_stop_as_the_placeholder_goes_up_and_its_reply_is_lost_is_told_stopped(
    tmp_path: Path, mode: str
) -> None:
    telegram = UnnamingTelegram(token=TOKEN)  # held, then answered as the network or a proxy
    telegram.misbehave("sendMessage", mode, when=is_placeholder)
    async with running_stack(tmp_path, telegram_server=telegram, **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        async with asyncio.timeout(10):
            await telegram.holding.wait()  # the placeholder is in flight
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        kit = stack.veil.dispatcher["kit"]
        await wait_until(lambda: kit.asking[GROUP, ANN].withdrawn, within=10)
        telegram.release()  # its reply stops short, or is a proxy's page: nothing of Telegram's
        assert await told(stack, GROUP, ANN) == [WITHDRAWN]  # not a failure: what they asked
        carols = await answered_last(stack)
        assert telegram.misbehaved == [("sendMessage", mode)]
        assert replies(stack) == [carols]
        assert len(stack.telegram.ephemeral_messages(GROUP, ANN)) == 1
        assert len(stack.vllm.requests) == 1  # Carol's
        assert await closed_holds(stack, ANN) == []


class SlowingTelegram(UnnamingTelegram):
    """Answers the armed ``sendMessage`` unnamed at once, first calling ``before_reply``."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.before_reply: Callable[[], None] = lambda: None
        self.release()  # nothing held

    async def _handle(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]  # as HostileTelegram's
        if request.match_info["method"] == "sendMessage" and self._armed:
            self.before_reply()
        return await super()._handle(request)


async def test_a_stop_as_the_fresh_placeholder_waits_for_its_slot_posts_no_other(
    tmp_path: Path,
) -> None:
    """After an unnamed placeholder, a stop as the fresh one waits for its slot withdraws it.

    The orphan's try left the question marked as on its way: the stop was left to a fresh
    placeholder, which went up only to be edited to "Stopped.", the asker hearing nothing.
    """
    telegram = SlowingTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "unnamed", when=is_placeholder)
    async with running_stack(tmp_path, telegram_server=telegram, **FAST) as stack:
        kit = stack.veil.dispatcher["kit"]
        # the group's next slot is away as the orphan comes back: the fresh one waits for it
        telegram.before_reply = lambda: kit.editors.group_pacers(GROUP).back_off(HELD_FOR)
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await wait_until(lambda: telegram.misbehaved != [], within=10)
        stack.telegram.send_text(ANN, "/stop@veil_test_bot", chat_id=GROUP)
        assert await told(stack, GROUP, ANN) == [WITHDRAWN]
        carols = await answered_last(stack)
        orphan, *rest = replies(stack)
        assert orphan["text"] == PLACEHOLDER
        assert rest == [carols]  # no fresh placeholder of Ann's, nor "Stopped."
        assert len(stack.vllm.requests) == 1  # Carol's
        assert await closed_holds(stack, ANN) == []
