"""What an everyday user does in the private chat, end to end: fake Telegram ← real bot."""

from __future__ import annotations

import asyncio
import codecs
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from handlers.documents import DOCUMENT_MOST
from playground.botapi import DOWNLOAD
from services.documents import TextFile
from services.tokens import prompt_tokens
from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import wait_until
from tests.test_bot_groups import GROUP, final_reply
from tests.test_bot_stop import behind_proxy
from tests.test_bot_topics import topic_telegram

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack
    from tests.fakes.relay import RecordingProxy

USER = 6101
HELP = "Write any question, or send a text file (its text is the question), and the answer"


@pytest.mark.parametrize(
    "said",
    [
        pytest.param(
            {
                "/Start": "Hi, Ann! I'm Veil",
                "/HELP": "Write any question",
                "/New": "Started a new conversation.",
                "/History": "Your recent conversations",
                "/Model": "Current model: veil-test",
                "/Settings": "Your settings:",
                "/Forget": "Erase your whole history and settings?",
            },
            id="chat",
        ),
        pytest.param(
            {
                "/Balance": "Balance: ",
                "/Buy": "Credit is spent per answer",
                "/Terms": "Veil sells credit for AI answers.",
                "/PaySupport": "Questions about a payment?",
            },
            id="money",
        ),
    ],
)
async def test_a_command_in_another_case_is_that_command(
    tmp_path: Path, said: dict[str, str]
) -> None:
    # A phone capitalises the first letter of a message: "/Start", "/Help". Each was answered
    # "I don't know /Start", though the user typed the bot's own command.
    async with running_stack(tmp_path) as stack:
        for count, command in enumerate(said, start=1):
            stack.telegram.send_text(USER, command)
            await stack.final_messages(USER, count)
        replies = [str(m.get("text", "")) for m in stack.telegram.sent_messages(USER)]
    assert len(replies) == len(said)
    for reply, start in zip(replies, said.values(), strict=True):
        assert reply.startswith(start), (reply, start)


def asked_of(stack: Stack) -> list[str]:
    """The last user message of each request the model got, in order."""
    return [str(request["messages"][-1]["content"]) for request in stack.vllm.requests]


async def test_a_reply_to_an_answer_of_an_earlier_conversation_brings_that_answer(
    tmp_path: Path,
) -> None:
    # After /new (or a switch in /history) the model no longer has the old answer; a reply to
    # it ("what did you mean by that?") reached the model as the bare question.
    answers = iter(["Use **pathlib** for paths.", "It means this.", "Yes, that one."])
    async with running_stack(tmp_path, answer=lambda _request: next(answers)) as stack:
        stack.telegram.send_text(USER, "How do I join paths?")
        first = (await stack.final_messages(USER, 1))[0]
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 2)
        stack.telegram.send_text(USER, "What did you mean?", reply_to=first["message_id"])
        second = (await stack.final_messages(USER, 3))[2]
        # A reply to an answer the conversation holds already: asked as it is, not twice.
        stack.telegram.send_text(USER, "That one?", reply_to=second["message_id"])
        await stack.final_messages(USER, 4)
        turns = await stack.stored_turns(USER, 4)
        asked = asked_of(stack)
    assert first["text"] == "Use pathlib for paths."  # as Telegram shows it: no Markdown
    assert asked == [
        "How do I join paths?",
        "> Use pathlib for paths.\n\nWhat did you mean?",
        "That one?",
    ]
    assert turns[0] == "> Use pathlib for paths.\n\nWhat did you mean?"


async def test_an_edited_question_is_told_it_was_answered_as_sent(tmp_path: Path) -> None:
    # Telegram tells a bot of an edit only if the bot asks for ``edited_message`` updates; the
    # bot did not, so a user who fixed a typo in their question heard nothing and waited.
    async with running_stack(tmp_path, answer="Paris.") as stack:
        stack.telegram.send_text(USER, "What is the capitl of France?")
        await stack.final_messages(USER, 1)
        asked = stack.telegram.state.chat_messages(USER)[0]["message_id"]
        stack.telegram.edit_text(USER, asked, "What is the capital of France?")
        notice = (await stack.final_messages(USER, 2))[1]
        turns = await stack.stored_turns(USER, 2)
        requests = len(stack.vllm.requests)
        stack.telegram.edit_text(USER, asked, "What's the capital of France?")  # told once
        stack.telegram.send_text(USER, "And of Spain?")
        await stack.stored_turns(USER, 4)
        assert await stack.veil.chat.wait_idle(10)  # stored with its charge, sent meanwhile
        later = [m["text"] for m in stack.telegram.sent_messages(USER)[2:]]
    assert notice["text"] == (
        "I answer each message as it was sent, so I did not read this edit. Please send the"
        " corrected message as a new one."
    )
    assert notice["reply_to_message"]["message_id"] == asked
    assert turns == ["What is the capitl of France?", "Paris."]
    assert requests == 1
    assert later == ["Paris."]


