"""Topics in private chats: each topic its own conversation, named by the model, kept sealed.

Fake Telegram (the emulator, with topics in private chats switched on) ← real bot → real
gateway → fake vLLM whose answer echoes the question, so each request shows which history the
model was given.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import structlog

from services.audit import Auditor
from services.titles import TITLE_PROMPT
from tests.botstack import TOKEN, Stack, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.telegram import FakeTelegram

if TYPE_CHECKING:
    from pathlib import Path

USER = 7301
FRESH = "I have no earlier conversation for this topic"


def topic_telegram() -> FakeTelegram:
    """A fake Telegram where the bot has topics in private chats (not yet started)."""
    telegram = FakeTelegram(token=TOKEN)
    telegram.state.topics.enabled = True
    return telegram


def question_of(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def echo(body: dict[str, Any]) -> str:
    """The fake model's answer: the question echoed, or for a title request a title."""
    question = question_of(body)
    if question.startswith(TITLE_PROMPT):
        asked = question.split("Question: ", 1)[1].split("\n", 1)[0]
        return f'"Title of {asked}."'
    return f"re: {question} and a few more words to stream"


def thread_of(message: dict[str, Any]) -> int | None:
    return message.get("message_thread_id") if message.get("is_topic_message") else None


async def new_topic(stack: Stack, count: int) -> int:
    """/new in the chat; the thread id of the topic it opened (the bot then has ``count``)."""
    before = {t.thread_id for t in stack.telegram.state.topics.of(USER)}
    stack.telegram.send_text(USER, "/new")
    await stack.final_messages(USER, count)
    (thread,) = {t.thread_id for t in stack.telegram.state.topics.of(USER)} - before
    return thread


async def asked(stack: Stack, text: str, thread: int | None, count: int) -> dict[str, Any]:
    """Ask ``text`` (in topic ``thread``); the bot's ``count``-th message, its answer."""
    stack.telegram.send_text(USER, text, thread_id=thread)
    return (await stack.final_messages(USER, count))[-1]


async def test_new_opens_topics_and_two_topics_interleaved_keep_their_own_histories(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, answer=echo, token_delay=0.03, telegram_server=topic_telegram()
    ) as stack:
        first = await new_topic(stack, 2)
        (created,) = stack.telegram.calls_of("createForumTopic")
        assert created.params["name"] == "New conversation"
        greeting, opened = stack.telegram.sent_messages(USER)
        assert thread_of(greeting) == first
        assert greeting["text"].startswith("A new conversation: ask me anything in this topic")
        assert thread_of(opened) is None
        assert opened["text"] == "Opened a new topic for a new conversation."
        second = await new_topic(stack, 4)
        assert first != second

        answers = [
            await asked(stack, "A1", first, 5),
            await asked(stack, "B1", second, 6),
            await asked(stack, "A2", first, 7),
            await asked(stack, "B2", second, 8),
            await asked(stack, "G1", None, 9),
        ]
        drafts = stack.telegram.drafts(USER)
        requests = [[m["content"] for m in r["messages"]] for r in stack.vllm.requests]

    assert [thread_of(a) for a in answers] == [first, second, first, second, None]
    assert [a["text"].split(" and ")[0] for a in answers] == [
        "re: A1",
        "re: B1",
        "re: A2",
        "re: B2",
        "re: G1",
    ]
    tail = " and a few more words to stream"
    assert requests == [
        ["A1"],
        ["B1"],
        ["A1", "re: A1" + tail, "A2"],
        ["B1", "re: B1" + tail, "B2"],
        ["G1"],  # the chat itself: its own conversation, neither topic's
    ]
    assert drafts
    assert {d.params.get("message_thread_id") for d in drafts} <= {first, second, None}
    assert {d.params.get("message_thread_id") for d in drafts} >= {first, second}


