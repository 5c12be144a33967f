"""review22f: a file asked with a question in another script is cut by the count, not refused.

``ChatService._cut_file`` measures the rest of the question (all but the file) by its ceiling
(its bytes) scaled as the model server's count scales the whole question's. The file sets that
scale: a file of code or English words (a few bytes a token) under a Russian caption (its long
words here) scaled the caption's ceiling down too little, past the budget by itself,
and the question was refused as too long though the caption and a start of the file fitted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.documents import TextFile
from services.tokens import prompt_tokens
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.test_bot_files_fit import ANSWER, ROOM, USER, WINDOW, fitted, settings

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_file_with_a_question_in_another_script_is_cut_not_refused(
    tmp_path: Path,
) -> None:
    server = FakeVLLM(answer=ANSWER, max_model_len=WINDOW)
    text = " ".join(f"{n % 10}" for n in range(3000))  # two bytes a token (a CSV's)
    question = " ".join(["антидискриминационный"] * 46)  # 1,011 characters, 43 bytes a token
    async with running_stack(tmp_path, model_server=server, **settings()) as stack:
        stack.telegram.send_document(USER, text.encode(), file_name="long.txt", caption=question)
        turns = await stack.stored_turns(USER, 2)
        await stack.final_messages(USER, 2)
    assert len(question) < 1024  # a caption Telegram takes
    assert prompt_tokens([{"role": "user", "content": question}]) > WINDOW - ROOM
    read, asked = fitted(server)[-1]
    assert read + asked <= WINDOW
    kept = int(turns[0].split("only its first ", 1)[1].split(" ", 1)[0])
    assert turns[0] == TextFile("long.txt", text, question).question(kept)
    assert turns[1] == ANSWER
