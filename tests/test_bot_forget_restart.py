"""/forget's confirmation pressed again after a restart: it says nothing was left to erase.

The bot remembers a confirmation's presses in memory only (``ForgetAnswers``): after a restart,
a press of the same confirmation (Telegram delivering a press again that the bot had not
acknowledged, or the user pressing the old button) erased again, found nothing, and put "your
key and 0 stored messages are gone" where the message had said what the first press erased.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import TOKEN, running_stack
from tests.fakes.telegram import FakeTelegram

if TYPE_CHECKING:
    from pathlib import Path

USER = 8301


async def test_a_confirmation_pressed_again_after_a_restart_erases_nothing_and_says_so(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(USER, "remember this")
        await stack.stored_turns(USER, 2)
        stack.telegram.send_text(USER, "/forget")
        confirm = (await stack.final_messages(USER, 2))[-1]
        (yes, _no) = confirm["reply_markup"]["inline_keyboard"][0]
        stack.telegram.press_button(USER, yes["callback_data"], message_id=confirm["message_id"])
        done = await stack.telegram.wait_for("editMessageText")
        texts = stack.veil.catalogs.for_language("en")
    assert done.params["text"] == texts("forget_done", turns=2)

    telegram = FakeTelegram(token=TOKEN)  # Telegram keeps the chat while the bot restarts
    chat = telegram.state.chat({"chat_id": USER})
    kept = telegram.state.send(chat, text=confirm["text"], reply_markup=confirm["reply_markup"])
    async with running_stack(tmp_path, telegram_server=telegram) as stack:
        stack.telegram.press_button(USER, yes["callback_data"], message_id=kept["message_id"])
        said = await stack.telegram.wait_for("editMessageText")
        assert await stack.veil.store.get_user(USER) is None
    assert said.params["text"] == texts("forget_nothing")
