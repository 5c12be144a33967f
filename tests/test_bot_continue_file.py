"""Continue after an answer about a text file: the model sees the file's question again.

The file's question is long (the window held it with room for one answer only), so the
continuation's context dropped it and, with it, the cut answer (a conversation must not open
with an answer): the model was asked to go on with the answer's end quoted and no file at all.
The question now goes cut in the middle (its heading and opening, the caption that asked),
then the cut answer whole, then the request to go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.chat import CONTINUE_PROMPT
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9711
WINDOW, ROOM = 1024, 256
ESSAY = " ".join(["tide"] * 600)  # longer than the answer's room: cut at its length limit


async def test_continue_after_a_files_answer_sends_the_files_question_cut_to_fit(
    tmp_path: Path,
) -> None:
    server = FakeVLLM(answer=ESSAY, max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(600))
    async with running_stack(
        tmp_path, model_server=server, context_tokens=WINDOW, max_answer_tokens=ROOM
    ) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        question, cut = await stack.stored_turns(USER, 2)
        await wait_until(lambda: stack.veil.chat.running == 0, within=10)
        note = next(m for m in stack.telegram.sent_messages(USER) if m.get("reply_markup"))
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        await stack.stored_turns(USER, 4)
    asked = [(m["role"], m["content"]) for m in server.requests[-1]["messages"]]
    assert [role for role, _ in asked] == ["user", "assistant", "user"]
    (_, shortened), (_, answer), (_, request) = asked
    assert (answer, request) == (cut, CONTINUE_PROMPT)
    opening, closing = shortened.split("\n…\n")
    assert question.startswith(opening)  # the file's name and its first words
    assert opening.startswith("long.txt")
    assert question.endswith(closing)
    assert closing.endswith("Sum up")  # the caption that asked
    assert server.prompt_counts[-1] + server.requests[-1]["max_completion_tokens"] <= WINDOW


async def test_retry_after_a_failed_continue_sends_the_files_question_cut_to_fit_again(
    tmp_path: Path,
) -> None:
    # Retry asks what the failed press asked: the continuation, fitted as Continue fits it,
    # not "go on" alone after a context that dropped the file's question and the cut answer.
    server = FakeVLLM(answer=ESSAY, max_model_len=WINDOW)
    text = " ".join(f"w{n % 10}" for n in range(600))
    async with running_stack(
        tmp_path, model_server=server, context_tokens=WINDOW, max_answer_tokens=ROOM
    ) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="long.txt", caption="Sum up")
        question, cut = await stack.stored_turns(USER, 2)
        await wait_until(lambda: stack.veil.chat.running == 0, within=10)
        note = next(m for m in stack.telegram.sent_messages(USER) if m.get("reply_markup"))
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        server.fail_before_stream = (500, "boom")
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        failed = (await stack.final_messages(USER, len(stack.telegram.sent_messages(USER)) + 1))[-1]
        (retry,) = failed["reply_markup"]["inline_keyboard"][0]
        server.fail_before_stream = None
        stack.telegram.press_button(USER, retry["callback_data"], message_id=failed["message_id"])
        await stack.stored_turns(USER, 4)
    asked = [(m["role"], m["content"]) for m in server.requests[-1]["messages"]]
    assert [role for role, _ in asked] == ["user", "assistant", "user"]
    (_, shortened), (_, answer), (_, request) = asked
    assert (answer, request) == (cut, CONTINUE_PROMPT)
    opening, closing = shortened.split("\n…\n")
    assert question.startswith(opening)
    assert question.endswith(closing)
    assert server.prompt_counts[-1] + server.requests[-1]["max_completion_tokens"] <= WINDOW
