"""A reply to one of Veil's rich answers carries that answer to the model, as a text one does.

A rich answer (``VEIL_RICH_MESSAGES``, on by default) reaches Telegram as a rich message, and
comes back in ``reply_to_message`` as ``rich_message {blocks}``, with no ``text``: a summons
replying to Veil's answer ("why?") went to the model without the answer it asks about. The
real bot long-polls the fake Telegram, through a real gateway to the fake vLLM.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from aiogram.types import Message, User

from bot.formatting import render
from bot.rich import escape, thought_details
from bot.thinking import MAX_FOLDED, tail, with_thought
from common.texts import Catalogs
from common.thought import MARK
from common.thought import QUOTED as QUOTED_MARK
from handlers.pastes import PASTE_PART
from handlers.reading import words_of
from handlers.replies import replied_context
from playground.rich import parse_rich
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.test_bot_privacy import assert_absent, disk_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

ANN, BOB = 9601, 9602
FRIENDS = -1_009_876_601
BOT_ID = 123456
ANSWER = "No: the *moon* is rock.\n\n```\nrock = True\n```"
QUOTED_ANSWER = "> No: the moon is rock.\n>\n> rock = True"
QUOTED = f"> ❓ is that true?\n>\n{QUOTED_ANSWER}"  # a guest answer: its question above it
GROUP = -1_001_234_601
CATALOGS = Catalogs()
FAST: dict[str, Any] = {"edit_interval": 0.2, "group_messages_per_minute": 900}


async def asked(stack: Stack, count: int) -> list[tuple[str, str]]:
    """Wait until the model was asked ``count`` times; the last request's (role, content)s."""
    async with asyncio.timeout(10):
        while len(stack.vllm.requests) < count:  # noqa: ASYNC110 -- polls the fake's record
            await asyncio.sleep(0.02)
    return [(m["role"], m["content"]) for m in stack.vllm.requests[-1]["messages"]]


def veil_answer(stack: Stack) -> dict[str, Any]:
    """Veil's guest answer in the chat, once its final edit is in (no stop button left)."""
    (answer,) = [
        m
        for m in stack.telegram.state.chat_messages(FRIENDS)
        if m["from"]["id"] == BOT_ID and not m.get("reply_markup")
    ]
    return answer


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "entities"])
async def test_a_summons_replying_to_veil_s_answer_carries_that_answer(
    tmp_path: Path,
    rich: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, rich_messages=rich, **FAST) as stack:
        said = stack.telegram.user.post_text(BOB, "The moon is cheese", chat_id=FRIENDS)
        stack.telegram.guest_message(
            ANN, "@veil_test_bot is that true?", chat_id=FRIENDS, reply_to=said
        )
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        answer = veil_answer(stack)
        assert ("rich_message" in answer, "text" in answer) == (rich, not rich)
        stack.telegram.guest_message(
            ANN, "@veil_test_bot why?", chat_id=FRIENDS, reply_to=answer["message_id"]
        )
        context = await asked(stack, 2)
    # Quoted before the question: an answer alone opening the context was dropped as orphaned.
    assert context == [("user", f"{QUOTED}\n\nwhy?")]


async def test_a_summons_replying_to_a_failed_guest_answer_does_not_carry_its_notice(
    tmp_path: Path,
) -> None:
    # The answer failed before any text: the notice told in its place ("_tell_there") went to
    # the model, quoted above the next summons' question, as the answer Veil had given.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.vllm.error_mid_stream_after = 0  # the first answer fails before its first word
        stack.telegram.guest_message(ANN, "@veil_test_bot is the moon cheese?", chat_id=FRIENDS)
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        failed = veil_answer(stack)
        notice = failed.get("text")
        assert notice
        assert stack.veil.catalogs.says(notice)  # the failure told in the message
        stack.vllm.error_mid_stream_after = None
        stack.telegram.guest_message(
            ANN, "@veil_test_bot why?", chat_id=FRIENDS, reply_to=failed["message_id"]
        )
        context = await asked(stack, 2)
    assert context == [("user", "why?")]


