"""Rich messages: the bot's splitting (``bot.rich``), the emulator's checks (``playground.rich``).

The emulator is driven by the real aiogram ``Bot`` over HTTP, as the bot drives Telegram.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    InputRichBlockParagraph,
    InputRichBlockThinking,
    InputRichMessage,
)

from bot import rich
from playground import rich as telegram_rich
from playground.web import shown_message
from tests.fakes.telegram import FakeTelegram
from tests.test_fake_telegram import close_bot, make_bot

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiogram import Bot

USER = 7501
GROUP = -100555


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# -- the bot's side: splitting ---------------------------------------------------------------


def test_the_bot_and_the_emulator_agree_on_the_limits() -> None:
    assert rich.MAX_CHARS == telegram_rich.MAX_CHARS == 32_768
    assert rich.MAX_BLOCKS == telegram_rich.MAX_BLOCKS == 500
    assert rich.MAX_NESTING == telegram_rich.MAX_NESTING == 16
    assert rich.MAX_TABLE_COLUMNS == telegram_rich.MAX_TABLE_COLUMNS == 20


def test_blocks_part_at_blank_lines_outside_fences_only() -> None:
    text = "# Title\n\nOne\ntwo\n\n\n```py\na = 1\n\nb = 2\n```\n\n- x\n  - y"
    assert rich.split_blocks(text) == [
        "# Title",
        "One\ntwo",
        "```py\na = 1\n\nb = 2\n```",
        "- x\n  - y",
    ]


def test_short_answer_is_one_part_as_written() -> None:
    text = "Hello **there**.\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    assert rich.rich_parts(text) == [text]
    assert rich.rich_parts("  \n\n ") == []


def test_stars_inside_a_word_are_sent_escaped() -> None:
    # Telegram parses rich Markdown: "2*3*4" would show a 3 in italics, as CommonMark reads it.
    text = "So 2*3*4 = 24 and 2**3**2, *this* and **that** stay, `a*b*c` too."
    assert rich.rich_parts(text) == [
        "So 2\\*3\\*4 = 24 and 2\\*\\*3\\*\\*2, *this* and **that** stay, `a*b*c` too."
    ]
    assert rich.draft_markdown("Then 2*3*4") == "Then 2\\*3\\*4"


def test_parts_pack_whole_blocks_within_the_limit() -> None:
    blocks = [f"Block {i} " + "x" * 80 for i in range(30)]
    parts = rich.rich_parts("\n\n".join(blocks), limit=500)
    assert len(parts) > 1
    assert all(units(part) <= 500 for part in parts)
    assert "\n\n".join(parts) == "\n\n".join(blocks)
    assert all(part.startswith("Block ") for part in parts)


def test_parts_hold_at_most_max_blocks() -> None:
    parts = rich.rich_parts("\n\n".join(["b"] * 1001), max_blocks=500)
    assert [len(rich.split_blocks(part)) for part in parts] == [500, 500, 1]


def test_list_items_and_table_rows_count_towards_the_block_limit() -> None:
    listing = "\n".join(f"- item {i}" for i in range(300))
    table = "| n | square |\n| --- | --- |\n" + "\n".join(f"| {i} | {i * i} |" for i in range(298))
    code = "```\n" + "\n".join(f"line {i}" for i in range(600)) + "\n```"
    parts = rich.rich_parts(f"{listing}\n\n{table}\n\n{code}", max_blocks=500)
    # 300 items + 300 table lines do not fit one message's 500; a code block counts once.
    assert parts == [listing, f"{table}\n\n{code}"]
    assert [rich.block_weight(block) for block in (listing, table, code)] == [300, 300, 1]


def test_a_code_block_longer_than_a_message_is_cut_and_refenced() -> None:
    code = "\n".join(f"print({i})  # 🙂" for i in range(200))
    block = f"```python\n{code}\n```"
    parts = rich.rich_parts(f"Intro.\n\n{block}\n\nOutro.", limit=1000)
    assert all(units(part) <= 1000 for part in parts)
    fenced = [p for p in parts if "```python" in p]
    assert len(fenced) > 1
    inner = [rich.split_blocks(p)[-1] if p.startswith("Intro") else p for p in fenced]
    inner = [p.removesuffix("\n\nOutro.") for p in inner]
    assert all(p.startswith("```python\n") and p.endswith("\n```") for p in inner)
    joined = "\n".join(p.removeprefix("```python\n").removesuffix("\n```") for p in inner)
    assert joined == code


def test_an_unclosed_code_block_cut_into_parts_keeps_its_last_line() -> None:
    # A last line that looks like a fence but cannot close this one (the other mark, or a
    # shorter run) is code: it was taken for the closing fence and left out.
    code = "\n".join(f"print({i})" for i in range(200))
    for fence, last in (("```", "~~~"), ("````", "```")):
        parts = rich.rich_parts(f"{fence}\n{code}\n{last}", limit=1000)
        assert len(parts) > 1
        assert all(p.startswith(f"{fence}\n") and p.endswith(f"\n{fence}") for p in parts)
        inner = [p.removeprefix(f"{fence}\n").removesuffix(f"\n{fence}") for p in parts]
        assert "\n".join(inner) == f"{code}\n{last}"
    assert rich.draft_markdown("```\nx = 1\n~~~") == "```\nx = 1\n~~~\n```"


def test_the_draft_shows_the_last_part() -> None:
    text = "\n\n".join(["y" * 300] * 10)
    assert rich.draft_markdown(text, limit=700) == "y" * 300 + "\n\n" + "y" * 300
    assert rich.draft_markdown("") == ""


def test_the_draft_closes_a_code_block_being_written() -> None:
    assert rich.draft_markdown("Look:\n\n```python\nx = 1") == "Look:\n\n```python\nx = 1\n```"
    assert rich.draft_markdown("Look:\n\n```python\nx = 1\n``") == (
        "Look:\n\n```python\nx = 1\n```"
    )
    assert rich.draft_markdown("Look:\n\n~~~~\n\nx = 1") == "Look:\n\n~~~~\n\nx = 1\n~~~~"
    done = "Look:\n\n```python\nx = 1\n```\n\nDone."
    assert rich.draft_markdown(done) == done


def test_escaped_text_reads_as_typed_in_the_emulator() -> None:
    typed = "Is **this** a `tag` <b>, 2*3 = 6? | # not a heading"
    markdown = rich.escape(typed)
    assert "\\*\\*this\\*\\*" in markdown
    blocks = telegram_rich.parse_rich({"markdown": markdown}, draft=False)
    assert blocks == [{"type": "paragraph", "text": typed}]


def test_the_thinking_is_a_collapsed_details_block_with_its_start_as_summary() -> None:
    thought = "First **recall** the table.\n\nThen </details> answer " + "at length " * 10
    markdown = rich.thought_details(thought, "💭 ")
    (details,) = telegram_rich.parse_rich({"markdown": markdown}, draft=False)
    assert details["type"] == "details"
    assert "is_open" not in details
    summary = telegram_rich.text_of({"blocks": [{"type": "paragraph", "text": details["summary"]}]})
    assert summary[0].startswith("💭 First **recall** the table. Then")
    assert summary[0].endswith("…")
    inner, _ = telegram_rich.text_of({"blocks": details["blocks"]})
    assert inner == thought.strip()


# -- the emulator's side: what Telegram accepts and refuses ----------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        server.user.send_text(USER, "hi")
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(fake)
    yield bot
    await close_bot(bot)


async def test_a_rich_message_is_stored_with_its_blocks(fake: FakeTelegram, bot: Bot) -> None:
    markdown = (
        "Intro **bold**.\n\n```python\nx = 1\n\ny = 2\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    sent = await bot.send_rich_message(USER, InputRichMessage(markdown=markdown))
    assert sent.rich_message is not None
    assert [block.type for block in sent.rich_message.blocks] == ["paragraph", "pre", "table"]
    (stored,) = [m for m in fake.sent_messages(USER) if "rich_message" in m]
    assert stored["rich_message"]["blocks"][1] == {
        "type": "pre",
        "text": "x = 1\n\ny = 2",
        "language": "python",
    }
    shown = shown_message(stored)
    assert "Intro <b>bold</b>." in shown["html"]
    assert '<code class="language-python">x = 1\n\ny = 2</code></pre>' in shown["html"]
    assert "| 1 | 2 |" in shown["html"]


async def test_blocks_are_accepted_and_a_thinking_block_only_in_drafts(
    fake: FakeTelegram, bot: Bot
) -> None:
    paragraph = InputRichMessage(blocks=[InputRichBlockParagraph(text="Plain words.")])
    sent = await bot.send_rich_message(USER, paragraph)
    assert sent.rich_message is not None
    thinking = InputRichMessage(blocks=[InputRichBlockThinking(text="Pondering…")])
    assert await bot.send_rich_message_draft(USER, 5, thinking, can_stop=True) is True
    with pytest.raises(TelegramBadRequest, match="only in drafts"):
        await bot.send_rich_message(USER, thinking)
    assert len([m for m in fake.sent_messages(USER) if "rich_message" in m]) == 1


@pytest.mark.parametrize(
    ("markdown", "refusal"),
    [
        ("x" * 32_769, "RICH_MESSAGE_TOO_LONG"),
        ("🙂" * 16_385, "RICH_MESSAGE_TOO_LONG"),  # 32,770 UTF-16 units
        ("\n\n".join(["b"] * 501), "RICH_MESSAGE_TOO_MANY_BLOCKS"),
        ("\n".join("  " * depth + "- item" for depth in range(17)), "NESTING_TOO_DEEP"),
        ("|" + "c|" * 21 + "\n|" + "-|" * 21 + "\n|" + "1|" * 21, "TABLE_TOO_WIDE"),
        (" \n\n\t", "message text is empty"),  # nothing to show, as for a text message
    ],
    ids=["chars", "utf16", "blocks", "nesting", "columns", "blank"],
)
async def test_past_the_limits_is_refused(
    fake: FakeTelegram, bot: Bot, markdown: str, refusal: str
) -> None:
    with pytest.raises(TelegramBadRequest, match=refusal):
        await bot.send_rich_message(USER, InputRichMessage(markdown=markdown))
    assert not [m for m in fake.sent_messages(USER) if "rich_message" in m]


async def test_at_the_limits_is_accepted(bot: Bot) -> None:
    for markdown in (
        "x" * 32_768,
        "\n\n".join(["b"] * 500),
        "\n".join("  " * depth + "- item" for depth in range(16)),
        "|" + "c|" * 20 + "\n|" + "-|" * 20 + "\n|" + "1|" * 20,
    ):
        assert (await bot.send_rich_message(USER, InputRichMessage(markdown=markdown))).rich_message


async def test_exactly_one_source_and_drafts_in_private_chats_only(
    fake: FakeTelegram, bot: Bot
) -> None:
    with pytest.raises(TelegramBadRequest, match="exactly one"):
        await bot.send_rich_message(USER, InputRichMessage(markdown="a", html="<b>a</b>"))
    with pytest.raises(TelegramBadRequest, match="exactly one"):
        await bot.send_rich_message(USER, InputRichMessage())
    with pytest.raises(TelegramBadRequest, match="non-zero"):
        await bot.send_rich_message_draft(USER, 0, InputRichMessage(markdown="a"))
    fake.user.send_text(USER, "hello", chat_id=GROUP)
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await bot.send_rich_message_draft(GROUP, 3, InputRichMessage(markdown="a"))


async def test_a_server_without_rich_messages_refuses_both(fake: FakeTelegram, bot: Bot) -> None:
    fake.state.rich_messages = False
    with pytest.raises(TelegramBadRequest, match="rich messages are not supported"):
        await bot.send_rich_message(USER, InputRichMessage(markdown="a"))
    with pytest.raises(TelegramBadRequest, match="rich messages are not supported"):
        await bot.send_rich_message_draft(USER, 3, InputRichMessage(markdown="a"))
    assert not [m for m in fake.sent_messages(USER) if "rich_message" in m]


async def test_the_page_shows_headings_marks_math_and_tables_readably(
    fake: FakeTelegram, bot: Bot
) -> None:
    markdown = (
        "## Results\n\n"
        "Use `pip`, *not* ~~easy_install~~; area is $\\pi r^2$.\n\n"
        "$$\nE = mc^2\n$$\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |"
    )
    sent = await bot.send_rich_message(USER, InputRichMessage(markdown=markdown))
    assert sent.rich_message is not None
    kinds = [block.type for block in sent.rich_message.blocks]
    assert kinds == ["heading", "paragraph", "mathematical_expression", "table"]
    (stored,) = [m for m in fake.sent_messages(USER) if "rich_message" in m]
    assert stored["rich_message"]["blocks"][0] == {"type": "heading", "text": "Results", "size": 2}
    assert stored["rich_message"]["blocks"][2] == {
        "type": "mathematical_expression",
        "expression": "E = mc^2",
    }
    html = shown_message(stored)["html"]
    assert html.startswith("<b>Results</b>\n\nUse <code>pip</code>, <i>not</i> <s>easy_install</s>")
    assert "area is <code>\\pi r^2</code>." in html
    assert '<code class="language-latex">E = mc^2</code>' in html
    assert "| a | b |\n|---|---|\n| 1 | 2 |" in html


NESTED = """## Plan

