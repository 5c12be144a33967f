"""Answers run detached from their update (``ChatService.start``, groups ``detach``).

The update's handler claims the user and returns, so aiogram's update is no longer being
handled while the answer streams. What the errors router did for a failure inside the answer
is then the answer's own: the same text and button, in the same chat and topic, with the same
log line; a bug is logged without text and apologised for. Shutdown waits for detached answers
as it waited for updates: within the grace they finish, after it they are stopped, delivered,
charged and stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from bot.shutdown import drain
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import wait_until
from tests.test_bot_groups import GROUP, final_reply
from tests.test_bot_inline import FAST_EDITS, ask_inline, final_edit
from tests.test_bot_topics import USER as TOPICS_USER
from tests.test_bot_topics import new_topic, topic_telegram
from tests.test_journal import ledger_locked

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, MutableMapping
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from tests.botstack import Stack

USER = TOPICS_USER  # the user the topic helpers act for
SECRET = "detached secret: quince-harbour-42"
ANSWER = " ".join(f"otter{i}" for i in range(40))
HELD_AT = 10  # the fake model holds every stream before this token until resumed
ERASE_WAIT_S = 3.0  # the busy timeout an erasure waits for the write lock before giving up


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def held_model() -> FakeVLLM:
    """The fake model, holding every stream before token ``HELD_AT`` until resumed."""
    model = FakeVLLM(answer=ANSWER)
    model.pauses = {HELD_AT}
    return model


async def held(stack: Stack) -> None:
    """Wait until the user's answer streams, held by the fake model, with a draft shown."""
    await wait_until(lambda: stack.vllm.paused >= 1, within=10)
    await stack.telegram.wait_for("sendMessageDraft", lambda c: c.params["chat_id"] == USER)


def writes_stack(
    tmp_path: Path,
    **options: Any,  # noqa: ANN401 -- running_stack's own knobs, passed on
) -> AbstractAsyncContextManager[Stack]:
    """The stack with the held model (``stack.vllm``), its writes waiting out a lock held."""
    return running_stack(tmp_path, model_server=held_model(), db_busy_timeout=10, **options)


@contextlib.asynccontextmanager
async def writes_held(stack: Stack, data: Path) -> AsyncIterator[None]:
    """Ask SECRET: the held answer streams to its end, and its charge and what follows wait.

    They wait for the database's write lock, which another connection holds until the block
    ends.
    """
    stack.telegram.send_text(USER, SECRET)
    await held(stack)
    with ledger_locked(data / "veil.db"):
        stack.vllm.pauses = set()  # later answers stream straight through
        stack.vllm.resume()
        await wait_until(lambda: not stack.veil.chat._active[USER].stoppable, within=10)
        yield


async def forget_asked(stack: Stack) -> tuple[dict[str, Any], str]:
    """Send /forget; its confirmation and the callback data of its erase button."""
    stack.telegram.send_text(USER, "/forget")
    (confirm,) = await stack.final_messages(USER)
    return confirm, confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"]


async def test_the_update_is_handled_once_the_answer_starts(tmp_path: Path) -> None:
    model = held_model()
    async with running_stack(tmp_path, model_server=model) as stack:
        stack.telegram.send_text(USER, SECRET)
        await held(stack)
        assert stack.veil.operations.in_flight.count == 0
        assert stack.veil.chat.running == 1
        # One answer per user still: a second question while it streams is refused.
        stack.telegram.send_text(USER, "and another thing")
        (busy,) = await stack.final_messages(USER)
        model.resume()
        assert await stack.reply_text(USER, 1) == ANSWER
        assert await stack.stored_turns(USER, 2) == [SECRET, ANSWER]
    assert busy["text"] == stack.veil.catalogs.for_language("en")("busy")


async def test_a_question_after_the_stream_ended_waits_for_the_answers_last_writes(
    tmp_path: Path,
) -> None:
    # Once the stream has ended, nothing is left to stop: the answer is only being charged,
    # shown and stored. A question sent then (the user saw the text) is answered after those
    # writes, with the exchange in its history, not refused as busy.
    async with writes_stack(tmp_path) as stack:
        model = stack.vllm
        async with writes_held(stack, tmp_path):  # the stream ended; its charge waits
            stack.telegram.send_text(USER, "and another thing")
            await wait_until(lambda: stack.veil.chat.running == 2)  # claimed, not refused
            waiting = len(stack.vllm.requests)
        messages = await stack.final_messages(USER, 2)
        turns = await stack.stored_turns(USER, 4)
    assert waiting == 1  # the second question waited for the first's writes
    assert [m["text"] for m in messages] == [ANSWER, ANSWER]
    assert turns == [SECRET, ANSWER, "and another thing", ANSWER]
    second = [m["content"] for m in model.requests[1]["messages"]]
    assert second[-3:] == [SECRET, ANSWER, "and another thing"]


