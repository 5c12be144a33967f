"""Each Retry button asks its own question; each Continue button its own topic's answer.

A Retry button names the failed question under it (kept in memory until an answer to it
begins), so an older button asks the older question, a press refused for want of credit
leaves it working, and a refusal shown without Retry (the window filled under text that went
out) takes nothing from an older button. A Continue button is stale once its conversation has
a newer answer, not after an answer in another topic.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from services.chat import CONTINUE_PROMPT
from tests.books import grant
from tests.botstack import TOKEN, running_stack
from tests.fakes.gated import GatedTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import wait_until
from tests.test_bot_continue import CUT_AT, ESSAY
from tests.test_bot_topics import USER as TOPIC_USER
from tests.test_bot_topics import new_topic, thread_of, topic_telegram
from tests.test_bot_window_filled import WINDOW_FULL

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USER = 7501
BOOM = (500, "the model server broke")
STAR = 1_000_000


def asked(stack: Stack) -> list[str]:
    """The question each request to the model asked (its last message), in order."""
    return [request["messages"][-1]["content"] for request in stack.vllm.requests]


def retry_of(note: dict[str, Any]) -> str:
    """The callback data of the Retry button under ``note``."""
    (button,) = note["reply_markup"]["inline_keyboard"][0]
    return str(button["callback_data"])


async def test_an_older_retry_asks_its_own_question_not_the_newest(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="Fine now.") as stack:
        stack.vllm.fail_before_stream = BOOM
        stack.telegram.send_text(USER, "the first question")
        (first,) = await stack.final_messages(USER, 1)
        stack.telegram.send_text(USER, "the second question")
        second = (await stack.final_messages(USER, 2))[1]
        stack.vllm.fail_before_stream = None
        stack.telegram.press_button(USER, retry_of(first), message_id=first["message_id"])
        await stack.final_messages(USER, 3)
        stack.telegram.press_button(USER, retry_of(second), message_id=second["message_id"])
        answers = await stack.final_messages(USER, 4)
        await stack.answered_presses(2)
    assert asked(stack) == [
        "the first question",
        "the second question",
        "the first question",  # the older button: its own question
        "the second question",
    ]
    assert [m["text"] for m in answers[2:]] == ["Fine now.", "Fine now."]


async def test_a_retry_from_before_new_says_it_expired_and_asks_nothing(tmp_path: Path) -> None:
    # /new kept the failed questions: an old Retry asked its question in the fresh
    # conversation, without the turns it followed on from, and stored it there. Chosen: as a
    # Continue button, a Retry button is its conversation's; /new ends that one.
    async with running_stack(tmp_path, answer="Fine now.") as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.vllm.fail_before_stream = BOOM
        stack.telegram.send_text(USER, "and what about its second act?")
        (failed,) = await stack.final_messages(USER, 1)
        stack.vllm.fail_before_stream = None
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 2)
        stack.telegram.press_button(USER, retry_of(failed), message_id=failed["message_id"])
        said = await stack.final_messages(USER, 3)
        await stack.answered_presses(1)
        stack.telegram.send_text(USER, "a fresh question")
        await stack.final_messages(USER, 4)
        turns = await stack.stored_turns(USER, 2)
    assert said[1]["text"] == texts("new_conversation")
    assert said[2]["text"] == texts("retry_expired")
    assert asked(stack) == ["and what about its second act?", "a fresh question"]
    assert turns == ["a fresh question", "Fine now."]  # the fresh conversation holds it alone


async def test_a_retry_from_a_conversation_switched_away_from_says_it_expired(
    tmp_path: Path,
) -> None:
    # /history's switch makes another conversation the chat's: as after /new, a Retry of the
    # one left would ask its question where the turns it followed on from are not.
    async with running_stack(tmp_path, answer="Fine now.") as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "the first conversation's question")
        await stack.final_messages(USER, 1)
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 2)
        stack.vllm.fail_before_stream = BOOM
        stack.telegram.send_text(USER, "and what about its second act?")
        failed = (await stack.final_messages(USER, 3))[2]
        stack.vllm.fail_before_stream = None
        stack.telegram.send_text(USER, "/history")
        listing = (await stack.final_messages(USER, 4))[3]
        first = listing["reply_markup"]["inline_keyboard"][1][0]["callback_data"]
        stack.telegram.press_button(USER, first, message_id=listing["message_id"])
        await stack.answered_presses(1)
        stack.telegram.press_button(USER, retry_of(failed), message_id=failed["message_id"])
        said = await stack.final_messages(USER, 5)
        await stack.answered_presses(2)
    assert said[4]["text"] == texts("retry_expired")
    assert asked(stack) == ["the first conversation's question", "and what about its second act?"]


async def test_a_retry_refused_for_want_of_credit_works_once_topped_up(tmp_path: Path) -> None:
    model = FakeVLLM(answer="Fine now.")
    model.fail_before_stream = BOOM
    async with running_stack(tmp_path, model_server=model, free_tokens_per_day=0) as stack:
        store = stack.veil.store
        assert await grant(store, USER, STAR, "grant", "test:welcome")
        stack.telegram.send_text(USER, "the question that failed")
        (failed,) = await stack.final_messages(USER, 1)
        model.fail_before_stream = None
        left = (await stack.veil.credit.balance(USER)).units
        assert await grant(store, USER, -left, "grant", "test:spent")  # nothing left
        stack.telegram.press_button(USER, retry_of(failed), message_id=failed["message_id"])
        refused = (await stack.final_messages(USER, 2))[1]
        await stack.answered_presses(1)
        kept = stack.telegram.calls_of("editMessageReplyMarkup") == []
        assert await grant(store, USER, STAR, "grant", "test:topped-up")
        stack.telegram.press_button(USER, retry_of(failed), message_id=failed["message_id"])
        answer = (await stack.final_messages(USER, 3))[2]
    assert refused["text"].startswith("Not enough credit for an answer")
    assert kept  # the Retry button stayed under the failed question
    assert answer["text"] == "Fine now."
    assert asked(stack) == ["the question that failed"] * 2


async def test_a_window_full_refusal_leaves_an_older_retry_its_own_question(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer="one two three four five six") as stack:
        model = stack.vllm
        model.fail_before_stream = BOOM
        stack.telegram.send_text(USER, "the first question")
        (first,) = await stack.final_messages(USER, 1)
        model.fail_before_stream = None
        model.error_mid_stream_after = 3
        model.mid_stream_error = WINDOW_FULL
        stack.telegram.send_text(USER, "the question that filled the window")
        full = (await stack.final_messages(USER, 3))[2]
        model.error_mid_stream_after = None
        stack.telegram.press_button(USER, retry_of(first), message_id=first["message_id"])
        await stack.final_messages(USER, 4)
    assert not full.get("reply_markup")  # no Retry under the window-full note
    assert asked(stack) == [
        "the first question",
        "the question that filled the window",
        "the first question",  # not the window-full one, which no button asks
    ]


async def test_an_answer_in_another_topic_leaves_a_continue_button_working(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path,
        answer=ESSAY,
        max_answer_tokens=CUT_AT,
        min_answer_tokens=8,
        telegram_server=topic_telegram(),
    ) as stack:
        first = await new_topic(stack, 2)
        stack.telegram.send_text(TOPIC_USER, "Write an essay", thread_id=first)
        note = (await stack.final_messages(TOPIC_USER, 4))[3]
        second = await new_topic(stack, 6)
        stack.telegram.send_text(TOPIC_USER, "Another essay", thread_id=second)
        await stack.final_messages(TOPIC_USER, 8)  # answered (cut too) in the other topic
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        stack.telegram.press_button(
            TOPIC_USER, button["callback_data"], message_id=note["message_id"]
        )
        turns = await stack.stored_turns_in(TOPIC_USER, first, 4)
        await wait_until(lambda: stack.veil.chat.running == 0, within=10)
        said = await stack.final_messages(TOPIC_USER, 10)
    assert thread_of(note) == first
    assert turns[2] == CONTINUE_PROMPT  # went on, in the first topic's conversation
    assert asked(stack)[-1] == CONTINUE_PROMPT
    assert [thread_of(m) for m in said[8:]] == [first, first]  # the continuation and its note


async def test_a_continue_refused_for_want_of_credit_works_once_topped_up(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer=ESSAY, max_answer_tokens=CUT_AT, min_answer_tokens=8, free_tokens_per_day=0
    ) as stack:
        store = stack.veil.store
        assert await grant(store, USER, STAR, "grant", "test:welcome")
        stack.telegram.send_text(USER, "Write an essay")
        note = (await stack.final_messages(USER, 2))[1]
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        await stack.stored_turns(USER, 2)
        left = (await stack.veil.credit.balance(USER)).units
        assert await grant(store, USER, -left, "grant", "test:spent")  # nothing left
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        refused = (await stack.final_messages(USER, 3))[2]
        await stack.answered_presses(1)
        kept = stack.telegram.calls_of("editMessageReplyMarkup") == []
        assert await grant(store, USER, STAR, "grant", "test:topped-up")
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        turns = await stack.stored_turns(USER, 4)
    assert refused["text"].startswith("Not enough credit for an answer")
    assert kept  # the Continue button stayed under the note
    assert turns[2] == CONTINUE_PROMPT
    assert asked(stack) == ["Write an essay", CONTINUE_PROMPT]


async def test_a_retry_waiting_behind_an_answer_then_refused_for_credit_works_once_topped_up(
    tmp_path: Path,
) -> None:
    # Pressed while the previous answer's final message was still going out, the press did not
    # wait for its answer: the button was dropped at once and the press remembered, so once
    # the answer was refused for want of credit, nothing could ask the kept question again.
    telegram = GatedTelegram(token=TOKEN)
    model = FakeVLLM(answer="Fine now.")
    model.fail_before_stream = BOOM
    async with running_stack(
        tmp_path, model_server=model, free_tokens_per_day=0, telegram_server=telegram
    ) as stack:
        store = stack.veil.store
        assert await grant(store, USER, STAR, "grant", "test:welcome")
        stack.telegram.send_text(USER, "the question that failed")
        (failed,) = await stack.final_messages(USER, 1)
        model.fail_before_stream = None
        telegram.hold_messages_to(USER)
        stack.telegram.send_text(USER, "another question")
        await asyncio.wait_for(telegram.holding.wait(), 10)  # its final message waits
        await wait_until_settled(stack)
        left = (await stack.veil.credit.balance(USER)).units
        assert await grant(store, USER, -left, "grant", "test:spent")  # nothing left
        stack.telegram.press_button(USER, retry_of(failed), message_id=failed["message_id"])
        await stack.answered_presses(1)
        telegram.release_messages()
        refused = (await stack.final_messages(USER, 3))[2]
        await wait_until(lambda: stack.veil.chat.running == 0, within=10)
        kept = stack.telegram.calls_of("editMessageReplyMarkup") == []
        assert await grant(store, USER, STAR, "grant", "test:topped-up")
        stack.telegram.press_button(USER, retry_of(failed), message_id=failed["message_id"])
        answer = (await stack.final_messages(USER, 4))[3]
    assert refused["text"].startswith("Not enough credit for an answer")
    assert kept  # the Retry button stayed under the failed question
    assert answer["text"] == "Fine now."
    assert asked(stack) == [
        "the question that failed",
        "another question",
        "the question that failed",  # asked once, once topped up
    ]


async def test_a_retry_waiting_behind_an_answer_loses_its_button_once_answered(
    tmp_path: Path,
) -> None:
    # A press whose answer waits for the previous one keeps its button until that answer is
    # asked (it may be refused, and the button work again); once it is done, it goes.
    telegram = GatedTelegram(token=TOKEN)
    async with running_stack(tmp_path, answer="Fine now.", telegram_server=telegram) as stack:
        stack.vllm.fail_before_stream = BOOM
        stack.telegram.send_text(USER, "the question that failed")
        (failed,) = await stack.final_messages(USER, 1)
        stack.vllm.fail_before_stream = None
        telegram.hold_messages_to(USER)
        stack.telegram.send_text(USER, "another question")
        await asyncio.wait_for(telegram.holding.wait(), 10)  # its final message waits
        stack.telegram.press_button(USER, retry_of(failed), message_id=failed["message_id"])
        await stack.answered_presses(1)
        telegram.release_messages()
        await stack.final_messages(USER, 3)
        await wait_until(lambda: stack.veil.chat.running == 0, within=10)
        dropped = [c.params for c in stack.telegram.calls_of("editMessageReplyMarkup")]
    assert asked(stack) == [
        "the question that failed",
        "another question",
        "the question that failed",
    ]
    assert [(d["message_id"], d.get("reply_markup")) for d in dropped] == [
        (failed["message_id"], None)
    ]


async def wait_until_settled(stack: Stack) -> None:
    """Wait until no credit is held: every answer's charge is written."""
    async with asyncio.timeout(10):
        while await stack.veil.credit.open_holds():  # noqa: ASYNC110 -- a ledger row, no event
            await asyncio.sleep(0.01)


async def test_a_new_topic_leaves_a_retry_in_another_topic_working(tmp_path: Path) -> None:
    # /new lets go of the failed questions of the conversation it ends; where it opens a new
    # topic, it ends none: a Retry in another topic still asks its question, there.
    async with running_stack(
        tmp_path, answer="Fine now.", telegram_server=topic_telegram()
    ) as stack:
        first = await new_topic(stack, 2)
        stack.vllm.fail_before_stream = BOOM
        stack.telegram.send_text(TOPIC_USER, "and what about its second act?", thread_id=first)
        failed = (await stack.final_messages(TOPIC_USER, 3))[2]
        stack.vllm.fail_before_stream = None
        await new_topic(stack, 5)
        stack.telegram.press_button(TOPIC_USER, retry_of(failed), message_id=failed["message_id"])
        said = await stack.final_messages(TOPIC_USER, 6)
        turns = await stack.stored_turns_in(TOPIC_USER, first, 2)
    assert thread_of(failed) == first
    assert (said[5]["text"], thread_of(said[5])) == ("Fine now.", first)
    assert turns == ["and what about its second act?", "Fine now."]
