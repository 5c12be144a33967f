"""Groups and guest mode end to end: who Veil answers, at what pace, and who hears a notice.

The real bot long-polls the fake Telegram (the playground's emulator, speaking groups,
ephemeral messages and guest queries), through a real gateway to the fake vLLM.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import structlog

from services.groups import Groups
from tests.botstack import TOKEN, Stack, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.harness import wait_until
from tests.test_bot_privacy import assert_absent, disk_bytes

if TYPE_CHECKING:
    from pathlib import Path

GROUP = -1_001_234_567
ANN, BOB = 9201, 9202
CAROL = 9203  # asks last, after the updates a test checks the absence of a reply to
LAST = "@veil_test_bot and lastly, what about the kettle?"
ANSWER = "A private reply about obsidian-kettledrum-58 for the group."
QUESTION = "what about the tangerine-hippogriff-93?"
FAST: dict[str, Any] = {"edit_interval": 0.2, "group_messages_per_minute": 900}


def replies(stack: Stack) -> list[dict[str, Any]]:
    """The bot's messages in the group, as they are now."""
    return stack.telegram.sent_messages(GROUP)


async def final_reply(stack: Stack, count: int = 1, within: float = 60) -> list[dict[str, Any]]:
    """Wait until ``count`` replies have no stop button (final); return the bot's messages.

    A bound for a bot that never answers, not a measure: a loaded CI took over 20 s for an
    answer with a long thinking (test_bot_rich_hostile).
    """
    async with asyncio.timeout(within):
        while True:
            done = [m for m in replies(stack) if not _has_stop(m)]
            if len(done) >= count:
                return done
            await asyncio.sleep(0.02)


async def answered_last(stack: Stack, chat: int = GROUP) -> dict[str, Any]:
    """CAROL asks after the updates sent so far (in ``chat``); her answer, once final.

    Nothing the bot sends for those updates comes after it: a group's updates are handled side
    by side, but in step (each reads the group's settings on the store's one thread, then takes
    the group's turn and pace, first come first served), and an answer is the longest way
    through. So an absence checked once it is here is checked, however loaded the machine; one
    checked after a fixed sleep passed, under load, while the bot was wrong.
    """
    stack.telegram.send_text(CAROL, LAST, chat_id=chat)
    async with asyncio.timeout(20):
        while True:
            for message in stack.telegram.sent_messages(chat):
                asked = (message.get("reply_to_message") or {}).get("text")
                if asked == LAST and not _has_stop(message):
                    return message
            await asyncio.sleep(0.02)


async def told_last(stack: Stack, chat: int = GROUP) -> None:
    """CAROL sends ``/terms`` after the updates sent so far (in ``chat``); wait until she is told.

    Where the group gets no answer (no credit): a notice takes the group's pace, first come
    first served, after the notices, apologies and panels the updates before it sent. Not
    after an answer one of them started wrongly: that waits for the group's turn first, and
    may come later (``answered_last`` orders those).
    """
    told = len(stack.telegram.ephemeral_messages(chat, CAROL))
    stack.telegram.send_text(CAROL, "/terms", chat_id=chat)
    await wait_until(lambda: len(stack.telegram.ephemeral_messages(chat, CAROL)) > told, 20)


async def answered_once_on(stack: Stack, chat: int = GROUP) -> dict[str, Any]:
    """In ``chat``, which turned answers off: turn them on; return CAROL's answer, once final.

    No answer the updates sent so far started wrongly comes after it: ``told_last`` first (they
    have read the group's settings, off, before it is turned on), then ``answered_last`` (an
    answer started before hers takes the group's turn first). ``told_last`` alone orders no
    such answer: the notice overtakes it.
    """
    await told_last(stack, chat)
    await Groups(stack.veil.store).set(chat, "answers", on=True)
    return await answered_last(stack, chat)


def _has_stop(message: dict[str, Any]) -> bool:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return any(str(b.get("callback_data", "")).startswith("stop:") for row in rows for b in row)