async def test_the_first_answer_names_the_conversation_sealed_and_renames_the_topic(
    tmp_path: Path,
) -> None:
    secret = "zebra-quasar-41"
    async with running_stack(
        tmp_path, answer=echo, telegram_server=topic_telegram(), conversation_titles=True
    ) as stack:
        with structlog.testing.capture_logs() as logs:
            thread = await new_topic(stack, 2)
            answer = await asked(stack, secret, thread, 3)
            renamed = await stack.telegram.wait_for("editForumTopic")
            await asked(stack, "second question", thread, 4)
            await asyncio.sleep(0.3)  # a second answer names nothing
        title = f"Title of {secret}"
        assert answer["text"].startswith(f"re: {secret}")
        assert renamed.params == {"chat_id": USER, "message_thread_id": thread, "name": title}
        assert [t.name for t in stack.telegram.state.topics.of(USER)] == [title]
        assert len(stack.telegram.calls_of("editForumTopic")) == 1
        assert len(stack.vllm.requests) == 3  # two answers and one title request
        title_request = stack.vllm.requests[1]
        assert title_request["max_completion_tokens"] <= 24
        conversations = await stack.veil.store.conversations(USER)
        assert [c.title for c in conversations] == [title]
        # The title request was held and settled from its own signed receipt, like an answer.
        report = await Auditor(stack.veil.store, [stack.gateway.verify_key]).run()
        assert (report.charges, report.by_outcome, report.problems) == (3, {"settled": 3}, [])
        assert await stack.veil.credit.recover(0) == 0
        rendered = json.dumps(logs, default=str).encode()
        assert b"chat.answered" in rendered
        for haystack in (rendered, _disk(tmp_path)):
            assert secret.encode() not in haystack
            assert b"Title of" not in haystack
    assert b"Title of" not in _disk(tmp_path)


async def test_a_failing_title_leaves_the_answer_and_the_topic_as_they_were(
    tmp_path: Path,
) -> None:
    def failing_titles(body: dict[str, Any]) -> str:
        if question_of(body).startswith(TITLE_PROMPT):
            stack.vllm.error_mid_stream_after = 0  # this very stream fails
            return "Never seen"
        stack.vllm.error_mid_stream_after = None
        return echo(body)

    async with running_stack(
        tmp_path,
        answer=failing_titles,
        telegram_server=topic_telegram(),
        conversation_titles=True,
    ) as stack:
        thread = await new_topic(stack, 2)
        answer = await asked(stack, "doomed title", thread, 3)
        assert answer["text"].startswith("re: doomed title")
        assert await stack.stored_turns_in(USER, thread, 2) == [
            "doomed title",
            answer["text"],
        ]
        await _until(lambda: len(stack.vllm.requests) == 2)
        await asyncio.sleep(0.5)  # the title's failure has been handled
        assert len(stack.telegram.sent_messages(USER)) == 3  # no error shown for a title
        assert stack.telegram.calls_of("editForumTopic") == []
        assert [t.name for t in stack.telegram.state.topics.of(USER)] == ["New conversation"]
        assert [c.title for c in await stack.veil.store.conversations(USER)] == [None]
        assert await stack.veil.credit.recover(0) == 0  # the failed title's hold was closed

        # Telegram refusing the rename: the title is kept, the answer untouched.
        stack.vllm.answer, stack.vllm.error_mid_stream_after = echo, None
        stack.telegram.fail_next(
            "editForumTopic", status=400, description="Bad Request: TOPIC_NOT_MODIFIED"
        )
        other = await new_topic(stack, 5)
        answer = await asked(stack, "refused rename", other, 6)
        await stack.telegram.wait_for("editForumTopic")
        await _until(lambda: len(stack.vllm.requests) == 4)
        await _titled(stack, "Title of refused rename")
    assert answer["text"].startswith("re: refused rename")
    assert len(stack.telegram.sent_messages(USER)) == 6


