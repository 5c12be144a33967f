"""The model's 💭 in code is its code: shown and read back byte for byte.

The renderer writes the thinking mark (``common.thought.MARK``) in the model's quotes with a
no-break space (``QUOTED``) so a reply never reads such a quote as Veil's fold, and a reply
reads it back as ``MARK``. Code in a quote was changed too (what a reader copies held the
no-break space), and reading back changed every ``QUOTED`` in the text, the model's own in
code or plain text as well. Now both swap the mark over the same spans: in a quote, outside
code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.types import Message

from bot.formatting import Rendered, render
from bot.thinking import with_thought
from common.texts import Catalogs
from common.thought import MARK, QUOTED
from handlers.reading import words_of
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.test_bot_rich_replies import FAST, veil_answer
from tests.test_reading_folds import summoned_twice

if TYPE_CHECKING:
    from pathlib import Path

BOT_ID = 123456
VEIL = {"id": BOT_ID, "is_bot": True, "first_name": "Veil", "username": "veil_test_bot"}
CATALOGS = Catalogs()


def spans(rendered: Rendered, kind: str) -> list[str]:
    """The text under each entity of type ``kind`` (offsets in UTF-16 units)."""
    units = rendered.text.encode("utf-16-le")
    return [
        units[2 * e.offset : 2 * (e.offset + e.length)].decode("utf-16-le")
        for e in rendered.entities
        if e.type == kind
    ]


def sent(rendered: Rendered) -> Message:
    """``rendered`` as Veil's message in a private chat, as Telegram gives it back."""
    entities: list[dict[str, Any]] = [
        {"type": e.type, "offset": e.offset, "length": e.length} for e in rendered.entities
    ]
    return Message.model_validate(
        {
            "message_id": 5,
            "date": 0,
            "chat": {"id": 1, "type": "private"},
            "from": VEIL,
            "text": rendered.text,
            "entities": entities,
        }
    )


def test_code_in_a_model_s_quote_is_shown_byte_for_byte() -> None:
    rendered = render(
        f"> {MARK}Run:\n> ```\n> {MARK}x = 1\n> ```\n> and `{MARK}y` 👍🏽\u0301 {MARK}z"
    )
    assert spans(rendered, "pre") == [f"{MARK}x = 1"]
    assert spans(rendered, "code") == [f"{MARK}y"]
    (quote,) = spans(rendered, "blockquote")
    assert quote.startswith(QUOTED)  # the quote's own words still written apart
    assert quote.endswith(f"👍🏽\u0301 {QUOTED}z")  # after emoji and a combining mark too


def test_the_model_s_no_break_space_in_code_is_read_back_as_it_wrote_it() -> None:
    markdown = f"Keep `{QUOTED}a` and\n\n```\n{QUOTED}b\n```\n\nplain {QUOTED}c"
    rendered = render(markdown)
    read = words_of(sent(rendered), BOT_ID, CATALOGS)
    assert read == rendered.text
    assert read.count(QUOTED) == 3


def test_code_in_a_quote_is_read_back_as_it_was_shown_after_veil_s_fold() -> None:
    markdown = f"Answer.\n\n> {MARK}note\n> ```\n> {QUOTED}kept\n> ```"
    (first,) = with_thought("Thinking it over.", [render(markdown)])
    read = words_of(sent(first), BOT_ID, CATALOGS)
    assert read == f"Answer.\n\n{MARK}note\n{QUOTED}kept"


CODE_IN_A_QUOTE = f"> Run this:\n> ```\n> {MARK}x = 1\n> ```\n\nDone."


async def test_code_in_a_quote_reaches_the_chat_and_a_reply_as_the_model_wrote_it(
    tmp_path: Path,
) -> None:
    # Through the real bot and the fake Telegram: the guest answer's code is the model's, and a
    # reply to it asks about that very code.
    model = FakeVLLM(answer=CODE_IN_A_QUOTE)
    async with running_stack(tmp_path, model_server=model, rich_messages=False, **FAST) as stack:
        text = await summoned_twice(stack, "how do I set x?")
        answer = veil_answer(stack)
    units = answer["text"].encode("utf-16-le")
    (code,) = [
        units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
        for e in answer["entities"]
        if e["type"] == "pre"
    ]
    assert code == f"{MARK}x = 1"
    assert f"{MARK}x = 1" in text
    assert QUOTED not in text


async def test_a_reply_quoting_the_model_s_marked_quote_asks_with_the_plain_mark(
    tmp_path: Path,
) -> None:
    # The user's client quotes what it shows: the model's 💭 with the renderer's no-break space,
    # which reached the model (and the history) as written on screen, not as the model wrote it.
    answer = "> 💭 The kettle sings\n\nTides follow the moon."
    async with running_stack(tmp_path, answer=answer) as stack:
        stack.telegram.send_text(9401, "Tell me about tides")
        (first,) = await stack.final_messages(9401, 1)
        assert QUOTED + "The kettle sings" in first["text"]
        stack.telegram.send_text(
            9401, "What is that?", reply_to=first["message_id"], quote=QUOTED + "The kettle"
        )
        await stack.final_messages(9401, 2)
    assert stack.vllm.requests[-1]["messages"][-1]["content"] == (
        f"> {MARK}The kettle\n\nWhat is that?"
    )