1. first
2. second
   - a *nested* point
     - deeper, see /help
   - [x] done

| Name | Score |
|:-----|------:|
| Ann | 3 |

> a quote with `code`

---

<details>
<summary>More</summary>

Hidden **words**.

</details>"""


async def test_structure_is_kept_lists_tables_quotes_details_commands(bot: Bot) -> None:
    sent = await bot.send_rich_message(USER, InputRichMessage(markdown=NESTED))
    assert sent.rich_message is not None  # aiogram reads every block as Telegram's shapes
    blocks = telegram_rich.parse_rich({"markdown": NESTED}, draft=False)
    assert [b["type"] for b in blocks] == [
        "heading", "list", "table", "blockquote", "divider", "details",
    ]  # fmt: skip
    ordered = blocks[1]["items"]
    assert [(i["label"], i["value"]) for i in ordered] == [("1.", 1), ("2.", 2)]
    nested = ordered[1]["blocks"][1]["items"]
    assert nested[0]["blocks"][0]["text"] == ["a ", {"type": "italic", "text": "nested"}, " point"]
    deeper = nested[0]["blocks"][1]["items"][0]["blocks"][0]["text"]
    assert deeper[1] == {"type": "bot_command", "text": "/help", "bot_command": "/help"}
    assert nested[1]["has_checkbox"] is True
    assert nested[1]["is_checked"] is True
    header, row = blocks[2]["cells"]
    assert [c["text"] for c in header] == ["Name", "Score"]
    assert all(c["is_header"] for c in header)
    assert [(c["text"], c["align"]) for c in row] == [("Ann", "left"), ("3", "right")]
    assert blocks[3]["blocks"][0]["text"] == ["a quote with ", {"type": "code", "text": "code"}]
    assert blocks[5]["summary"] == "More"
    assert blocks[5]["blocks"] == [
        {"type": "paragraph", "text": ["Hidden ", {"type": "bold", "text": "words"}, "."]}
    ]
    text, entities = telegram_rich.text_of({"blocks": blocks})
    assert "1. first\n2. second\n  - a nested point\n    - deeper, see /help" in text
    assert "| Ann | 3 |" in text
    assert {"type": "bot_command", "offset": text.index("/help"), "length": 5} in entities


async def test_edit_message_text_turns_a_message_rich_and_back(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.user.send_text(USER, "hi", chat_id=GROUP)
    placeholder = await bot.send_message(GROUP, "⏳ …")
    rich_table = InputRichMessage(markdown="| a | b |\n|---|---|\n| 1 | 2 |")
    edited = await bot.edit_message_text(
        chat_id=GROUP, message_id=placeholder.message_id, rich_message=rich_table
    )
    assert not isinstance(edited, bool)
    assert edited.rich_message is not None
    assert edited.text is None
    with pytest.raises(TelegramBadRequest, match="not modified"):
        await bot.edit_message_text(
            chat_id=GROUP, message_id=placeholder.message_id, rich_message=rich_table
        )
    back = await bot.edit_message_text("plain", chat_id=GROUP, message_id=placeholder.message_id)
    assert not isinstance(back, bool)
    assert back.text == "plain"
    assert back.rich_message is None
    fake.state.rich_messages = False
    with pytest.raises(TelegramBadRequest, match="rich messages are not supported"):
        await bot.edit_message_text(
            chat_id=GROUP, message_id=placeholder.message_id, rich_message=rich_table
        )
    (stored,) = fake.sent_messages(GROUP)
    assert stored["text"] == "plain"


def test_a_fence_whose_first_line_fills_a_message_is_cut_as_text() -> None:
    block = "```" + "tangerine " * 80  # the opening line alone is past the limit
    parts = rich.rich_parts(block, limit=300)
    assert all(units(part) <= 300 for part in parts)
    assert " ".join(parts) == block.strip()
    draft = rich.draft_markdown(block, limit=300)
    assert 0 < units(draft) <= 300


def test_the_details_block_keeps_the_last_lines_of_a_long_thinking() -> None:
    thought = "\n\n".join(f"step {n}" for n in range(300))
    details = rich.thought_details(thought, "💭 ")
    assert rich.weight(details) <= rich.THOUGHT_LINES + 3  # summary, body, closing tag
    assert "…step 200\n\nstep 201" in details
    assert details.endswith("step 299\n\n</details>")
    assert "step 199" not in details.split("</summary>")[1]
    short = rich.thought_details("one\n\ntwo", "💭 ")
    assert "…" not in short.split("</summary>")[1]


def test_a_draft_closing_a_very_long_fence_stays_within_the_limit() -> None:
    fence = "`" * 40  # more than the room a draft keeps for closing one
    draft = rich.draft_markdown(f"{fence}\n" + "x" * 925, limit=1000)
    assert units(draft) <= 1000
    assert draft == f"{fence}\n" + "x" * 925
    assert rich.draft_markdown("```\nx = 1", limit=1000) == "```\nx = 1\n```"  # room: closed