def message_id_of(stack: Stack, text: str) -> int:
    """The id of the newest message in the group with exactly ``text``."""
    return next(
        int(m["message_id"])
        for m in reversed(stack.telegram.state.chat_messages(GROUP))
        if m.get("text") == text
    )


async def test_silent_unless_addressed_then_answers_a_mention_in_a_reply(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(ANN, "hello everyone, nice weather", chat_id=GROUP)
            stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            (final,) = await final_reply(stack)
        assert replies(stack) == [final]  # nothing about the chatter
        assert len(stack.vllm.requests) == 1
        assert final["text"] == ANSWER
        asked = message_id_of(stack, f"@veil_test_bot {QUESTION}")
        assert final["reply_to_message"]["message_id"] == asked
        # The mention is not part of the question; one-off: nothing else went to the model.
        assert [m["content"] for m in stack.vllm.requests[0]["messages"]] == [QUESTION]
        conversation = await stack.veil.store.active_conversation(ANN)
        assert await stack.veil.store.history(ANN, conversation) == []
        assert_absent(json.dumps(logs, default=str).encode())
        assert_absent(disk_bytes(tmp_path))


async def test_a_mention_alone_asks_about_the_message_it_replies_to(tmp_path: Path) -> None:
    # It was ignored: a mention with no other words was no question (guest mode answered it).
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        flipped = await Groups(stack.veil.store).flip(GROUP, "reply_context")
        assert not flipped.reply_context  # a reply's thread is not what the mention needs
        stack.telegram.send_text(BOB, "@veil_test_bot", chat_id=GROUP)
        await wait_until(lambda: stack.telegram.ephemeral_messages(GROUP, BOB) != [])
        assert replies(stack) == []  # the usage line is for the one who asked alone
        (usage,) = stack.telegram.ephemeral_messages(GROUP, BOB)
        assert usage["text"].startswith("Usage: /ask")
        stack.telegram.send_text(ANN, QUESTION, chat_id=GROUP)
        asked = message_id_of(stack, QUESTION)
        stack.telegram.send_text(BOB, "@veil_test_bot", chat_id=GROUP, reply_to=asked)
        (final,) = await final_reply(stack)
        messages = stack.vllm.requests[-1]["messages"]
    assert final["text"] == ANSWER
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", QUESTION),
        ("user", "Please answer or comment on the message above."),
    ]


async def test_a_mention_alone_in_a_group_that_turned_answers_off_gets_nothing(
    tmp_path: Path,
) -> None:
    # The usage line went out anyway: a group that switched Veil off heard it at every mention.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        flipped = await Groups(stack.veil.store).flip(GROUP, "answers")
        assert not flipped.answers
        stack.telegram.send_text(BOB, "@veil_test_bot", chat_id=GROUP)
        stack.telegram.send_text(ANN, QUESTION, chat_id=GROUP)
        asked = message_id_of(stack, QUESTION)
        stack.telegram.send_text(BOB, "@veil_test_bot", chat_id=GROUP, reply_to=asked)
        last = await answered_once_on(stack)
        assert replies(stack) == [last]
        assert len(stack.vllm.requests) == 1  # Carol's alone
        assert stack.telegram.ephemeral_messages(GROUP, BOB) == []


def photo_asking(stack: Stack, user: int) -> None:
    """``user`` posts a photo in the group captioned "@veil_test_bot what is in it?"."""
    mention = "@veil_test_bot"
    stack.telegram.send_message_of(
        user,
        "photo",
        chat_id=GROUP,
        caption=f"{mention} what is in it?",
        caption_entities=[{"type": "mention", "offset": 0, "length": len(mention)}],
    )


