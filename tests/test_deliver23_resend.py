"""The outbox's gaps: a broken-off answer, a resend that looks like the live one, parts counted.

An answer that fails mid-stream is charged for the part that streamed, and that part goes out
as the answer, with a note that it broke off: it goes through the outbox as a whole answer
does, so a SIGKILL before Telegram took it, or Telegram down past its tries, loses nothing.
A private answer sent again replies to its question (``allow_sending_without_reply``: the
question may be gone) and is followed by the note and button the live one had. And a long
answer's messages are recorded as Telegram takes each: a bot killed between two of them sends
only the rest at its next start.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from tests.botstack import QUICK_RETRY, TOKEN, process_stack, running_stack
from tests.fakes.gated import GatedTelegram
from tests.fakes.telegram import user_deletes
from tests.fakes.vllm import split_tokens
from tests.harness import (
    REPO,
    ManagedProcess,
    asked_while_held,
    audited,
    restarted,
    rows,
    wait_until,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fakes.telegram import FakeTelegram

USER = 9231
ANSWER = " ".join(f"plover{i}" for i in range(30))
BROKE_AT = 12  # the fake model fails after this many tokens
PART = "".join(split_tokens(ANSWER)[:BROKE_AT])
# About 9,000 characters: three messages of at most 4096.
LONG = " ".join(f"sandpiper{i}" for i in range(700))
CUT_AT = 16
KILL_SITE = REPO / "tests" / "killsite"
TOOK = "services.delivery:Deliveries.took"  # recording the messages Telegram took


class SecondHeld(GatedTelegram):
    """``GatedTelegram`` whose held chats take ``let_through`` more sendMessage calls first."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(**kwargs)
        self.let_through = 0

    async def _gated_send_message(self, p: dict[str, Any]) -> object:
        if p.get("chat_id") in self.held_chats and self.let_through > 0:
            self.let_through -= 1
            answer = self._answer_send_message(p)
            return await answer if asyncio.iscoroutine(answer) else answer
        return await super()._gated_send_message(p)


def question_id(telegram: FakeTelegram, text: str) -> int:
    """The message id of the user's message ``text`` in their private chat."""
    (asked,) = [
        m
        for m in telegram.state.chat_messages(USER)
        if m.get("text") == text and m["from"]["id"] == USER
    ]
    return int(asked["message_id"])


def replying(telegram: FakeTelegram) -> list[Any]:
    """What each sendMessage call to the user replied to (its ``reply_parameters``), in order."""
    found = []
    for call in telegram.calls_of("sendMessage"):
        if call.params.get("chat_id") != USER:
            continue
        reply = call.params.get("reply_parameters")
        found.append(json.loads(reply) if isinstance(reply, str) else reply)
    return found


def texts_sent(telegram: FakeTelegram) -> list[str]:
    """The texts of the messages the bot sent to the user."""
    return [str(m.get("text")) for m in telegram.sent_messages(USER)]


async def test_a_broken_off_answer_charged_when_the_bot_is_killed_arrives_at_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    telegram = GatedTelegram(token=TOKEN)
    async with process_stack(data, answer=ANSWER, telegram_server=telegram) as stack:
        vllm, env = stack.vllm, stack.env
        vllm.error_mid_stream_after = BROKE_AT
        # The part's message waits at Telegram, never taken.
        bot = await asked_while_held(env, telegram, USER, "a question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        asked = question_id(telegram, "a question")
        assert rows(db, "SELECT surface, reply_to, ending FROM undelivered") == [
            ("private", asked, "broke_off")
        ]
        await bot.kill()
        assert texts_sent(telegram) == []
        telegram.held_chats.clear()  # the dead bot's call stays held; new ones go through
        async with restarted(env, db) as again:
            assert PART not in again.output  # the restart's log lines hold no text
        replies = replying(telegram)  # the restart's (the dead bot's call is still held)
        part, note = telegram.sent_messages(USER)
        telegram.release_messages()
    assert part["text"] == PART  # once
    assert part["reply_to_message"]["message_id"] == asked
    assert note["text"].startswith("⚠️ The answer broke off here")
    (button,) = note["reply_markup"]["inline_keyboard"][0]
    assert button["text"] == "Retry"  # as the live one (its question is gone with the process)
    assert replies == [{"message_id": asked, "allow_sending_without_reply": True}, None]
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]
    assert rows(db, "SELECT COUNT(*) FROM turns") == [(0,)]  # a failed answer stores nothing
    assert "charges: 1 (1 settled)" in audited(env)


