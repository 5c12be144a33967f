"""A rich answer marks the model's 💭 in its quotes and details blocks as the entity one does.

The entity renderer writes the thinking mark in the model's quotes with a no-break space after
the emoji (``common.thought.QUOTED``), so no quote of the model's opens as the thinking Veil
folds (``MARK``, a plain space). A rich answer sent the model's Markdown as written: its own
details block opening with "💭 Spoiler" was Veil's fold by every mark, told apart by shape only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from aiogram.types import Message

from bot.rich import draft_markdown, marked, rich_parts, thought_details
from common.thought import MARK, QUOTED
from handlers.reading import words_of
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.test_bot_rich_replies import (
    ANN,
    BOT_ID,
    CATALOGS,
    FAST,
    FRIENDS,
    MODEL_S_DETAILS,
    asked,
    veil_answer,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


@pytest.mark.parametrize(
    ("markdown", "sent"),
    [
        ("> 💭 Note", f"> {QUOTED}Note"),
        (">> 💭 deep\n> 💭 less", f">> {QUOTED}deep\n> {QUOTED}less"),
        (
            "<details>\n<summary>💭 Spoiler</summary>\n\n💭 body\n</details>",
            f"<details>\n<summary>{QUOTED}Spoiler</summary>\n\n{QUOTED}body\n</details>",
        ),
        ("💭 a paragraph is no quote", "💭 a paragraph is no quote"),
        ("<details>\n<summary>S</summary>\n</details>\n💭 after", None),
        ("> `💭 code` and 💭 text", f"> `💭 code` and {QUOTED}text"),
        ("> ``a ` 💭 b`` 💭 c", f"> ``a ` 💭 b`` {QUOTED}c"),
        (
            "> ```\n> 💭 quoted code\n> ```\n> 💭 after",
            f"> ```\n> 💭 quoted code\n> ```\n> {QUOTED}after",
        ),
        ("<details>\n```\n💭 code\n```\n</details>", None),
        ("> ```\n> 💭 code\n\n> 💭 a new quote", f"> ```\n> 💭 code\n\n> {QUOTED}a new quote"),
    ],
)
def test_the_mark_in_the_model_s_quotes_and_details_is_quoted(
    markdown: str, sent: str | None
) -> None:
    assert marked(markdown) == (markdown if sent is None else sent)


def test_a_rich_answer_and_its_draft_carry_the_marks_as_long() -> None:
    markdown = "Intro.\n\n> 💭 " + " ".join(["quoted words"] * 20)
    (part,) = rich_parts(markdown)
    assert part == marked(markdown)
    assert f"> {QUOTED}quoted" in part
    assert MARK not in draft_markdown(markdown)
    assert len(part.encode("utf-16-le")) == len(markdown.encode("utf-16-le"))


def test_veil_s_fold_keeps_the_mark() -> None:
    details = thought_details("Recall the obsidian table.", MARK)
    assert f"<summary>{MARK}Recall" in details


@pytest.mark.parametrize("thinking", [True, False], ids=["with thinking", "without"])
async def test_a_guest_answer_s_details_of_the_model_s_is_told_from_veil_s_fold(
    tmp_path: Path,
    thinking: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    model = FakeVLLM(answer=f"{MODEL_S_DETAILS}\n\nSee above.")
    if thinking:
        model.reasoning = "Cheese is a dairy food."
    async with running_stack(tmp_path, model_server=model, rich_messages=True, **FAST) as stack:
        stack.telegram.guest_message(ANN, "@veil_test_bot is the moon cheese?", chat_id=FRIENDS)
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        answer = veil_answer(stack)
    summaries = [b["summary"] for b in answer["rich_message"]["blocks"] if b["type"] == "details"]
    folds = [f"{MARK}Cheese is a dairy food."] if thinking else []
    assert summaries == [*folds, f"{QUOTED}Spoiler"]


def veil_s_rich(blocks: list[Mapping[str, object]]) -> Message:
    """Veil's rich answer in a private chat, as Telegram sends it back in a reply."""
    return Message.model_validate(
        {
            "message_id": 5,
            "date": 0,
            "chat": {"id": ANN, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Veil"},
            "rich_message": {"blocks": blocks},
        }
    )


def test_the_model_s_details_shaped_as_veil_s_fold_is_read_with_its_mark() -> None:
    # The model's details block first, its summary its body's first words: Veil's fold by
    # shape and place. Its mark (QUOTED, as sent) tells it apart, and it reads back as written.
    details = {
        "type": "details",
        "summary": f"{QUOTED}The moon is rock.",
        "blocks": [{"type": "paragraph", "text": f"The moon is rock. {QUOTED}Basalt."}],
    }
    code = {"type": "pre", "text": f"{QUOTED}kept"}
    quote = {"type": "blockquote", "blocks": [{"type": "paragraph", "text": f"{QUOTED}Q"}, code]}
    read = words_of(veil_s_rich([details, quote]), BOT_ID, CATALOGS)
    assert (
        read
        == f"{MARK}The moon is rock.\n\nThe moon is rock. {MARK}Basalt.\n\n{MARK}Q\n\n{QUOTED}kept"
    )


def test_veil_s_own_fold_is_still_left_out() -> None:
    fold = {
        "type": "details",
        "summary": f"{MARK}Recall the table.",
        "blocks": [{"type": "paragraph", "text": "Recall the table."}],
    }
    answer = {"type": "paragraph", "text": f"{QUOTED}not a quote: read as sent"}
    assert words_of(veil_s_rich([fold, answer]), BOT_ID, CATALOGS) == answer["text"]