@pytest.mark.parametrize("via_bot", [True, False], ids=["inline answer", "veil's own"])
async def test_a_private_reply_to_a_failed_answer_s_notice_does_not_carry_the_notice(
    tmp_path: Path,
    via_bot: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    # An inline answer Ann chose in her chat with Veil failed: the notice told in its place
    # went to the model, quoted before her next question, as the answer Veil had given.
    async with running_stack(tmp_path) as stack:
        notice = stack.veil.catalogs.for_language("ru")("error_backend")
        ann = {"id": ANN, "is_bot": False, "first_name": "Ann", "language_code": "en"}
        chat = {"id": ANN, "type": "private", "first_name": "Ann"}
        replied: dict[str, Any] = {"message_id": 50, "date": 1_750_000_000, "chat": chat}
        replied |= {"from": ann, "via_bot": VEIL} if via_bot else {"from": VEIL}
        question = {
            "message_id": 51,
            "date": 1_750_000_001,
            "chat": chat,
            "from": ann,
            "text": "Why?",
            "reply_to_message": replied | {"text": notice},
        }
        stack.telegram.updates.push({"message": question})
        context = await asked(stack, 1)
    assert context[-1] == ("user", "Why?")
    assert notice not in json.dumps(stack.vllm.requests, ensure_ascii=False)


@pytest.mark.parametrize(
    ("language", "key"),
    [
        ("en", "guest_empty_question"),
        ("ru", "guest_empty_question"),
        ("en", "continue"),
        ("en", "settings_saved"),
        ("ru", "settings_saved"),
    ],
)
async def test_a_private_reply_to_an_answer_that_says_an_everyday_text_carries_it(
    tmp_path: Path, language: str, key: str
) -> None:
    # An answer of Veil's that happened to say what a catalog's everyday text says ("Hello!",
    # "Continue", "Saved.") was taken for a notice, and the message replied to was lost.
    async with running_stack(tmp_path) as stack:
        said = stack.veil.catalogs.for_language(language)(key)
        assert not stack.veil.catalogs.says(said)
        ann = {"id": ANN, "is_bot": False, "first_name": "Ann", "language_code": "en"}
        chat = {"id": ANN, "type": "private", "first_name": "Ann"}
        replied: dict[str, Any] = {"message_id": 50, "date": 1_750_000_000, "chat": chat}
        question = {
            "message_id": 51,
            "date": 1_750_000_001,
            "chat": chat,
            "from": ann,
            "text": "Why?",
            "reply_to_message": replied | {"from": VEIL, "text": said},
        }
        stack.telegram.updates.push({"message": question})
        context = await asked(stack, 1)
    assert said in context[-1][1]


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "entities"])
async def test_a_bare_mention_replying_to_veil_s_answer_in_a_group_carries_that_answer(
    tmp_path: Path,
    rich: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, rich_messages=rich, **FAST) as stack:
        stack.telegram.send_text(ANN, "@veil_test_bot is the moon cheese?", chat_id=GROUP)
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        (answer,) = stack.telegram.sent_messages(GROUP)
        stack.telegram.send_text(
            BOB, "@veil_test_bot", chat_id=GROUP, reply_to=answer["message_id"]
        )
        context = await asked(stack, 2)
    texts = stack.veil.catalogs.for_language("en")
    assert context == [
        (
            "user",
            f"{QUOTED_ANSWER}\n\n{texts('guest_reply_question')}",
        )
    ]


def test_every_kind_of_block_of_a_replied_rich_message_is_read_as_text() -> None:
    # As the Bot API sends a rich message (its blocks and RichText: a string, a styled piece,
    # or a list of them); thinking is not the message's text.
    cell = {"align": "left", "valign": "top"}
    blocks: list[dict[str, Any]] = [
        {"type": "heading", "text": "Title", "size": 1},
        {"type": "paragraph", "text": ["Plain, ", {"type": "bold", "text": "bold"}, "."]},
        {"type": "pre", "text": "x = 1", "language": "python"},
        {
            "type": "table",
            "cells": [
                [cell | {"text": "a", "is_header": True}, cell | {"text": "b", "is_header": True}],
                [cell | {"text": {"type": "italic", "text": "1"}}, cell],
            ],
        },
        {
            "type": "list",
            "items": [
                {"label": "1.", "blocks": [{"type": "paragraph", "text": "one"}]},
                {"label": "2.", "blocks": [{"type": "paragraph", "text": "two"}]},
            ],
        },
        {"type": "blockquote", "blocks": [{"type": "paragraph", "text": "quoted"}]},
        {
            "type": "details",
            "summary": "More",
            "blocks": [{"type": "paragraph", "text": "hidden"}],
        },
        {"type": "mathematical_expression", "expression": "e^{i\\pi}+1=0"},
        {"type": "divider"},
        {"type": "thinking", "text": "not the text"},
        {"type": "footer", "text": "the end"},
    ]
    message = Message.model_validate(
        {
            "message_id": 2,
            "date": 0,
            "chat": {"id": FRIENDS, "type": "supergroup"},
            "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
            "text": "@veil_test_bot why?",
            "reply_to_message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": FRIENDS, "type": "supergroup"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Veil"},
                "rich_message": {"blocks": blocks},
            },
        }
    )
    assert replied_context(message, BOT_ID, Catalogs()) == (
        (
            "assistant",
            (
                "Title\n\nPlain, bold.\n\nx = 1\n\na | b\n1 | \n\n1. one\n2. two\n\nquoted\n\n"
                "More\n\nhidden\n\ne^{i\\pi}+1=0\n\nthe end"
            ),
        ),
    )


async def test_a_reply_to_a_rich_answer_of_an_earlier_conversation_brings_that_answer(
    tmp_path: Path,
) -> None:
    # The private chat quotes the answer a reply is to where the conversation no longer holds
    # it (after /new); a rich answer, without ``text``, was not quoted: the bare question went.
    user = 9603
    answers = iter(["Use **pathlib** for paths.", "It means this."])
    async with running_stack(
        tmp_path, answer=lambda _request: next(answers), rich_messages=True
    ) as stack:
        stack.telegram.send_text(user, "How do I join paths?")
        (first,) = await stack.final_messages(user, 1)
        stack.telegram.send_text(user, "/new")
        await stack.final_messages(user, 2)
        stack.telegram.send_text(user, "What did you mean?", reply_to=first["message_id"])
        context = await asked(stack, 2)
    assert "rich_message" in first
    assert context == [("user", "> Use pathlib for paths.\n\nWhat did you mean?")]


