"""Every Bot API method flooded once, on every path a user takes: each answer arrives once.

The fake Telegram answers the first call of each method 429 "Too Many Requests: retry after
1" (``flood_each``: ``parameters.retry_after`` and the ``Retry-After`` header, as the Bot API
server sends them), whatever methods a path calls; the real bot then goes down the path. Each
test checks what the user would see (every reply once, none lost), the books (nothing charged
twice or lost) and the logs (no error line, no traceback, none of the user's words).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from bot.app import _start_polling, _start_webhook
from bot.telegram import RetryMiddleware, _header_wait
from tests.books import inconsistent_users
from tests.botstack import QUICK_RETRY, TOKEN, WEBHOOK_SECRET, running_stack
from tests.fakes.telegram import FakeTelegram
from tests.harness import wait_until
from tests.test_bot_groups import FAST, GROUP, final_reply
from tests.test_bot_inline import FAST_EDITS, final_edit
from tests.test_bot_payments import STAR, paying_stack

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping
    from pathlib import Path

    from tests.botstack import Stack

USER = 26001
QUESTION = "Which lighthouse keeps the quietest watch?"
ANSWER = "The one on the far cape keeps it, by all accounts."
LONG = " ".join(f"lantern-{n}" for n in range(80)) + "."


def troubles(
    logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture, *words: str
) -> list[str]:
    """What a flood must not bring: error lines, tracebacks, the user's words in a log line."""
    found = [f"{e['event']}: {e}" for e in logs if e.get("log_level") in {"error", "critical"}]
    found += [f"traceback: {e['event']}" for e in logs if "exc_info" in e or "exception" in e]
    records = [r for r in caplog.records if not _model_cut_off(r)]
    found += [f"{r.name}: {r.getMessage()}" for r in records if r.levelno >= logging.ERROR]
    found += [f"{r.name}: traceback" for r in records if r.exc_info]
    text = repr(logs) + caplog.text
    found += [f"words in logs: {w[:20]}" for w in (QUESTION, ANSWER, LONG, *words) if w in text]
    return found


def _model_cut_off(record: logging.LogRecord) -> bool:
    """The fake vLLM's server, told by aiohttp that a stopped stream's reader went away."""
    error = record.exc_info[1] if record.exc_info else None
    return record.name == "aiohttp.server" and isinstance(error, ConnectionResetError)


def texts(stack: Stack, chat: int = USER) -> list[str]:
    """The texts of the bot's messages in ``chat``, as they are now."""
    return [str(m.get("text")) for m in stack.telegram.sent_messages(chat)]


def all_flooded(stack: Stack) -> set[str]:
    """The methods the bot called that never met the flood (none, once it has met them all)."""
    return {c.method for c in stack.telegram.calls} - stack.telegram.flooded()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[MutableMapping[str, Any]]]:
    """The structlog events, and stdlib's records from WARNING up (aiogram's) in ``caplog``."""
    caplog.set_level(logging.WARNING)
    with capture_logs() as captured:
        yield captured


async def test_a_private_question_is_answered_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, token_delay=0.05) as stack:
        stack.telegram.flood_each(retry_after=1)
        stack.telegram.send_text(USER, QUESTION)
        await stack.final_messages(USER, 1, within=30)
        assert await stack.stored_turns(USER, 2, within=30) == [QUESTION, ANSWER]
        assert await stack.veil.chat.wait_idle(30)
        assert texts(stack) == [ANSWER]
        assert {"sendMessage", "sendChatAction", "getUpdates"} <= stack.telegram.flooded()
        assert await inconsistent_users(stack.veil.store) == []
    assert troubles(logs, caplog) == []


