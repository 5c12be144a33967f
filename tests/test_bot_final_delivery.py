"""A private chat's final answer against a Telegram that fails to take it.

Each try of a final part waits ``streaming.FINAL_TIMEOUT`` for Telegram's reply, not the
session's 60 s, so an answer Telegram never answers gives up in a bounded time and the user's
next question (which waits for that delivery) is answered. The thinking folded before an
answer is only shown: a message with it that Telegram refuses, or fails to take in every try,
is followed by the answer alone, never lost to its thinking. A try left unanswered is not given
up: a slow Telegram's late reply to it is kept, and a second copy deleted.

The tests shrink the timeout and the waits between tries (``FINAL_TIMEOUT``, and the bot's
``final_retry_wait`` setting), so the tries they count take seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

import pytest
from aiogram.client.session.base import DEFAULT_TIMEOUT

from bot import streaming
from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.vllm import FakeVLLM

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack
    from tests.fakes.telegram import Call

USER = 6101
ANSWER = "Delivered at last."
THOUGHT = "Recall the kettledrum table first, then answer."
TIMEOUT = 1  # seconds a try of a final part waits here (10 in the bot)
FIRST_WAIT = 0.05  # final_retry_wait here (VEIL_FINAL_RETRY_WAIT; 1 s in the bot)
SESSION_TIMEOUT = DEFAULT_TIMEOUT  # what a try waited before: the session's (60 s)


@pytest.fixture(autouse=True)
def _quick_tries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "FINAL_TIMEOUT", TIMEOUT)


async def test_a_final_part_telegram_never_answers_holds_the_next_question_a_bounded_time(
    tmp_path: Path,
) -> None:
    # Each try waited the session's whole timeout (60 s), five times: the user's next question,
    # which waits for this delivery, was answered five minutes later.
    telegram = HostileTelegram(token=TOKEN)
    for _ in range(streaming.FINAL_TRIES):
        telegram.misbehave("sendMessage", "silent", when=lambda p: p.get("text") == ANSWER)
    async with running_stack(
        tmp_path, answer=ANSWER, telegram_server=telegram, final_retry_wait=FIRST_WAIT
    ) as stack:
        stack.telegram.send_text(USER, "The first question")
        async with asyncio.timeout(10):
            while not telegram.unanswered:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        stack.telegram.send_text(USER, "The next question")
        answered = await stack.telegram.wait_for(
            "sendMessage", lambda c: c.params.get("text") == ANSWER, timeout=20
        )
        told = [m["text"] for m in stack.telegram.sent_messages(USER)]
    tries = telegram.unanswered
    waits = [FIRST_WAIT * 2**n for n in range(streaming.FINAL_TRIES - 1)]
    assert len(tries) == streaming.FINAL_TRIES
    # Each try gave up after the final part's timeout (1 s here), not the session's (60 s): the
    # upper bound only tells those apart, far from either, since a loaded machine's event loop
    # may stand still for seconds (a ±2 s bound failed so once). The lower: it did wait.
    for (earlier, later), wait in zip(itertools.pairwise(tries), waits, strict=True):
        assert TIMEOUT + wait - 0.1 <= later - earlier < SESSION_TIMEOUT / 2
    assert answered.at - tries[0] < SESSION_TIMEOUT  # one session's timeout, not five
    assert ANSWER in told
    # Charged and kept for the outbox: told it will follow, not to send it again (and pay twice).
    assert (
        "Telegram did not take my answer just now. It is kept and will follow within a few"
        " minutes: there is no need to ask again."
    ) in told


def answers(stack: Stack) -> list[Call]:
    """The sendMessage calls with the answer, as the fake took them."""
    return [c for c in stack.telegram.calls_of("sendMessage") if c.params.get("text") == ANSWER]


async def test_a_final_part_a_slow_telegram_took_late_shows_once(tmp_path: Path) -> None:
    # Telegram took the part but answered after the try's timeout: the part was sent again and
    # showed twice. The late try is now left in flight; its copy, taken after the next try's,
    # is deleted.
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", "late", when=lambda p: p.get("text") == ANSWER)
    async with running_stack(
        tmp_path, answer=ANSWER, telegram_server=telegram, final_retry_wait=FIRST_WAIT
    ) as stack:
        stack.telegram.send_text(USER, "A question")
        async with asyncio.timeout(20):  # the late try taken, then the next one too
            while len(answers(stack)) < 2:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        assert telegram.held == 1
        telegram.answer_late()
        deleted = await stack.telegram.wait_for("deleteMessage", timeout=20)
        await stack.veil.chat.wait_idle(10)
        shown = [m for m in stack.telegram.sent_messages(USER) if m.get("text") == ANSWER]
    (kept,) = shown
    assert deleted.params["message_id"] == kept["message_id"] - 1  # the late one, taken first
    assert len(answers(stack)) == 2


@pytest.mark.parametrize(
    ("status", "count", "description"),
    [
        # Two calls a try (the session retries a 5xx once), in each of the five tries.
        (500, 2 * streaming.FINAL_TRIES, "Internal Server Error"),
        (400, 1, "Bad Request: can't parse entities: unsupported expandable blockquote"),
    ],
)
async def test_an_answer_whose_folded_thinking_telegram_does_not_take_goes_out_alone(
    tmp_path: Path, status: int, count: int, description: str
) -> None:
    # The thinking folded into the answer's first message: five failed tries lost the answer
    # the user paid for (told "Telegram did not take my reply"); a refusal sent it plain, the
    # thinking unfolded above it.
    server = FakeVLLM(answer=ANSWER, token_delay=0.01)
    server.reasoning = THOUGHT
    async with running_stack(tmp_path, model_server=server, final_retry_wait=FIRST_WAIT) as stack:
        stack.telegram.fail_next("sendMessage", status=status, description=description, count=count)
        stack.telegram.send_text(USER, "Think, then tell me")
        (message,) = await stack.final_messages(USER, within=20)
        stored = await stack.stored_turns(USER, 2)
        sends = stack.telegram.calls_of("sendMessage")
    assert [call.params["text"].startswith("💭 ") for call in sends] == [True] * count + [False]
    assert message["text"] == ANSWER
    assert stored == ["Think, then tell me", ANSWER]


async def test_a_rich_answer_whose_thinking_telegram_does_not_take_goes_out_alone(
    tmp_path: Path,
) -> None:
    # Before a rich answer the thinking is a message of its own; its five failed tries raised,
    # and the rich answer after it was never sent.
    server = FakeVLLM(answer=ANSWER, token_delay=0.01)
    server.reasoning = THOUGHT
    async with running_stack(
        tmp_path, model_server=server, rich_messages=True, final_retry_wait=FIRST_WAIT
    ) as stack:
        stack.telegram.fail_next(
            "sendMessage",
            status=502,
            description="Bad Gateway",
            count=2 * streaming.FINAL_TRIES,
        )
        stack.telegram.send_text(USER, "Think, then tell me")
        (message,) = await stack.final_messages(USER, within=20)
        stored = await stack.stored_turns(USER, 2)
        folded = stack.telegram.calls_of("sendMessage")
    assert len(folded) == 2 * streaming.FINAL_TRIES
    assert all(call.params["text"].startswith("💭 ") for call in folded)
    assert message["rich_message"]["blocks"]
    assert THOUGHT not in str(message)
    assert stored == ["Think, then tell me", ANSWER]


async def test_a_final_part_waiting_out_a_flood_wait_is_not_sent_twice(tmp_path: Path) -> None:
    # Telegram answered the try at once, with a flood wait longer than a try's timeout: the
    # try waited it out (the session's retries), was taken for a slow Telegram's, and a second
    # try went out meanwhile; both went through, one shown and then deleted, and under a real
    # flood every extra call meets (and lengthens) the wait.
    async with running_stack(tmp_path, answer=ANSWER, final_retry_wait=FIRST_WAIT) as stack:
        stack.telegram.fail_next(
            "sendMessage",
            status=429,
            description=f"Too Many Requests: retry after {3 * TIMEOUT}",
            retry_after=3 * TIMEOUT,
        )
        stack.telegram.send_text(USER, "A question")
        async with asyncio.timeout(20):  # the flood-waited call, sent again after the wait
            while not [c for c in answers(stack) if c.at - answers(stack)[0].at >= 2 * TIMEOUT]:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        await stack.veil.chat.wait_idle(10)
        shown = [m for m in stack.telegram.sent_messages(USER) if m.get("text") == ANSWER]
    assert len(shown) == 1
    assert len(answers(stack)) == 2  # the flood-waited call, and its retry after the wait
    assert stack.telegram.calls_of("deleteMessage") == []
