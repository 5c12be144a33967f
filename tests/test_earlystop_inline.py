"""A stop pressed before an inline or guest answer begins stops it: nothing asked or charged.

An inline article's message carries its stop button from the moment it is sent, but its answer
begins only when Telegram tells the bot which result was sent (``chosen_inline_result``); a
guest answer's message goes up with its button before its answer begins. The asker's press in
that window found no answer behind the button: they were told it had ended, and then it was
answered in full and charged. The chat service now remembers the buttons offered
(``ChatService.offer``): the asker's press stops the answer ahead, and the message says it
stopped; someone else's press is still not theirs; one after the answer ended still finds it
ended; a user's newest 8 offers are remembered.

The real bot long-polls the fake Telegram, through a real gateway to the fake vLLM.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from tests.botstack import TOKEN, running_stack
from tests.fakes.telegram import FakeTelegram
from tests.harness import wait_until
from tests.test_bot_inline import ANSWER, FAST_EDITS, OTHER, QUESTION, USER, final_edit

if TYPE_CHECKING:
    from pathlib import Path

    from playground.state import Method
    from tests.botstack import Stack
    from tests.fakes.telegram import Call

INLINE_ID = "inline-sent-early"
NO_CHARGE: list[str] = []  # no ledger row
FRIENDS = -1_009_876_111  # a chat without the bot: guest mode


class PostedUnanswered(FakeTelegram):
    """``FakeTelegram`` whose answerGuestQuery posts the message, then holds its reply.

    As Telegram does it for a moment on the network: the answer's message, with its stop
    button, is up in the chat before the bot hears that it is (``release`` lets the reply go).
    The emulator's method, put back in its table behind a gate (as ``tests.fakes.gated``).
    """

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.posted = asyncio.Event()
        self._gate = asyncio.Event()
        self._answer: Method = self._methods["answerGuestQuery"]
        self._methods["answerGuestQuery"] = self._held

    def release(self) -> None:
        """Let the held reply go, and every one after it."""
        self._gate.set()

    async def _held(self, p: dict[str, Any]) -> object:
        answer = self._answer(p)
        result = await answer if asyncio.iscoroutine(answer) else answer
        self.posted.set()
        await self._gate.wait()
        return result


def said(stack: Stack, key: str) -> str:
    """The English text ``key``."""
    return stack.veil.catalogs.for_language("en")(key)


async def offered(stack: Stack, user: int, question: str) -> str:
    """``user`` types ``question``; the id of the one article offered (its stop tag)."""
    earlier = len(stack.telegram.calls_of("answerInlineQuery"))
    stack.telegram.inline_query(user, question)
    answered = await stack.telegram.wait_for(
        "answerInlineQuery",
        lambda call: call in stack.telegram.calls_of("answerInlineQuery")[earlier:],
    )
    (result,) = answered.params["results"]
    return str(result["id"])


async def press(stack: Stack, user: int, tag: str, inline_message_id: str) -> str:
    """``user`` presses the stop button ``tag`` under the inline message; the toast's text."""
    earlier = len(stack.telegram.calls_of("answerCallbackQuery"))
    stack.telegram.press_inline_button(user, f"stop:{tag}", inline_message_id)
    toast: Call = await stack.telegram.wait_for(
        "answerCallbackQuery",
        lambda call: call in stack.telegram.calls_of("answerCallbackQuery")[earlier:],
    )
    return str(toast.params.get("text"))


async def charges(stack: Stack, user: int) -> list[str]:
    """The kinds of the user's ledger rows, once every answer has ended."""
    assert await stack.veil.chat.wait_idle(10)
    return [entry.kind for entry in await stack.veil.credit.history(user, limit=10)]


async def test_the_askers_press_before_the_inline_answer_begins_stops_it_uncharged(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST_EDITS) as stack:
        before = await stack.veil.credit.balance(USER)
        tag = await offered(stack, USER, QUESTION)
        # The article is sent; its button pressed before the bot hears which result it was.
        toast = await press(stack, USER, tag, INLINE_ID)
        stack.telegram.choose_inline_result(USER, tag, QUESTION, inline_message_id=INLINE_ID)
        final = await final_edit(stack, INLINE_ID)
        kinds = await charges(stack, USER)
        after = await stack.veil.credit.balance(USER)
        asked = len(stack.vllm.requests)
        # Stopped once, a press of it again finds the answer ended.
        again = await press(stack, USER, tag, INLINE_ID)
        expected = (said(stack, "stopping"), said(stack, "cancelled"), 0, NO_CHARGE, before)
        ended = said(stack, "stop_ended")
    assert (toast, final["text"], asked, kinds, after) == expected
    assert again == ended


