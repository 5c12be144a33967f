"""Groups and their buttons as hostile members, odd senders and Telegram itself meet them.

The real bot long-polls the fake Telegram (the playground's emulator), through a real gateway to
the fake vLLM; each test is one way a group could make Veil spend, leak or misbehave.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from services.groups import Groups
from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import (
    ANN,
    ANSWER,
    BOB,
    FAST,
    GROUP,
    QUESTION,
    answered_last,
    answered_once_on,
    final_reply,
    replies,
    told_last,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack
    from tests.fakes.telegram import Call

ANONYMOUS = 1087968824  # GroupAnonymousBot: every anonymous admin of every group
CHANNEL_BOT = 136817688  # Channel_Bot: every member posting as any channel
CHANNEL = -1_005_555_555
ASK_AS_YOURSELF = "I answer people, each from their own credit"
WAIT_YOUR_TURN = "Your previous question here is still to be answered: ask the next once it is."
PACED: dict[str, Any] = {**FAST, "group_messages_per_minute": 60}  # FAST, but 1 a second


def told_texts(stack: Stack, user: int) -> set[str]:
    """The texts of the notices the group's member ``user`` was shown alone."""
    return {m["text"] for m in stack.telegram.ephemeral_messages(GROUP, user)}


async def test_anonymous_admins_and_channels_are_told_to_ask_as_themselves(
    tmp_path: Path,
) -> None:
    # Their questions were answered and charged to a pseudo-user that stands for everyone who
    # posts anonymously or as a channel, in every group: one shared account and free
    # allowance (drained by any of them), and one answer at a time among all of them.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.send_as_chat(f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        stack.telegram.send_as_chat(f"@veil_test_bot {QUESTION}", chat_id=GROUP, channel_id=CHANNEL)
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await final_reply(stack, 3)
        last = await answered_last(stack)
        texts = [m["text"] for m in replies(stack) if m["message_id"] != last["message_id"]]
        assert len(texts) == 3
        assert sum(text.startswith(ASK_AS_YOURSELF) for text in texts) == 2
        assert texts.count(ANSWER) == 1
        assert len(stack.vllm.requests) == 2  # Ann's and Carol's alone
        for pseudo in (ANONYMOUS, CHANNEL_BOT):
            balance = await stack.veil.credit.balance(pseudo)
            assert (balance.held, balance.units, balance.free_tokens_left) == (0, 0, 1_000_000)
        # A notice for a chat, not a person: a reply to its message, in the group.
        notices = [m for m in replies(stack) if m["text"].startswith(ASK_AS_YOURSELF)]
        assert {m["reply_to_message"]["from"]["id"] for m in notices} == {ANONYMOUS, CHANNEL_BOT}


async def test_group_settings_pressed_twice_and_by_two_admins_at_once_end_as_pressed(
    tmp_path: Path,
) -> None:
    # Each press flipped what it read: a second tap on "Answers: on" before the panel was
    # redrawn turned answers on again; taps read at once wrote off twice, the second redraw
    # refused as "not modified" and apologised for as a bug; and two admins' presses at once
    # could each write over the other's.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        for admin in (ANN, BOB):
            stack.telegram.set_member(GROUP, admin, "administrator")
        stack.telegram.send_text(ANN, "/groupsettings", chat_id=GROUP)
        (panel,) = await stack.final_messages(GROUP)
        rows = panel["reply_markup"]["inline_keyboard"]
        answers, context = (row[0]["callback_data"] for row in rows)
        where = {"message_id": panel["message_id"], "chat_id": GROUP}
        stack.telegram.press_button(ANN, answers, **where)
        await stack.answered_presses(1)
        stack.telegram.press_button(ANN, answers, **where)  # the same, not yet redrawn, button
        await stack.answered_presses(2)
        for presser in (ANN, BOB, ANN):
            stack.telegram.press_button(presser, context, **where)
        await stack.answered_presses(5)
        assert await stack.veil.store.group_settings(GROUP) == (False, False)
        for admin in (ANN, BOB):  # no apology for a "not modified" redraw
            assert stack.telegram.sent_messages(admin) == []
        (shown,) = replies(stack)
        assert [row[0]["text"] for row in shown["reply_markup"]["inline_keyboard"]] == [
            "❌ Answers: off",
            "❌ Replies to my answers carry the thread: off",
        ]
        # A button of the panel as it was before this version (it flips) still works.
        stack.telegram.press_button(ANN, "group:answers", **where)
        await stack.answered_presses(6)
        assert await stack.veil.store.group_settings(GROUP) == (True, False)


