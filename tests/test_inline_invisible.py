"""Inline and guest questions that show nothing, and inline titles cut between glyphs.

An inline query of zero-width spaces (or a summons whose words are only such) reads as empty
in the user's app; it went to the model as a question no one could see, answered and charged.
The result's title and the answer's header cut the question by code points: inside an emoji.
The real bot long-polls the fake Telegram, through a real gateway to the fake vLLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.inline import TITLE_CHARS, shortened
from tests.botstack import running_stack
from tests.test_bot_inline import USER
from tests.test_bot_rich_replies import ANN, FAST, FRIENDS, asked

if TYPE_CHECKING:
    from pathlib import Path

INVISIBLE = "\u200b \u200e\ufeff\u200b"  # zero-width space, left-to-right mark, BOM


async def test_an_inline_query_of_invisible_characters_gets_the_help_not_an_answer(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.telegram.inline_query(USER, INVISIBLE)
        answered = await stack.telegram.wait_for("answerInlineQuery")
        (result,) = answered.params["results"]
        assert result["id"] == "help"
        stack.telegram.choose_inline_result(USER, "x1", INVISIBLE, inline_message_id="inline-x1")
        stack.telegram.inline_query(USER, "a real question")  # handled after the chosen result
        await stack.telegram.wait_for(
            "answerInlineQuery", lambda c: c.params["results"][0]["id"] != "help"
        )
        assert await stack.veil.chat.wait_idle(10)
        assert stack.vllm.requests == []  # nothing asked, nothing held or charged
        assert (await stack.veil.credit.balance(USER)).held == 0


async def test_a_summons_of_invisible_words_is_asked_as_an_empty_one(tmp_path: Path) -> None:
    async with running_stack(tmp_path, **FAST) as stack:
        stack.telegram.guest_message(ANN, f"@veil_test_bot {INVISIBLE}", chat_id=FRIENDS)
        ((role, text),) = await asked(stack, 1)
    assert (role, text) == ("user", "Hello!")  # the catalog's guest_empty_question


def test_a_title_is_cut_between_glyphs() -> None:
    coder = "👩\u200d💻"  # one glyph of three code points
    question = "a" * (TITLE_CHARS - 3) + coder + " and more"
    assert shortened(question, TITLE_CHARS) == "a" * (TITLE_CHARS - 3) + "…"
    assert shortened("short", TITLE_CHARS) == "short"