async def test_a_question_during_forget_never_reads_or_writes_what_is_erased(
    tmp_path: Path,
) -> None:
    # /forget waits for the answer that is being charged and stored, then for its title, then
    # erases. A question sent meanwhile must not be answered from the history being erased
    # (sent to the model after the user asked to erase it) nor write after the erasure: it
    # is refused until the erasure is done, told so (not that an answer is being written,
    # which /cancel would stop), and a question after it is answered afresh.
    async with writes_stack(tmp_path, conversation_titles=True) as stack:
        model = stack.vllm
        chat, telegram = stack.veil.chat, stack.telegram
        confirm, erase = await forget_asked(stack)
        async with writes_held(stack, tmp_path):
            await stack.final_messages(USER, 2)  # shown; its charge waits for the lock
            assert not chat._active[USER].stoppable
            telegram.press_button(USER, erase, message_id=confirm["message_id"])
            await wait_until(lambda: USER in chat._forgetting)  # begun, after the press's answer
            telegram.send_text(USER, "and another thing", language_code="ru")
            # Claimed (a second answer running) or refused (a third message): either way handled.
            await wait_until(lambda: chat.running == 2 or len(telegram.sent_messages(USER)) == 3)
        await telegram.wait_for("editMessageText")
        await wait_until(lambda: chat.running == 0, within=10)
        user = await stack.veil.store.get_user(USER)
        telegram.send_text(USER, "a fresh start")
        await stack.final_messages(USER, 4)
        turns = await stack.stored_turns(USER, 2)
    asked = [str(request["messages"]) for request in model.requests]
    # Never sent again after /forget: the fresh start (and its title) ask without it.
    assert [SECRET in text for text in asked[:2]] == [True, False]
    assert not any(SECRET in text for text in asked[2:])
    assert user is None  # nothing written after the erasure
    erasing = stack.veil.catalogs.for_language("ru")("erasing")
    assert telegram.sent_messages(USER)[2]["text"] == erasing
    assert turns == ["a fresh start", ANSWER]


async def test_a_question_is_refused_until_the_last_of_two_overlapping_erasures_ends(
    tmp_path: Path,
) -> None:
    # The erase button pressed twice: two erasures of one user at once. Both wait for the
    # database's write lock, the second behind the first (one connection); the first gives up
    # after the busy timeout, and the second then waits its own. A question sent between the
    # two is still refused, as erasing: the user is open again only once the last erasure is
    # done, and is then answered from an empty history.
    async with running_stack(tmp_path, answer=ANSWER, db_busy_timeout=ERASE_WAIT_S) as stack:
        chat, telegram = stack.veil.chat, stack.telegram
        telegram.send_text(USER, SECRET)
        await stack.stored_turns(USER, 2)
        assert await chat.wait_idle(10)  # its final message out too: stored with its charge
        telegram.send_text(USER, "/forget")
        *_, confirm = await stack.final_messages(USER, 2)
        erase = confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        with ledger_locked(tmp_path / "veil.db"):
            telegram.press_button(USER, erase, message_id=confirm["message_id"])
            await wait_until(lambda: stack.veil.operations.in_flight.count == 1)
            telegram.press_button(USER, erase, message_id=confirm["message_id"])
            await wait_until(lambda: stack.veil.operations.in_flight.count == 2)
            await stack.final_messages(USER, 3)  # the first erasure gave up; the second waits
            telegram.send_text(USER, "and another thing")
            await wait_until(lambda: chat.running == 1 or len(telegram.sent_messages(USER)) == 4)
            claimed, sent = chat.running, [m["text"] for m in telegram.sent_messages(USER)]
            # The refusal is out before its update's handler returns (and the first erasure's
            # may still be returning too): wait for the two to leave before counting.
            in_flight = stack.veil.operations.in_flight
            await wait_until(lambda: in_flight.count <= 1)
            second_erasing = in_flight.count == 1
        done = await telegram.wait_for("editMessageText")
        telegram.send_text(USER, "a fresh start")
        await stack.final_messages(USER, 5)
        turns = await stack.stored_turns(USER, 2)
    en = stack.veil.catalogs.for_language("en")
    assert second_erasing  # the question came and went while the second erasure waited
    assert claimed == 0  # not answered from (nor written into) what the second erases
    assert sent[2:] == [en("error_history"), en("erasing")]
    assert "2 stored messages" in done.params["text"]  # the second erasure erased them
    assert turns == ["a fresh start", ANSWER]
    asked = [str(request["messages"]) for request in stack.vllm.requests]
    assert [SECRET in text for text in asked] == [True, False]  # the fresh start read nothing