async def test_a_restart_keeps_each_topic_with_its_conversation(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=echo, telegram_server=topic_telegram()) as stack:
        thread = await new_topic(stack, 2)
        await asked(stack, "before the restart", thread, 3)
        await stack.stored_turns_in(USER, thread, 2)
        topics = stack.telegram.state.topics.of(USER)

    telegram = topic_telegram()
    for topic in topics:  # Telegram keeps the user's topics while the bot restarts
        telegram.state.topics.add(USER, topic)
    async with running_stack(tmp_path, answer=echo, telegram_server=telegram) as stack:
        answer = await asked(stack, "after the restart", thread, 1)
        request = [m["content"] for m in stack.vllm.requests[0]["messages"]]
    assert thread_of(answer) == thread
    assert request[0] == "before the restart"
    assert request[-1] == "after the restart"
    assert not any(FRESH in str(m.get("text")) for m in telegram.sent_messages(USER))


async def test_a_topic_the_bot_does_not_know_starts_afresh_there(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=echo, telegram_server=topic_telegram()) as stack:
        # A topic the user made in their app: a new conversation, nothing to say about it.
        thread = stack.telegram.create_topic(USER, "My own topic")
        await stack.stored_turns_in(USER, thread, 0)  # the bot took it as a conversation
        answer = await asked(stack, "in my topic", thread, 1)
        assert thread_of(answer) == thread
        assert [m["content"] for m in stack.vllm.requests[0]["messages"]] == ["in my topic"]
        await stack.stored_turns_in(USER, thread, 2)

        # After /forget, the topic is unknown again: said once, then a fresh conversation.
        stack.telegram.send_text(USER, "/forget")
        (confirm,) = (await stack.final_messages(USER, 2))[-1]["reply_markup"]["inline_keyboard"]
        (yes, _no) = confirm
        stack.telegram.press_button(
            USER,
            yes["callback_data"],
            message_id=stack.telegram.sent_messages(USER)[-1]["message_id"],
        )
        await stack.telegram.wait_for("editMessageText")
        stack.telegram.send_text(USER, "after forgetting", thread_id=thread)
        *_, notice, answer = await stack.final_messages(USER, 4)
        assert thread_of(notice) == thread
        assert notice["text"].startswith(FRESH)
        assert thread_of(answer) == thread
        assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == ["after forgetting"]

        # /new where Telegram will not make a topic: a fresh conversation in the chat itself.
        stack.telegram.fail_next(
            "createForumTopic", status=400, description="Bad Request: the chat is not a forum"
        )
        stack.telegram.send_text(USER, "/new")
        reply = (await stack.final_messages(USER, 5))[-1]
    assert reply["text"].startswith("Started a new conversation")
    assert thread_of(reply) is None
    assert [t.thread_id for t in stack.telegram.state.topics.of(USER)] == [thread]
    texts = [str(m.get("text")) for m in stack.telegram.sent_messages(USER)]
    assert not any(t.startswith("I can only read text") for t in texts)


def _disk(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("veil.db*")))


async def _until(condition: Any, within: float = 10) -> None:  # noqa: ANN401 -- a predicate
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 -- polls the fakes' records
            await asyncio.sleep(0.02)


async def _titled(stack: Stack, title: str) -> None:
    """Wait until one of the user's conversations has ``title``."""
    async with asyncio.timeout(10):
        while title not in [c.title for c in await stack.veil.store.conversations(USER)]:  # noqa: ASYNC110 -- polls the store
            await asyncio.sleep(0.02)


async def test_rich_answers_their_notes_and_continue_stay_in_the_topic(tmp_path: Path) -> None:
    essay = " ".join(f"word{i}" for i in range(40))
    async with running_stack(
        tmp_path,
        answer=essay,
        telegram_server=topic_telegram(),
        rich_messages=True,
        max_answer_tokens=16,
        min_answer_tokens=8,
    ) as stack:
        thread = await new_topic(stack, 2)
        stack.telegram.send_text(USER, "Write an essay", thread_id=thread)
        answer, note = (await stack.final_messages(USER, 4))[-2:]
        assert (thread_of(answer), thread_of(note)) == (thread, thread)
        (rich,) = stack.telegram.calls_of("sendRichMessage")
        assert rich.params["message_thread_id"] == thread
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        stack.telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        continued = (await stack.final_messages(USER, 6))[-2]
        asked_again = [m["content"] for m in stack.vllm.requests[1]["messages"]]
    assert thread_of(continued) == thread
    assert asked_again[0] == "Write an essay"
    assert len(asked_again) == 3  # the topic's question, its cut answer, the request to go on