async def test_a_reply_to_an_answer_still_streaming_carries_its_thread_once_written(
    tmp_path: Path,
) -> None:
    # A reply to an answer as it streams waits for that answer (one at a time in a group), but
    # its thread was read when it came: the placeholder, before the answer was known.
    long_answer = " ".join(f"word{n}" for n in range(40))
    async with running_stack(
        tmp_path, answer=long_answer, token_delay=0.02, rich_messages=True, **FAST
    ) as stack:
        stack.telegram.send_text(ANN, "@veil_test_bot is it cold in Oslo?", chat_id=GROUP)
        await stack.telegram.wait_for("sendMessage")  # the placeholder: the answer streams
        (answering,) = stack.telegram.sent_messages(GROUP)
        stack.telegram.send_text(
            BOB, "@veil_test_bot and in winter?", chat_id=GROUP, reply_to=answering["message_id"]
        )
        context = await asked(stack, 2)
    assert context == [
        ("user", "is it cold in Oslo?"),
        ("assistant", long_answer),
        ("user", "and in winter?"),
    ]


async def test_a_reply_to_an_answer_that_followed_a_long_quote_still_carries_that_answer(
    tmp_path: Path,
) -> None:
    # A bare mention replying to Veil's long answer has it quoted, cut to the window; the
    # thread it goes on kept the whole quote, and a reply to the answer after it found that
    # turn too long for the window: dropped, with the answer it asked for (an orphan), so the
    # model read the question alone.
    long_answer = " ".join(f"word{n}" for n in range(3000))
    answers = iter([long_answer, "Rock, mostly.", "Because."])
    async with running_stack(
        tmp_path, answer=lambda _request: next(answers), rich_messages=True, **FAST
    ) as stack:
        stack.telegram.send_text(ANN, "@veil_test_bot what is the moon?", chat_id=GROUP)
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        (first,) = stack.telegram.sent_messages(GROUP)
        stack.telegram.send_text(BOB, "@veil_test_bot", chat_id=GROUP, reply_to=first["message_id"])
        await asked(stack, 2)
        assert await stack.veil.chat.wait_idle(10)
        second = stack.telegram.sent_messages(GROUP)[-1]
        stack.telegram.send_text(
            ANN, "@veil_test_bot why?", chat_id=GROUP, reply_to=second["message_id"]
        )
        context = await asked(stack, 3)
    assert context == [("user", "> Rock, mostly.\n\nwhy?")]


async def test_a_bare_mention_replying_to_an_answer_still_streaming_reads_it_once_written(
    tmp_path: Path,
) -> None:
    # A bare mention asks about the message it replies to; one replying to an answer as it
    # streams waits for that answer, but read it when it came: the placeholder (or a part).
    long_answer = " ".join(f"word{n}" for n in range(40))
    async with running_stack(
        tmp_path, answer=long_answer, token_delay=0.02, rich_messages=True, **FAST
    ) as stack:
        stack.telegram.send_text(ANN, "@veil_test_bot is it cold in Oslo?", chat_id=GROUP)
        await stack.telegram.wait_for("sendMessage")  # the placeholder: the answer streams
        (answering,) = stack.telegram.sent_messages(GROUP)
        stack.telegram.send_text(
            BOB, "@veil_test_bot", chat_id=GROUP, reply_to=answering["message_id"]
        )
        context = await asked(stack, 2)
    texts = stack.veil.catalogs.for_language("en")
    assert context == [("user", f"> {long_answer}\n\n{texts('guest_reply_question')}")]


async def test_replies_to_rich_answers_and_edits_leave_no_words_in_logs_or_on_disk(
    tmp_path: Path,
) -> None:
    # The new paths read a rich answer's words, quote them, remember the thread, and tell an
    # edit apart: none of it may reach a log line or the database (one-off questions).
    private = "My private worry: tangerine-hippogriff-93"
    answer = "A private reply about **obsidian-kettledrum-58** for you."
    async with running_stack(tmp_path, answer=answer, rich_messages=True, **FAST) as stack:
        with structlog.testing.capture_logs() as logs:
            said = stack.telegram.user.post_text(BOB, private, chat_id=FRIENDS)
            stack.telegram.guest_message(ANN, "@veil_test_bot", chat_id=FRIENDS, reply_to=said)
            await asked(stack, 1)
            assert await stack.veil.chat.wait_idle(10)
            stack.telegram.guest_message(
                ANN,
                f"@veil_test_bot {private}?",
                chat_id=FRIENDS,
                reply_to=veil_answer(stack)["message_id"],
            )
            await asked(stack, 2)
            assert await stack.veil.chat.wait_idle(10)
            stack.telegram.send_text(ANN, f"@veil_test_bot {private}", chat_id=GROUP)
            await asked(stack, 3)
            assert await stack.veil.chat.wait_idle(10)
            (first,) = stack.telegram.sent_messages(GROUP)
            stack.telegram.send_text(
                BOB, "@veil_test_bot", chat_id=GROUP, reply_to=first["message_id"]
            )
            asked_last = await asked(stack, 4)
            assert await stack.veil.chat.wait_idle(10)
            question = stack.telegram.state.chat_messages(GROUP)[0]["message_id"]
            stack.telegram.edit_text(ANN, question, f"@veil_test_bot {private}!", chat_id=GROUP)
            async with asyncio.timeout(10):
                while not stack.telegram.ephemeral_messages(GROUP, ANN):  # noqa: ASYNC110 -- the fake
                    await asyncio.sleep(0.02)
    assert "obsidian" in asked_last[0][1]  # the rich answer was read and quoted
    assert_absent(json.dumps(logs, default=str).encode())
    assert_absent(disk_bytes(tmp_path))