async def helps(stack: Stack, count: int) -> None:
    """Wait until the bot has answered /help ``count`` times in the user's chat."""
    async with asyncio.timeout(10):
        while sum(HELP in str(m.get("text")) for m in stack.telegram.sent_messages(USER)) < count:  # noqa: ASYNC110 -- polls the fake's record
            await asyncio.sleep(0.02)


STORY = " ".join(f"word{i}" for i in range(300))


def story_then_short(request: dict[str, Any]) -> str:
    """A long story for "Tell me a long story", "Short." for anything asked after it."""
    return STORY if request["messages"][-1]["content"] == "Tell me a long story" else "Short."


async def stopped_then_asked(stack: Stack) -> RecordingProxy:
    """Stop a long story with the stop's cancel held, then ask "Next one"; the held proxy.

    The network to the gateway is held while the stop is on its way, so the question surely
    comes while the stopped answer still reads on; each step is known handled (a /help after
    it answered: updates are handled concurrently) before the next is sent.
    """
    proxy = await behind_proxy(stack)
    stack.telegram.send_text(USER, "Tell me a long story")
    draft = await stack.telegram.wait_for("sendMessageDraft")
    proxy.open.clear()  # the stop's cancel waits on the way to the gateway
    stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
    stack.telegram.send_text(USER, "/help")
    await helps(stack, 1)  # the stop, taken before it, is handled
    stack.telegram.send_text(USER, "Next one")
    stack.telegram.send_text(USER, "/help")
    await helps(stack, 2)  # the question, taken before it, waits for the stopped answer
    return proxy


async def test_a_question_right_after_stop_waits_for_the_stopped_answer(tmp_path: Path) -> None:
    # Stop, then the next question: the stopped answer still reads on to its signed receipt,
    # and meanwhile the question was refused with "I'm still writing the previous answer. Wait
    # for it, or stop it with /cancel." (just stopped), and lost. The network to the gateway
    # is held while the stop is on its way, so the question surely comes meanwhile.
    async with running_stack(tmp_path, answer=story_then_short, token_delay=0.05) as stack:
        proxy = await stopped_then_asked(stack)
        proxy.open.set()
        messages = await stack.final_messages(USER, 4, within=20)
        replies = [str(m["text"]) for m in messages if HELP not in str(m["text"])]
        assert replies[1:] == ["Short."]  # not "I'm still writing the previous answer..."
        turns = await stack.stored_turns(USER, 4)
        await proxy.close()
    assert STORY.startswith(replies[0])
    assert replies[0] != STORY
    assert turns == ["Tell me a long story", replies[0], "Next one", "Short."]


async def test_a_question_sent_while_an_answer_streams_is_told_to_be_sent_again(
    tmp_path: Path,
) -> None:
    # It was told "Wait for it, or stop it with /cancel": a user waited for an answer to the
    # second question, which was never taken.
    async with running_stack(tmp_path, answer=STORY, token_delay=0.05) as stack:
        stack.telegram.send_text(USER, "Tell me a long story")
        await stack.telegram.wait_for("sendMessageDraft")
        stack.telegram.send_text(USER, "And another one")
        busy = await stack.reply_text(USER)
        stack.telegram.send_text(USER, "/cancel")
        await stack.stored_turns(USER, 2, within=20)
        asked = asked_of(stack)
    assert busy == (
        "I'm still writing the previous answer, so I did not start on this one: send it again"
        " once that answer is done, or stop that answer with /cancel."
    )
    assert asked == ["Tell me a long story"]