async def test_forget_stops_a_title_in_flight_and_no_title_of_it_is_kept(tmp_path: Path) -> None:
    def slow_titles(body: dict[str, Any]) -> str:
        if question_of(body).startswith(TITLE_PROMPT):
            stack.vllm.stall_after = 0  # the title request hangs until the bot hangs up
        else:
            stack.vllm.stall_after = None
        return echo(body)

    secret = "okapi-nebula-77"
    async with running_stack(
        tmp_path, answer=slow_titles, telegram_server=topic_telegram(), conversation_titles=True
    ) as stack:
        thread = await new_topic(stack, 2)
        await asked(stack, secret, thread, 3)
        await asyncio.wait_for(stack.vllm.stall_started.wait(), 10)
        stack.telegram.send_text(USER, "/forget")
        (confirm,) = (await stack.final_messages(USER, 4))[-1]["reply_markup"]["inline_keyboard"]
        stack.telegram.press_button(
            USER,
            confirm[0]["callback_data"],
            message_id=stack.telegram.sent_messages(USER)[-1]["message_id"],
        )
        await stack.telegram.wait_for("editMessageText")
        # The erasure waited for the title request: stopped and settled, not left to land later.
        assert await stack.veil.credit.recover(0) == 0  # no hold left open
        await _until(lambda: stack.vllm.stalled_closed == 1)
        assert await stack.veil.store.conversations(USER) == []
        # A new conversation (which may reuse the erased one's id) gets no title of the old.
        await asked(stack, "after forgetting", None, 5)
        await asyncio.wait_for(stack.vllm.stall_started.wait(), 10)
        assert [c.title for c in await stack.veil.store.conversations(USER)] == [None]
        report = await Auditor(stack.veil.store, [stack.gateway.verify_key]).run()
        assert report.problems == []
    assert [t.name for t in stack.telegram.state.topics.of(USER)] == ["New conversation"]
    assert secret.encode() not in _disk(tmp_path)


async def test_retry_resends_only_in_the_topic_where_the_answer_failed(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=echo, telegram_server=topic_telegram()) as stack:
        first = await new_topic(stack, 2)
        second = await new_topic(stack, 4)
        stack.vllm.fail_before_stream = (503, "engine is restarting")
        failed_first = await asked(stack, "question in A", first, 5)
        failed_second = await asked(stack, "question in B", second, 6)
        stack.vllm.fail_before_stream = None
        assert [thread_of(failed_first), thread_of(failed_second)] == [first, second]
        (retry_a,) = failed_first["reply_markup"]["inline_keyboard"][0]
        (retry_b,) = failed_second["reply_markup"]["inline_keyboard"][0]
        # A's button data under a message in B (its greeting): A's question is not asked in B.
        greeting = (await stack.final_messages(USER, 6))[2]
        assert thread_of(greeting) == second
        stack.telegram.press_button(
            USER, retry_a["callback_data"], message_id=greeting["message_id"]
        )
        expired = (await stack.final_messages(USER, 7))[-1]
        assert thread_of(expired) == second
        assert expired["text"] == "I no longer have that message. Please send it again."
        # A's Retry after B failed still resends A's own question, in A.
        stack.telegram.press_button(
            USER, retry_a["callback_data"], message_id=failed_first["message_id"]
        )
        answer_a = (await stack.final_messages(USER, 8))[-1]
        # B's own Retry resends B's question, in B.
        stack.telegram.press_button(
            USER, retry_b["callback_data"], message_id=failed_second["message_id"]
        )
        answer_b = (await stack.final_messages(USER, 9))[-1]
    assert [thread_of(answer_a), thread_of(answer_b)] == [first, second]
    assert answer_a["text"].startswith("re: question in A")
    assert answer_b["text"].startswith("re: question in B")
    asked_again = [[m["content"] for m in r["messages"]] for r in stack.vllm.requests[2:]]
    assert asked_again == [["question in A"], ["question in B"]]


