"""A cut answer says so: the note, the Continue button, what a press asks and bills.

And Retry or Continue pressed while another answer is in progress keeps its button.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from services.chat import CONTINUE_PROMPT
from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.harness import wait_until
from tests.test_bot_context_counts import ReadsMore
from tests.test_bot_inline import ask_inline

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from tests.botstack import Stack

USER = 7401
# 40 of the fake model's tokens; the bot allows 16 an answer, so the model stops at the limit.
ESSAY = " ".join(f"word{i}" for i in range(40))
CUT_AT = 16


def essay_stack(tmp_path: Path) -> AbstractAsyncContextManager[Stack]:
    """The stack, its model writing ESSAY, its answers cut at CUT_AT tokens."""
    return running_stack(tmp_path, answer=ESSAY, max_answer_tokens=CUT_AT, min_answer_tokens=8)


async def cut_essay(stack: Stack) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Ask for the essay: the cut answer, its note and the note's Continue button."""
    stack.telegram.send_text(USER, "Write an essay")
    answer, note = await stack.final_messages(USER, 2)
    (button,) = note["reply_markup"]["inline_keyboard"][0]
    return answer, note, button


async def test_a_cut_answer_gets_a_note_and_continue_goes_on_as_a_billed_turn(
    tmp_path: Path,
) -> None:
    async with essay_stack(tmp_path) as stack:
        answer, note, button = await cut_essay(stack)
        first = "".join(split_tokens(ESSAY)[:CUT_AT])
        assert answer["text"] == first
        assert "reply_markup" not in answer or not answer["reply_markup"]
        assert note["text"] == "✂️ The answer reached its length limit."
        assert button["text"] == "Continue"
        assert await stack.stored_turns(USER, 2) == ["Write an essay", first]
        before = await stack.veil.credit.balance(USER)

        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        await stack.final_messages(USER, 4)  # the continuation, cut again, and its own note
        turns = await stack.stored_turns(USER, 4)
        asked = stack.vllm.requests[1]["messages"]
        # The model sees the conversation with its cut answer, then the request to go on.
        assert [m["content"] for m in asked[-3:]] == ["Write an essay", first, CONTINUE_PROMPT]
        assert turns[2:] == [CONTINUE_PROMPT, first]  # the fake repeats itself; stored as said
        after = await stack.veil.credit.balance(USER)
        assert after.free_tokens_left < before.free_tokens_left  # a new, metered turn

        # The first note's button is stale now: a press asks nothing.
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        expired = await stack.reply_text(USER, 4)
        assert expired == "That answer can no longer be continued. Ask me to go on in a message."
        assert len(stack.vllm.requests) == 2


async def test_an_answer_that_ends_by_itself_has_no_note(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="Short and done.") as stack:
        stack.telegram.send_text(USER, "Hi")
        await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        stack.telegram.send_text(USER, "Again")
        messages = await stack.final_messages(USER, 2)
    assert [m["text"] for m in messages] == ["Short and done.", "Short and done."]


async def test_continue_and_retry_forged_under_a_group_message_change_nothing(
    tmp_path: Path,
) -> None:
    group = -1_001_777_100
    async with essay_stack(tmp_path) as stack:
        _, note, button = await cut_essay(stack)
        stack.telegram.send_text(USER, "just chatting", chat_id=group)  # the group exists
        # Buttons forged under a group message whose id is the private note's.
        for data in (button["callback_data"], "retry"):
            stack.telegram.press_button(USER, data, message_id=note["message_id"], chat_id=group)
        stack.telegram.send_text(USER, "Short question")  # the presses were handled before it
        await stack.final_messages(USER, 4)
        assert stack.telegram.calls_of("editMessageReplyMarkup") == []  # the note keeps its button
        assert len(stack.vllm.requests) == 2  # the essay and the short question, nothing more
        texts = [m["text"] for m in stack.telegram.sent_messages(USER)]
        assert not any("no longer" in text for text in texts)