async def test_a_broken_off_answer_telegram_did_not_take_arrives_once_it_is_back(
    tmp_path: Path,
) -> None:
    # Every sendMessage fails (502) past the part's own tries: it is left to the upkeep, which
    # sends it, with its note and a Retry that still asks the question, once Telegram is back.
    data = tmp_path / "data"
    db = data / "veil.db"
    async with running_stack(
        data, answer=ANSWER, sweep_every=0.2, final_retry_wait=QUICK_RETRY
    ) as stack:
        telegram = stack.telegram
        stack.vllm.error_mid_stream_after = BROKE_AT
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_text(USER, "a question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert await stack.veil.chat.wait_idle(90)  # the part's own tries gave up
        assert rows(db, "SELECT ending FROM undelivered") == [("broke_off",)]
        tried = len(telegram.calls_of("sendMessage"))
        await wait_until(lambda: len(telegram.calls_of("sendMessage")) > tried)  # it tries
        stack.vllm.error_mid_stream_after = None
        telegram.clear_failures()  # Telegram is back
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [])
        part, note = await stack.final_messages(USER, 2)
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        await stack.final_messages(USER, 3)  # Retry asked the question again: the whole answer
        assert await stack.veil.chat.wait_idle(30)
        sent = texts_sent(telegram)
    asked = question_id(telegram, "a question")
    assert part["text"] == PART
    assert part["reply_to_message"]["message_id"] == asked
    assert note["text"].startswith("⚠️ The answer broke off here")
    assert sent == [PART, note["text"], ANSWER]
    assert [m["content"] for m in stack.vllm.requests[-1]["messages"]] == ["a question"]


