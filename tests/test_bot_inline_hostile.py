"""Inline answers where something fails before the answer starts: told in the inline message.

The message a chosen result posted is the placeholder with a stop button. Whatever fails
before the answer starts (the asker's settings unreadable, Telegram refusing the query's
answer) must be told in that message, never leave it waiting with a stop button that stops
nothing; and nothing is asked of the model or charged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from handlers.inline import article
from tests.botstack import TOKEN, running_stack
from tests.harness import wait_until
from tests.test_bot_inline import ANSWER as ANSWER_LONG
from tests.test_bot_inline import FAST_EDITS, QUESTION, USER, ask_inline, final_edit

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sqlite_utils import Database

    from tests.botstack import Stack


def users_table(name: str, new: str) -> Callable[[Database], None]:
    """A write that renames the users table (a database that cannot read a user's settings)."""

    def rename(db: Database) -> None:
        db.execute(f"ALTER TABLE {name} RENAME TO {new}")

    return rename


async def test_settings_that_cannot_be_read_are_told_in_the_inline_message(
    tmp_path: Path,
) -> None:
    # The asker's settings (whether inline answers join their history) were read before the
    # answer's message was known to the errors router: the failure went to no one, and the
    # message kept its placeholder and stop button for good.
    async with running_stack(tmp_path, **FAST_EDITS) as stack:
        texts = stack.veil.catalogs.for_language("en")
        await stack.veil.store.write(users_table("users", "users_away"))
        with structlog.testing.capture_logs() as logs:
            _, inline_id = await ask_inline(stack, USER, QUESTION)
            message = await final_edit(stack, inline_id)
        await stack.veil.store.write(users_table("users_away", "users"))
        assert message["text"] == texts("error_history")
        assert stack.vllm.requests == []  # nothing asked of the model, nothing charged
        assert (await stack.veil.credit.balance(USER)).held == 0
    replied = [e for e in logs if e["event"] == "error_replied"]
    assert [(e["error"], e["text"]) for e in replied] == [("HistoryUnavailable", "error_history")]


async def test_an_inline_query_s_answer_is_not_retried_past_the_query_s_life(
    tmp_path: Path,
) -> None:
    # A flood wait on answerInlineQuery was waited out (up to the session's minute) and the
    # answer sent again, to a query Telegram had let go of after ~10 s: refused as too old. A
    # user typing letter by letter left one such retry a letter, all due at the same moment,
    # into the flood that caused them. The next query is answered as ever.
    async with running_stack(tmp_path) as stack:
        stack.telegram.fail_next(
            "answerInlineQuery",
            status=429,
            description="Too Many Requests: retry after 11",
            retry_after=11,
        )
        with structlog.testing.capture_logs() as logs:
            stack.telegram.inline_query(USER, "Tell me")
            await wait_until(
                lambda: any(e["event"] == "inline.query_refused" for e in logs), within=30
            )
        (refused,) = stack.telegram.calls_of("answerInlineQuery")
        assert refused.answered != "ok"
        stack.telegram.inline_query(USER, QUESTION)
        answered = await stack.telegram.wait_for(
            "answerInlineQuery", lambda call: call.answered == "ok"
        )
        assert QUESTION in answered.params["results"][0]["title"]
        assert stack.vllm.requests == []


async def test_telegram_failing_before_a_chosen_answer_starts_is_told_in_its_message(
    tmp_path: Path,
) -> None:
    # A bot serving a webhook asks Telegram who it is (for the link under a long answer) only
    # when an answer first needs it; a chosen result of a query answered before a restart was
    # the first. Telegram failing that call was logged, and told to no one: the inline
    # message kept its placeholder and stop button for good.
    async with running_stack(tmp_path, webhook=True, **FAST_EDITS) as stack:
        texts = stack.veil.catalogs.for_language("en")
        query_id = stack.telegram.state.new_inline_query(USER, QUESTION)
        await answered_before_a_restart(stack, query_id)
        stack.telegram.fail_next("getMe", status=500, description="Internal Server Error", count=2)
        stack.telegram.choose_inline_result(USER, "r1", QUESTION, inline_message_id="inline-r1")
        message = await final_edit(stack, "inline-r1")
        assert message["text"] == texts("error_telegram")
        assert stack.vllm.requests == []
        assert (await stack.veil.credit.balance(USER)).held == 0


async def answered_before_a_restart(stack: Stack, query_id: str) -> None:
    """Answer inline query ``query_id`` as the bot did before a restart: placeholder, stop."""
    texts = stack.veil.catalogs.for_language("en")
    api = TelegramAPIServer.from_base(stack.telegram.url)
    async with Bot(TOKEN, session=AiohttpSession(api=api)) as before:
        await before.answer_inline_query(query_id, [article(texts, "r1", QUESTION)], cache_time=0)


async def test_a_stop_whose_press_telegram_fails_to_answer_is_no_apology_in_private(
    tmp_path: Path,
) -> None:
    # The stop itself went through (the answer stopped) when Telegram failed the press's
    # answer (a 5xx past the session's one retry): the errors router then sent the presser's
    # private chat "Telegram did not take my reply, send that again", out of nowhere, for a
    # press under a message in another chat that had done what it should.
    async with running_stack(tmp_path, answer=ANSWER_LONG, token_delay=0.05, **FAST_EDITS) as stack:
        result_id, inline_id = await ask_inline(stack, USER, QUESTION)
        await stack.telegram.wait_for(
            "editMessageText", lambda c: c.params.get("inline_message_id") == inline_id
        )
        stack.telegram.fail_next(
            "answerCallbackQuery", status=502, description="Bad Gateway", count=2
        )
        with structlog.testing.capture_logs() as logs:
            stack.telegram.press_inline_button(USER, f"stop:{result_id}", inline_id)
            final = await final_edit(stack, inline_id)
            await wait_until(
                lambda: (
                    any(e["event"] == "inline.stop_unanswered" for e in logs)
                    or stack.telegram.sent_messages(USER) != []
                ),
                within=10,
            )
        assert final["text"] != f"❓ {QUESTION}\n\n{ANSWER_LONG}"  # stopped early
        assert stack.telegram.sent_messages(USER) == []