async def test_retry_pressed_while_busy_keeps_its_question_and_button(tmp_path: Path) -> None:
    # The Retry of a failed question, pressed while another answer streams: the busy notice,
    # and the button still resends the failed question once that answer is done.
    model = FakeVLLM(answer="Fine now.")
    model.fail_before_stream = (500, "the model server broke")
    async with running_stack(tmp_path, model_server=model) as stack:
        stack.telegram.send_text(USER, "the question that failed")
        (failed,) = await stack.final_messages(USER)
        (button,) = failed["reply_markup"]["inline_keyboard"][0]
        model.fail_before_stream = None
        model.pauses = {1}  # held after its first token
        stack.telegram.send_text(USER, "another question")
        await wait_until(lambda: model.paused >= 1, within=10)
        stack.telegram.press_button(USER, button["callback_data"], message_id=failed["message_id"])
        busy = (await stack.final_messages(USER, 2))[1]
        kept = stack.telegram.calls_of("editMessageReplyMarkup") == []
        model.pauses = set()
        model.resume()
        await stack.final_messages(USER, 3)
        stack.telegram.press_button(USER, button["callback_data"], message_id=failed["message_id"])
        await stack.final_messages(USER, 4)
        asked = [request["messages"][-1]["content"] for request in model.requests]
    assert busy["text"] == stack.veil.catalogs.for_language("en")("busy")
    assert kept  # the button stayed on the failed question's message
    assert asked == ["the question that failed", "another question", "the question that failed"]


async def test_a_busy_press_is_answered_once_and_not_logged_as_too_old(tmp_path: Path) -> None:
    # Retry and Continue answer their press at once, then find the user busy: the errors
    # router answered the press a second time, Telegram refused it ("query is too old"), and
    # the operator read a press too old to answer (telegram.press_too_old) that was none.
    model = FakeVLLM(answer="Fine now.")
    model.fail_before_stream = (500, "the model server broke")
    async with running_stack(tmp_path, model_server=model) as stack:
        stack.telegram.send_text(USER, "the question that failed")
        (failed,) = await stack.final_messages(USER)
        (button,) = failed["reply_markup"]["inline_keyboard"][0]
        model.fail_before_stream = None
        model.pauses = {1}  # held after its first token
        stack.telegram.send_text(USER, "another question")
        await wait_until(lambda: model.paused >= 1, within=10)
        with capture_logs() as logs:
            stack.telegram.press_button(
                USER, button["callback_data"], message_id=failed["message_id"]
            )
            busy = (await stack.final_messages(USER, 2))[1]
            await stack.answered_presses(1)
        model.pauses = set()
        model.resume()
        await stack.final_messages(USER, 3)
    assert busy["text"] == stack.veil.catalogs.for_language("en")("busy")
    answers = stack.telegram.calls_of("answerCallbackQuery")
    assert [call.answered for call in answers] == ["ok"]
    assert [entry for entry in logs if entry["event"] == "telegram.press_too_old"] == []


async def test_continue_pressed_while_a_one_off_streams_still_goes_on_after_it(
    tmp_path: Path,
) -> None:
    # Continue pressed while the user's inline answer (a one-off, outside the conversation)
    # streams: the busy notice; once it is done, the same button goes on with the cut answer.
    async with essay_stack(tmp_path) as stack:
        _, note, button = await cut_essay(stack)
        await stack.stored_turns(USER, 2)
        stack.vllm.pauses = {2}
        await ask_inline(stack, USER, "a one-off elsewhere")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        busy = (await stack.final_messages(USER, 3))[2]
        stack.vllm.pauses = set()
        stack.vllm.resume()
        await wait_until(lambda: len(stack.vllm.requests) == 2 and not stack.veil.chat.running)
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        await stack.final_messages(USER, 5)  # the continuation and its own note
        asked = stack.vllm.requests[2]["messages"]
    assert busy["text"] == stack.veil.catalogs.for_language("en")("busy")
    assert asked[-1]["content"] == CONTINUE_PROMPT