async def test_a_small_text_file_is_read_as_the_question(tmp_path: Path) -> None:
    # A .py or .txt file was refused: "files are not supported: please describe it in words".
    code = "def add(a, b):\n    return a - b\n"
    async with running_stack(tmp_path, answer="It subtracts.") as stack:
        stack.telegram.send_document(
            USER, code.encode(), file_name="add.py", mime_type="text/x-python", caption="Bug?"
        )
        assert await stack.reply_text(USER) == "It subtracts."
        stack.telegram.send_document(USER, b"\xef\xbb\xbfplain notes\n", file_name="notes.txt")
        assert await stack.reply_text(USER, 1) == "It subtracts."
        turns = await stack.stored_turns(USER, 4)
    assert turns[0] == "add.py:\n```\ndef add(a, b):\n    return a - b\n```\n\nBug?"
    assert turns[2] == "notes.txt:\n```\nplain notes\n```"


async def test_a_file_captioned_with_a_command_is_asked_and_the_command_not_run(
    tmp_path: Path,
) -> None:
    # A file captioned "/new" started a new conversation (aiogram's Command filter reads a
    # caption too) and the file was dropped without a word; "/balance" showed the balance.
    async with running_stack(tmp_path, answer="Read it.") as stack:
        stack.telegram.send_text(USER, "Before")
        await stack.stored_turns(USER, 2)
        stack.telegram.send_document(USER, b"line one\n", file_name="a.txt", caption="/new")
        await stack.veil.chat.wait_idle(10)
        sent = [str(m["text"]) for m in await stack.final_messages(USER, 3)]
        turns = await stack.stored_turns(USER, 4)
    assert sent[0] == "Read it."
    not_run = (
        "I read the caption “/new” as your question about this file: a command in a caption is"
        " not run. To use /new, send it as a message of its own."
    )
    assert sorted(sent[1:]) == [not_run, "Read it."]
    assert turns[2] == "a.txt:\n```\nline one\n```\n\n/new"  # the same conversation
    assert len(stack.vllm.requests) == 2


async def test_a_file_that_is_not_small_utf8_text_is_refused_clearly(tmp_path: Path) -> None:
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
    big = b"x" * (DOCUMENT_MOST + 1)
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_document(USER, pdf, file_name="a.pdf", mime_type="application/pdf")
        stack.telegram.send_document(USER, big, file_name="big.txt")
        stack.telegram.send_document(USER, b"a\x00b", file_name="nul.txt")
        replies = sorted(str(m["text"]) for m in await stack.final_messages(USER, 3))
    not_text = (
        "I can only read text files (plain text, such as .txt, .md, .csv or .py) as a question:"
        " this file is not one. Please paste the part you need into a message, or describe it"
        " in words."
    )
    too_big = (
        "I can only read text files of up to 32 KB as a question: this one is larger. Please"
        " paste the part you need into a message."
    )
    assert replies == sorted([not_text, too_big, not_text])
    assert stack.vllm.requests == []


async def test_a_utf16_file_with_its_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Windows Notepad's "Unicode" (UTF-16 with its byte-order mark) was refused as not text.
    text = "Заметки: tide at 6\n"
    little = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    big = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    async with running_stack(tmp_path, answer="Read.") as stack:
        stack.telegram.send_document(USER, little, file_name="le.txt")
        assert await stack.reply_text(USER) == "Read."
        stack.telegram.send_document(USER, big, file_name="be.txt")
        assert await stack.reply_text(USER, 1) == "Read."
        turns = await stack.stored_turns(USER, 4)
    assert turns[0] == f"le.txt:\n```\n{text.rstrip()}\n```"
    assert turns[2] == f"be.txt:\n```\n{text.rstrip()}\n```"


async def test_an_empty_or_blank_file_is_told_it_holds_no_text(tmp_path: Path) -> None:
    # It was told it "is not a text file", and the user looked for what was wrong with it.
    async with running_stack(tmp_path, answer="Read.") as stack:
        stack.telegram.send_document(USER, b"", file_name="empty.txt")
        stack.telegram.send_document(USER, b" \r\n\t\n", file_name="blank.txt")
        told = [str(m["text"]) for m in await stack.final_messages(USER, 2)]
    empty = (
        "This file has no text in it: it is empty, or blank. Please send the file with its text,"
        " or ask in a message."
    )
    assert told == [empty, empty]
    assert stack.vllm.requests == []