async def test_retry_pressed_during_forget_is_told_so_and_keeps_its_button_until_erased(
    tmp_path: Path,
) -> None:
    # Retry pressed while /forget waits for the answer being charged and stored: refused as
    # erasing by the path busy takes (the button stays, the prompt is given back), and the
    # erasure then erases that prompt too: pressed afterwards, the button resends nothing.
    async with writes_stack(tmp_path) as stack:
        model, telegram = stack.vllm, stack.telegram
        model.fail_before_stream = (500, "the model server broke")
        telegram.send_text(USER, "the question that failed")
        (failed,) = await stack.final_messages(USER)
        (button,) = failed["reply_markup"]["inline_keyboard"][0]
        model.fail_before_stream = None
        telegram.send_text(USER, "/forget")
        *_, confirm = await stack.final_messages(USER, 2)
        erase = confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        async with writes_held(stack, tmp_path):
            await stack.final_messages(USER, 3)  # shown; its charge waits for the lock
            telegram.press_button(USER, erase, message_id=confirm["message_id"])
            # The erasure has begun (the press is answered first, then it begins): a Retry
            # handled before that is an ordinary retry, on a loaded machine too.
            await wait_until(lambda: USER in stack.veil.chat._forgetting)
            telegram.press_button(USER, button["callback_data"], message_id=failed["message_id"])
            refused = (await stack.final_messages(USER, 4))[3]
            kept = telegram.calls_of("editMessageReplyMarkup") == []
        await telegram.wait_for("editMessageText")
        telegram.press_button(USER, button["callback_data"], message_id=failed["message_id"])
        expired = (await stack.final_messages(USER, 5))[4]
    en = stack.veil.catalogs.for_language("en")
    assert refused["text"] == en("erasing")
    assert kept  # the button stayed on the failed question's message
    assert expired["text"] == en("retry_expired")
    asked = [request["messages"][-1]["content"] for request in model.requests]
    assert asked == ["the question that failed", SECRET]  # never resent


async def test_forget_stops_a_waiting_question_and_waits_for_both_answers(tmp_path: Path) -> None:
    # A question waits for the answer being charged and stored; /forget then stops it before
    # it is asked and waits for both before erasing: the first exchange is stored and erased,
    # the question is told it was cancelled, and nothing is written afterwards.
    async with writes_stack(tmp_path) as stack:
        model = stack.vllm
        chat, telegram = stack.veil.chat, stack.telegram
        confirm, erase = await forget_asked(stack)
        async with writes_held(stack, tmp_path):
            await stack.final_messages(USER, 2)  # shown; its charge waits for the lock
            telegram.send_text(USER, "and another thing")
            await wait_until(lambda: chat.running == 2)  # the question waits
            telegram.press_button(USER, erase, message_id=confirm["message_id"])
            await wait_until(lambda: stack.veil.operations.in_flight.count == 1)
        done = await telegram.wait_for("editMessageText")
        await wait_until(lambda: chat.running == 0, within=10)
        user = await stack.veil.store.get_user(USER)
        texts = [m["text"] for m in telegram.sent_messages(USER)]
    assert len(model.requests) == 1  # the waiting question was never asked
    assert user is None
    assert "2 stored messages" in done.params["text"]  # the first exchange, stored, then erased
    assert texts[1:] == [ANSWER, stack.veil.catalogs.for_language("en")("cancelled")]