async def test_a_summons_replying_to_a_message_too_long_for_the_window_reads_its_start(
    tmp_path: Path,
) -> None:
    # The message a summons replies to is its context; one too long for the window was dropped
    # whole, and the model was asked about a message it never saw. It is quoted, cut, instead.
    long_message = "".join(f"ü{n}ж" for n in range(1000))[:4096]
    async with running_stack(tmp_path, answer="A summary.", **FAST) as stack:
        said = stack.telegram.user.post_text(BOB, long_message, chat_id=FRIENDS)
        stack.telegram.guest_message(
            ANN, "@veil_test_bot sum it up", chat_id=FRIENDS, reply_to=said
        )
        context = await asked(stack, 1)
    ((role, content),) = context
    assert role == "user"
    assert content.startswith("> ü0жü1жü2ж")  # the message's start, quoted
    assert content.endswith("…\n\nsum it up")  # cut, before the question


def test_a_replied_table_s_caption_and_quotes_credits_are_read() -> None:
    # A table's caption is RichText (a media block's is a caption object), and quotes and
    # captions carry a credit line: all three are words the reader sees, and were left out.
    cell = {"align": "left", "valign": "top"}
    photo = [{"file_id": "a", "file_unique_id": "b", "width": 1, "height": 1}]
    blocks: list[dict[str, Any]] = [
        {"type": "table", "cells": [[cell | {"text": "a"}]], "caption": "Table 1: sizes"},
        {
            "type": "blockquote",
            "blocks": [{"type": "paragraph", "text": "To be."}],
            "credit": "Hamlet",
        },
        {"type": "pullquote", "text": "Less is more.", "credit": "Mies"},
        {"type": "photo", "photo": photo, "caption": {"text": "A cat", "credit": "Photo: Ann"}},
    ]
    message = Message.model_validate(
        {
            "message_id": 2,
            "date": 0,
            "chat": {"id": FRIENDS, "type": "supergroup"},
            "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
            "text": "@veil_test_bot why?",
            "reply_to_message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": FRIENDS, "type": "supergroup"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Veil"},
                "rich_message": {"blocks": blocks},
            },
        }
    )
    assert replied_context(message, BOT_ID, Catalogs()) == (
        (
            "assistant",
            (
                "a\n\nTable 1: sizes\n\nTo be.\n\nHamlet\n\nLess is more.\n\nMies\n\n"
                "A cat\n\nPhoto: Ann"
            ),
        ),
    )


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "entities"])
async def test_a_summons_replying_to_veil_s_inline_answer_carries_it_as_veil_s(
    tmp_path: Path,
    rich: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    # An inline answer posted in a chat is Ann's message, sent via Veil: only a message Veil
    # sent itself was read as its answer, so the model was told Ann had written Veil's words.
    async with running_stack(tmp_path, answer=ANSWER, rich_messages=rich, **FAST) as stack:
        stack.telegram.user.post_text(BOB, "The moon is cheese", chat_id=FRIENDS)
        stack.telegram.inline_query(ANN, "is that true?")
        offered = await stack.telegram.wait_for("answerInlineQuery")
        (result,) = offered.params["results"]
        stack.telegram.choose_inline_result(
            ANN, result["id"], "is that true?", inline_message_id="inline-1", chat_id=FRIENDS
        )
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        (posted,) = [m for m in stack.telegram.state.chat_messages(FRIENDS) if m.get("via_bot")]
        assert posted["from"]["id"] == ANN
        stack.telegram.guest_message(
            BOB, "@veil_test_bot why?", chat_id=FRIENDS, reply_to=posted["message_id"]
        )
        context = await asked(stack, 2)
    assert context == [("user", f"{QUOTED}\n\nwhy?")]


THOUGHT = "Cheese is a dairy food; the Apollo samples were basalt."


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "entities"])
async def test_a_reply_to_an_answer_with_its_thinking_folded_carries_the_answer_alone(
    tmp_path: Path,
    rich: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    # The folded thinking (a details block; an expandable quote) was read as the answer's start.
    model = FakeVLLM(answer=ANSWER)
    model.reasoning = THOUGHT
    async with running_stack(tmp_path, model_server=model, rich_messages=rich, **FAST) as stack:
        said = stack.telegram.user.post_text(BOB, "The moon is cheese", chat_id=FRIENDS)
        stack.telegram.guest_message(
            ANN, "@veil_test_bot is that true?", chat_id=FRIENDS, reply_to=said
        )
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        answer = veil_answer(stack)
        assert "Apollo" in json.dumps(answer, ensure_ascii=False)  # the thinking was shown
        stack.telegram.guest_message(
            ANN, "@veil_test_bot why?", chat_id=FRIENDS, reply_to=answer["message_id"]
        )
        context = await asked(stack, 2)
    assert context == [("user", f"{QUOTED}\n\nwhy?")]


MODEL_S_DETAILS = "<details>\n<summary>💭 Spoiler</summary>\n\nThe moon is rock.\n\n</details>"


@pytest.mark.parametrize("thinking", [True, False], ids=["with thinking", "without"])
async def test_a_details_block_of_the_model_s_answer_marked_as_thinking_is_still_quoted(
    tmp_path: Path,
    thinking: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    # The model's own details block opening with 💭 was left out of the answer quoted, as if it
    # were the thinking Veil folds: the model's words, lost to the question about them.
    model = FakeVLLM(answer=f"{MODEL_S_DETAILS}\n\nSee above.")
    if thinking:
        model.reasoning = THOUGHT
    async with running_stack(tmp_path, model_server=model, rich_messages=True, **FAST) as stack:
        stack.telegram.guest_message(ANN, "@veil_test_bot is the moon cheese?", chat_id=FRIENDS)
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        answer = veil_answer(stack)
        assert "rich_message" in answer
        stack.telegram.guest_message(
            ANN, "@veil_test_bot why?", chat_id=FRIENDS, reply_to=answer["message_id"]
        )
        ((role, text),) = await asked(stack, 2)
    assert role == "user"
    assert "💭 Spoiler" in text
    assert "The moon is rock." in text
    assert "See above." in text
    assert "Apollo" not in text  # Veil's own thinking is still left out


# Long enough that the Markdown renders it as an expandable quote, as Veil folds its thinking.
MODEL_S_QUOTE = "> 💭 " + "The Apollo crews brought back basalt and breccia. " * 20


@pytest.mark.parametrize("thinking", [True, False], ids=["with thinking", "without"])
async def test_an_expandable_quote_of_the_model_s_answer_marked_as_thinking_is_still_quoted(
    tmp_path: Path,
    thinking: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    # Every expandable quote opening with 💭 was left out of Veil's entity answer quoted to
    # the model, as if it were the thinking Veil folds: the model's own quote was lost.
    model = FakeVLLM(answer=f"See below.\n\n{MODEL_S_QUOTE}\n\nThe end.")
    if thinking:
        model.reasoning = "Cheese is a dairy food."
    async with running_stack(tmp_path, model_server=model, rich_messages=False, **FAST) as stack:
        stack.telegram.guest_message(ANN, "@veil_test_bot is the moon cheese?", chat_id=FRIENDS)
        await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        answer = veil_answer(stack)
        quotes = [e for e in answer["entities"] if e["type"] == "expandable_blockquote"]
        assert len(quotes) == 1 + thinking  # the model's quote is folded as Veil's thinking is
        stack.telegram.guest_message(
            ANN, "@veil_test_bot why?", chat_id=FRIENDS, reply_to=answer["message_id"]
        )
        ((role, text),) = await asked(stack, 2)
    assert role == "user"
    assert "💭 The Apollo crews" in text
    assert "See below." in text
    assert "The end." in text
    assert "dairy" not in text  # Veil's own thinking is still left out


def units(text: str) -> int:
    """The length of ``text`` in UTF-16 units, as Telegram counts offsets."""
    return len(text.encode("utf-16-le")) // 2


def entity_answer(text: str, entities: list[dict[str, object]]) -> Message:
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


def test_only_the_fold_veil_put_first_is_its_thinking() -> None:
    # Veil's fold: first, plain inside, the answer on the next line. The model's quotes marked
    # alike (after formatting, with formatting inside, a blank line before what follows) stay.
    fold = "💭 a thought"
    quote = "💭 a quote"
    answer = f"{fold}\nThe *answer*.\n{quote}\nmore"
    entities = [
        {"type": "expandable_blockquote", "offset": 0, "length": units(fold)},
        {"type": "italic", "offset": units(f"{fold}\nThe "), "length": 8},
        {
            "type": "expandable_blockquote",
            "offset": units(f"{fold}\nThe *answer*.\n"),
            "length": units(quote),
        },
    ]
    assert (
        words_of(entity_answer(answer, entities), BOT_ID, CATALOGS)
        == f"The *answer*.\n{quote}\nmore"
    )
    bold = [{"type": "bold", "offset": 3, "length": 1}]
    assert words_of(entity_answer(f"{quote}\nmore", entities[:1] + bold), BOT_ID, CATALOGS) == (
        f"{quote}\nmore"
    )
    apart = f"{quote}\n\nmore"
    assert words_of(entity_answer(apart, entities[:1]), BOT_ID, CATALOGS) == apart
    # A link Telegram found in the question's header is no formatting before the fold.
    header = "❓ is t.me safe?\n\n"
    found = [{"type": "url", "offset": 5, "length": 4}]
    moved = [{"type": "expandable_blockquote", "offset": units(header), "length": units(fold)}]
    text = f"{header}{fold}\nYes."
    assert words_of(entity_answer(text, found + moved), BOT_ID, CATALOGS) == f"{header}Yes."


@pytest.mark.parametrize(
    "thought",
    [THOUGHT, "Step *one*: 2 < 3.\n\n" * 200],
    ids=["short", "long: its end kept"],
)
def test_veil_s_own_folded_thinking_of_any_length_is_left_out(thought: str) -> None:
    # As Veil writes it (bot.rich) and the fake Telegram reads the Markdown back into blocks.
    markdown = f"{escape('❓ why?')}\n\n{thought_details(tail(thought, MAX_FOLDED), MARK)}"
    blocks = parse_rich({"markdown": f"{markdown}\n\n{MODEL_S_DETAILS}"}, draft=False)
    message = Message.model_validate(
        {
            "message_id": 3,
            "date": 0,
            "chat": {"id": ANN, "type": "private"},
            "from": VEIL,
            "rich_message": {"blocks": blocks},
        }
    )
    assert words_of(message, BOT_ID, CATALOGS) == "❓ why?\n\n💭 Spoiler\n\nThe moon is rock."


def folded(sender: dict[str, object], **more: object) -> Message:
    """A message of ``sender``'s with a thinking folded in it (an expandable quote, marked).

    After a question's header as Veil writes it (an inline answer's), an emoji in it.
    """
    text = "❓ 👋\n\n💭 mulling it over\nThe answer.\n» a quote of theirs"
    entities = [
        {"type": "expandable_blockquote", "offset": 6, "length": 18},
        {"type": "expandable_blockquote", "offset": 37, "length": 19},
    ]
    return Message.model_validate(
        {
            "message_id": 1,
            "date": 0,
            "chat": {"id": ANN, "type": "private"},
            "from": sender,
            "text": text,
            "entities": entities,
        }
        | more
    )


VEIL = {"id": BOT_ID, "is_bot": True, "first_name": "Veil", "username": "veil_test_bot"}
VEIL_USER = User.model_validate(VEIL)


def test_only_veil_s_folded_thinking_is_left_out_of_a_replied_text() -> None:
    # An expandable quote of the user's own, or one after an emoji (UTF-16 offsets), stays.
    expected = "❓ 👋\n\nThe answer.\n» a quote of theirs"
    assert words_of(folded(VEIL), BOT_ID, CATALOGS) == expected
    ann = {"id": ANN, "is_bot": False, "first_name": "Ann"}
    assert (
        words_of(folded(ann, via_bot=VEIL), BOT_ID, CATALOGS) == expected
    )  # a guest or inline answer


def test_anyone_else_s_quote_opening_with_the_mark_is_read() -> None:
    # Any expandable quote opening with 💭 was left out, whoever wrote it: Bob could fold a
    # link under one, and "@veil is this safe?" under his message was asked without the link.
    bob = {"id": BOB, "is_bot": False, "first_name": "Bob"}
    message = folded(bob)
    assert words_of(message, BOT_ID, CATALOGS) == message.text
    details = {
        "type": "details",
        "summary": "💭 Spoiler",
        "blocks": [{"type": "paragraph", "text": "x"}],
    }
    other = {"id": 4242, "is_bot": True, "first_name": "Other"}
    rich = Message.model_validate(
        {
            "message_id": 2,
            "date": 0,
            "chat": {"id": ANN, "type": "private"},
            "from": other,
            "rich_message": {"blocks": [details]},
        }
    )
    assert words_of(rich, BOT_ID, CATALOGS) == "💭 Spoiler\n\nx"
    # In Veil's own answer too: a details block of the model's Markdown, marked alike, is the
    # model's words; Veil's thinking reads as its first words under the mark.
    veil_s = rich.model_copy(update={"from_user": VEIL_USER})
    assert words_of(veil_s, BOT_ID, CATALOGS) == "💭 Spoiler\n\nx"
    thought = Message.model_validate(
        veil_s.model_dump() | {"rich_message": {"blocks": [details | {"summary": "💭 x"}]}}
    )
    assert words_of(thought, BOT_ID, CATALOGS) is None


@pytest.mark.parametrize("caption", [None, " \n "], ids=["no caption", "blank caption"])
async def test_a_question_replying_to_another_bot_s_rich_message_of_photos_alone_is_refused(
    tmp_path: Path,
    caption: str | None,
) -> None:
    # "What is this?" under a rich message of photos went to the model alone, answered blind;
    # so did it under photos whose caption is blanks alone (read as words).
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]
    block: dict[str, Any] = {"type": "photo", "photo": photo}
    if caption is not None:
        block["caption"] = {"text": caption}
    collage = {"type": "collage", "blocks": [block] * 2}
    replied = {
        "message_id": 40,
        "date": 1_750_000_000,
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
        "from": {"id": 4242, "is_bot": True, "first_name": "Other", "username": "other_bot"},
        "rich_message": {"blocks": [collage, {"type": "divider"}]},
    }
    question = {
        "message_id": 41,
        "date": 1_750_000_001,
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
        "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
        "text": "What is this?",
        "reply_to_message": replied,
    }
    async with running_stack(tmp_path) as stack:
        stack.telegram.updates.push({"message": question})
        told = await stack.telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ANN)
        texts = stack.veil.catalogs.for_language("en")
    assert told.params["text"] == texts("replied_media")
    assert stack.vllm.requests == []


async def test_a_question_replying_to_veil_s_own_invoice_is_refused_as_unseen(
    tmp_path: Path,
) -> None:
    # "What is this?" under Veil's own Stars invoice (no words in it) went to the model alone,
    # answered blind and charged: Veil's own messages were let through whatever they held.
    chat = {"id": ANN, "type": "private", "first_name": "Ann"}
    invoice = {
        "title": "100 Stars",
        "description": "Credit",
        "start_parameter": "buy",
        "currency": "XTR",
        "total_amount": 100,
    }
    replied = {"message_id": 60, "date": 1_750_000_000, "chat": chat, "from": VEIL}
    question = {
        "message_id": 61,
        "date": 1_750_000_001,
        "chat": chat,
        "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
        "text": "What is this?",
        "reply_to_message": replied | {"invoice": invoice},
    }
    async with running_stack(tmp_path) as stack:
        stack.telegram.updates.push({"message": question})
        told = await stack.telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ANN)
        texts = stack.veil.catalogs.for_language("en")
    assert told.params["text"] == texts("replied_media")
    assert stack.vllm.requests == []


