"""Rich answers under a hostile model: whatever the model prints, the asker reads its text.

Fake Telegram (the playground's emulator) ← real bot → real gateway → fake vLLM. The model's
output is the attacker's to choose: raw HTML, Markdown that renders to nothing, text Telegram
refuses. Each answer must reach the asker as text (formatted, else plain), be stored as shown,
and be charged once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.vllm import FakeVLLM
from tests.test_bot_groups import ANN, GROUP, final_reply
from tests.test_bot_inline import ask_inline, final_edit
from tests.test_bot_outside_hostile import settled
from tests.test_bot_rich import RICH, WORD
from tests.test_bot_rich_edits import FAST, SHORT, assert_the_rich_answer, group_edits, shown

if TYPE_CHECKING:
    from pathlib import Path

USER = 9401
# HTML a model prints outside code: the entity rendering dropped it, text and all.
HTML = "<div>\nThe obsidian kettledrum costs 42.\n</div>\n\nUse List<String> for the tangerines."


async def test_html_in_an_answer_reaches_the_asker_as_text(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=HTML) as stack:
        stack.telegram.send_text(USER, "Prices?")
        (message,) = await stack.final_messages(USER)
        history = await stack.stored_turns(USER, 2)
    assert "The obsidian kettledrum costs 42." in message["text"]
    assert "List<String> for the tangerines" in message["text"]
    assert history[-1] == HTML


async def test_an_answer_of_markup_alone_is_shown_as_written(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="```") as stack:
        stack.telegram.send_text(USER, "Print three backticks")
        (message,) = await stack.final_messages(USER)
        history = await stack.stored_turns(USER, 2)
    assert message["text"] == "```"
    assert history[-1] == "```"


async def test_an_answer_of_invisible_characters_alone_is_no_answer_and_costs_nothing(
    tmp_path: Path,
) -> None:
    # Telegram holds a text of zero-width spaces empty and refuses it: the asker read
    # "Something went wrong" for an answer they were charged for. Nothing the model said can be
    # read in it: it is no answer, as a blank one is (told, with Retry, free, not stored).
    answer = "\u200b\u200b\ufeff"
    async with running_stack(tmp_path, answer=answer) as stack:
        stack.telegram.send_text(USER, "Say nothing")
        (message,) = await stack.final_messages(USER)
        refused = [call for call in stack.telegram.calls if call.answered != "ok"]
        await settled(stack, USER)
        entries = await stack.veil.credit.history(USER, limit=10)
        conversation = await stack.veil.store.active_conversation(USER)
        stored = await stack.veil.store.history(USER, conversation)
    assert message["text"] == "The model could not answer this time. Please try again."
    assert refused == []
    assert [entry for entry in entries if entry.kind == "usage"] == []
    assert stored == []


@pytest.mark.parametrize(
    ("answer", "text", "offset"),
    [
        # Telegram refuses a whole message with a link to a host without a dot ("Wrong HTTP
        # URL"): the answer went out plain, its code block unformatted.
        pytest.param(
            "Run it, then open [the app](http://localhost:3000).\n\n```python\nprint(1)\n```",
            "Run it, then open the app.\n\nprint(1)",
            28,
            id="localhost",
        ),
        # tdlib takes a tg: link only with a host of letters, digits, "-" and "_": a model's
        # tg://t.me/... link refused the whole message, and the answer went out plain.
        pytest.param(
            "Write to [the channel](tg://t.me/veil).\n\n```python\nprint(1)\n```",
            "Write to the channel.\n\nprint(1)",
            23,
            id="tg-host",
        ),
    ],
)
async def test_a_link_telegram_cannot_open_leaves_the_rest_of_the_answer_formatted(
    tmp_path: Path, answer: str, text: str, offset: int
) -> None:
    async with running_stack(tmp_path, answer=answer) as stack:
        stack.telegram.send_text(USER, "Where is it?")
        (message,) = await stack.final_messages(USER)
        refused = [call for call in stack.telegram.calls if call.answered != "ok"]
    assert refused == []
    assert message["text"] == text
    assert message["entities"] == [
        {"type": "pre", "offset": offset, "length": 8, "language": "python"}
    ]


async def test_a_group_answer_of_markup_alone_is_shown(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="#", **FAST) as stack:
        stack.telegram.send_text(ANN, "/ask Print a hash sign", chat_id=GROUP)
        (final,) = await final_reply(stack)
        edits = group_edits(stack)
    assert edits[-1].answered == "ok"
    assert edits[-1].params["rich_message"] == {"markdown": "#"}
    assert "rich_message" in final


async def test_a_fence_line_longer_than_a_rich_message_is_still_delivered(tmp_path: Path) -> None:
    answer = "```" + " ".join([WORD] * 450)  # one line, past 32,768 characters
    async with running_stack(
        tmp_path, answer=answer, max_answer_tokens=2000, rich_messages=True
    ) as stack:
        stack.telegram.send_text(USER, "Three backticks, then a lot")
        messages = await stack.final_messages(USER, 2)
        history = await stack.stored_turns(USER, 2)
        sends = stack.telegram.calls_of("sendRichMessage")
    assert history[-1] == answer
    assert [call.answered for call in sends] == ["ok", "ok"]
    parts = [call.params["rich_message"]["markdown"] for call in sends]
    assert len(messages) == 2
    assert " ".join(parts) == answer  # cut at a space, nothing lost


async def test_a_thinking_of_many_paragraphs_leaves_a_group_answer_rich(tmp_path: Path) -> None:
    server = FakeVLLM(answer=RICH, token_delay=0.001)
    server.reasoning = "\n\n".join(f"s{n % 10}" for n in range(800)) + "\n\nDone thinking."
    async with running_stack(
        tmp_path, model_server=server, max_answer_tokens=2000, **FAST
    ) as stack:
        stack.telegram.send_text(ANN, "/ask Tell me about tangerines", chat_id=GROUP)
        (final,) = await final_reply(stack)
        last = group_edits(stack)[-1]
    assert last.answered == "ok"
    assert "rich_message" in last.params  # not refused for too many blocks, so not cut to 4096
    details, *answer = final["rich_message"]["blocks"]
    assert details["type"] == "details"
    assert shown(details["blocks"]).endswith("Done thinking.")  # the thinking's end is kept
    assert_the_rich_answer(answer)


async def test_an_answer_of_many_bold_words_keeps_its_code_block_formatted(tmp_path: Path) -> None:
    # Telegram applies 100 entities a message: the code block after 250 bold words was plain.
    answer = " ".join(f"**w{n}**" for n in range(250)) + "\n\n```python\nprint(1)\n```"
    async with running_stack(tmp_path, answer=answer, max_answer_tokens=2000) as stack:
        stack.telegram.send_text(USER, "Bold words, then code")
        messages = await stack.final_messages(USER, 3)
        sends = stack.telegram.calls_of("sendMessage")
    assert [len(call.params["entities"]) for call in sends] == [100, 100, 51]
    assert messages[-1]["entities"][-1] == {
        "type": "pre", "offset": len(messages[-1]["text"]) - 8, "length": 8, "language": "python",
    }  # fmt: skip
    assert sum(len(message["entities"]) for message in messages) == 251


async def test_a_final_edit_failing_on_telegram_s_side_is_tried_again(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=SHORT, **FAST) as stack:
        # Two 500s: the session retries one, the other reaches the sink.
        stack.telegram.fail_next(
            "editMessageText", status=500, description="Internal Server Error", count=2
        )
        stack.telegram.send_text(ANN, "/ask Tell me about tangerines", chat_id=GROUP)
        (final,) = await final_reply(stack)
        edits = group_edits(stack)
    assert [call.answered != "ok" for call in edits] == [True, True, False]
    assert final["rich_message"]["blocks"] == [
        {"type": "paragraph", "text": [{"type": "bold", "text": "Tangerine"}, " is ",
                                       {"type": "code", "text": "orange"}, "."]}
    ]  # fmt: skip


async def test_an_inline_answer_in_html_shows_its_text_under_the_question(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=HTML, **FAST | {"rich_messages": False}) as stack:
        _, inline_id = await ask_inline(stack, USER, "Prices?")
        final = await final_edit(stack, inline_id)
    assert final["text"].startswith("❓ Prices?")
    assert final["text"].endswith(
        "<div>\nThe obsidian kettledrum costs 42.\n</div>\n\nUse List<String> for the tangerines."
    )


async def test_a_final_edit_a_proxy_answered_with_its_own_page_is_tried_again(
    tmp_path: Path,
) -> None:
    # A proxy's page in place of the Bot API's reply (ClientDecodeError, no TelegramAPIError)
    # is no refusal: the same edit again, as after a 5xx. It went up out of the sink as a bug,
    # and the message kept its stop button and no answer.
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("editMessageText", "page", when=lambda params: params["chat_id"] == GROUP)
    async with running_stack(tmp_path, answer=SHORT, telegram_server=telegram, **FAST) as stack:
        stack.telegram.send_text(ANN, "/ask Tell me about tangerines", chat_id=GROUP)
        (final,) = await final_reply(stack)
        edits = group_edits(stack)
    assert telegram.misbehaved == [("editMessageText", "page")]
    assert [call.answered == "ok" for call in edits] == [True]
    assert final["rich_message"]["blocks"] == [
        {"type": "paragraph", "text": [{"type": "bold", "text": "Tangerine"}, " is ",
                                       {"type": "code", "text": "orange"}, "."]}
    ]  # fmt: skip