async def test_a_stopped_answer_is_delivered_once_and_charged_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, answer=LONG, token_delay=0.1) as stack:
        stack.telegram.flood_each(retry_after=1)
        stack.telegram.send_text(USER, QUESTION)
        draft = await stack.telegram.wait_for(
            "sendMessageDraft", lambda c: c.answered == "ok", timeout=20
        )
        stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
        (message,) = await stack.final_messages(USER, 1, within=30)
        assert await stack.veil.chat.wait_idle(30)
        turns = await stack.stored_turns(USER, 2, within=30)
        assert LONG.startswith(message["text"].rstrip("…").rstrip())
        assert message["text"] != LONG
        assert turns == [QUESTION, turns[1]]
        assert len(texts(stack)) == 1
        assert "sendMessageDraft" in stack.telegram.flooded()
        assert await inconsistent_users(stack.veil.store) == []
    assert troubles(logs, caplog) == []


async def test_history_model_balance_and_forget_are_each_answered_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        catalog = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, QUESTION)
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        stack.telegram.flood_each(retry_after=1)
        for count, command in enumerate(["/history", "/model", "/balance", "/forget"], 2):
            stack.telegram.send_text(USER, command)
            await stack.final_messages(USER, count, within=30)
        said = stack.telegram.sent_messages(USER)
        assert said[1]["text"].startswith("Your recent conversations")
        assert said[2]["text"].startswith("Current model: veil-test")
        assert said[3]["text"].startswith("Balance:")
        assert said[4]["text"] == catalog("forget_confirm")
        erase = said[4]["reply_markup"]["inline_keyboard"][0][0]
        stack.telegram.press_button(USER, erase["callback_data"], message_id=said[4]["message_id"])
        await stack.answered_presses(1, within=30)
        await wait_until(lambda: "Done: your key and" in str(texts(stack)), within=30)
        assert len(texts(stack)) == len(set(texts(stack)))  # none twice
        assert stack.telegram.calls_of("answerCallbackQuery")[-1].answered == "ok"
        assert "answerCallbackQuery" in stack.telegram.flooded()
        assert await stack.veil.store.conversations(USER, limit=10) == []
    assert troubles(logs, caplog) == []


async def test_a_stars_purchase_is_credited_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async with paying_stack(tmp_path) as stack:
        stack.telegram.flood_each(retry_after=1)
        stack.telegram.send_text(USER, "/buy")
        await stack.final_messages(USER, 1, within=30)
        (menu,) = stack.telegram.sent_messages(USER)
        pack = menu["reply_markup"]["inline_keyboard"][0][0]
        stack.telegram.press_button(USER, pack["callback_data"], message_id=menu["message_id"])
        sent = await stack.telegram.wait_for(
            "sendInvoice", lambda c: c.answered == "ok", timeout=30
        )
        invoice = sent.params
        stack.telegram.pre_checkout(USER, payload=invoice["payload"], total_amount=50)
        checked = await stack.telegram.wait_for(
            "answerPreCheckoutQuery", lambda c: c.answered == "ok", timeout=30
        )
        assert checked.params["ok"] is True
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for(
            "sendMessage", lambda c: "Thank you" in str(c.params["text"]), timeout=30
        )
        stack.telegram.send_text(USER, QUESTION)
        await stack.telegram.wait_for(
            "sendMessage", lambda c: c.params["text"] == "Paid answer.", timeout=30
        )
        assert await stack.veil.chat.wait_idle(30)
        thanks = [t for t in texts(stack) if "Thank you" in t]
        assert thanks == ["Thank you! 50 ★ added. Balance: 50 ★."]
        assert texts(stack).count("Paid answer.") == 1
        assert len(stack.telegram.calls_of("sendInvoice")) == 2  # flooded, then sent
        balance = (await stack.veil.credit.balance(USER)).units
        assert 0 < balance < 50 * STAR  # paid once, the answer charged once
        assert {"sendInvoice", "answerPreCheckoutQuery"} <= stack.telegram.flooded()
    assert troubles(logs, caplog) == []