def test_a_reply_to_a_forward_of_veil_s_answer_carries_it_as_veil_s_alone() -> None:
    # A forward of Veil's answer (its origin Veil, which Telegram sets) went to the model as
    # the forwarder's words, its folded thinking with them; another bot's forward stays theirs.
    fold = "💭 a thought"
    answer = entity_answer(
        f"{fold}\nThe moon is rock.",
        [{"type": "expandable_blockquote", "offset": 0, "length": units(fold)}],
    ).model_dump(exclude_none=True, by_alias=True)
    ann = {"id": ANN, "is_bot": False, "first_name": "Ann"}
    other = {"id": 4242, "is_bot": True, "first_name": "Other"}

    def replying_to_a_forward_of(author: dict[str, object]) -> Message:
        origin = {"type": "user", "sender_user": author, "date": 1}
        forward = answer | {"from": ann, "forward_origin": origin}
        return Message.model_validate(
            {
                "message_id": 7,
                "date": 2,
                "chat": {"id": FRIENDS, "type": "group", "title": "Friends"},
                "from": {"id": BOB, "is_bot": False, "first_name": "Bob"},
                "text": "@veil_test_bot why?",
                "reply_to_message": forward | {"chat": {"id": FRIENDS, "type": "group"}},
            }
        )

    assert replied_context(replying_to_a_forward_of(VEIL), BOT_ID, Catalogs()) == (
        ("assistant", "The moon is rock."),
    )
    assert replied_context(replying_to_a_forward_of(other), BOT_ID, Catalogs()) == (
        ("user", f"{fold}\nThe moon is rock."),
    )