async def test_closing_stops_a_title_in_flight_and_settles_it(tmp_path: Path) -> None:
    def slow_titles(body: dict[str, Any]) -> str:
        if question_of(body).startswith(TITLE_PROMPT):
            stack.vllm.stall_after = 0  # the title request hangs until the bot hangs up
        return echo(body)

    async with running_stack(
        tmp_path, answer=slow_titles, telegram_server=topic_telegram(), conversation_titles=True
    ) as stack:
        thread = await new_topic(stack, 2)
        await asked(stack, "a question", thread, 3)
        await asyncio.wait_for(stack.vllm.stall_started.wait(), 10)
        await stack.veil.chat.close()  # what the shutdown drain does once its grace is over
        # The title request was stopped and settled before close returned, not left hanging.
        assert await stack.veil.credit.recover(0) == 0  # no hold left open
        await _until(lambda: stack.vllm.stalled_closed == 1)
        report = await Auditor(stack.veil.store, [stack.gateway.verify_key]).run()
        assert report.problems == []
        assert [c.title for c in await stack.veil.store.conversations(USER)] == [None]
    assert [t.name for t in stack.telegram.state.topics.of(USER)] == ["New conversation"]


async def test_forget_during_an_answer_asks_no_title_of_it(tmp_path: Path) -> None:
    secret = "narwhal-comet-13"
    async with running_stack(
        tmp_path, answer=echo, telegram_server=topic_telegram(), conversation_titles=True
    ) as stack:
        stack.vllm.stall_after = 2  # the answer pauses after two words
        stack.telegram.send_text(USER, secret)
        await asyncio.wait_for(stack.vllm.stall_started.wait(), 10)
        stack.vllm.stall_after = None
        stack.telegram.send_text(USER, "/forget")
        confirm = await stack.telegram.wait_for(
            "sendMessage", lambda call: "reply_markup" in call.params
        )
        (yes, _no) = confirm.params["reply_markup"]["inline_keyboard"][0]
        stack.telegram.press_button(
            USER,
            yes["callback_data"],
            message_id=stack.telegram.sent_messages(USER)[-1]["message_id"],
        )
        await stack.telegram.wait_for(
            "editMessageText", lambda c: str(c.params.get("text")).startswith("Done:")
        )
        # After the erasure a new conversation: its own title request, and none before it
        # (one of the erased answer would go out as that answer ended, before the erasure).
        await asked(stack, "after forgetting", None, 3)

        def titles() -> list[str]:
            asked_for = [question_of(r) for r in stack.vllm.requests]
            return [q for q in asked_for if q.startswith(TITLE_PROMPT)]

        await _until(lambda: any("after forgetting" in t for t in titles()))
        titles_asked = titles()
    assert len(titles_asked) == 1
    assert secret not in titles_asked[0]


async def test_a_rename_a_proxy_answered_with_its_own_page_is_only_logged(tmp_path: Path) -> None:
    # A proxy's page in place of Telegram's reply to the topic's rename (ClientDecodeError, no
    # TelegramAPIError) went up as the answer's failure: the user, whose answer had arrived,
    # was told Telegram did not take the reply and to send it again.
    telegram = HostileTelegram(token=TOKEN)
    telegram.state.topics.enabled = True
    telegram.misbehave("editForumTopic", "page")
    async with running_stack(
        tmp_path, answer=echo, telegram_server=telegram, conversation_titles=True
    ) as stack:
        thread = await new_topic(stack, 2)
        await asked(stack, "first question", thread, 3)
        await _until(lambda: telegram.misbehaved == [("editForumTopic", "page")])
        answer = await asked(stack, "second question", thread, 4)
    assert answer["text"].startswith("re: second question")
    assert [t.name for t in stack.telegram.state.topics.of(USER)] == ["New conversation"]