async def test_forget_as_a_cut_first_answer_ends_asks_no_title_of_it(tmp_path: Path) -> None:
    # A cut answer's end says so (Continue) before it names its conversation: a /forget that
    # waited for the answer's writes erases meanwhile. The title must not then be asked of
    # the erased exchange (sent to the model after the erasure) nor stored.
    async with writes_stack(
        tmp_path,
        conversation_titles=True,
        max_answer_tokens=2 * HELD_AT,  # cut at the length limit
        min_answer_tokens=8,
    ) as stack:
        model = stack.vllm
        telegram = stack.telegram
        confirm, erase = await forget_asked(stack)
        async with writes_held(stack, tmp_path):
            await stack.final_messages(USER, 2)  # shown; its charge waits for the lock
            telegram.press_button(USER, erase, message_id=confirm["message_id"])
            await wait_until(lambda: stack.veil.operations.in_flight.count == 1)
        await telegram.wait_for("editMessageText")
        await wait_until(lambda: stack.veil.chat.running == 0, within=10)
        user = await stack.veil.store.get_user(USER)
    asked = [str(request["messages"]) for request in model.requests]
    assert [SECRET in text for text in asked] == [True]  # the answer only, no title of it
    assert user is None


async def test_a_waiting_question_cancelled_by_teardown_is_never_asked(tmp_path: Path) -> None:
    # The loop's teardown cancels a question's task while it waits for the previous answer's
    # writes: those writes end (the answer is charged and stored), and the question goes no
    # further (never sent to the model, no hold left).
    async with writes_stack(tmp_path) as stack:
        model = stack.vllm
        chat, telegram = stack.veil.chat, stack.telegram
        async with writes_held(stack, tmp_path):
            telegram.send_text(USER, "and another thing")
            await wait_until(lambda: chat.running == 2 and chat._active[USER].task is not None)
            waiting = chat._active[USER].task
            assert waiting is not None
            waiting.cancel()
        await wait_until(lambda: chat.running == 0, within=10)
        turns = await stack.stored_turns(USER, 2)
        holds = await stack.veil.credit.open_holds()
    assert waiting.cancelled()
    assert len(model.requests) == 1
    assert turns == [SECRET, ANSWER]
    assert holds == []


async def test_no_credit_inside_the_answer_is_told_in_its_topic(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, telegram_server=topic_telegram(), free_tokens_per_day=0
    ) as stack:
        thread = await new_topic(stack, 2)
        with capture_logs() as logs:
            stack.telegram.send_text(USER, SECRET, thread_id=thread)
            told = (await stack.final_messages(USER, 3))[-1]
    assert told["text"].startswith("Not enough credit for an answer:")
    assert told["message_thread_id"] == thread
    buttons = [row[0]["callback_data"] for row in told["reply_markup"]["inline_keyboard"]]
    assert buttons
    assert all(data.startswith("buy") for data in buttons)
    (replied,) = events(logs, "error_replied")
    assert (replied["error"], replied["text"]) == ("InsufficientCredit", "no_credit")
    assert "quince" not in repr(logs)


async def test_a_notice_telegram_refuses_is_logged_not_lost_silently(tmp_path: Path) -> None:
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        stack.telegram.fail_next(
            "sendMessage", status=403, description="Forbidden: bot was blocked by the user"
        )
        with capture_logs() as logs:
            stack.telegram.send_text(USER, SECRET)
            await wait_until(lambda: bool(events(logs, "chat.failure_unreported")), within=10)
            # The line is written inside the answer's task, which ends (and is let go) after.
            await wait_until(lambda: stack.veil.chat.running == 0, within=10)
    (unreported,) = events(logs, "chat.failure_unreported")
    assert (unreported["error"], unreported["reporting"]) == (
        "InsufficientCredit",
        "TelegramForbiddenError",
    )
    assert "quince" not in repr(logs)


async def test_a_failed_answer_gets_retry_in_its_topic(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer="Back again.", telegram_server=topic_telegram()
    ) as stack:
        thread = await new_topic(stack, 2)
        stack.vllm.fail_before_stream = (500, "the model server broke")
        with capture_logs() as logs:
            stack.telegram.send_text(USER, SECRET, thread_id=thread)
            failure = (await stack.final_messages(USER, 3))[-1]
        assert failure["text"] == stack.veil.catalogs.for_language("en")("error_backend")
        assert failure["message_thread_id"] == thread
        (button,) = failure["reply_markup"]["inline_keyboard"][0]
        stack.vllm.fail_before_stream = None
        stack.telegram.press_button(USER, button["callback_data"], message_id=failure["message_id"])
        answer = (await stack.final_messages(USER, 4))[-1]
    assert (answer["text"], answer["message_thread_id"]) == ("Back again.", thread)
    (replied,) = events(logs, "error_replied")
    assert (replied["error"], replied["text"]) == ("BackendError", "error_backend")