@pytest.mark.parametrize(("author", "kept"), [(BOT_ID, False), (BOB, True)], ids=["veil", "bob"])
async def test_a_forward_of_veil_s_answer_asked_in_private_is_read_without_its_thinking(
    tmp_path: Path,
    author: int,
    kept: bool,  # noqa: FBT001 -- pytest's parameter
) -> None:
    # A forward of Veil's answer sent to Veil as the question went to the model whole, its
    # folded thinking with it: read as a reply to it is, Veil's fold left out. Anyone else's
    # quote opening with the mark is theirs, and read.
    fold = "💭 a thought"
    text = f"{fold}\nThe moon is rock."
    entities = [{"type": "expandable_blockquote", "offset": 0, "length": units(fold)}]
    async with running_stack(tmp_path, **FAST) as stack:
        stack.telegram.forward_text(ANN, text, author=author, entities=entities)
        context = await asked(stack, 1)
    question = context[-1]
    assert question == ("user", text if kept else "The moon is rock.")


MODEL_S_FALSE_FOLDS = [
    f"See below.\n\n{MODEL_S_QUOTE}",  # plain text before it, ending the answer
    f"Intro.\n\n{MODEL_S_QUOTE}\n- one\n- two",  # a list after it: one line break
    f"Intro.\n\n{MODEL_S_QUOTE}\n```\nrock = True\n```",  # a code block after it
]