def test_a_file_with_a_fence_in_it_cannot_close_its_own_block() -> None:
    text = "Setup:\n```sh\nmake\n```\nDone."
    assert TextFile("README.md", text, "Is it clear?").question() == (
        "README.md:\n````\nSetup:\n```sh\nmake\n```\nDone.\n````\n\nIs it clear?"
    )


async def test_ask_in_another_case_in_a_group_is_ask(tmp_path: Path) -> None:
    # "/Ask" in a group (a phone's capital) went unanswered: no command, and no mention.
    async with running_stack(tmp_path, answer="Paris.", group_messages_per_minute=900) as stack:
        stack.telegram.send_text(USER, "/Ask What is the capital of France?", chat_id=GROUP)
        (reply,) = await final_reply(stack)
    assert str(reply["text"]).endswith("Paris.")
    assert asked_of(stack) == ["What is the capital of France?"]


async def test_a_file_of_unstated_size_is_read_no_further_than_the_cap(tmp_path: Path) -> None:
    # file_size is optional in a Document and in getFile's File. Without it the bot fetched the
    # file whole (aiogram's Bot.download reads all of it, up to Telegram's 20 MB, into memory)
    # before it looked at the size: 20 MB held per file, for a file refused anyway.
    size = 20 * 1024 * 1024  # the most Telegram hands a bot
    big = b"x" * size
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_document(USER, big, file_name="big.txt", sized=False)
        reply = await stack.reply_text(USER)
        async with asyncio.timeout(10):
            while not (stack.telegram.downloads and stack.telegram.downloads[0].done):  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
    assert reply.startswith("I can only read text files of up to 32 KB as a question")
    (download,) = stack.telegram.downloads
    assert download.size == size
    assert download.sent < size // 2
    assert stack.vllm.requests == []


async def test_a_file_download_telegram_fails_is_told_as_telegram_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Telegram's file server answering 502 (or a download cut off) is Telegram failing, as a
    # Bot API call that fails: it was logged as a bug with its traceback, which named the
    # download's URL and so the bot's token, and the user was told "Something went wrong on my
    # side". Sent again, the file is read.
    async with running_stack(tmp_path, answer="Noted.") as stack:
        stack.telegram.fail_next(DOWNLOAD, status=502, description="Bad Gateway")
        stack.telegram.send_document(USER, b"plain notes\n", file_name="notes.txt")
        told = await stack.reply_text(USER)
        stack.telegram.send_document(USER, b"plain notes\n", file_name="notes.txt")
        assert await stack.reply_text(USER, 1) == "Noted."
        token = stack.telegram.token
    logged = capsys.readouterr()
    assert token not in logged.out + logged.err
    assert "telegram.unavailable" in logged.out + logged.err
    assert told == ("Telegram did not take my reply just now. Please send that again in a moment.")


async def test_a_file_download_sent_elsewhere_is_not_followed(tmp_path: Path) -> None:
    # The file download followed redirects (aiohttp's default), from a URL that holds the bot's
    # token in its path: a proxy's 302 to its login page (which quotes the path it came from)
    # was read as the user's file, so the bot's token went to the model in the question and
    # was kept in the user's history. A redirect is now a download that failed.
    telegram = HostileTelegram(token=TOKEN)
    async with running_stack(tmp_path, answer="Noted.", telegram_server=telegram) as stack:
        telegram.misbehave(DOWNLOAD, "login")
        stack.telegram.send_document(USER, b"plain notes\n", file_name="notes.txt")
        told = await stack.reply_text(USER)
        asked = [str(request["messages"]) for request in stack.vllm.requests]
        stack.telegram.send_document(USER, b"plain notes\n", file_name="notes.txt")
        assert await stack.reply_text(USER, 1) == "Noted."
    assert telegram.misbehaved == [(DOWNLOAD, "login")]
    assert not [text for text in asked if TOKEN in text]
    assert asked == []
    assert told == ("Telegram did not take my reply just now. Please send that again in a moment.")


