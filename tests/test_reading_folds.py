"""Veil's folded thinking, told from the model's own quote when an answer is read back.

Veil folds a reasoning model's thinking into an expandable quote opening with the mark
(``common.thought.MARK``) before its answer; a reply to the answer reads it without that fold
(``handlers.reading``). The model's Markdown may open its answer with a long quote of its own
opening with the same emoji: by shape and place it was Veil's fold, and the model's words were
left out of what it was asked about. The renderer now writes the model's mark apart
(``QUOTED``). The real bot long-polls the fake Telegram, through a real gateway to the fake vLLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from aiogram.types import Message

from bot.formatting import render, render_parts
from bot.thinking import with_thought
from common.thought import MARK, QUOTED
from handlers.reading import words_of
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.test_bot_rich_replies import BOT_ID, CATALOGS, FAST, FRIENDS, asked, veil_answer

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

ANN = 9701
VEIL = {"id": BOT_ID, "is_bot": True, "first_name": "Veil", "username": "veil_test_bot"}
THOUGHT = "Cheese is a dairy food; the Apollo samples were basalt."
# Long enough that the renderer makes it an expandable quote, as Veil folds its thinking.
MODEL_S_QUOTE = "> 💭 " + "The Apollo crews brought back basalt and breccia. " * 20
OPENING_QUOTES = [
    f"{MODEL_S_QUOTE}\n- one\n- two",  # a list on the next line
    f"{MODEL_S_QUOTE}\n```\nrock = True\n```",  # a code block on the next line
    MODEL_S_QUOTE,  # the whole answer
]


def units(text: str) -> int:
    """The length of ``text`` in UTF-16 units, as Telegram counts offsets."""
    return len(text.encode("utf-16-le")) // 2


def veil_s(text: str, entities: list[dict[str, Any]]) -> Message:
    """Veil's answer in a private chat, as text and entities."""
    return Message.model_validate(
        {
            "message_id": 5,
            "date": 0,
            "chat": {"id": ANN, "type": "private"},
            "from": VEIL,
            "text": text,
            "entities": entities,
        }
    )


def header(language: str, question: str = "почему? 👋") -> str:
    """The question header an inline or guest answer opens with; none for a private one."""
    if not language:
        return ""
    return CATALOGS.lookup(language, "inline_header").format(question=question)


def shown(top: str, parts: list[Any]) -> Message:
    """The first message of an answer as Telegram holds it: ``top`` above the rendered part."""
    first = parts[0]
    moved = [
        {"type": e.type, "offset": e.offset + units(top), "length": e.length}
        for e in first.entities
    ]
    return veil_s(top + first.text, moved)


@pytest.mark.parametrize("language", ["", "en", "kk"], ids=["no header", "en", "kk"])
@pytest.mark.parametrize("markdown", OPENING_QUOTES, ids=["list", "code", "alone"])
def test_a_model_s_marked_quote_opening_its_answer_is_read(language: str, markdown: str) -> None:
    # The model's expandable quote opening with 💭 first in its answer, one line break before
    # what follows (or ending it): read as Veil's fold and left out, the model's words lost.
    top = header(language)
    message = shown(top, render_parts(markdown))
    read = words_of(message, BOT_ID, CATALOGS)
    assert read is not None
    assert f"{MARK}The Apollo crews" in read  # as the model wrote it, its own mark
    assert read == (message.text or "").replace(QUOTED, MARK)


@pytest.mark.parametrize("markdown", OPENING_QUOTES, ids=["list", "code", "alone"])
def test_veil_s_fold_before_a_model_s_marked_quote_is_still_left_out(markdown: str) -> None:
    top = header("en", "why?")
    (first,) = with_thought(THOUGHT, render_parts(markdown))
    read = words_of(shown(top, [first]), BOT_ID, CATALOGS)
    assert read is not None
    assert "dairy" not in read
    assert read.startswith(f"{top}{MARK}The Apollo crews")


def test_a_fold_sent_before_the_renderer_marked_the_model_s_quotes_is_still_left_out() -> None:
    # Answers already in chats: Veil's fold as it always was, the model's quote after it held
    # the plain mark. The fold is still the thinking; the model's quote after it still read.
    fold = f"{MARK}{THOUGHT}"
    quote = f"{MARK}a quote of the model's"
    text = f"{fold}\n{quote}\nThe end."
    entities = [
        {"type": "expandable_blockquote", "offset": 0, "length": units(fold)},
        {"type": "expandable_blockquote", "offset": units(fold) + 1, "length": units(quote)},
    ]
    assert words_of(veil_s(text, entities), BOT_ID, CATALOGS) == f"{quote}\nThe end."


def test_the_mark_in_any_quote_of_the_model_s_is_written_apart() -> None:
    # A long answer is cut into messages: one may open inside a quote, at a mark in it.
    rendered = render(f"> Intro.\n> {MARK}more\n\nText {MARK}outside, `{MARK}code`.")
    assert MARK not in rendered.text.split("\n\n")[0]
    assert rendered.text.split("\n\n")[1] == f"Text {MARK}outside, {MARK}code."
    assert rendered.entities[0].length == units(f"Intro.\n{QUOTED}more")


async def summoned_twice(stack: Stack, question: str) -> str:
    """Ann asks ``question`` as a guest, then "why?" replying to the answer: what is asked."""
    stack.telegram.guest_message(ANN, f"@veil_test_bot {question}", chat_id=FRIENDS)
    await asked(stack, 1)
    assert await stack.veil.chat.wait_idle(10)
    answer = veil_answer(stack)
    assert "text" in answer
    stack.telegram.guest_message(
        ANN, "@veil_test_bot why?", chat_id=FRIENDS, reply_to=answer["message_id"]
    )
    ((role, text),) = await asked(stack, 2)
    assert role == "user"
    return text


async def test_a_guest_answer_opening_with_the_model_s_marked_quote_is_quoted_whole(
    tmp_path: Path,
) -> None:
    model = FakeVLLM(answer=OPENING_QUOTES[0])
    async with running_stack(tmp_path, model_server=model, rich_messages=False, **FAST) as stack:
        text = await summoned_twice(stack, "is the moon cheese?")
    assert f"{MARK}The Apollo crews" in text
    assert "one" in text
    assert text.endswith("why?")