@pytest.mark.parametrize("language", ["", "en", "ru", "kk"], ids=["no header", "en", "ru", "kk"])
@pytest.mark.parametrize("markdown", MODEL_S_FALSE_FOLDS, ids=["ending", "list", "code"])
def test_a_model_s_marked_quote_away_from_where_veil_folds_is_read(
    language: str, markdown: str
) -> None:
    # The model's expandable quote opening with 💭, after its own words (as the renderer
    # writes it), was read as Veil's fold when nothing formatted came before it and it ended
    # the answer or a list or code block followed on the next line: the model's words lost.
    header = (
        Catalogs().lookup(language, "inline_header").format(question="почему? 👋")
        if language
        else ""
    )
    answer = render(markdown)
    moved = [
        {"type": e.type, "offset": e.offset + units(header), "length": e.length}
        for e in answer.entities
    ]
    text = header + answer.text
    # The model's mark as it wrote it, not as the renderer shows it in a quote.
    assert words_of(entity_answer(text, moved), BOT_ID, CATALOGS) == text.replace(QUOTED_MARK, MARK)


@pytest.mark.parametrize("language", ["", "en", "ru", "kk"], ids=["no header", "en", "ru", "kk"])
@pytest.mark.parametrize(
    "markdown", [ANSWER, "- one\n- two", MODEL_S_QUOTE], ids=["text", "list", "quote"]
)
def test_veil_s_own_fold_as_rendered_is_left_out(language: str, markdown: str) -> None:
    # Veil's fold, as bot.thinking puts it before the rendered answer, after the question's
    # header in an inline or guest answer (in any catalog's language), is still its thinking.
    header = (
        Catalogs().lookup(language, "inline_header").format(question="why?\nreally")
        if language
        else ""
    )
    (folded,) = with_thought(THOUGHT, [render(markdown)])
    answer = render(markdown)
    moved = [
        {"type": e.type, "offset": e.offset + units(header), "length": e.length}
        for e in folded.entities
    ]
    expected = header + answer.text.replace(QUOTED_MARK, MARK)
    assert words_of(entity_answer(header + folded.text, moved), BOT_ID, CATALOGS) == expected


