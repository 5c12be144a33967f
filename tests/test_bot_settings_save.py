"""/settings says "Saved." only once the choice is saved, and says so when it could not be.

The press is answered at once, without text (the database may be slow to take the choice,
longer than a callback query lives); once saved, the /settings message says "Saved." with its
toggle redrawn. The database is made slow or unusable for real: another connection holds its
write lock, briefly (the save waits for it) or past the bot's busy timeout (the save fails).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.botstack import running_stack
from tests.test_bot_callbacks import HOLD, database_locked

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

ANN = 9411
SAVED = "Saved."
NOT_SAVED = "Your choice was not saved. Please press the button again in a moment."


async def settings_message(stack: Stack) -> tuple[dict[str, Any], str]:
    """The /settings message and the callback data of its one toggle."""
    stack.telegram.send_text(ANN, "/settings")
    (shown,) = await stack.final_messages(ANN)
    return shown, shown["reply_markup"]["inline_keyboard"][0][0]["callback_data"]


async def test_saved_is_said_once_the_choice_is_saved_not_when_the_press_is_answered(
    tmp_path: Path,
) -> None:
    # The press was answered "Saved." before the database had taken the choice.
    async with running_stack(tmp_path) as stack:
        shown, data = await settings_message(stack)
        with database_locked(stack):
            stack.telegram.press_button(ANN, data, message_id=shown["message_id"])
            answered = await stack.telegram.wait_for("answerCallbackQuery", timeout=HOLD)
            assert "text" not in answered.params  # nothing said before it is saved
            await asyncio.sleep(0.2)
            assert not stack.telegram.calls_of("editMessageText")  # not saved yet
        edited = await stack.telegram.wait_for("editMessageText")
        (settings,) = stack.telegram.sent_messages(ANN)
        kept = await stack.veil.chat.keeps_inline_history(ANN)
    assert answered.answered == "ok"
    assert str(edited.params["text"]).endswith(f"\n\n{SAVED}")
    assert settings["text"].endswith(SAVED)
    assert settings["reply_markup"]["inline_keyboard"][0][0]["callback_data"] != data
    assert kept


async def test_a_choice_the_database_cannot_take_is_never_called_saved(tmp_path: Path) -> None:
    # The press said "Saved.", then a message said the history could not be saved.
    async with running_stack(tmp_path, db_busy_timeout=0.5) as stack:
        shown, data = await settings_message(stack)
        with database_locked(stack):  # held past the bot's busy timeout: the save fails
            stack.telegram.press_button(ANN, data, message_id=shown["message_id"])
            (_, told) = await stack.final_messages(ANN, 2)
        kept = await stack.veil.chat.keeps_inline_history(ANN)
        (settings, _) = stack.telegram.sent_messages(ANN)
        answers = stack.telegram.calls_of("answerCallbackQuery")
    assert answers  # the press was answered (by the handler at once, by the errors router too)
    assert all("text" not in call.params for call in answers)
    assert told["text"] == NOT_SAVED
    assert not stack.telegram.calls_of("editMessageText")
    assert settings["text"] == shown["text"]
    assert settings["reply_markup"] == shown["reply_markup"]
    assert not kept
