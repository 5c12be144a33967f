"""Buttons answer their callback query first, then do the slow work.

A callback query lives only a short while (Telegram's spinner turns until it is answered, then
gives up): a handler that saved to the database, asked the gateways or waited for an answer to
end before ``answerCallbackQuery`` could answer too late. Here that work is made slow for real:
the database file locked by another connection (the bot waits for its turn, as SQLite does),
or the user's answer in progress held in Telegram; the press is answered while it waits, and
what the work shows comes after.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.botstack import TOKEN, Stack, running_stack
from tests.fakes.gated import GatedTelegram

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.fakes.telegram import Call

USER = 6201
GROUP = -1_001_234_999
HOLD = 4.0  # seconds the slow work is held at most (the bot's database waits 5 for a lock)


@contextlib.contextmanager
def database_locked(stack: Stack) -> Iterator[None]:
    """Another connection holds the bot database's write lock until the block ends."""
    other = sqlite3.connect(stack.data_dir / "veil.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


async def keyboard_of(stack: Stack, command: str, chat_id: int = USER) -> dict[str, Any]:
    """The bot's message with buttons that answers ``command``."""
    sent = len(stack.telegram.sent_messages(chat_id))
    stack.telegram.send_text(USER, command, chat_id=chat_id if chat_id != USER else None)
    async with asyncio.timeout(10):
        while True:
            fresh = stack.telegram.sent_messages(chat_id)[sent:]
            if fresh and "reply_markup" in fresh[-1]:
                return fresh[-1]
            await asyncio.sleep(0.02)


async def press_while_locked(
    stack: Stack, message: dict[str, Any], data: str, then: str, chat_id: int = USER
) -> tuple[Call, Call, float]:
    """Press ``data`` with the database locked: its answer, the ``then`` call, when unlocked."""
    with database_locked(stack):
        stack.telegram.press_button(
            USER,
            data,
            message_id=message["message_id"],
            chat_id=chat_id if chat_id != USER else None,
        )
        answered = await stack.telegram.wait_for("answerCallbackQuery", timeout=HOLD)
        await asyncio.sleep(0.2)
        unlocked = time.monotonic()  # as the fake's Call.at
        assert not stack.telegram.calls_of(then), "done while the database was locked"
    after = await stack.telegram.wait_for(then, timeout=10)
    return answered, after, unlocked


@pytest.mark.parametrize(
    ("command", "then"),
    [
        ("/settings", "editMessageText"),  # the inline-history toggle, saved (and said so)
        ("/buy", "sendInvoice"),  # a Stars pack: its order stored first
        ("/model", "editMessageText"),  # a model: the choice saved
    ],
)
async def test_a_button_whose_work_waits_for_the_database_is_answered_first(
    tmp_path: Path, command: str, then: str
) -> None:
    async with running_stack(tmp_path, models=("veil-test", "veil-large")) as stack:
        message = await keyboard_of(stack, command)
        data = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        answered, after, unlocked = await press_while_locked(stack, message, data, then)
    assert answered.answered == "ok"
    assert answered.at < unlocked <= after.at


async def test_a_group_toggle_is_answered_before_it_is_saved(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.telegram.set_member(GROUP, USER, "administrator")
        panel = await keyboard_of(stack, "/groupsettings", chat_id=GROUP)
        data = panel["reply_markup"]["inline_keyboard"][1][0]["callback_data"]
        answered, after, unlocked = await press_while_locked(
            stack, panel, data, "editMessageReplyMarkup", chat_id=GROUP
        )
        saved = await stack.veil.store.group_settings(GROUP)
    assert answered.answered == "ok"
    assert answered.at < unlocked <= after.at
    assert saved == (True, False)


async def test_forget_confirmed_while_an_answer_is_delivered_answers_the_press_first(
    tmp_path: Path,
) -> None:
    # The erasure waits for the user's answer in progress to end, its final message delivered:
    # with Telegram slow to take that message, the press went unanswered all the while.
    telegram = GatedTelegram(token=TOKEN)
    async with running_stack(tmp_path, answer="Kept until erased.", telegram_server=telegram) as s:
        confirm = await keyboard_of(s, "/forget")
        yes = confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        telegram.hold_messages_to(USER)
        s.telegram.send_text(USER, "One more question")
        await asyncio.wait_for(telegram.holding.wait(), 10)
        s.telegram.press_button(USER, yes, message_id=confirm["message_id"])
        answered = await s.telegram.wait_for("answerCallbackQuery", timeout=HOLD)
        assert not s.telegram.calls_of("editMessageText")  # the erasure still waits
        telegram.release_messages()
        done = await s.telegram.wait_for("editMessageText", timeout=10)
    assert answered.answered == "ok"
    assert answered.at < done.at
    assert str(done.params["text"]).startswith("Done: your key and")
