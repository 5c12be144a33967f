"""One user, two hands, and /forget: a confirmation on the phone and another on the laptop.

/forget sent from both devices puts two confirmations in the chat. "Erase everything" pressed
on both while an answer was being written started two erasures, each waiting for that answer
to end; both then found the user's key still there, the first erased what was stored and the
second erased nothing and said "Done: your key and 0 stored messages are gone", under the
confirmation the user reads last, as if there had been nothing to erase.

A /settings choice pressed while the erasure waits was saved and said "Saved.", then erased with
the rest; it now waits for the erasure and is saved after it (chat24, ``services/chat.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 2425
ANSWER = " ".join(f"tern{i}" for i in range(30))
PAUSE_AT = 10  # the fake model waits after this many tokens


async def test_erase_pressed_on_two_confirmations_at_once_erases_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "first words")
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        stack.telegram.send_text(USER, "/forget")  # from the phone
        stack.telegram.send_text(USER, "/forget")  # from the laptop
        _answer, phone, laptop = await stack.final_messages(USER, 3)
        stack.vllm.pauses = {PAUSE_AT}
        stack.telegram.send_text(USER, "a question")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        for confirmation in (phone, laptop):
            erase = confirmation["reply_markup"]["inline_keyboard"][0][0]
            assert erase["text"] == texts("forget_yes")
            stack.telegram.press_button(
                USER, erase["callback_data"], message_id=confirmation["message_id"]
            )
        await stack.answered_presses(2)
        stack.vllm.pauses = set()
        stack.vllm.resume()
        await wait_until(
            lambda: all(
                m["text"] != texts("forget_confirm")
                for m in stack.telegram.sent_messages(USER)
                if m["message_id"] in {phone["message_id"], laptop["message_id"]}
            )
        )
        assert await stack.veil.chat.wait_idle(30)
        assert await stack.veil.store.get_user(USER) is None
    said = {m["message_id"]: m["text"] for m in stack.telegram.sent_messages(USER)}
    # The first erased both exchanges (the answer stopped for it was stored, then erased).
    assert said[phone["message_id"]] == texts("forget_done", turns=4)
    assert said[laptop["message_id"]] == texts("forget_nothing")


async def test_a_setting_saved_while_an_erasure_waits_is_not_erased_after_saved_is_said(
    tmp_path: Path,
) -> None:
    # Erase on the phone while an answer is being written; on the laptop, the /settings toggle.
    # The toggle's message says "Saved." with the toggle on; the erasure, ending after it,
    # deleted the user's row and the choice with it.
    async with running_stack(tmp_path, answer=ANSWER) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "/settings")
        stack.telegram.send_text(USER, "/forget")
        settings, confirmation = await stack.final_messages(USER, 2)
        stack.vllm.pauses = {PAUSE_AT}
        stack.telegram.send_text(USER, "a question")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        erase = confirmation["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        keep_inline = settings["reply_markup"]["inline_keyboard"][0][0]
        assert keep_inline["text"] == texts("settings_inline_off")  # pressing turns it on
        stack.telegram.press_button(USER, erase, message_id=confirmation["message_id"])
        stack.telegram.press_button(
            USER, keep_inline["callback_data"], message_id=settings["message_id"]
        )
        await stack.answered_presses(2)
        saved = f"{texts('settings')}\n\n{texts('settings_saved')}"
        await wait_until(lambda: stack.telegram.sent_messages(USER)[0]["text"] == saved)
        stack.vllm.pauses = set()
        stack.vllm.resume()
        await wait_until(
            lambda: stack.telegram.sent_messages(USER)[1]["text"] != texts("forget_confirm")
        )
        assert await stack.veil.chat.wait_idle(30)
        assert await stack.veil.chat.keeps_inline_history(USER) is True
