"""Inline buttons pressed as people press them: twice, late, by someone else, with forged data.

The real bot long-polls the fake Telegram (the playground's emulator), which refuses an edit that
changes nothing as Telegram does ("message is not modified").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

ANN = 9401
SORRY = "Something went wrong"


def bot_texts(stack: Stack, chat_id: int) -> list[str]:
    """What the bot has said in ``chat_id``, oldest first."""
    return [str(m.get("text")) for m in stack.telegram.sent_messages(chat_id)]


def apologies(stack: Stack) -> list[str]:
    """The bug apologies the bot has sent Ann."""
    return [text for text in bot_texts(stack, ANN) if text.startswith(SORRY)]


def press_twice(stack: Stack, data: str, message: dict[str, Any]) -> None:
    """Ann presses the button of ``message`` with ``data`` twice, before it is redrawn."""
    for _ in range(2):
        stack.telegram.press_button(ANN, data, message_id=message["message_id"])


async def test_a_settings_toggle_pressed_twice_is_saved_once_without_an_apology(
    tmp_path: Path,
) -> None:
    # The second press of the same (not yet redrawn) button edited the markup to what it was
    # already; Telegram refused ("not modified") and the user got the bug apology.
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(ANN, "/settings")
        (shown,) = await stack.final_messages(ANN)
        data = shown["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        press_twice(stack, data, shown)
        await stack.answered_presses(2)
        assert not apologies(stack)
        assert await stack.veil.chat.keeps_inline_history(ANN)
        (settings,) = stack.telegram.sent_messages(ANN)
        redrawn = settings["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        assert redrawn != data  # the button now offers the other choice


async def test_a_settings_press_forged_under_a_group_message_redraws_nothing_in_private(
    tmp_path: Path,
) -> None:
    # The redraw took the pressed message's id into the presser's private chat: a press forged
    # under a group's message N redrew the bot's private message N (here an older /settings).
    group = -1_004_444_444
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(ANN, "/settings")
        (older,) = await stack.final_messages(ANN)
        stack.telegram.send_text(ANN, "/settings")
        await stack.final_messages(ANN, 2)
        before = older["reply_markup"]
        data = before["inline_keyboard"][0][0]["callback_data"]
        stack.telegram.press_button(ANN, data, message_id=older["message_id"], chat_id=group)
        await stack.telegram.wait_for("answerCallbackQuery")
        await asyncio.sleep(0.3)
        assert stack.telegram.sent_messages(ANN)[0]["reply_markup"] == before
        assert stack.telegram.calls_of("editMessageReplyMarkup") == []
        assert await stack.veil.chat.keeps_inline_history(ANN)  # the presser's own choice


async def test_forget_and_model_buttons_pressed_twice_are_no_bug(tmp_path: Path) -> None:
    # The second tap's redraw was the text the first had put there already: Telegram refused
    # it ("not modified") and the user got the bug apology.
    async with running_stack(tmp_path) as stack:
        for command in ("/forget", "/model"):
            stack.telegram.send_text(ANN, command)
        shown = await stack.final_messages(ANN, 2)
        for message in shown:
            rows = message["reply_markup"]["inline_keyboard"]
            data = rows[0][-1]["callback_data"]  # /forget: "no"; /model: the one model
            press_twice(stack, data, message)
        await stack.answered_presses(4)
        assert not apologies(stack)
        assert sorted(bot_texts(stack, ANN)) == [
            "From now on I answer with veil-test.",
            "Nothing was erased.",
        ]


async def test_erase_pressed_twice_says_what_the_erasure_erased(tmp_path: Path) -> None:
    # The second tap (or a press held while the first's reply waited out Telegram's flood
    # control) erased again, nothing left, and put "0 stored messages are gone" in place of
    # what the first had erased: the user could not tell their history had been erased.
    async with running_stack(tmp_path, answer="Noted.") as stack:
        stack.telegram.send_text(ANN, "Remember the blue door.")
        await stack.stored_turns(ANN, 2)
        stack.telegram.send_text(ANN, "/forget")
        confirm = (await stack.final_messages(ANN, 2))[1]
        erase = confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        stack.telegram.fail_every(["editMessageText"], nth=2, retry_after=1)  # the second edit
        press_twice(stack, erase, confirm)
        await stack.answered_presses(2)
        await stack.veil.chat.wait_idle(10)
        await stack.telegram.wait_for("editMessageText", lambda c: c.answered == "ok")
        await asyncio.sleep(1.5)  # a second erasure's reply, were there one, waits out a flood
        user = await stack.veil.store.get_user(ANN)
        said = bot_texts(stack, ANN)[1]
    assert user is None
    assert not apologies(stack)
    assert said.startswith("Done: your key and 2 stored messages are gone.")


async def test_a_press_whose_answer_meets_a_long_flood_wait_is_still_carried_out(
    tmp_path: Path,
) -> None:
    # A press's answer (sent first, to stop the button's spinner) met a flood wait longer than
    # the session waits out: the handler failed on it, so the choice was not saved, and the
    # user was told "Telegram did not take my reply" for a press Telegram had delivered. A
    # press's answer lives seconds; one that cannot go out in that time is let go, as one
    # refused as too old, and the press is carried out.
    async with running_stack(tmp_path) as stack:
        stack.telegram.send_text(ANN, "/settings")
        (shown,) = await stack.final_messages(ANN)
        data = shown["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        stack.telegram.fail_next(
            "answerCallbackQuery",
            status=429,
            description="Too Many Requests: retry after 3600",
            retry_after=3600,
        )
        stack.telegram.press_button(ANN, data, message_id=shown["message_id"])
        async with asyncio.timeout(10):
            while not (  # noqa: ASYNC110 -- polls the fake's record
                stack.telegram.calls_of("editMessageText") or len(bot_texts(stack, ANN)) > 1
            ):
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # anything the press would send after its redraw
        assert await stack.veil.chat.keeps_inline_history(ANN)
        assert len(bot_texts(stack, ANN)) == 1
        (settings,) = stack.telegram.sent_messages(ANN)
        redrawn = settings["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        assert redrawn != data  # the button now offers the other choice
