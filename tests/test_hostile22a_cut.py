"""The answer to a guest summons or an inline query whose connection was cut: tried again.

A query is answered once: Telegram refuses a second answer to the same query (as too old).
So the one try of ``answerGuestQuery`` whose connection broke before its reply came (a proxy or
the network cutting it) was all the summons got: logged, the asker left waiting in the chat
with no answer, and the user typing an inline query with no results. It is tried again once,
while the query lives: if the first did not reach Telegram the second answers it; if it did,
Telegram refuses the second and nothing is posted twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.harness import wait_until
from tests.test_bot_inline import FAST_EDITS, QUESTION, USER

if TYPE_CHECKING:
    from pathlib import Path

    from aiohttp import web

GROUP = -1_009_111_333  # a group the bot is not a member of: only guest queries reach it
ASKER = 9531
ANSWER = "A quokka is a small wallaby of Rottnest Island."


class TakenThenCut(HostileTelegram):
    """Takes the next call of ``method`` (its message is posted), then cuts the connection."""

    def __init__(self, method: str, **kwargs: Any) -> None:  # noqa: ANN401 -- the fake's
        super().__init__(**kwargs)
        self.method = method
        self.taken = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]  # a cut reply streams
        if request.match_info["method"] != self.method or self.taken:
            return await super()._handle(request)
        self.taken += 1
        await super()._handle(request)  # Telegram took it: the answer is in the chat
        return await self._cut(request, {})


async def test_a_guest_answer_whose_connection_was_cut_is_sent_again_and_answered(
    tmp_path: Path,
) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("answerGuestQuery", "cut")
    async with running_stack(
        tmp_path, answer=ANSWER, telegram_server=telegram, **FAST_EDITS
    ) as stack:
        stack.telegram.guest_message(ASKER, "@veil_test_bot what is a quokka?", chat_id=GROUP)
        await wait_until(
            lambda: any(ANSWER in m["text"] for m in stack.telegram.sent_messages(GROUP)), 20
        )
        await stack.veil.chat.wait_idle(20)
        posted = stack.telegram.sent_messages(GROUP)
        charges = [e for e in await stack.veil.credit.history(ASKER) if e.kind == "usage"]
    assert telegram.misbehaved == [("answerGuestQuery", "cut")]
    assert len(posted) == 1  # one answer in the chat
    assert len(charges) == 1


async def test_an_inline_query_s_answer_whose_connection_was_cut_is_sent_again(
    tmp_path: Path,
) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("answerInlineQuery", "cut")
    async with running_stack(tmp_path, telegram_server=telegram, **FAST_EDITS) as stack:
        stack.telegram.inline_query(USER, QUESTION)
        answered = await stack.telegram.wait_for("answerInlineQuery")
    assert telegram.misbehaved == [("answerInlineQuery", "cut")]
    assert answered.answered == "ok"
    assert QUESTION in answered.params["results"][0]["title"]


async def test_a_guest_answer_taken_before_its_connection_was_cut_is_posted_once(
    tmp_path: Path,
) -> None:
    telegram = TakenThenCut("answerGuestQuery", token=TOKEN)
    async with running_stack(
        tmp_path, answer=ANSWER, telegram_server=telegram, **FAST_EDITS
    ) as stack:
        stack.telegram.guest_message(ASKER, "@veil_test_bot what is a quokka?", chat_id=GROUP)
        refused = await stack.telegram.wait_for("answerGuestQuery", lambda c: c.answered != "ok")
        posted = stack.telegram.sent_messages(GROUP)
    assert telegram.taken == 1
    assert "too old" in refused.answered  # the second answer: refused, nothing posted twice
    assert len(posted) == 1
    assert stack.vllm.requests == []  # its message is unknown: nothing asked, nothing charged