async def test_a_bot_api_call_sent_elsewhere_is_not_followed(tmp_path: Path) -> None:
    # Every Bot API call followed redirects (aiohttp's default): a proxy's 307 sent the call,
    # its body (an answer's text) and its URL's path (the token) to any host it named. A
    # redirect is now a reply that is not the Bot API's: the answer goes out when Telegram
    # itself takes it.
    caught: list[bytes] = []

    async def catch(request: web.Request) -> web.Response:
        caught.append(await request.read())
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", catch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    telegram = HostileTelegram(token=TOKEN)
    telegram.elsewhere = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with running_stack(tmp_path, answer="Private words.", telegram_server=telegram):
            telegram.misbehave("sendMessage", "away")
            telegram.send_text(USER, "A question")
            await wait_until(
                lambda: [m.get("text") for m in telegram.sent_messages(USER)] == ["Private words."]
            )
    finally:
        await runner.cleanup()
    assert telegram.misbehaved == [("sendMessage", "away")]
    assert caught == []


async def test_a_file_telegram_will_not_hand_over_is_told_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # getFile refused ("wrong file_id or the file is temporarily unavailable", Telegram's words)
    # was let through as a bug: "Something went wrong on my side" and a traceback.
    async with running_stack(tmp_path, answer="Noted.") as stack:
        stack.telegram.fail_next(
            "getFile",
            status=400,
            description="Bad Request: wrong file_id or the file is temporarily unavailable",
        )
        stack.telegram.send_document(USER, b"plain notes\n", file_name="notes.txt")
        told = await stack.reply_text(USER)
        stack.telegram.send_document(USER, b"plain notes\n", file_name="notes.txt")
        assert await stack.reply_text(USER, 1) == "Noted."
    logged = capsys.readouterr()
    assert "handler_failed" not in logged.out + logged.err
    assert told == "Telegram did not hand me this file just now. Please send it again in a moment."


async def test_a_quote_too_long_for_the_window_is_cut_and_leaves_the_answer_its_room(
    tmp_path: Path,
) -> None:
    # A reply to a long answer of an earlier conversation brought the whole answer, quoted:
    # past the context budget of a small window, which left the answer 64 tokens (cut off,
    # with a Continue note) or made a short question "too long". The quote's start is kept.
    story = " ".join(f"word{i}" for i in range(250))  # about 1,700 bytes
    question = "Explain it: " + "why " * 150  # about 600 bytes: fits alone
    answers = iter([story, "Because."])
    # A budget of 1024 tokens before the answer.
    server = FakeVLLM(answer=lambda _request: next(answers), max_model_len=2048)
    async with running_stack(tmp_path, model_server=server) as stack:
        stack.telegram.send_text(USER, "Tell me a story")
        first = (await stack.final_messages(USER, 1))[0]
        stack.telegram.send_text(USER, "/new")
        await stack.final_messages(USER, 2)
        stack.telegram.send_text(USER, question, reply_to=first["message_id"])
        assert (await stack.final_messages(USER, 3))[2]["text"] == "Because."
    request = server.requests[-1]
    asked = str(request["messages"][-1]["content"])
    assert request["max_completion_tokens"] == 1024  # the answer's whole room
    assert asked.startswith("> word0 word1 ")
    assert asked.endswith(f"…\n\n{question}")
    assert prompt_tokens(request["messages"]) <= 1024


async def test_a_file_in_a_topic_the_bot_no_longer_knows_says_it_starts_afresh(
    tmp_path: Path,
) -> None:
    # A text there says "we start afresh here" (its conversation was erased by /forget); a
    # file there was answered without that note, as if the topic's conversation went on.
    async with running_stack(tmp_path, telegram_server=topic_telegram()) as stack:
        thread = stack.telegram.create_topic(USER, "My own topic")
        await stack.stored_turns_in(USER, thread, 0)
        stack.telegram.send_text(USER, "/forget")
        (confirm,) = (await stack.final_messages(USER, 1))[-1]["reply_markup"]["inline_keyboard"]
        stack.telegram.press_button(
            USER,
            confirm[0]["callback_data"],
            message_id=stack.telegram.sent_messages(USER)[-1]["message_id"],
        )
        await stack.telegram.wait_for("editMessageText")
        stack.telegram.send_document(
            USER, b"plain notes\n", file_name="notes.txt", thread_id=thread
        )
        *_, notice, answer = await stack.final_messages(USER, 3)
    assert notice["message_thread_id"] == answer["message_thread_id"] == thread
    assert notice["text"].startswith("I have no earlier conversation for this topic")
    assert answer["text"] == "Hello from the fake model."