async def test_an_empty_ask_in_a_group_that_turned_answers_off_gets_nothing(
    tmp_path: Path,
) -> None:
    # A bare /ask got the usage line even where the admins had switched Veil off (a bare
    # mention was already silent there): any member could make it talk.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        await Groups(stack.veil.store).flip(GROUP, "answers")
        stack.telegram.send_text(ANN, "/ask", chat_id=GROUP)
        stack.telegram.send_text(ANN, "/ask@veil_test_bot", chat_id=GROUP)
        stack.telegram.send_text(BOB, f"/ask {QUESTION}", chat_id=GROUP)
        last = await answered_once_on(stack)
        assert replies(stack) == [last]
        assert len(stack.vllm.requests) == 1  # Carol's alone
        assert stack.telegram.ephemeral_messages(GROUP, ANN) == []


async def test_an_anonymous_admin_opens_the_group_settings_and_a_channel_does_not(
    tmp_path: Path,
) -> None:
    # /groupsettings asked Telegram whether GroupAnonymousBot administers the group: it does
    # not (here: it is no member at all), so the admins who post anonymously, admins all, never
    # got the panel. Only an admin can post as the group itself; anyone may post as a channel.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.send_as_chat("/groupsettings", chat_id=GROUP, channel_id=CHANNEL)
        stack.telegram.send_as_chat("/groupsettings", chat_id=GROUP)
        await stack.final_messages(GROUP, 2)
        said = {m["reply_to_message"]["from"]["id"]: m["text"] for m in replies(stack)}
        assert said == {
            CHANNEL_BOT: "Only the group's admins can change Veil's settings here.",
            ANONYMOUS: "Veil in this group:",
        }
        await told_last(stack)
        assert stack.telegram.calls_of("getChatMember") == []  # about a pseudo-user: nothing