async def test_a_cut_answer_sent_again_has_its_continue_note_and_the_button_goes_on(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    async with running_stack(
        data,
        answer=ANSWER,
        sweep_every=0.2,
        max_answer_tokens=CUT_AT,
        min_answer_tokens=8,
        final_retry_wait=QUICK_RETRY,
    ) as stack:
        telegram = stack.telegram
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_text(USER, "a question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert await stack.veil.chat.wait_idle(90)
        assert rows(db, "SELECT ending, retry FROM undelivered") == [("cut", None)]
        telegram.clear_failures()
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [])
        answer, note = await stack.final_messages(USER, 2)
        (button,) = note["reply_markup"]["inline_keyboard"][0]
        telegram.press_button(USER, button["callback_data"], message_id=note["message_id"])
        await stack.final_messages(USER, 4)  # the continuation, cut again, and its note
        assert await stack.veil.chat.wait_idle(30)
    cut = "".join(split_tokens(ANSWER)[:CUT_AT])
    assert answer["text"] == cut
    assert answer["reply_to_message"]["message_id"] == question_id(telegram, "a question")
    assert (note["text"], button["text"]) == ("✂️ The answer reached its length limit.", "Continue")
    assert "reached its length limit" not in str(stack.vllm.requests[-1]["messages"][-1])
    assert stack.vllm.requests[-1]["messages"][-2]["content"] == cut  # it went on from there


async def test_a_whole_answer_sent_again_replies_to_its_question_even_once_deleted(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    async with running_stack(
        data, answer=ANSWER, sweep_every=0.2, final_retry_wait=QUICK_RETRY
    ) as stack:
        telegram = stack.telegram
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_text(USER, "a question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert await stack.veil.chat.wait_idle(90)
        asked = question_id(telegram, "a question")
        user_deletes(telegram, USER, asked)  # the user deleted the question meanwhile
        telegram.clear_failures()
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [])
        assert await stack.veil.chat.wait_idle(30)
    (answer,) = telegram.sent_messages(USER)  # no note under a whole answer
    assert answer["text"] == ANSWER
    assert replying(telegram)[-1] == {"message_id": asked, "allow_sending_without_reply": True}


async def test_a_bot_killed_between_two_messages_of_an_answer_sends_only_the_rest(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    telegram = SecondHeld(token=TOKEN)
    async with process_stack(data, answer=LONG, telegram_server=telegram) as stack:
        env = stack.env | {"VEIL_MAX_ANSWER_TOKENS": "2048"}
        telegram.let_through = 1  # the first message is taken; the second waits, never taken
        bot = await asked_while_held(env, telegram, USER, "a long question")
        (first,) = texts_sent(telegram)
        await wait_until(lambda: rows(db, "SELECT parts_taken FROM undelivered") == [(1,)])
        await bot.kill()
        telegram.held_chats.clear()
        async with restarted(env, db):
            pass
        sent = texts_sent(telegram)  # the dead bot's second message never taken
        telegram.release_messages()
    assert sent[0] == first
    assert " ".join(sent).split() == LONG.split()  # the first once, then the rest, in order
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]


async def test_a_bot_killed_once_telegram_took_the_answer_and_its_count_does_not_send_it_again(
    tmp_path: Path,
) -> None:
    # Killed on marking it delivered: the count of its messages taken was written as Telegram
    # took it, so the restart sends none of them again (it used to send the answer twice).
    # Killed as the count is written: where Telegram took the message before the charge wrote
    # the row, the row was written with it counted (review24e), and it is not sent again;
    # where after, the count was not written, and it is sent twice: a duplicate, never a loss.
    data = tmp_path / "data"
    db = data / "veil.db"
    counted = {}
    async with process_stack(data, answer=ANSWER) as stack:
        for user, kill_at in ((USER, "models.store:Store.delivered"), (USER + 1, TOOK)):
            killed = stack.env | {"PYTHONPATH": str(KILL_SITE), "VEIL_TEST_KILL_AT": kill_at}
            bot = await ManagedProcess.start("-m", "bot", env=killed)
            await bot.wait_for_line("bot.started")
            stack.telegram.send_text(user, "a question")
            assert await bot.wait() != 0
            ((taken,),) = rows(db, "SELECT rich_taken + parts_taken FROM undelivered")
            assert isinstance(taken, int)
            counted[user] = taken > 0
            async with restarted(stack.env, db):
                pass
        once = [m.get("text") for m in stack.telegram.sent_messages(USER)]
        second = [m.get("text") for m in stack.telegram.sent_messages(USER + 1)]
    assert counted[USER]
    assert once == [ANSWER]
    assert second == ([ANSWER] if counted[USER + 1] else [ANSWER, ANSWER])
    assert rows(db, "SELECT outcome FROM holds") == [("settled",), ("settled",)]


async def test_a_bot_killed_as_it_counts_a_message_taken_after_the_row_sends_it_again(
    tmp_path: Path,
) -> None:
    # The order the test above leaves to chance, forced: Telegram takes the answer only once its
    # charge has written the row (uncounted), and the bot dies as it counts it. The restart
    # sends it again: a duplicate, never a loss.
    data = tmp_path / "data"
    db = data / "veil.db"
    telegram = GatedTelegram(token=TOKEN)
    async with process_stack(data, answer=ANSWER, telegram_server=telegram) as stack:
        killed = stack.env | {"PYTHONPATH": str(KILL_SITE), "VEIL_TEST_KILL_AT": TOOK}
        bot = await asked_while_held(killed, telegram, USER, "a question")
        await wait_until(
            lambda: rows(db, "SELECT rich_taken + parts_taken FROM undelivered") == [(0,)]
        )
        telegram.release_messages()
        assert await bot.wait() != 0
        assert rows(db, "SELECT rich_taken + parts_taken FROM undelivered") == [(0,)]
        async with restarted(stack.env, db):
            pass
        sent = [m.get("text") for m in telegram.sent_messages(USER)]
    assert sent == [ANSWER, ANSWER]
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]