async def test_the_askers_press_before_the_guest_answer_begins_stops_it_uncharged(
    tmp_path: Path,
) -> None:
    telegram = PostedUnanswered(token=TOKEN)
    async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram, **FAST_EDITS) as s:
        before = await s.veil.credit.balance(USER)
        telegram.guest_message(
            USER, "@veil_test_bot what is the tangerine-hippogriff-93?", chat_id=FRIENDS
        )
        await asyncio.wait_for(telegram.posted.wait(), 10)
        ((inline_id, message),) = telegram.state.inline_messages.items()
        ((button,),) = message["reply_markup"]["inline_keyboard"]
        tag = str(button["callback_data"]).removeprefix("stop:")
        toast = await press(s, USER, tag, inline_id)  # up in the chat, its reply on its way
        telegram.release()
        final = await final_edit(s, inline_id)
        kinds = await charges(s, USER)
        after = await s.veil.credit.balance(USER)
        expected = (said(s, "stopping"), said(s, "cancelled"), 0, NO_CHARGE, before)
    assert (toast, final["text"], len(s.vllm.requests), kinds, after) == expected


async def test_anothers_press_before_the_answer_begins_is_not_theirs_and_it_runs(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST_EDITS) as stack:
        tag = await offered(stack, USER, QUESTION)
        toast = await press(stack, OTHER, tag, INLINE_ID)
        stack.telegram.choose_inline_result(USER, tag, QUESTION, inline_message_id=INLINE_ID)
        final = await final_edit(stack, INLINE_ID)
        kinds = await charges(stack, USER)
        not_yours = said(stack, "stop_not_yours")
    assert toast == not_yours
    assert final["text"] == f"❓ {QUESTION}\n\n{ANSWER}"  # answered whole
    assert set(kinds) & {"usage", "free"}  # and charged, the asker's


async def test_a_press_after_the_answer_ended_finds_it_ended(tmp_path: Path) -> None:
    # Its offer let go once the answer began: the button does not stay "in progress".
    async with running_stack(tmp_path, answer=ANSWER, **FAST_EDITS) as stack:
        tag = await offered(stack, USER, QUESTION)
        stack.telegram.choose_inline_result(USER, tag, QUESTION, inline_message_id=INLINE_ID)
        final = await final_edit(stack, INLINE_ID)
        assert await stack.veil.chat.wait_idle(10)
        toasts = [await press(stack, who, tag, INLINE_ID) for who in (USER, OTHER)]
        ended = said(stack, "stop_ended")
    assert final["text"] == f"❓ {QUESTION}\n\n{ANSWER}"
    assert toasts == [ended, ended]


async def test_a_users_newest_eight_articles_stop_ahead_and_an_older_one_does_not(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST_EDITS) as stack:
        tags = [await offered(stack, USER, f"{QUESTION} {n}") for n in range(9)]
        oldest = await press(stack, USER, tags[0], "inline-oldest")  # the 9th let it go
        second = await press(stack, USER, tags[1], INLINE_ID)
        stack.telegram.choose_inline_result(
            USER, tags[1], f"{QUESTION} 1", inline_message_id=INLINE_ID
        )
        final = await final_edit(stack, INLINE_ID)
        kinds = await charges(stack, USER)
        expected = (said(stack, "stop_ended"), said(stack, "stopping"), said(stack, "cancelled"))
    assert (oldest, second, final["text"]) == expected
    assert (stack.vllm.requests, kinds) == ([], [])


async def test_an_article_telegram_refused_is_not_remembered(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST_EDITS) as stack:
        stack.telegram.fail_next(
            "answerInlineQuery", status=400, description="Bad Request: query is too old"
        )
        with capture_logs() as logs:
            stack.telegram.inline_query(USER, QUESTION)
            refused = await stack.telegram.wait_for("answerInlineQuery")
            await wait_until(lambda: any(e["event"] == "inline.query_refused" for e in logs))
        (result,) = refused.params["results"]
        shown = stack.veil.chat.shows(str(result["id"]))
    assert refused.answered != "ok"
    assert not shown