async def test_a_forward_of_veil_s_notice_asked_in_private_is_not_asked(tmp_path: Path) -> None:
    # A notice of Veil's (a failure told in place of an answer) forwarded to Veil went to the
    # model as the question, and was charged: it is no answer of Veil's to ask about.
    async with running_stack(tmp_path, **FAST) as stack:
        busy = stack.veil.catalogs.for_language("ru")("error_busy")
        stack.telegram.forward_text(ANN, busy, author=BOT_ID, entities=[])
        told = await stack.telegram.wait_for("sendMessage")
        stack.telegram.forward_text(ANN, busy, author=BOB, entities=[])  # anyone else's: theirs
        context = await asked(stack, 1)
        texts = stack.veil.catalogs.for_language("en")
    assert told.params["text"] == texts("forwarded_notice")
    assert context[-1] == ("user", busy)


async def test_a_forward_of_veil_s_answer_in_parts_is_asked_as_one_question(
    tmp_path: Path,
) -> None:
    # Veil's long answer, its thinking folded in its first message (a code block that fits in
    # one piece starts the next), forwarded whole: its first message is a part of a paste as
    # the app sent it, at 3500 units or more. Read without the thinking it was shorter, so it
    # was asked alone at once, its next part a question of its own (told to wait, or queued).
    first = ("The moon is rock. " * 180).strip()  # under PASTE_PART, the thinking out
    fold = "💭 " + "mulling it over " * 60
    text = f"{fold}\n{first}"
    assert units(first) < PASTE_PART <= units(text)
    entities = [{"type": "expandable_blockquote", "offset": 0, "length": units(fold)}]
    second = "rock = True"
    async with running_stack(tmp_path, **FAST) as stack:
        stack.telegram.forward_text(ANN, text, author=BOT_ID, entities=entities)
        stack.telegram.forward_text(ANN, second, author=BOT_ID, entities=[])
        context = await asked(stack, 1)
        assert await stack.veil.chat.wait_idle(10)
        requests = len(stack.vllm.requests)
    assert context[-1] == ("user", f"{first}\n{second}")
    assert requests == 1


async def test_a_forward_of_veil_s_thinking_alone_is_not_asked(tmp_path: Path) -> None:
    # Veil's thinking, a message of its own before a long answer, forwarded: read without the
    # thinking it is empty, and the thinking itself went to the model as the question, charged.
    fold = "💭 mulling it over"
    entities = [{"type": "expandable_blockquote", "offset": 0, "length": units(fold)}]
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, **FAST) as stack:
            stack.telegram.forward_text(ANN, fold, author=BOT_ID, entities=entities)
            told = await stack.telegram.wait_for("sendMessage")
            stack.telegram.forward_text(ANN, "The moon is rock.", author=BOT_ID, entities=[])
            context = await asked(stack, 1)  # the next question is asked: nothing held
            texts = stack.veil.catalogs.for_language("en")
    assert told.params["text"] == texts("forwarded_thinking")
    assert context[-1] == ("user", "The moon is rock.")
    assert "chat.forwarded_thinking" in [e["event"] for e in logs]