async def test_a_bug_inside_the_answer_is_logged_without_text_and_apologised_for(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, telegram_server=topic_telegram()) as stack:
        thread = await new_topic(stack, 2)
        # The final message is refused with entities and plain alike: the sink gives up.
        stack.telegram.fail_next(
            "sendMessage", status=400, description="Bad Request: message is too weird", count=2
        )
        with capture_logs() as logs:
            stack.telegram.send_text(USER, SECRET, thread_id=thread)
            apology = (await stack.final_messages(USER, 3))[-1]
    assert apology["text"] == stack.veil.catalogs.for_language("en")("error_internal")
    assert apology["message_thread_id"] == thread
    (failed,) = events(logs, "handler_failed")
    assert failed["error"] == "TelegramBadRequest"
    for secret in ("quince", "otter"):
        assert secret not in repr(logs)


async def test_an_inline_answer_runs_detached_and_tells_its_failure_in_place(
    tmp_path: Path,
) -> None:
    model = held_model()
    async with running_stack(tmp_path, model_server=model, **FAST_EDITS) as stack:
        _, inline_id = await ask_inline(stack, USER, SECRET)
        await wait_until(lambda: model.paused >= 1, within=10)
        assert stack.veil.operations.in_flight.count == 0
        assert stack.veil.chat.running == 1
        model.resume()
        answered = await final_edit(stack, inline_id)
        assert answered["text"].endswith(ANSWER)
        stack.vllm.fail_before_stream = (500, "the model server broke")
        told = stack.veil.catalogs.for_language("en")("error_backend")
        with capture_logs() as logs:
            _, failed_id = await ask_inline(stack, USER, "and again")
            await wait_until(
                lambda: stack.telegram.state.inline_messages[failed_id].get("text") == told,
                within=10,
            )
    (replied,) = events(logs, "error_replied")
    assert (replied["error"], replied["text"], replied["outside"]) == (
        "BackendError",
        "error_backend",
        True,
    )


async def test_group_answers_wait_for_their_turn_detached_and_keep_their_order(
    tmp_path: Path,
) -> None:
    model = held_model()
    async with running_stack(tmp_path, model_server=model, **FAST_EDITS) as stack:
        for n, user in enumerate((USER, USER + 1)):
            stack.telegram.send_text(user, f"@veil_test_bot question {n}", chat_id=GROUP)
        await wait_until(lambda: model.paused >= 1 and stack.veil.chat.running >= 2, within=10)
        # One streams, the other waits for the group's turn: neither keeps its update.
        assert stack.veil.operations.in_flight.count == 0
        model.pauses = set()
        model.resume()
        finals = await final_reply(stack, 2)
    assert [m["text"] for m in finals] == [ANSWER, ANSWER]
    asked = [m["reply_to_message"]["text"] for m in finals]
    assert asked == ["@veil_test_bot question 0", "@veil_test_bot question 1"]


async def test_shutdown_waits_for_a_detached_answer_within_the_grace(tmp_path: Path) -> None:
    model = held_model()
    async with running_stack(tmp_path, model_server=model) as stack:
        veil = stack.veil
        stack.telegram.send_text(USER, SECRET)
        await held(stack)
        asyncio.get_running_loop().call_later(0.3, model.resume)
        with capture_logs() as logs:
            await drain(veil.operations.in_flight, veil.chat, 30, veil.relay)
        # Drained only once the answer was delivered, settled and stored.
        assert stack.telegram.sent_messages(USER)[-1]["text"] == ANSWER
        assert await veil.credit.open_holds() == []
        assert await stack.stored_turns(USER, 2) == [SECRET, ANSWER]
    (draining,) = events(logs, "bot.draining")
    assert (draining["updates"], draining["answers"]) == (0, 1)
    assert events(logs, "bot.drained")
    assert not events(logs, "bot.grace_over")


async def test_after_the_grace_a_detached_answer_is_stopped_charged_and_stored(
    tmp_path: Path,
) -> None:
    model = held_model()
    async with running_stack(tmp_path, model_server=model) as stack:
        veil = stack.veil
        stack.telegram.send_text(USER, SECRET)
        await held(stack)
        with capture_logs() as logs:
            await drain(veil.operations.in_flight, veil.chat, 0.2, veil.relay)
        assert veil.chat.running == 0
        (final,) = stack.telegram.sent_messages(USER)
        delivered = " ".join(f"otter{i}" for i in range(HELD_AT))
        assert final["text"] == delivered
        assert await veil.credit.open_holds() == []
        assert await stack.stored_turns(USER, 2) == [SECRET, delivered]
    (over,) = events(logs, "bot.grace_over")
    assert (over["updates"], over["answers"]) == (0, 1)
    (answered,) = events(logs, "chat.answered")
    assert answered["stopped"] is True
    assert answered["outcome"] == "settled"