async def test_continue_shows_the_model_the_end_of_an_answer_too_long_for_its_context(
    tmp_path: Path,
) -> None:
    # A model of 2048 tokens: the answer keeps 1024 of them (VEIL_MAX_ANSWER_TOKENS), so the
    # context may take the other 1024, and an answer cut at 1024 tokens never fits it again.
    # The model was asked to go on with no answer before the request: "continue" alone.
    window = 2048
    model = FakeVLLM(answer=" ".join(f"wave{i}" for i in range(3000)), max_model_len=window)
    async with running_stack(tmp_path, model_server=model) as stack:
        stack.telegram.send_text(USER, "Write about the sea")
        cut = (await stack.stored_turns(USER, 2))[1]
        note = (await stack.final_messages(USER, 3))[-1]  # the answer, in two messages, its note
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        turns = await stack.stored_turns(USER, 4)
    assert len(split_tokens(cut)) == 1024
    (asked,) = model.requests[1]["messages"]
    quote, question = asked["content"].split("\n\n")
    # The cut answer's end, quoted before the request to go on: where the model stopped.
    assert question == CONTINUE_PROMPT
    assert quote.startswith("> …")
    assert cut.endswith(quote.removeprefix("> …"))
    assert len(quote) > 500  # as much as the context may take, by its bytes
    assert turns[2] == asked["content"]  # stored as the model was asked
    # It fitted the window as the model counts it: no refusal, no retry.
    assert len(model.requests) == 2
    assert all(
        count + request["max_completion_tokens"] <= window
        for count, request in zip(model.prompt_counts, model.requests, strict=True)
    )


async def test_continue_refused_as_too_long_is_retried_with_the_cut_answers_end(
    tmp_path: Path,
) -> None:
    # The model reads the cut answer back in more tokens than its receipt counted, and refuses
    # the context (a 400); retried with every turn by its bytes, the answer no longer fitted,
    # and the model was asked to go on with no answer before the request.
    window, room = 768, 192
    model = ReadsMore(answer=" ".join(f"word{i}" for i in range(400)), max_model_len=window)
    async with running_stack(
        tmp_path, model_server=model, context_tokens=window, max_answer_tokens=room
    ) as stack:
        stack.telegram.send_text(USER, "Write an essay")
        cut = (await stack.stored_turns(USER, 2))[1]
        note = (await stack.final_messages(USER, 2))[-1]
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        await stack.stored_turns(USER, 4)
    # The gateway counted the context by the model's /tokenize and refused it itself (the
    # model was never asked it); the retry was asked.
    (retried,) = model.requests[1:]
    counted = [[m["content"] for m in body["messages"]] for body in model.tokenize_requests]
    assert ["Write an essay", cut, CONTINUE_PROMPT] in counted
    (asked,) = retried["messages"]
    quote, question = asked["content"].split("\n\n")
    assert question == CONTINUE_PROMPT
    assert quote.startswith("> …")
    assert cut.endswith(quote.removeprefix("> …"))
    assert model.prompt_counts[1] + retried["max_completion_tokens"] <= window


async def test_a_note_telegram_refuses_after_a_delivered_answer_brings_no_apology(
    tmp_path: Path,
) -> None:
    # The answer went out whole; Telegram then refused the note under it (the length limit's,
    # with Continue). The refusal reached the answer's failure path: the user read an apology
    # for an answer they had, and the answer counted as ended twice.
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave(
        "sendMessage", "undescribed", when=lambda params: "length limit" in params.get("text", "")
    )
    async with running_stack(
        tmp_path,
        answer=ESSAY,
        max_answer_tokens=CUT_AT,
        min_answer_tokens=8,
        telegram_server=telegram,
    ) as stack:
        stack.telegram.send_text(USER, "Write an essay")
        await wait_until(lambda: telegram.misbehaved != [])
        assert await stack.veil.chat.wait_idle(10)
        stack.telegram.send_text(USER, "Thanks")
        told = await stack.final_messages(USER, 2)
    first = "".join(split_tokens(ESSAY)[:CUT_AT])
    # The answer, then the next one's (and its own note, which went out): no apology.
    assert [m["text"] for m in told][:2] == [first, first]
    assert not any(m["text"].startswith("Something went wrong") for m in told)