async def test_an_inline_question_is_answered_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST_EDITS) as stack:
        stack.telegram.flood_each(retry_after=1)
        stack.telegram.inline_query(USER, QUESTION)
        answered = await stack.telegram.wait_for(
            "answerInlineQuery", lambda c: c.answered == "ok", timeout=30
        )
        (result,) = answered.params["results"]
        inline_id = f"inline-{result['id']}"
        stack.telegram.choose_inline_result(
            USER, result["id"], QUESTION, inline_message_id=inline_id
        )
        await stack.telegram.wait_for("editMessageText", lambda c: c.answered == "ok", timeout=30)
        final = await final_edit(stack, inline_id, within=30)
        assert final["text"].endswith(f"\n\n{ANSWER}")
        assert await stack.veil.chat.wait_idle(30)
        tries = stack.telegram.calls_of("answerInlineQuery")
        assert [c.answered == "ok" for c in tries] == [False, True]
        assert {"answerInlineQuery", "editMessageText"} <= stack.telegram.flooded()
        assert await inconsistent_users(stack.veil.store) == []
    assert troubles(logs, caplog) == []


async def test_a_group_mention_is_answered_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.flood_each(retry_after=1)
        stack.telegram.send_text(USER, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        (final,) = await final_reply(stack, within=30)
        assert final["text"] == ANSWER
        assert await stack.veil.chat.wait_idle(30)
        assert texts(stack, GROUP) == [ANSWER]
        assert "sendMessage" in stack.telegram.flooded()
        assert await inconsistent_users(stack.veil.store) == []
    assert troubles(logs, caplog) == []


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_a_bot_starts_and_answers_under_a_flood_from_its_first_call(
    tmp_path: Path,
    logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    *,
    webhook: bool,
) -> None:
    telegram = FakeTelegram(token=TOKEN)
    telegram.flood_each(retry_after=1)  # each start-up call meets it once
    async with running_stack(
        tmp_path, answer=ANSWER, webhook=webhook, telegram_server=telegram
    ) as stack:
        # What ``python -m bot`` does before it serves, in either mode.
        if webhook:
            assert await _start_webhook(stack.veil, stack.webhook_url, WEBHOOK_SECRET)
        else:
            assert (await _start_polling(stack.veil)).is_bot
        stack.telegram.send_text(USER, QUESTION)
        await stack.final_messages(USER, 1, within=30)
        assert await stack.veil.chat.wait_idle(30)
        assert texts(stack) == [ANSWER]
        started = {"setMyCommands"}
        started |= {"setWebhook"} if webhook else {"getMe", "deleteWebhook", "getUpdates"}
        assert started <= stack.telegram.flooded()
        assert all_flooded(stack) == set()
    assert troubles(logs, caplog) == []


def session_waits(stack: Stack, seconds: float) -> None:
    """Make the bot's session wait out flood waits of ``seconds`` in all (a minute, as built)."""
    (retries,) = [m for m in stack.veil.bot.session.middleware[:] if isinstance(m, RetryMiddleware)]
    retries.max_wait = seconds


async def test_a_poll_waits_out_a_flood_wait_longer_than_the_session_waits(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    # A poll flooded past the session's wait was given up, to aiogram's polling loop: it logged
    # "Failed to fetch updates - TelegramRetryAfter" (an error) and polled again within
    # seconds, into the same flood, until it ended.
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        session_waits(stack, 0.5)  # so that a flood wait of 2 s is a long one
        # The poll in flight began before: the next ones wait at most 0.5 s.
        await stack.telegram.wait_for("getUpdates", lambda c: c.answered == "ok", timeout=10)
        stack.telegram.flood_each(retry_after=2, methods=["getUpdates"])
        await stack.telegram.wait_for("getUpdates", lambda c: c.answered != "ok", timeout=10)
        stack.telegram.send_text(USER, QUESTION)
        await stack.final_messages(USER, 1, within=30)
        assert await stack.veil.chat.wait_idle(30)
        assert texts(stack) == [ANSWER]
        assert stack.telegram.flooded() == {"getUpdates"}
    assert troubles(logs, caplog) == []
    waited = [e["seconds"] for e in logs if e["event"] == "telegram.retry_after"]
    assert waited == [2]


async def test_flood_waits_past_what_the_bot_waits_lose_nothing_and_charge_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    # Each method's first call meets a flood wait longer than the session waits (here 3 s past
    # 0.5 s: as 90 s past its minute), so each is given up, not waited out: the final message
    # is left to the next delivery pass (the user told it is kept and will follow), an inline
    # query's answer past the query's life is never sent (the user types again), and the
    # group's placeholder waits in the group's pacer. Each answer still arrives once.
    async with running_stack(
        tmp_path, answer=ANSWER, final_retry_wait=QUICK_RETRY, sweep_every=0.5, **FAST_EDITS
    ) as stack:
        catalog = stack.veil.catalogs.for_language("en")
        session_waits(stack, 0.5)
        await stack.telegram.wait_for("getUpdates", lambda c: c.answered == "ok", timeout=10)
        stack.telegram.flood_each(retry_after=3)
        stack.telegram.send_text(USER, QUESTION)
        await wait_until(lambda: ANSWER in texts(stack), within=30)
        assert await stack.stored_turns(USER, 2, within=30) == [QUESTION, ANSWER]
        assert sorted(texts(stack)) == sorted([catalog("answer_kept"), ANSWER])

        stack.telegram.flood_each(retry_after=3)  # the group's calls each meet it too
        stack.telegram.send_text(USER + 1, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
        (final,) = await final_reply(stack, within=30)
        assert final["text"] == ANSWER
        assert texts(stack, GROUP) == [ANSWER]

        stack.telegram.flood_each(retry_after=3)
        stack.telegram.inline_query(USER + 2, QUESTION)
        await stack.telegram.wait_for("answerInlineQuery", timeout=10)  # refused: not sent
        stack.telegram.inline_query(USER + 2, f"{QUESTION}?")  # the user types on
        answered = await stack.telegram.wait_for(
            "answerInlineQuery", lambda c: c.answered == "ok", timeout=30
        )
        (result,) = answered.params["results"]
        inline_id = f"inline-{result['id']}"
        stack.telegram.choose_inline_result(
            USER + 2, result["id"], f"{QUESTION}?", inline_message_id=inline_id
        )
        await stack.telegram.wait_for("editMessageText", lambda c: c.answered == "ok", timeout=30)
        inline = await final_edit(stack, inline_id, within=30)
        assert inline["text"].endswith(f"\n\n{ANSWER}")
        assert await stack.veil.chat.wait_idle(30)
        assert len(stack.vllm.requests) == 3  # each question asked once, none again
        assert texts(stack).count(ANSWER) == 1
        assert {"sendMessage", "editMessageText", "answerInlineQuery"} <= stack.telegram.flooded()
        assert await inconsistent_users(stack.veil.store) == []
    assert troubles(logs, caplog) == []


async def test_the_fake_floods_each_methods_first_call_as_the_bot_api_server_does() -> None:
    async with FakeTelegram(token=TOKEN) as fake, aiohttp.ClientSession() as session:
        fake.flood_each(retry_after=7, methods=["getMe", "sendMessage"])
        url = f"{fake.url}/bot{TOKEN}"
        replies = []
        for method in ["getMe", "getMe", "getMyCommands", "sendMessage"]:
            async with session.post(f"{url}/{method}", json={"chat_id": USER, "text": "hi"}) as r:
                replies.append((r.status, r.headers.get("Retry-After"), await r.json()))
    flood = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert replies[0] == (429, "7", flood)
    assert replies[1][:2] == (200, None)  # the second call of the method goes through
    assert replies[2][:2] == (200, None)  # not among ``methods``
    assert replies[3] == (429, "7", flood)
    assert fake.flooded() == {"getMe", "sendMessage"}


async def test_a_guest_summons_is_answered_once(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    def shown() -> list[str]:
        return [str(m.get("text")) for m in stack.telegram.state.inline_messages.values()]

    async with running_stack(tmp_path, answer=ANSWER, **FAST) as stack:
        stack.telegram.flood_each(retry_after=1)
        stack.telegram.guest_message(USER, f"@veil_test_bot {QUESTION}", chat_id=-1_009_876_543)
        await wait_until(lambda: any(t.endswith(ANSWER) for t in shown()), within=30)
        assert await stack.veil.chat.wait_idle(30)
        (text,) = shown()
        assert text.endswith(ANSWER)
        tries = stack.telegram.calls_of("answerGuestQuery")
        assert [c.answered == "ok" for c in tries] == [False, True]
        assert {"answerGuestQuery", "editMessageText"} <= stack.telegram.flooded()
        assert await inconsistent_users(stack.veil.store) == []
    assert troubles(logs, caplog) == []


async def test_a_flood_wait_too_large_for_a_float_is_read_as_an_hour(
    tmp_path: Path, logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy's (or a broken server's) retry_after past a float: every wait, pacer and deadline
    # built from it raised OverflowError (the draft sink's, the session's sum of waits). Read as
    # an hour, it is a flood wait past what the bot waits like any other: the answer still
    # comes. (Polls are left out: one waits out its flood, here the hour.)
    async with running_stack(
        tmp_path, answer=ANSWER, final_retry_wait=QUICK_RETRY, sweep_every=0.5
    ) as stack:
        await stack.telegram.wait_for("getUpdates", lambda c: c.answered == "ok", timeout=10)
        answering = {"sendChatAction", "sendMessageDraft", "sendMessage", "editMessageText"}
        stack.telegram.flood_each(retry_after=10**400, methods=answering)
        stack.telegram.send_text(USER, QUESTION)
        await wait_until(lambda: ANSWER in texts(stack), within=30)
        assert await stack.stored_turns(USER, 2, within=30) == [QUESTION, ANSWER]
        assert texts(stack).count(ANSWER) == 1
        assert await inconsistent_users(stack.veil.store) == []
    assert troubles(logs, caplog) == []
    assert "telegram.retry_after_capped" in [e["event"] for e in logs]


@pytest.mark.parametrize("retry_after", [0, None], ids=["retry_after_0", "no_parameters"])
async def test_a_429_that_names_no_wait_is_waited_out_and_tried_again(
    tmp_path: Path,
    logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    retry_after: int | None,
) -> None:
    # A 429 "Too Many Requests" whose retry_after is 0 or absent (a proxy's, or a rate limiter
    # in front of the Bot API): aiogram reads a flood wait only from a retry_after that is
    # true, so it was a plain TelegramAPIError, not tried again: the answer was lost to an
    # apology. It is a flood wait of a second now, tried again as any other.
    async with running_stack(tmp_path, answer=ANSWER, final_retry_wait=QUICK_RETRY) as stack:
        await stack.telegram.wait_for("getUpdates", lambda c: c.answered == "ok", timeout=10)
        for method in ("sendMessage", "sendMessageDraft", "sendChatAction"):
            stack.telegram.fail_next(
                method, status=429, description="Too Many Requests", retry_after=retry_after
            )
        stack.telegram.send_text(USER, QUESTION)
        assert await stack.stored_turns(USER, 2, within=30) == [QUESTION, ANSWER]
        await wait_until(lambda: ANSWER in texts(stack), within=30)
        assert texts(stack).count(ANSWER) == 1
        assert await inconsistent_users(stack.veil.store) == []
    assert troubles(logs, caplog) == []
    assert "telegram.retry_after" in [e["event"] for e in logs]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 1),
        ("0", 1),
        ("7", 7),
        (" 12 ", 12),
        (str(10**400), 3600),
        ("٣", 1),
        ("soon", 1),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1),  # a date past
        ("Fri, 01 Jan 9999 00:00:00 GMT", 3600),
    ],
)
def test_a_429_without_retry_after_waits_what_its_header_asks(
    header: str | None, seconds: int
) -> None:
    # Read as the gateway's and the relay's are (``common.waits``), then at least a second and
    # at most the hour: no wait spins, none overflows a deadline.
    assert _header_wait(header) == seconds