async def test_a_question_in_a_media_caption_is_told_alone_not_answered_blind(
    tmp_path: Path,
) -> None:
    # "@veil what is in this photo?" was answered from the caption alone, blind to the photo
    # the model never saw, and charged; so was "/ask" under a file.
    mention = "@veil_test_bot"
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        photo_asking(stack, ANN)
        stack.telegram.send_message_of(BOB, "document", chat_id=GROUP, caption=f"/ask {QUESTION}")
        stack.telegram.send_text(ANN, f"{mention} {QUESTION}", chat_id=GROUP)
        (final,) = await final_reply(stack)
        assert final["text"] == ANSWER
        ((asked,),) = [[m["content"] for m in r["messages"]] for r in stack.vllm.requests]
        assert asked == QUESTION
        async with asyncio.timeout(10):
            while not all(stack.telegram.ephemeral_messages(GROUP, m) for m in (ANN, BOB)):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        for member in (ANN, BOB):
            (told,) = stack.telegram.ephemeral_messages(GROUP, member)
            assert told["text"].startswith("In a group I read only the text of a message")
        assert len(replies(stack)) == 1
        assert len(stack.vllm.requests) == 1


async def test_ask_and_a_reply_to_an_answer_carry_the_thread(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.send_text(ANN, "/ask", chat_id=GROUP)
        await wait_until(lambda: stack.telegram.ephemeral_messages(GROUP, ANN) != [])
        assert replies(stack) == []  # the usage line is for the one who asked alone
        (usage,) = stack.telegram.ephemeral_messages(GROUP, ANN)
        assert usage["text"].startswith("Usage: /ask")
        stack.telegram.send_text(ANN, f"/ask {QUESTION}", chat_id=GROUP)
        (first,) = await final_reply(stack)
        stack.telegram.send_text(BOB, "and why so?", chat_id=GROUP, reply_to=first["message_id"])
        await final_reply(stack, 2)
        asked = stack.vllm.requests[-1]["messages"]
        assert [(m["role"], m["content"]) for m in asked] == [
            ("user", QUESTION),
            ("assistant", ANSWER),
            ("user", "and why so?"),
        ]


async def test_a_reply_to_an_answer_that_speaks_to_someone_else_is_not_answered(
    tmp_path: Path,
) -> None:
    # "@otherbot translate this", as a reply to Veil's answer, was answered by Veil (and
    # charged): the reply alone made it Veil's. So was one that began by naming a member.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.send_text(ANN, f"/ask {QUESTION}", chat_id=GROUP)
        (first,) = await final_reply(stack)
        answer_id = first["message_id"]
        for text in ("@otherbot translate this", "@carol what do you think?", "ask @GifBot too"):
            stack.telegram.send_text(BOB, text, chat_id=GROUP, reply_to=answer_id)
        # Then one for Veil: the ones before it were passed over (by the filter, no call) long
        # before its answer ends; one of them answered would have made it wait ("one question a
        # member at a time") and asked the model first.
        stack.telegram.send_text(
            BOB, "and why so, @veil_test_bot?", chat_id=GROUP, reply_to=answer_id
        )
        await final_reply(stack, 2)
        await stack.veil.chat.wait_idle(10)
    assert len(replies(stack)) == 2
    assert len(stack.vllm.requests) == 2
    assert stack.vllm.requests[-1]["messages"][-1] == {"role": "user", "content": "and why so,"}


async def test_admins_alone_change_the_group_settings_and_they_hold(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.set_member(GROUP, ANN, "administrator")
        stack.telegram.set_member(GROUP, BOB, "member")
        stack.telegram.send_text(BOB, "/groupsettings", chat_id=GROUP)
        await wait_until(lambda: stack.telegram.ephemeral_messages(GROUP, BOB) != [])
        assert replies(stack) == []  # the refusal is for the one who asked alone
        (refusal,) = stack.telegram.ephemeral_messages(GROUP, BOB)
        assert refusal["text"] == "Only the group's admins can change Veil's settings here."
        stack.telegram.send_text(ANN, "/groupsettings", chat_id=GROUP)
        async with asyncio.timeout(5):
            while len(replies(stack)) < 1:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        panel = replies(stack)[-1]
        rows = panel["reply_markup"]["inline_keyboard"]
        assert [row[0]["text"] for row in rows] == [
            "✅ Answers: on",
            "✅ Replies to my answers carry the thread: on",
        ]
        context_toggle = rows[1][0]["callback_data"]
        stack.telegram.press_button(
            BOB, context_toggle, message_id=panel["message_id"], chat_id=GROUP
        )
        refused = await stack.telegram.wait_for("answerCallbackQuery")
        assert "Only the group's admins" in str(refused.params.get("text"))
        stack.telegram.press_button(
            ANN, context_toggle, message_id=panel["message_id"], chat_id=GROUP
        )
        await stack.telegram.wait_for("editMessageReplyMarkup")
        assert await stack.veil.store.group_settings(GROUP) == (True, False)
        # Replies no longer carry the thread.
        stack.telegram.send_text(ANN, f"/ask {QUESTION}", chat_id=GROUP)
        answer = (await final_reply(stack, 2))[-1]
        stack.telegram.send_text(BOB, "and why?", chat_id=GROUP, reply_to=answer["message_id"])
        await final_reply(stack, 3)
        assert [m["content"] for m in stack.vllm.requests[-1]["messages"]] == ["and why?"]
        # Answers off: silent.
        stack.telegram.press_button(
            ANN, rows[0][0]["callback_data"], message_id=panel["message_id"], chat_id=GROUP
        )
        await stack.telegram.wait_for(
            "editMessageReplyMarkup", lambda c: "Answers: off" in json.dumps(c.params)
        )
        asked, posted = len(stack.vllm.requests), len(replies(stack))
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        last = await answered_once_on(stack)
        assert replies(stack)[posted:] == [last]  # no placeholder of Ann's either
        assert len(stack.vllm.requests) == asked + 1  # Carol's alone


async def test_no_credit_is_told_to_the_asker_alone(tmp_path: Path) -> None:
    async with running_stack(tmp_path, free_tokens_per_day=0, **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        async with asyncio.timeout(10):
            while not stack.telegram.ephemeral_messages(GROUP, ANN):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        (notice,) = stack.telegram.ephemeral_messages(GROUP, ANN)
        assert (
            notice["text"]
            == "Not enough credit for an answer. Top up in the private chat with Veil."
        )
        assert notice["reply_markup"]["inline_keyboard"][0][0]["url"].endswith("?start=buy")
        assert stack.telegram.ephemeral_messages(GROUP, BOB) == []
        await told_last(stack)
        assert replies(stack) == []  # the placeholder is gone; nothing public remains
        assert stack.vllm.requests == []


async def test_a_bug_in_a_group_answer_is_apologised_for_to_the_asker_alone(
    tmp_path: Path,
) -> None:
    # A failure that is no VeilError (here two placeholders Telegram took, each with a reply
    # that does not validate and names no message) was apologised for in a message to the
    # whole group.
    telegram = HostileTelegram(token=TOKEN)
    for _ in range(2):
        telegram.misbehave("sendMessage", "unnamed", when=lambda p: p.get("text") == "⏳ …")
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, telegram_server=telegram, **FAST) as stack:
            stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
            async with asyncio.timeout(10):
                while not stack.telegram.ephemeral_messages(GROUP, ANN):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            (notice,) = stack.telegram.ephemeral_messages(GROUP, ANN)
            await told_last(stack)
            public = [m["text"] for m in replies(stack)]
            for_bob = stack.telegram.ephemeral_messages(GROUP, BOB)
    assert telegram.misbehaved == [("sendMessage", "unnamed")] * 2
    assert notice["text"].startswith("Something went wrong on my side.")
    assert for_bob == []
    assert public == ["⏳ …"] * 2  # the placeholders Telegram took; no apology to the group
    assert [e["error"] for e in logs if e["event"] == "handler_failed"] == ["UnreadableReply"]


async def test_without_ephemeral_messages_the_notice_is_a_reply_deleted_soon(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, free_tokens_per_day=0, notice_seconds=0.5, **FAST) as stack:
        stack.telegram.state.ephemeral_support = "refused"
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        notice = await stack.telegram.wait_for(
            "sendMessage",
            lambda c: c.answered == "ok" and "Not enough credit" in str(c.params.get("text")),
        )
        assert notice.params.get("reply_to_message_id") is not None
        await stack.telegram.wait_for("deleteMessage", timeout=5)
        async with asyncio.timeout(5):
            while replies(stack):  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)


async def test_a_burst_of_mentions_completes_in_order_without_a_429_storm(
    tmp_path: Path,
) -> None:
    users = range(9300, 9330)
    async with running_stack(
        tmp_path, answer="Short and sweet.", edit_interval=0.2, group_messages_per_minute=600
    ) as stack:
        stack.telegram.limit_groups(12, window=1.0)  # Telegram's 20 a minute, 60 times faster
        for n, user in enumerate(users):
            stack.telegram.send_text(user, f"@veil_test_bot question {n}", chat_id=GROUP)
        finals = await final_reply(stack, len(users), within=60)
        assert [m["text"] for m in finals] == ["Short and sweet."] * len(users)
        asked = [m["reply_to_message"]["text"] for m in finals]
        assert asked == [f"@veil_test_bot question {n}" for n in range(len(users))]
        assert len(stack.telegram.floods) <= 1  # at most a stray one, never a storm


async def test_stop_in_a_group_is_the_askers_alone(tmp_path: Path) -> None:
    long_answer = " ".join(f"word{n}" for n in range(200))
    async with running_stack(tmp_path, answer=long_answer, token_delay=0.05, **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        async with asyncio.timeout(10):
            while not replies(stack):  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        placeholder = replies(stack)[0]
        stop = placeholder["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        stack.telegram.press_button(BOB, stop, message_id=placeholder["message_id"], chat_id=GROUP)
        refused = await stack.telegram.wait_for("answerCallbackQuery")
        assert "Only the person who asked" in str(refused.params.get("text"))
        await stack.telegram.wait_for(
            "editMessageText", lambda c: str(c.params.get("text", "")).startswith("word0")
        )
        stack.telegram.press_button(ANN, stop, message_id=placeholder["message_id"], chat_id=GROUP)
        (final,) = await final_reply(stack)
        assert final["text"].startswith("word0")
        assert final["text"] != long_answer
        assert await stack.veil.chat.wait_idle(10)  # settled
        assert (await stack.veil.credit.balance(ANN)).held == 0


async def test_a_guest_summons_are_answered_with_the_replied_message_as_context(
    tmp_path: Path,
) -> None:
    friends = -1_009_876_543
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        said = stack.telegram.user.post_text(
            BOB, "The tangerine-hippogriff-93 is loose", chat_id=friends
        )
        stack.telegram.guest_message(
            ANN, "@veil_test_bot is that true?", chat_id=friends, reply_to=said
        )
        answered = await stack.telegram.wait_for("answerGuestQuery")
        assert answered.answered == "ok"
        async with asyncio.timeout(10):
            while True:
                inline = [
                    m
                    for m in stack.telegram.state.inline_messages.values()
                    if m.get("text", "").endswith(ANSWER)
                ]
                if inline and not _has_stop(inline[0]):
                    break
                await asyncio.sleep(0.02)
        assert [(m["role"], m["content"]) for m in stack.vllm.requests[0]["messages"]] == [
            ("user", "The tangerine-hippogriff-93 is loose"),
            ("user", "is that true?"),
        ]


async def test_half_an_emoji_in_a_group_question_is_read_as_a_replacement_character(
    tmp_path: Path,
) -> None:
    # Telegram's JSON may escape half of a surrogate pair on its own; the mention's offsets
    # (UTF-16 units) still cut it off right, and the model gets U+FFFD, never the half.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.send_text(ANN, "@veil_test_bot what is \ud83d here?", chat_id=GROUP)
        (final,) = await final_reply(stack)
    assert final["text"] == ANSWER
    assert [m["content"] for m in stack.vllm.requests[0]["messages"]] == ["what is \ufffd here?"]


async def test_a_group_question_that_failed_is_never_asked_in_private_by_retry(
    tmp_path: Path,
) -> None:
    # Every failed question was kept for the asker's Retry button, which is in their private
    # chat: a group question (or an inline one) that failed after a private one replaced it,
    # and the private Retry then asked the group's text in private and kept it in the private
    # history. Group context never reaches a private conversation.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.vllm.fail_before_stream = (503, "engine is restarting")
        stack.telegram.send_text(ANN, "my private question")
        (failure,) = await stack.final_messages(ANN)
        (button,) = failure["reply_markup"]["inline_keyboard"][0]
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await wait_until(lambda: len(stack.vllm.requests) == 2)
        await stack.veil.chat.wait_idle(10)  # the group's answer failed, and is done
        stack.vllm.fail_before_stream = None
        stack.telegram.press_button(ANN, button["callback_data"], message_id=failure["message_id"])
        assert await stack.reply_text(ANN, 1) == ANSWER
        turns = await stack.stored_turns(ANN, 2)
    asked = [request["messages"][-1]["content"] for request in stack.vllm.requests]
    assert asked == ["my private question", QUESTION, "my private question"]
    assert turns == ["my private question", ANSWER]


async def test_a_question_in_a_closed_forum_topic_is_logged_once_as_such_and_not_asked(
    tmp_path: Path,
) -> None:
    # Telegram refuses a bot's message into a closed topic (400 TOPIC_CLOSED): the question was
    # dropped as any refused reply is (groups.not_answered, the cause withheld), and the
    # operator could not tell a closed topic from a deleted question. Nothing is asked or
    # charged; once reopened, the topic gets its answers again, in it.
    topic = 77
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
            stack.telegram.close_topic(BOB, GROUP, topic)
            stack.telegram.state.set_member(GROUP, ANN, "administrator")  # may write there
            stack.telegram.send_text(
                ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP, thread_id=topic
            )
            await wait_until(lambda: any(e["event"].startswith("groups.") for e in logs))
            asked = list(stack.vllm.requests)
            told = replies(stack), stack.telegram.ephemeral_messages(GROUP, ANN)
            stack.telegram.close_topic(BOB, GROUP, topic, closed=False)
            stack.telegram.send_text(
                ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP, thread_id=topic
            )
            (final,) = await final_reply(stack)
    assert asked == []
    assert told == ([], [])
    events = [e["event"] for e in logs]
    assert events.count("groups.topic_closed") == 1
    assert "groups.not_answered" not in events
    assert final["text"] == ANSWER
    assert final["message_thread_id"] == topic


async def test_a_notice_into_a_closed_forum_topic_is_tried_once_and_logged_as_such(
    tmp_path: Path,
) -> None:
    # A notice for one member (the usage line) in a closed topic, Veil no admin there: Telegram
    # refused the ephemeral message (TOPIC_CLOSED), logged as a server without ephemeral
    # messages (editing.ephemeral_refused), then a public reply it refused the same way
    # (editing.notice_failed), a second request of the group's pace for nothing. One try, one
    # line saying why.
    topic = 78
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, **FAST) as stack:
            stack.telegram.close_topic(BOB, GROUP, topic)
            stack.telegram.state.set_member(GROUP, ANN, "administrator")  # may write there
            stack.telegram.send_text(ANN, "/ask", chat_id=GROUP, thread_id=topic)
            ended = {"editing.topic_closed", "editing.notice_failed"}  # now, before
            await wait_until(lambda: any(e["event"] in ended for e in logs))
            tried = [
                call.params
                for call in stack.telegram.calls_of("sendMessage")
                if call.params.get("chat_id") == GROUP
            ]
    assert len(tried) == 1
    assert tried[0]["message_thread_id"] == topic
    assert [e["event"] for e in logs if e["event"].startswith("editing.")] == [
        "editing.topic_closed"
    ]