async def test_a_question_cancelled_while_it_waits_for_a_stopped_answer_is_not_asked(
    tmp_path: Path,
) -> None:
    # Stop, a question (it waits for the stopped answer), then /cancel: /cancel stops the
    # waiting question, which is then never sent to the model; the next one is answered.
    async with running_stack(tmp_path, answer=story_then_short, token_delay=0.05) as stack:
        proxy = await stopped_then_asked(stack)
        stack.telegram.send_text(USER, "/cancel")
        stack.telegram.send_text(USER, "/help")
        await helps(stack, 3)
        proxy.open.set()
        await stack.stored_turns(USER, 2, within=20)
        stack.telegram.send_text(USER, "Last one")
        turns = await stack.stored_turns(USER, 4, within=20)
        assert await stack.veil.chat.wait_idle(20)  # stored with its charge, sent meanwhile
        await proxy.close()
        asked = asked_of(stack)
        said = [str(m["text"]) for m in stack.telegram.sent_messages(USER)]
    assert asked == ["Tell me a long story", "Last one"]
    assert turns[2:] == ["Last one", "Short."]
    assert "Nothing is being written right now." not in said
    assert "Stopped." in said  # the waiting question, stopped before a word


async def test_a_question_replying_to_a_photo_is_told_it_cannot_be_seen_not_answered_blind(
    tmp_path: Path,
) -> None:
    # "What is in it?" in reply to a photo went to the model as the bare question: it answered
    # blind, a guess, and the user paid for it. A captioned photo goes as its caption.
    async with running_stack(tmp_path, answer="A cat, by the caption.") as stack:
        stack.telegram.send_message_of(USER, "photo")
        photo = stack.telegram.state.chat_messages(USER)[-1]["message_id"]
        told = (await stack.final_messages(USER, 1))[0]
        stack.telegram.send_text(USER, "What is in it?", reply_to=photo)
        refused = (await stack.final_messages(USER, 2))[1]
        stack.telegram.send_message_of(USER, "photo", caption="Our cat")
        captioned = stack.telegram.state.chat_messages(USER)[-1]["message_id"]
        await stack.final_messages(USER, 3)
        stack.telegram.send_text(USER, "What is in it?", reply_to=captioned)
        answered = (await stack.final_messages(USER, 4))[3]
        asked = asked_of(stack)
    assert told["text"].startswith("I can only read text and text files")
    assert refused["text"].startswith("I can't see photos, videos, voice messages, stickers")
    assert answered["text"] == "A cat, by the caption."
    assert asked == ["> Our cat\n\nWhat is in it?"]


async def test_a_forwarded_command_is_asked_as_a_question_not_run(tmp_path: Path) -> None:
    # A forwarded "/new" (someone else's text the user shares) started a new conversation, and
    # a forwarded "/nonsense" was told "I don't know /nonsense": each ran as the user's own.
    async with running_stack(tmp_path, answer="About that.") as stack:
        stack.telegram.send_text(USER, "Before")
        await stack.stored_turns(USER, 2)
        stack.telegram.forward_text(USER, "/new", author=6202)
        await stack.stored_turns(USER, 4)
        stack.telegram.forward_text(USER, "/nonsense please")
        turns = await stack.stored_turns(USER, 6)
        sent = [str(m["text"]) for m in await stack.final_messages(USER, 3)]
    assert sent == ["About that."] * 3
    assert turns[2] == "/new"  # the same conversation, the forward its question
    assert turns[4] == "/nonsense please"


@pytest.mark.parametrize("kind", ["location", "poll", "dice", "contact"])
async def test_a_question_replying_to_a_location_or_poll_is_told_not_answered_blind(
    tmp_path: Path, kind: str
) -> None:
    # "What is near here?" under a location (a poll, a dice, a contact) went to the model as
    # the bare question, as one under a photo did: the model never gets what it replies to,
    # so it answered blind, a guess, and the user paid for it.
    async with running_stack(tmp_path, answer="A guess.") as stack:
        stack.telegram.send_message_of(USER, kind)
        sent = stack.telegram.state.chat_messages(USER)[-1]["message_id"]
        told = (await stack.final_messages(USER, 1))[0]
        stack.telegram.send_text(USER, "What is this?", reply_to=sent)
        refused = (await stack.final_messages(USER, 2))[1]
        asked = asked_of(stack)
    assert told["text"].startswith("I can only read text and text files")
    assert refused["text"].startswith("I can't see photos, videos, voice messages, stickers")
    assert asked == []
