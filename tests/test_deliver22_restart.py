"""SIGKILL between an answer's charge and its final message: the restart delivers it, once.

The charge, the exchange and the answer's row in ``undelivered`` (sealed) are one transaction;
the final message goes out beside it. A bot killed once the charge is written but before
Telegram took the message left the user charged, the answer in their history, and nothing
on screen (the draft vanishes). The next start sends it (a private chat) or edits it into its
placeholder (a group), and deletes the row: once. (A bot killed after Telegram took it:
tests/test_deliver23_resend.py, each message being counted as Telegram takes it.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import QUICK_RETRY, TOKEN, process_stack, running_stack
from tests.fakes.gated import GatedTelegram
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

USER = 9221
GROUP = -1_002_200_221
ANSWER = " ".join(f"heron{i}" for i in range(30))
KILL_SITE = REPO / "tests" / "killsite"


async def test_an_answer_charged_when_the_bot_is_killed_before_its_message_is_sent_at_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    telegram = GatedTelegram(token=TOKEN)
    async with process_stack(data, answer=ANSWER, telegram_server=telegram) as stack:
        vllm, env = stack.vllm, stack.env
        # The final message waits at Telegram, never taken.
        bot = await asked_while_held(env, telegram, USER, "first question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert rows(db, "SELECT surface, chat_id FROM undelivered") == [("private", USER)]
        await bot.kill()
        sent_before = [m.get("text") for m in telegram.sent_messages(USER)]
        telegram.held_chats.clear()  # the dead bot's call stays held; new ones go through
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("chat.redelivered")
            await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [])
            sent_after = [m.get("text") for m in telegram.sent_messages(USER)]
            telegram.send_text(USER, "second question")
            await bot.wait_for_line("chat.answered")
        finally:
            assert await bot.stop() == 0
            telegram.release_messages()  # let the fake end the held call
    assert sent_before == []
    assert sent_after == [ANSWER]  # the restart sent it, once
    second = vllm.requests[-1]["messages"]
    assert [(m["role"], m["content"]) for m in second] == [
        ("user", "first question"),
        ("assistant", ANSWER),
        ("user", "second question"),
    ]
    assert rows(db, "SELECT outcome FROM holds") == [("settled",), ("settled",)]
    assert "charges: 2 (2 settled)" in audited(env)
    assert ANSWER not in bot.output  # the restart's log lines hold no text


async def test_a_group_answer_charged_when_the_bot_is_killed_is_edited_into_its_placeholder(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = data / "veil.db"
    async with process_stack(data, answer=ANSWER) as stack:
        telegram = stack.telegram
        bot = await ManagedProcess.start("-m", "bot", env=stack.env, measured=False)
        await bot.wait_for_line("bot.started")
        telegram.fail_next(
            "editMessageText", status=500, description="Internal Server Error", count=1000
        )  # no edit goes through
        telegram.send_text(USER, "@veil_test_bot a question", chat_id=GROUP)
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert rows(db, "SELECT surface, chat_id FROM undelivered") == [("message", GROUP)]
        await bot.kill()
        telegram.clear_failures()
        (placeholder,) = telegram.sent_messages(GROUP)
        assert ANSWER not in str(placeholder.get("text"))
        async with restarted(stack.env, db):
            pass
        (answered,) = telegram.sent_messages(GROUP)
        assert answered["message_id"] == placeholder["message_id"]
        assert answered["text"] == ANSWER
        assert "reply_markup" not in answered  # its stop button gone
        assert rows(db, "SELECT outcome FROM holds") == [("settled",)]
        audited(stack.env)


async def test_telegram_down_for_long_then_back_gets_the_answer_delivered_once(
    tmp_path: Path,
) -> None:
    # Every sendMessage fails (502) past the final message's own tries: the answer's row is
    # given back, and the upkeep keeps trying it (each pass as the final message tries) until
    # Telegram takes it again: then it is sent, once, and charged once.
    data = tmp_path / "data"
    db = data / "veil.db"
    async with running_stack(
        data, answer=ANSWER, sweep_every=0.2, final_retry_wait=QUICK_RETRY
    ) as stack:
        telegram = stack.telegram
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        telegram.send_text(USER, "a question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert await stack.veil.chat.wait_idle(60)  # the answer's own tries gave up
        assert len(rows(db, "SELECT 1 FROM undelivered")) == 1  # left to the upkeep
        tried = len(telegram.calls_of("sendMessage"))
        await wait_until(lambda: len(telegram.calls_of("sendMessage")) > tried)  # it tries
        telegram.clear_failures()  # Telegram is back
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [])
        assert await stack.veil.chat.wait_idle(30)
        sent = [m.get("text") for m in telegram.sent_messages(USER)]
    assert sent.count(ANSWER) == 1
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]


async def test_a_flood_wait_on_the_final_message_then_telegram_back_sends_it_once(
    tmp_path: Path,
) -> None:
    # Flood waits on every sendMessage (the session waits each out, for a minute at most),
    # then Telegram takes messages again: the answer goes out once, and its row is gone.
    data = tmp_path / "data"
    db = data / "veil.db"
    async with running_stack(data, answer=ANSWER, sweep_every=0.2) as stack:
        telegram = stack.telegram
        telegram.fail_next(
            "sendMessage",
            status=429,
            description="Too Many Requests: retry after 1",
            retry_after=1,
            count=10_000,
        )
        telegram.send_text(USER, "a question")
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        await wait_until(lambda: len(telegram.calls_of("sendMessage")) >= 3)  # floods waited
        telegram.clear_failures()
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [], within=90)
        assert await stack.veil.chat.wait_idle(30)
        sent = [m.get("text") for m in telegram.sent_messages(USER)]
    assert sent.count(ANSWER) == 1
    assert rows(db, "SELECT outcome FROM holds") == [("settled",)]


async def test_an_inline_answer_charged_when_the_bot_is_killed_is_edited_in_at_restart(
    tmp_path: Path,
) -> None:
    # An inline (or guest) message can only be edited: the bot cannot post in that chat. The
    # restart edits the answer in under its question, as the final edit would have.
    data = tmp_path / "data"
    db = data / "veil.db"
    async with process_stack(data, answer=ANSWER) as stack:
        telegram = stack.telegram
        bot = await ManagedProcess.start("-m", "bot", env=stack.env, measured=False)
        await bot.wait_for_line("bot.started")
        telegram.fail_next(
            "editMessageText", status=500, description="Internal Server Error", count=1000
        )
        telegram.inline_query(USER, "an inline question")
        answered = await telegram.wait_for("answerInlineQuery")
        (result,) = answered.params["results"]
        telegram.choose_inline_result(
            USER, result["id"], "an inline question", inline_message_id="inline-22"
        )
        await wait_until(lambda: bool(rows(db, "SELECT 1 FROM ledger WHERE kind = 'usage'")))
        assert rows(db, "SELECT surface, inline_message_id FROM undelivered") == [
            ("inline", "inline-22")
        ]
        await bot.kill()
        telegram.clear_failures()
        assert ANSWER not in str(telegram.state.inline_messages["inline-22"].get("text"))
        async with restarted(stack.env, db):
            pass
        shown = telegram.state.inline_messages["inline-22"]
        assert shown["text"] == f"❓ an inline question\n\n{ANSWER}"
        assert not shown.get("reply_markup")  # its stop button gone
        audited(stack.env)
