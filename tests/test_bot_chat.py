"""The private chat, end to end: fake Telegram ← real bot → real gateway → fake vLLM."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

import pytest

from handlers.pastes import PASTE_MOST, PASTE_PART, Pastes
from tests.botstack import running_stack, texts_of
from tests.fakes.vllm import FakeVLLM
from tests.test_bot_outside_hostile import settled

if TYPE_CHECKING:
    from pathlib import Path

USER = 5001
# About 1200 of the fake model's tokens (within the gateway's ceiling) and 16,000 characters.
LONG_ANSWER = "\n\n".join(
    (
        f"Paragraph {i}. "
        + "Extraordinarily comprehensive documentation accompanies everything. " * 30
    ).strip()
    for i in range(8)
)


async def test_answer_streams_in_drafts_then_lands_as_a_message(tmp_path: Path) -> None:
    answer = " ".join(f"word{i}" for i in range(16))
    async with running_stack(tmp_path, answer=answer, token_delay=0.06) as stack:
        stack.telegram.send_text(USER, "Tell me something")
        assert await stack.reply_text(USER) == answer
        typing = stack.telegram.calls_of("sendChatAction")
        drafts = stack.telegram.drafts(USER)
    assert typing
    assert typing[0].params["action"] == "typing"
    assert len(drafts) >= 2
    assert len({d.params["draft_id"] for d in drafts}) == 1
    assert drafts[0].params["draft_id"] != 0
    texts = texts_of(drafts)
    assert all(answer.startswith(t) for t in texts)
    assert [len(t) for t in texts] == sorted(len(t) for t in texts)
    assert all(d.params.get("can_stop") is True for d in drafts)
    gaps = [b.at - a.at for a, b in itertools.pairwise(drafts)]
    assert all(gap >= 0.2 for gap in gaps)  # never faster than the configured interval


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_half_an_emoji_in_a_question_is_read_as_a_replacement_character(
    tmp_path: Path, *, webhook: bool
) -> None:
    # JSON may escape one half of a surrogate pair on its own (an emoji a client cut in two);
    # the fake Telegram escapes it as ``\ud83d``. It used to fail the answer ("went wrong").
    async with running_stack(
        tmp_path, answer="Half an emoji.", webhook=webhook, conversation_titles=True
    ) as stack:
        stack.telegram.send_text(USER, "What is \ud83d here?")
        assert await stack.reply_text(USER) == "Half an emoji."
        turns = await stack.stored_turns(USER, 2)
        asked = [m["content"] for request in stack.vllm.requests for m in request["messages"]]
    assert turns == ["What is \ufffd here?", "Half an emoji."]
    assert "What is \ufffd here?" in asked


async def test_a_command_no_one_handles_is_answered_and_a_path_is_a_question(
    tmp_path: Path,
) -> None:
    # Both met silence: any text starting with "/" that no router took was dropped.
    async with running_stack(tmp_path, answer="It maps names to addresses.") as stack:
        stack.telegram.send_text(USER, "/frobnicate now")
        assert await stack.reply_text(USER) == (
            "I don't know /frobnicate. Write your question as a message, or see /help for what"
            " I can do."
        )
        stack.telegram.send_text(USER, "/etc/hosts: what is this file for?")  # no command in it
        assert await stack.reply_text(USER, 1) == "It maps names to addresses."
        stack.telegram.send_text(USER + 1, "/stats", language_code="ru")  # the admins' command
        assert (await stack.reply_text(USER + 1)).startswith("Я не знаю команды /stats.")
        asked = [
            m["content"]
            for request in stack.vllm.requests
            for m in request["messages"]
            if m["role"] == "user"
        ]
    assert asked == ["/etc/hosts: what is this file for?"]


async def test_a_long_text_the_app_sent_in_parts_is_one_question(tmp_path: Path) -> None:
    # An app sends a text over 4096 characters as several messages, one right after another.
    # The first part was answered alone and the rest told to wait for that answer.
    first = " ".join(f"Line {i} of the report." for i in range(200))[:4090]
    middle = " ".join(f"More {i} of it." for i in range(300))[:4000]
    last = "That is all. What do you make of it?"
    alone = "A long letter. " * 260  # 3900 characters, sent as one message
    async with running_stack(tmp_path, answer="One answer.") as stack:
        for part in (first, middle, last):
            stack.telegram.send_text(USER, part)
        assert await stack.reply_text(USER) == "One answer."
        assert await stack.stored_turns(USER, 2) == [
            f"{first}\n{middle}\n{last}",
            "One answer.",
        ]
        stack.telegram.send_text(USER, alone)  # no part follows: asked once the wait is over
        assert await stack.reply_text(USER, 1) == "One answer."
        turns = await stack.stored_turns(USER, 4)
        replies = texts_of(stack.telegram.calls_of("sendMessage"))
    assert turns[2] == alone
    assert replies == ["One answer.", "One answer."]


async def test_parts_join_in_message_order_and_only_in_their_own_chat_and_topic() -> None:
    pastes = Pastes(wait=5.0)
    long_a, long_b = "a" * PASTE_PART, "b" * PASTE_PART
    asked = asyncio.create_task(pastes.whole((1, None), 12, long_b))  # a webhook's order
    await asyncio.sleep(0)
    assert await pastes.whole((1, None), 11, long_a) is None
    assert await pastes.whole((1, 7), 13, "another topic") == "another topic"
    assert await pastes.whole((2, None), 14, "another user") == "another user"
    assert await pastes.whole((1, None), 15, "the end") is None  # the last part: asked now
    assert await asyncio.wait_for(asked, 1.0) == f"{long_a}\n{long_b}\nthe end"
    assert await pastes.whole((1, None), 16, "short") == "short"  # nothing left open


async def test_a_part_waits_on_while_the_bot_holds_updates_back_at_telegram() -> None:
    # The next part may be among the updates a full intake leaves at Telegram (a burst of
    # other users' questions): asked at the usual wait's end, the text was two questions.
    pastes = Pastes(wait=0.05, held=lambda: True)
    long_a = "a" * PASTE_PART
    asked = asyncio.create_task(pastes.whole((1, None), 11, long_a))
    await asyncio.sleep(0.2)  # four of its waits, updates held back all the while
    assert not asked.done()
    # The next part, the last (a shorter one): asked at once, held back or not.
    assert await pastes.whole((1, None), 12, "the rest") is None
    assert await asyncio.wait_for(asked, 5) == f"{long_a}\nthe rest"


async def test_a_reply_that_quotes_part_of_an_answer_asks_about_that_part(
    tmp_path: Path,
) -> None:
    # The quote was dropped: the model read "What does that mean?" with nothing to point at
    # once the answer had left its context (another conversation, a long one).
    answer = "Tides follow the moon.\nSpring tides come twice a month."
    async with running_stack(tmp_path, answer=answer) as stack:
        stack.telegram.send_text(USER, "Tell me about tides")
        first = (await stack.final_messages(USER, 1))[0]
        await stack.stored_turns(USER, 2)
        quoted = "Tides follow the moon.\nSpring tides"
        stack.telegram.send_text(
            USER, "What does that mean?", reply_to=first["message_id"], quote=quoted
        )
        await stack.final_messages(USER, 2)
        stack.telegram.send_text(USER, "And why?", reply_to=first["message_id"])  # no quote
        await stack.final_messages(USER, 3)
        turns = await stack.stored_turns(USER, 6)
        asked = [request["messages"][-1]["content"] for request in stack.vllm.requests]
    expected = "> Tides follow the moon.\n> Spring tides\n\nWhat does that mean?"
    assert asked == ["Tell me about tides", expected, "And why?"]
    assert turns[2] == expected


async def test_a_question_too_long_for_the_model_is_told_to_shrink_not_to_start_anew(
    tmp_path: Path,
) -> None:
    # It was told "this conversation is too long, send /new", which changes nothing.
    server = FakeVLLM(answer="Unread.", max_model_len=400)
    async with running_stack(tmp_path, model_server=server, context_tokens=400) as stack:
        stack.telegram.send_text(USER, "Summarise this. " + "Lorem ipsum dolor sit amet. " * 80)
        (reply,) = await stack.final_messages(USER)
    assert reply["text"] == (
        "Your message is too long for the model to read in one go. Please shorten it, or send it"
        " in parts with a question about each."
    )
    assert "reply_markup" not in reply  # no Retry: the same question would not fit again


async def test_an_empty_or_blank_answer_is_told_with_retry_and_costs_nothing(
    tmp_path: Path,
) -> None:
    # The user saw "typing…" and then nothing, was charged the prompt, and a blank answer was
    # stored as a turn of the conversation.
    for answer in ("", " \n\n "):
        server = FakeVLLM(answer=answer)
        async with running_stack(tmp_path / str(len(answer)), model_server=server) as stack:
            stack.telegram.send_text(USER, "Hello?")
            (told,) = await stack.final_messages(USER)
            assert told["text"] == "The model could not answer this time. Please try again."
            (button,) = told["reply_markup"]["inline_keyboard"][0]
            await settled(stack, USER)
            entries = await stack.veil.credit.history(USER, limit=10)
            assert [entry for entry in entries if entry.kind == "usage"] == []
            conversation = await stack.veil.store.active_conversation(USER)
            assert await stack.veil.store.history(USER, conversation) == []
            server.answer = "Here now."
            stack.telegram.press_button(
                USER, button["callback_data"], message_id=told["message_id"]
            )
            assert await stack.reply_text(USER, 1) == "Here now."
            assert await stack.stored_turns(USER, 2) == ["Hello?", "Here now."]


async def test_a_paste_joins_at_most_so_many_parts_then_is_asked_at_once() -> None:
    # A sender who never stops would grow one question without end, a second at a time.
    pastes = Pastes(wait=30.0)
    parts = [f"{i:03}" + "x" * PASTE_PART for i in range(PASTE_MOST + 1)]
    asked = asyncio.create_task(pastes.whole((1, None), 0, parts[0]))
    await asyncio.sleep(0)
    for index, part in enumerate(parts[1:PASTE_MOST], 1):
        assert await pastes.whole((1, None), index, part) is None
    assert await asyncio.wait_for(asked, 1.0) == "\n".join(parts[:PASTE_MOST])  # not 30 s
    after = asyncio.create_task(pastes.whole((1, None), PASTE_MOST, parts[-1]))  # a paste anew
    await asyncio.sleep(0)
    assert await pastes.whole((1, None), PASTE_MOST + 1, "end") is None
    assert await asyncio.wait_for(after, 1.0) == f"{parts[-1]}\nend"


async def test_long_answer_is_split_at_paragraphs(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=LONG_ANSWER, max_answer_tokens=2000) as stack:
        stack.telegram.send_text(USER, "Write a lot", language_code="en")
        await stack.final_messages(USER, 3)
        await asyncio.sleep(0.3)
        messages = stack.telegram.sent_messages(USER)
    texts = [m["text"] for m in messages]
    assert len(texts) >= 3
    assert all(len(t.encode("utf-16-le")) // 2 <= 4096 for t in texts)
    assert "\n\n".join(texts) == LONG_ANSWER
    assert all(t.startswith("Paragraph") for t in texts)


async def test_markdown_is_rendered_as_entities(tmp_path: Path) -> None:
    answer = "Here is **bold**, *italic* and `code`.\n\n```python\nprint('hi')\n```"
    async with running_stack(tmp_path, answer=answer) as stack:
        stack.telegram.send_text(USER, "Format something")
        (message,) = await stack.final_messages(USER)
    assert "**" not in message["text"]
    kinds = {e["type"]: e for e in message["entities"]}
    assert {"bold", "italic", "code", "pre"} <= set(kinds)
    assert kinds["pre"]["language"] == "python"
    bold = kinds["bold"]
    utf16 = message["text"].encode("utf-16-le")
    start, end = bold["offset"] * 2, (bold["offset"] + bold["length"]) * 2
    assert utf16[start:end].decode("utf-16-le") == "bold"


async def test_rejected_formatting_falls_back_to_plain_text(tmp_path: Path) -> None:
    answer = "Some **bold** claim."
    async with running_stack(tmp_path, answer=answer) as stack:
        stack.telegram.fail_next(
            "sendMessage",
            status=400,
            description="Bad Request: can't parse entities: Unsupported start tag",
        )
        stack.telegram.send_text(USER, "Go")
        (message,) = await stack.final_messages(USER)
        sends = stack.telegram.calls_of("sendMessage")
    assert message["text"] == "Some bold claim."
    assert "entities" not in message or not message["entities"]
    assert sends[0].answered != "ok"
    assert "can't parse" not in message["text"]


async def test_second_message_while_streaming_gets_a_note(tmp_path: Path) -> None:
    answer = " ".join(f"w{i}" for i in range(20))
    async with running_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
        stack.telegram.send_text(USER, "First question")
        await stack.telegram.wait_for("sendMessageDraft")
        stack.telegram.send_text(USER, "Second question")
        messages = await stack.final_messages(USER, 2)
        assert len(stack.vllm.requests) == 1
    texts = [m["text"] for m in messages]
    assert texts[0].startswith("I'm still writing")
    assert texts[1] == answer


async def test_stop_button_keeps_what_was_written(tmp_path: Path) -> None:
    answer = " ".join(f"w{i}" for i in range(60))
    async with running_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
        stack.telegram.send_text(USER, "Go on and on")
        draft = await stack.telegram.wait_for("sendMessageDraft")
        stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
        (message,) = await stack.final_messages(USER)
        history = await stack.stored_turns(USER, 2)
        await asyncio.sleep(0.3)  # nothing more arrives after a stop
    assert answer.startswith(message["text"])
    assert 0 < len(message["text"]) < len(answer)
    assert history == ["Go on and on", message["text"]]
    assert len(stack.telegram.sent_messages(USER)) == 1


async def test_cancel_command_stops_the_answer(tmp_path: Path) -> None:
    answer = " ".join(f"w{i}" for i in range(60))
    async with running_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
        stack.telegram.send_text(USER, "Go on")
        await stack.telegram.wait_for("sendMessageDraft")
        stack.telegram.send_text(USER, "/cancel")
        (message,) = await stack.final_messages(USER)
        assert 0 < len(message["text"]) < len(answer)
        stack.telegram.send_text(USER, "/cancel")
        assert await stack.reply_text(USER, 1) == "Nothing is being written right now."


async def test_history_is_context_and_new_starts_afresh(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="Answer.") as stack:
        stack.telegram.send_text(USER, "First")
        await stack.stored_turns(USER, 2)
        stack.telegram.send_text(USER, "Second")
        await stack.stored_turns(USER, 4)
        stack.telegram.send_text(USER, "/new")
        assert (await stack.reply_text(USER, 2)).startswith("Started a new conversation")
        stack.telegram.send_text(USER, "Third")
        await stack.final_messages(USER, 4)
        requests = stack.vllm.requests
    assert [m["content"] for m in requests[1]["messages"]] == ["First", "Answer.", "Second"]
    assert [m["content"] for m in requests[2]["messages"]] == ["Third"]
    salts = {r["cache_salt"] for r in requests}
    assert len(salts) == 1
    assert len(next(iter(salts))) >= 24


async def test_users_get_distinct_cache_salts(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(USER, "Hi")
        await stack.final_messages(USER)
        stack.telegram.send_text(USER + 1, "Hi")
        await stack.final_messages(USER + 1)
        salts = [r["cache_salt"] for r in stack.vllm.requests]
    assert len(set(salts)) == 2


async def test_model_command_switches_model(tmp_path: Path) -> None:
    async with running_stack(tmp_path, models=("veil-test", "veil-large")) as stack:
        stack.telegram.send_text(USER, "/model")
        (menu,) = await stack.final_messages(USER)
        buttons = [row[0] for row in menu["reply_markup"]["inline_keyboard"]]
        assert [b["text"] for b in buttons] == ["✅ veil-test", "veil-large"]
        stack.telegram.press_button(
            USER, buttons[1]["callback_data"], message_id=menu["message_id"]
        )
        await stack.telegram.wait_for("editMessageText")
        edited = stack.telegram.sent_messages(USER)[0]
        assert edited["text"] == "From now on I answer with veil-large."
        stack.telegram.send_text(USER, "Which model?")
        await stack.final_messages(USER, 2)
    assert stack.vllm.requests[-1]["model"] == "veil-large"


async def test_non_text_messages_get_a_note(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for kind in ("photo", "voice", "sticker"):
            stack.telegram.send_message_of(USER, kind)
        stack.telegram.send_document(USER, b"%PDF-1.7\n%\xe2\xe3", file_name="a.pdf")
        messages = await stack.final_messages(USER, 4)
    assert all(m["text"].startswith("I can only read text") for m in messages)
    assert stack.vllm.requests == []


async def test_russian_and_kazakh_texts(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(USER, "/start", language_code="ru")
        assert (await stack.reply_text(USER)).startswith("Привет, Ann!")
        stack.telegram.send_text(USER + 1, "/start", language_code="kk")
        assert (await stack.reply_text(USER + 1)).startswith("Сәлем, Ann!")
        stack.telegram.send_text(USER + 2, "/help", language_code="de")
        assert (await stack.reply_text(USER + 2)).startswith("Write any question")
        commands = stack.telegram.state.commands
    assert set(commands) == {"", "ru", "kk"}
    assert {c["command"] for c in commands["ru"]} >= {"start", "new", "model", "forget"}
    assert next(c for c in commands["kk"] if c["command"] == "new")["description"] == (
        "Жаңа әңгіме бастау"
    )


async def test_a_part_that_starts_with_a_command_joins_the_text_it_is_part_of(
    tmp_path: Path,
) -> None:
    # The app cut a long text before a line that begins with a command: that part was taken
    # as the command (/new started a new conversation), and the text asked without it.
    first = " ".join(f"Line {i} of the bot's manual." for i in range(200))[:4090]
    last = "/new starts a new conversation. Is that clear?"
    async with running_stack(tmp_path, answer="One answer.") as stack:
        stack.telegram.send_text(USER, first)
        stack.telegram.send_text(USER, last)
        assert await stack.reply_text(USER) == "One answer."
        assert await stack.stored_turns(USER, 2) == [f"{first}\n{last}", "One answer."]
        replies = texts_of(stack.telegram.calls_of("sendMessage"))
        conversations = await stack.veil.store.conversations(USER, limit=10)
    assert replies == ["One answer."]
    assert len(conversations) == 1
