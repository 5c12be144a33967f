"""Group look-ups that one call serves, and failures of them that are not asked again at once.

A queued question in a channel's discussion group open to comments looks its asker up twice:
as they asked (a member who leaves and a commenter who never joined both read ``left`` later)
and in its turn. A reading Telegram gives once the turn has come (a short wait, a slow reply)
is the turn's as well: a second, a moment later, said the same, and cost a call. A group
remembered as open was asked about again (getChat) each time an asker read ``left`` with what
they were as they asked unknown (a failed answer's look-up), though only one remembered as
members-only may have changed to matter. And a getChat that failed other than with a flood
wait was made again by every question after it, each failing as the first: it is now not asked
again for a while (a refusal ten minutes, Telegram's passing trouble a minute).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from tests.botstack import TOKEN, running_stack
from tests.fakes.gated import GatedTelegram
from tests.fakes.telegram import FakeTelegram
from tests.harness import wait_until
from tests.test_bot_groups import (
    ANN,
    ANSWER,
    BOB,
    CAROL,
    FAST,
    GROUP,
    QUESTION,
    answered_last,
    final_reply,
)
from tests.test_groups23_lookup import about_bob
from tests.test_groups23_notice import CHANNEL, FAILED, public_notices
from tests.test_hostile22a_gone import (
    BOBS,
    bob_asks_while_ann_is_answered,
    to_bob,
)

if TYPE_CHECKING:
    from pathlib import Path

    from playground.state import Method

DAVE = 9204
DAVES = "@veil_test_bot what does the lighthouse keeper eat?"


class HeldLookUps(FakeTelegram):
    """``FakeTelegram`` whose getChatMember about ``held_user`` waits until ``release``.

    As ``tests.fakes.gated`` does for sendMessage: the emulator's method, put back in its
    table behind a gate; ``holding`` is set while such a call waits.
    """

    def __init__(self, held_user: int, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's
        super().__init__(**kwargs)
        self.held_user = held_user
        self.holding = asyncio.Event()
        self._gate = asyncio.Event()
        self._answer: Method = self._methods["getChatMember"]
        self._methods["getChatMember"] = self._held

    def release(self) -> None:
        """Let the held getChatMember through, and every one after it."""
        self._gate.set()

    async def _held(self, p: dict[str, Any]) -> object:
        if p.get("user_id") == self.held_user:
            self.holding.set()
            await self._gate.wait()
        answer = self._answer(p)
        return await answer if asyncio.iscoroutine(answer) else answer


@pytest.mark.parametrize(("status", "answered"), [("left", True), ("kicked", False)])
async def test_a_reading_telegram_gives_once_the_turn_came_serves_the_turn(
    tmp_path: Path, status: str, *, answered: bool
) -> None:
    # Bob comments unjoined; the look-up made as he asked is answered only once his turn came.
    telegram = HeldLookUps(BOB, token=TOKEN)
    async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram, **FAST) as stack:
        telegram.state.linked[GROUP] = (CHANNEL, False)
        telegram.state.set_member(GROUP, BOB, "left")
        held = asyncio.Event()
        stack.vllm.chat_hold = held
        telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await wait_until(lambda: len(stack.vllm.requests) == 1)
        kit = stack.veil.dispatcher["kit"]
        telegram.send_text(BOB, BOBS, chat_id=GROUP)
        await wait_until(lambda: (GROUP, BOB) in kit.asking)
        bobs = kit.asking[GROUP, BOB]
        await asyncio.wait_for(telegram.holding.wait(), 30)  # his look-up as he asked
        telegram.state.set_member(GROUP, BOB, status)  # still out, or banned meanwhile
        stack.vllm.chat_hold = None
        held.set()
        await wait_until(lambda: bobs.presence.turn_came)
        telegram.release()
        await final_reply(stack)  # Ann's
        await answered_last(stack)  # Carol's, after Bob's turn
        answers = to_bob(stack)
    assert about_bob(stack) == 1  # the one reading, given in his turn
    assert answers == ([ANSWER] if answered else [])


async def test_a_group_remembered_as_open_is_not_asked_again_for_each_commenter(
    tmp_path: Path,
) -> None:
    # Two commenters who never joined, each answer failing: each is looked up (is the asker
    # gone?), reads left, and is told; what the group is was learnt with the first.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.linked[GROUP] = (CHANNEL, False)
        stack.telegram.state.set_member(GROUP, BOB, "left")
        stack.telegram.state.set_member(GROUP, DAVE, "left")
        stack.vllm.fail_before_stream = (400, "The model refused the request.")
        stack.telegram.send_text(BOB, BOBS, chat_id=GROUP)
        await wait_until(lambda: len(public_notices(stack)) == 1, 20)
        stack.telegram.send_text(DAVE, DAVES, chat_id=GROUP)
        await wait_until(lambda: len(public_notices(stack)) == 2, 20)
        kinds_asked = len(stack.telegram.calls_of("getChat"))
    assert public_notices(stack) == [FAILED, FAILED]
    assert kinds_asked == 1


@pytest.mark.parametrize(
    ("status", "description"),
    [(400, "Bad Request: chat not found"), (500, "Internal Server Error")],
)
async def test_a_failed_group_kind_look_up_is_not_made_again_by_each_question(
    tmp_path: Path, status: int, description: str
) -> None:
    telegram = GatedTelegram(token=TOKEN)
    async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram, **FAST) as stack:
        telegram.fail_next("getChat", status=status, description=description, count=99)
        telegram.state.set_member(GROUP, BOB, "member")
        telegram.state.set_member(GROUP, DAVE, "member")
        kit = stack.veil.dispatcher["kit"]
        held = await bob_asks_while_ann_is_answered(stack)  # getChat fails for his
        telegram.send_text(DAVE, DAVES, chat_id=GROUP)  # waits behind Bob
        await wait_until(lambda: (GROUP, DAVE) in kit.asking)
        await telegram.wait_for(
            "getChatMember", lambda call: call.params.get("user_id") == DAVE
        )  # what he was as he asked: the group's kind unknown, he is looked up
        # Carol asks once Ann's answer is over, as Bob's placeholder goes up: held, for a post
        # Telegram took ends a refusal (``GroupKit.posted``), and her look-up, made after it
        # (a loaded machine's order), asked getChat again by design. Asked before it, hers is
        # looked up as Dave's was; then the placeholder, and her answer, go on.
        telegram.hold_messages_to(GROUP)
        stack.vllm.chat_hold = None
        held.set()
        await final_reply(stack)  # Ann's
        await asyncio.wait_for(telegram.holding.wait(), 20)  # Bob's placeholder, held
        carols = asyncio.create_task(answered_last(stack))  # after Bob's turn: it ends his
        await telegram.wait_for(
            "getChatMember", lambda call: call.params.get("user_id") == CAROL, timeout=20
        )  # what she was as she asked: the group's kind unknown, she is looked up
        telegram.release_messages()
        await carols
        kinds_asked = [call.answered for call in stack.telegram.calls_of("getChat")]
        answers = to_bob(stack)
        to_dave = [
            m["text"]
            for m in stack.telegram.sent_messages(GROUP)
            if (m.get("reply_to_message") or {}).get("text") == DAVES
        ]
    assert kinds_asked == [description]  # Bob's; not Dave's, nor Carol's
    assert answers == [ANSWER]
    assert to_dave == [ANSWER]


async def test_questions_asking_a_groups_kind_at_once_share_one_look_up(tmp_path: Path) -> None:
    # Two questions whose look-ups met before the first getChat was answered each made one
    # (each failing as the other): the CI's loaded machine let Dave's overtake Bob's answer.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.fail_next("getChat", status=400, description="Bad Request: chat not found")
        kit = stack.veil.dispatcher["kit"]
        kinds = await asyncio.gather(*(kit.members_only(GROUP, basic=False) for _ in range(3)))
        asked = len(stack.telegram.calls_of("getChat"))
    assert kinds == [None, None, None]  # Telegram did not say, for any of them
    assert asked == 1