async def test_after_the_grace_a_waiting_question_is_not_asked_and_the_first_is_kept(
    tmp_path: Path,
) -> None:
    # Shutdown's grace ends while an answer is being charged and stored and a question waits
    # for it: the answer is settled, delivered and stored; the question is stopped before it
    # is asked (told so; its hold is released, nothing charged).
    async with writes_stack(tmp_path) as stack:
        model = stack.vllm
        veil, telegram = stack.veil, stack.telegram
        with capture_logs() as logs:
            async with writes_held(stack, tmp_path):
                await stack.final_messages(USER)  # shown; its charge waits for the lock
                telegram.send_text(USER, "and another thing")
                await wait_until(lambda: veil.chat.running == 2)  # the question waits
                draining = asyncio.create_task(
                    drain(veil.operations.in_flight, veil.chat, 0.2, veil.relay)
                )
                await wait_until(lambda: bool(events(logs, "bot.grace_over")), within=5)
            await asyncio.wait_for(draining, 10)
        assert veil.chat.running == 0
        texts = [m["text"] for m in telegram.sent_messages(USER)]
        assert await veil.credit.open_holds() == []
        assert await stack.stored_turns(USER, 2) == [SECRET, ANSWER]
    assert texts == [ANSWER, veil.catalogs.for_language("en")("cancelled")]
    assert len(model.requests) == 1
    answered = events(logs, "chat.answered")
    assert [(a["stopped"], a["outcome"]) for a in answered] == [
        (False, "settled"),
        (True, "released"),
    ]


async def test_a_waiting_question_is_the_one_stop_and_busy_speak_of(tmp_path: Path) -> None:
    # While a question waits for the answer being charged and stored: the first answer's stop
    # button, pressed late, stops nothing; a third question is refused as busy; /cancel
    # stops the waiting one before it is asked (told so, nothing charged, nothing stored).
    async with writes_stack(tmp_path) as stack:
        model = stack.vllm
        chat, telegram = stack.veil.chat, stack.telegram
        async with writes_held(stack, tmp_path):
            first = chat._active[USER].stop_tag
            await stack.final_messages(USER)  # shown; its charge waits for the lock
            telegram.send_text(USER, "and another thing")
            await wait_until(lambda: chat.running == 2)  # the question waits
            waiting = chat._active[USER]
            late = chat.cancel(USER, stop_tag=first)
            telegram.send_text(USER, "and a third")
            await stack.final_messages(USER, 2)
            telegram.send_text(USER, "/cancel")
            await wait_until(waiting.stop.is_set)
        await wait_until(lambda: chat.running == 0, within=10)
        texts = [m["text"] for m in telegram.sent_messages(USER)]
        turns = await stack.stored_turns(USER, 2)
        holds = await stack.veil.credit.open_holds()
        said = stack.veil.catalogs.for_language("en")
    assert late is False
    assert texts == [ANSWER, said("busy"), said("cancelled")]
    assert len(model.requests) == 1
    assert turns == [SECRET, ANSWER]
    assert holds == []


async def test_a_question_waiting_for_a_failing_answer_is_answered_after_its_report(
    tmp_path: Path,
) -> None:
    # The answer fails after its text began (the stream has ended: only its charge and its
    # report are left). The question waiting for it is answered after that, from the history
    # without the failed exchange; the failure is reported once.
    async with writes_stack(tmp_path) as stack:
        model = stack.vllm
        model.error_mid_stream_after = HELD_AT + 2
        chat, telegram = stack.veil.chat, stack.telegram
        async with writes_held(stack, tmp_path):  # failed; its charge waits
            model.error_mid_stream_after = None
            telegram.send_text(USER, "and another thing")
            await wait_until(lambda: chat.running == 2)  # the question waits
        await wait_until(lambda: chat.running == 0, within=10)
        texts = [m["text"] for m in telegram.sent_messages(USER)]
        turns = await stack.stored_turns(USER, 2)
        holds = await stack.veil.credit.open_holds()
    delivered = " ".join(f"otter{i}" for i in range(HELD_AT + 2))
    assert texts == [delivered, stack.veil.catalogs.for_language("en")("answer_broke_off"), ANSWER]
    assert turns == ["and another thing", ANSWER]
    assert [m["content"] for m in model.requests[1]["messages"]] == ["and another thing"]
    assert holds == []