async def test_a_member_cannot_queue_a_flood_of_questions_ahead_of_the_group(
    tmp_path: Path,
) -> None:
    # Each mention was queued for the group's turn: one member's burst of mentions was
    # answered (and the group's ~20 messages a minute spent) one after another, all of them
    # before anyone who asked after. Now a member has one question at a time in a group; the
    # others are told so, to that member alone.
    long_answer = " ".join(f"word{n}" for n in range(60))
    async with running_stack(tmp_path, answer=long_answer, token_delay=0.01, **FAST) as stack:
        for n in range(4):
            stack.telegram.send_text(ANN, f"@veil_test_bot flood {n}", chat_id=GROUP)
        stack.telegram.send_text(BOB, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await final_reply(stack, 2)
        last = await answered_last(stack)
        finals = replies(stack)
        assert [m["reply_to_message"]["text"] for m in finals] == [
            "@veil_test_bot flood 0",
            f"@veil_test_bot {QUESTION}",
            last["reply_to_message"]["text"],
        ]
        notices = stack.telegram.ephemeral_messages(GROUP, ANN)  # one at a time waits its slot
        assert {m["text"] for m in notices} == {WAIT_YOUR_TURN}
        assert 1 <= len(notices) <= 3
        assert stack.telegram.ephemeral_messages(GROUP, BOB) == []
        assert len(stack.vllm.requests) == 3
        # Once answered, the member may ask again.
        stack.telegram.send_text(ANN, "@veil_test_bot again", chat_id=GROUP)
        finals = await final_reply(stack, 4)
        assert finals[-1]["reply_to_message"]["text"] == "@veil_test_bot again"


async def test_the_settings_panel_for_a_command_deleted_meanwhile_is_no_public_apology(
    tmp_path: Path,
) -> None:
    # /groupsettings' panel is a reply: to a command deleted meanwhile (by the admin, another
    # admin, an anti-spam bot) Telegram refuses it, and the refusal was a bug: a traceback, and
    # "Something went wrong" posted to the whole group.
    gone = "Bad Request: message to be replied not found"
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.set_member(GROUP, BOB, "administrator")
        with structlog.testing.capture_logs() as logs:
            stack.telegram.fail_next("sendMessage", status=400, description=gone)
            stack.telegram.send_text(BOB, "/groupsettings", chat_id=GROUP)
            await stack.telegram.wait_for("sendMessage", lambda c: c.answered == gone)
            await told_last(stack)
        assert replies(stack) == []
        assert [e for e in logs if e["log_level"] == "error"] == []
        assert [e["event"] for e in logs if e["event"] == "groups.not_answered"] == [
            "groups.not_answered"
        ]


async def guests_handled(stack: Stack, within: float = 20) -> None:
    """Once the summonses sent so far were answered: wait until all they started has ended.

    A guest answer has no later update to order an absence by (``answered_last`` is a group's:
    its turn and pace; guest summonses are handled side by side). The bot's own count of the
    updates in hand (``InFlight``) is: a summons answered is in hand until its handler returns,
    and any answer it started runs detached by then (``ChatService.wait_idle``). Whatever the
    handler or its answer did wrong (asked the model, held credit, put a stop button on the
    notice) is done once both are idle, however loaded the machine; after a fixed sleep it
    could still be to come.
    """
    assert await stack.veil.operations.in_flight.wait_idle(within)
    assert await stack.veil.chat.wait_idle(within)


async def test_a_guest_summons_sent_as_a_chat_is_told_to_ask_as_oneself(tmp_path: Path) -> None:
    # As in a group: the summons of an anonymous admin or of a member posting as a channel was
    # answered and charged to the pseudo-user all of them share.
    friends = -1_009_876_543
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.guest_message_as_chat(f"@veil_test_bot {QUESTION}", chat_id=friends)
        stack.telegram.guest_message_as_chat(
            f"@veil_test_bot {QUESTION}", chat_id=friends, channel_id=CHANNEL
        )
        async with asyncio.timeout(10):
            while len(stack.telegram.calls_of("answerGuestQuery")) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await guests_handled(stack)
        answered = stack.telegram.calls_of("answerGuestQuery")
        assert [call.answered for call in answered] == ["ok", "ok"]
        posted = list(stack.telegram.state.inline_messages.values())
        assert len(posted) == 2
        assert all(m["text"].startswith(ASK_AS_YOURSELF) for m in posted)
        assert not any(m.get("reply_markup") for m in posted)  # no stop button: nothing runs
        assert stack.vllm.requests == []
        for pseudo in (ANONYMOUS, CHANNEL_BOT):
            balance = await stack.veil.credit.balance(pseudo)
            assert (balance.held, balance.units, balance.free_tokens_left) == (0, 0, 1_000_000)


async def test_a_guest_summons_in_a_media_caption_is_told_to_ask_in_words(
    tmp_path: Path,
) -> None:
    # As in a group: "@veil what is in this photo?" was answered blind to the photo, and charged.
    friends = -1_009_876_544
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.guest_message(
            ANN, f"@veil_test_bot {QUESTION}", chat_id=friends, media="photo"
        )
        async with asyncio.timeout(10):
            while not stack.telegram.calls_of("answerGuestQuery"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await guests_handled(stack)
        (answered,) = stack.telegram.calls_of("answerGuestQuery")
        assert answered.answered == "ok"
        (posted,) = stack.telegram.state.inline_messages.values()
        assert posted["text"].startswith("Here I read only the text of a message")
        assert not posted.get("reply_markup")  # no stop button: nothing runs
        assert stack.vllm.requests == []


async def test_a_member_spamming_bare_mentions_and_commands_is_told_alone(
    tmp_path: Path,
) -> None:
    # Each bare mention, bare /ask and refused /groupsettings was a public reply, sent outside
    # the group's pace: one member could make Veil flood the group, and spend the ~20 messages
    # a minute Telegram allows it there, ahead of the answers the others waited for.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.set_member(GROUP, BOB, "member")
        for _ in range(3):
            for text in ("@veil_test_bot", "/ask", "/groupsettings"):
                stack.telegram.send_text(BOB, text, chat_id=GROUP)
        async with asyncio.timeout(10):  # each notice once at a time, not once a message
            while len(told_texts(stack, BOB)) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await told_last(stack)
        assert replies(stack) == []
        assert len(stack.telegram.ephemeral_messages(GROUP, BOB)) <= 9
        told = sorted(told_texts(stack, BOB))
        assert told == [
            "Only the group's admins can change Veil's settings here.",
            "Usage: /ask your question — or mention me, or reply to one of my answers.",
        ]
        assert stack.telegram.ephemeral_messages(GROUP, ANN) == []


async def test_terms_and_paysupport_in_a_group_are_told_to_the_member_alone(
    tmp_path: Path,
) -> None:
    # /terms and /paysupport (bare, so every bot in the group gets them) were public replies,
    # one a message and outside the group's pace: a member could make Veil flood the group with
    # its terms, spending the ~20 messages a minute Telegram allows it ahead of the answers.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.state.privacy_mode = True
        for _ in range(3):
            for text in ("/terms", "/paysupport"):
                stack.telegram.send_text(BOB, text, chat_id=GROUP)
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        await wait_until(
            lambda: (
                ANSWER in {m["text"] for m in replies(stack)} and len(told_texts(stack, BOB)) == 2
            ),
            within=10,
        )
        await told_last(stack)
        assert [m["text"] for m in replies(stack)] == [ANSWER]
        assert len(stack.telegram.ephemeral_messages(GROUP, BOB)) <= 6
        told = sorted(told_texts(stack, BOB))
        assert told[0].startswith("Questions about a payment?"), told
        assert told[1].startswith("Veil sells credit for AI answers."), told
        # In the private chat they are answered as ever.
        stack.telegram.send_text(BOB, "/terms")
        assert (await stack.reply_text(BOB)).startswith("Veil sells credit for AI answers.")


async def test_telegram_failing_a_group_command_is_told_to_the_member_alone(
    tmp_path: Path,
) -> None:
    # A failure of a group command that is no VeilError (here getChatMember refused with a 502
    # past the session's retry, checking who may open /groupsettings) went to the errors
    # router's apology, which was sent to the whole group, outside its pace.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.set_member(GROUP, BOB, "administrator")
        stack.telegram.fail_next("getChatMember", status=502, description="Bad Gateway", count=2)
        with structlog.testing.capture_logs() as logs:
            stack.telegram.send_text(BOB, "/groupsettings", chat_id=GROUP)
            await wait_until(lambda: bool(told_texts(stack, BOB)), within=10)
            await told_last(stack)
        assert replies(stack) == []
        (told,) = told_texts(stack, BOB)
        assert (
            told == "Telegram did not take my reply just now. Please send that again in a moment."
        )
        assert [e["event"] for e in logs if e["log_level"] == "error"] == []
        # Telegram answering again, the panel opens.
        stack.telegram.send_text(BOB, "/groupsettings", chat_id=GROUP)
        await wait_until(lambda: len(replies(stack)) == 1, within=10)
        assert "reply_markup" in replies(stack)[0]  # the panel, with its buttons


async def test_a_settings_press_telegram_fails_is_answered_not_left_spinning(
    tmp_path: Path,
) -> None:
    # A press whose handler failed with no VeilError (getChatMember refused with a 502 past the
    # session's retry) was apologised for in the private chat, but its callback query was never
    # answered: the admin's button spun until Telegram gave up on it.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.set_member(GROUP, ANN, "administrator")
        stack.telegram.send_text(ANN, "/groupsettings", chat_id=GROUP)
        await wait_until(lambda: len(replies(stack)) == 1, within=10)
        panel = replies(stack)[0]
        toggle = panel["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        stack.telegram.fail_next("getChatMember", status=502, description="Bad Gateway", count=2)
        stack.telegram.press_button(ANN, toggle, message_id=panel["message_id"], chat_id=GROUP)
        answered = await stack.telegram.wait_for("answerCallbackQuery", timeout=10)
        assert answered.answered == "ok"
        assert await stack.veil.store.group_settings(GROUP) is None  # nothing changed
        assert len(replies(stack)) == 1  # and nothing said to the group


async def test_notices_for_one_member_stay_in_the_forum_topic_they_asked_in(
    tmp_path: Path,
) -> None:
    # A notice for one member (the usage line, "wait for your answer") is sent, not a reply:
    # without the topic's message_thread_id it went to the forum's General topic, where the
    # member asking in a topic does not look.
    topic = 77
    long_answer = " ".join(f"word{n}" for n in range(60))
    async with running_stack(tmp_path, answer=long_answer, token_delay=0.01, **FAST) as stack:
        stack.telegram.send_text(BOB, "@veil_test_bot", chat_id=GROUP, thread_id=topic)
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP, thread_id=topic)
        stack.telegram.send_text(ANN, "@veil_test_bot again", chat_id=GROUP, thread_id=topic)
        async with asyncio.timeout(10):
            while len(notices := ephemeral_sends(stack)) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert {int(call.params["message_thread_id"]) for call in notices} == {topic}


def ephemeral_sends(stack: Stack) -> list[Call]:
    """The bot's sendMessage calls that asked for an ephemeral message."""
    return [
        call
        for call in stack.telegram.calls_of("sendMessage")
        if call.params.get("ephemeral_message_parameters")
    ]


async def test_no_credit_is_told_in_the_forum_topic_the_member_asked_in(tmp_path: Path) -> None:
    # The errors router's notices for the asker (no credit, busy, a bug's apology) went to the
    # forum's General topic: the asker's Asker carried no topic.
    topic = 78
    async with running_stack(tmp_path, free_tokens_per_day=0, **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP, thread_id=topic)
        async with asyncio.timeout(10):
            while not (notices := ephemeral_sends(stack)):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        (notice,) = notices
        assert notice.params["text"].startswith("Not enough credit for an answer.")
        assert int(notice.params["message_thread_id"]) == topic


async def test_an_inline_answer_sent_as_a_reply_to_veil_in_its_group_is_answered_once(
    tmp_path: Path,
) -> None:
    # A member replying to one of Veil's group answers with "@veil_test_bot follow-up" picked
    # from the inline list posts Veil's inline message as a reply to Veil: Telegram sends the
    # group that message too, and the group took it for a reply to Veil and answered (and
    # charged) the same question a second time, under it.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        (answer,) = await final_reply(stack, 1)
        stack.telegram.inline_query(ANN, "and why is that", chat_type="supergroup")
        offered = await stack.telegram.wait_for("answerInlineQuery")
        (result,) = offered.params["results"]
        stack.telegram.choose_inline_result(
            ANN,
            result["id"],
            "and why is that",
            inline_message_id="inline-follow-up",
            chat_id=GROUP,
            reply_to=answer["message_id"],
        )
        async with asyncio.timeout(10):
            while len(stack.vllm.requests) < 2:  # noqa: ASYNC110 -- the inline answer's
                await asyncio.sleep(0.02)
        await final_reply(stack, 1)
        last = await answered_last(stack)
        assert len(stack.vllm.requests) == 3  # the inline answer's, and the last one's
        assert [m["message_id"] for m in replies(stack)] == [
            answer["message_id"],
            last["message_id"],
        ]


async def test_a_burst_of_bare_mentions_holds_one_notice_not_the_group_s_answers(
    tmp_path: Path,
) -> None:
    # Each bare mention (and each mention while one's question waits) queued its own notice at
    # the group's pace, first come first served: a member's burst of 8 took the group's next 8
    # slots (8 s at 60 a minute), and the answer another member asked for waited behind them.
    # A notice already waiting for that member is not queued again.
    async with running_stack(tmp_path, answer=ANSWER, **PACED) as stack:
        for _ in range(8):
            stack.telegram.send_text(BOB, "@veil_test_bot", chat_id=GROUP)
        await wait_until(lambda: bool(stack.telegram.ephemeral_messages(GROUP, BOB)))
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        (final,) = await final_reply(stack)
        assert final["text"] == ANSWER
        # Told by then: the first notice, and at most one queued while it waited (not 8).
        assert len(stack.telegram.ephemeral_messages(GROUP, BOB)) <= 2


async def test_a_channel_s_burst_gets_few_replies_and_holds_back_no_answer(
    tmp_path: Path,
) -> None:
    # A chat cannot be told alone, so a channel's (or anonymous admin's) mentions get public
    # replies: a bare mention's usage line went out at once, outside the group's pace (one a
    # message: a flood), and each question's "ask as yourself" took one of the group's paced
    # slots, ahead of the answers members asked for after. Now a reply that chat still waits
    # for is not queued again, and each goes out at the group's pace.
    async with running_stack(tmp_path, answer=ANSWER, **PACED) as stack:
        for _ in range(6):
            stack.telegram.send_as_chat("@veil_test_bot", chat_id=GROUP, channel_id=CHANNEL)
            stack.telegram.send_as_chat(
                f"@veil_test_bot {QUESTION}", chat_id=GROUP, channel_id=CHANNEL
            )
        await wait_until(lambda: bool(replies(stack)))
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        async with asyncio.timeout(8):  # the reply waiting, the placeholder, the answer
            while ANSWER not in [m["text"] for m in replies(stack)]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        texts = [m["text"] for m in replies(stack)]
        assert sum(text.startswith("Usage:") for text in texts) <= 2
        assert sum(text.startswith(ASK_AS_YOURSELF) for text in texts) <= 2
        assert len(stack.vllm.requests) == 1  # Ann's alone


async def test_a_question_replying_to_unseen_media_is_told_alone_not_answered_blind(
    tmp_path: Path,
) -> None:
    # "@veil what is in it?" in reply to a photo or file with no caption went to the model as
    # the bare question (a bare mention: "ask_usage"), answered blind and charged; in a group
    # and in a guest summons alike. A reply to a captioned one goes with its caption.
    friends = -1_009_876_544
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        posted: list[int] = []
        for kind in ("photo", "document"):
            stack.telegram.send_message_of(ANN, kind, chat_id=GROUP)  # unseen: privacy mode
            posted.append(stack.telegram.state.chat_messages(GROUP)[-1]["message_id"])
        stack.telegram.send_text(
            BOB, "@veil_test_bot what is in it?", chat_id=GROUP, reply_to=posted[0]
        )
        stack.telegram.send_text(ANN, "@veil_test_bot", chat_id=GROUP, reply_to=posted[1])
        stack.telegram.user.post_text(ANN, "Look", chat_id=friends)
        stack.telegram.send_message_of(ANN, "photo", chat_id=friends)
        photo = stack.telegram.state.chat_messages(friends)[-1]["message_id"]
        stack.telegram.guest_message(
            ANN, "@veil_test_bot what is it?", chat_id=friends, reply_to=photo
        )
        stack.telegram.send_message_of(ANN, "photo", chat_id=GROUP, caption="Our cat")
        captioned = stack.telegram.state.chat_messages(GROUP)[-1]["message_id"]
        stack.telegram.send_text(
            BOB, "@veil_test_bot is it a cat?", chat_id=GROUP, reply_to=captioned
        )
        (final,) = await final_reply(stack)

        # (one member each: the same notice to a member still waiting for the group's pace is
        # not queued twice)
        def told_alone() -> list[str]:
            return [
                m["text"] for u in (ANN, BOB) for m in stack.telegram.ephemeral_messages(GROUP, u)
            ]

        await wait_until(lambda: len(told_alone()) == 2)
        await wait_until(lambda: bool(stack.telegram.state.inline_messages))
        told = told_alone()
        (summons,) = stack.telegram.state.inline_messages.values()
        asked = [[m["content"] for m in r["messages"]] for r in stack.vllm.requests]
    assert told == [told[0]] * 2
    assert told[0].startswith("I can't see the photo, file or other media you replied to")
    assert summons["text"] == told[0]
    assert not summons.get("reply_markup")  # no stop button: nothing runs
    assert final["text"] == ANSWER
    assert asked == [["Our cat", "is it a cat?"]]


async def test_a_forward_that_mentions_veil_or_asks_is_not_answered_nor_charged(
    tmp_path: Path,
) -> None:
    # A forwarded "@veil …" (written for another chat) was answered and charged to the one who
    # forwarded it, and so was a forwarded "/ask …": the forwarder's own words asked nothing.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.forward_text(BOB, f"@veil_test_bot {QUESTION}", author=ANN, chat_id=GROUP)
        stack.telegram.forward_text(BOB, f"/ask {QUESTION}", chat_id=GROUP)
        stack.telegram.send_text(BOB, "@veil_test_bot and this one?", chat_id=GROUP)
        (final,) = await final_reply(stack)
        asked = [m["content"] for r in stack.vllm.requests for m in r["messages"]]
        told = stack.telegram.ephemeral_messages(GROUP, BOB)
    assert final["reply_to_message"]["text"] == "@veil_test_bot and this one?"
    assert asked == ["and this one?"]
    assert told == []


async def test_a_forward_that_mentions_veil_summons_no_answer_as_a_guest(
    tmp_path: Path,
) -> None:
    # As in a group: a forwarded "@veil …" in a chat without Veil was answered as a guest and
    # charged to the forwarder, though the mention was written for another chat.
    friends = -1_009_876_545
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.user.post_text(ANN, "hi", chat_id=friends)
        stack.telegram.forward_text(BOB, f"@veil_test_bot {QUESTION}", author=ANN, chat_id=friends)
        await wait_until(lambda: bool(stack.telegram.calls_of("answerGuestQuery")))
        (posted,) = stack.telegram.state.inline_messages.values()
        assert posted["text"].startswith("This is a forwarded message")
        assert not posted.get("reply_markup")  # no stop button: nothing runs
        assert stack.vllm.requests == []


async def test_a_question_replying_to_a_poll_or_location_is_told_alone_not_answered_blind(
    tmp_path: Path,
) -> None:
    # "@veil which one should we pick?" under a poll (or under a location) went to the model
    # as the bare question, as one under a photo did: answered blind and charged.
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        posted: list[int] = []
        for kind in ("poll", "location"):
            stack.telegram.send_message_of(ANN, kind, chat_id=GROUP)
            posted.append(stack.telegram.state.chat_messages(GROUP)[-1]["message_id"])
        stack.telegram.send_text(
            BOB, "@veil_test_bot which one should we pick?", chat_id=GROUP, reply_to=posted[0]
        )
        stack.telegram.send_text(
            ANN, "@veil_test_bot what is near it?", chat_id=GROUP, reply_to=posted[1]
        )
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        (final,) = await final_reply(stack)
        await wait_until(lambda: bool(told_texts(stack, ANN)) and bool(told_texts(stack, BOB)))
        told = told_texts(stack, ANN) | told_texts(stack, BOB)
        asked = [[m["content"] for m in r["messages"]] for r in stack.vllm.requests]
    assert final["text"] == ANSWER
    assert asked == [[QUESTION]]
    (notice,) = told
    assert notice.startswith("I can't see the photo, file or other media you replied to")


async def test_a_question_edited_while_answered_is_told_alone_it_was_answered_as_sent(
    tmp_path: Path,
) -> None:
    # Telegram sends a group's edits as ``edited_message``; the bot read them in the private
    # chat only, so a member who fixed a typo in their question here, or added the mention,
    # heard nothing and waited for an answer to the new text that never came.
    long_answer = " ".join(f"word{n}" for n in range(60))
    async with running_stack(tmp_path, answer=long_answer, token_delay=0.02, **FAST) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(ANN, "@veil_test_bot the capitl of France?", chat_id=GROUP)
        stack.telegram.send_text(BOB, "nice weather today", chat_id=GROUP)
        asked, chat = (m["message_id"] for m in stack.telegram.state.chat_messages(GROUP)[:2])
        await stack.telegram.wait_for("sendMessage")  # the answer's placeholder: it streams
        stack.telegram.edit_text(ANN, asked, "@veil_test_bot the capital of France?", chat_id=GROUP)
        stack.telegram.edit_text(ANN, asked, "@veil_test_bot capital of France?", chat_id=GROUP)
        stack.telegram.edit_text(BOB, chat, "nice weather", chat_id=GROUP)  # not to Veil
        stack.telegram.edit_text(BOB, chat, "@veil_test_bot nice weather?", chat_id=GROUP)
        (final,) = await final_reply(stack)
        async with asyncio.timeout(10):
            while not told_texts(stack, BOB):  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        await told_last(stack)
        told_ann = stack.telegram.ephemeral_messages(GROUP, ANN)
        told_bob = stack.telegram.ephemeral_messages(GROUP, BOB)
    assert final["text"] == long_answer  # the question as sent, answered in full
    assert [m["text"] for m in told_ann] == [texts("edited")]  # once, for two edits
    assert [m["text"] for m in told_bob] == [texts("edited")]  # the mention added: not read
    assert [m["content"] for m in stack.vllm.requests[0]["messages"]] == ["the capitl of France?"]
    assert len(stack.vllm.requests) == 1


async def test_a_question_edited_in_a_forum_topic_is_told_in_that_topic(tmp_path: Path) -> None:
    # The edit's notice is for one member, as the others are: in the topic they asked in, not
    # the forum's General topic.
    topic = 79
    async with running_stack(tmp_path, answer="Paris.", **FAST) as stack:
        stack.telegram.send_text(ANN, f"@veil_test_bot {QUESTION}", chat_id=GROUP, thread_id=topic)
        asked = stack.telegram.state.chat_messages(GROUP)[0]["message_id"]
        (final,) = await final_reply(stack)
        stack.telegram.edit_text(ANN, asked, f"@veil_test_bot {QUESTION}!", chat_id=GROUP)
        async with asyncio.timeout(10):
            while not (notices := ephemeral_sends(stack)):  # noqa: ASYNC110 -- the fake's record
                await asyncio.sleep(0.02)
    (notice,) = notices
    assert notice.params["text"] == stack.veil.catalogs.for_language("en")("edited")
    assert int(notice.params["message_thread_id"]) == topic
    assert final["text"] == "Paris."
