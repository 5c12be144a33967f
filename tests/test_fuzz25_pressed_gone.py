"""A button pressed under a message the user then deleted: the press is carried out, no apology.

The press comes with the message it was under; the user deletes that message (for both sides)
before the bot redraws it. Telegram refuses the redraw ("message to edit not found"), and the
handler failed on it: the model was switched (or the history erased) all the same, yet the user
was told something went wrong and the operator read a bug's traceback (``handler_failed``).
The fuzz of every kind of update found it (``test_fuzz25_updates``, seeds 1 to 8).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import structlog

from tests.botstack import running_stack
from tests.fakes.telegram import user_deletes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, MutableMapping
    from pathlib import Path

    from tests.botstack import Stack

USER = 9611
ANSWER = "Hello from the fake model."


async def list_of(stack: Stack, command: str) -> dict[str, Any]:
    """The bot's message with buttons that answers ``command``."""
    sent = len(stack.telegram.sent_messages(USER))
    stack.telegram.send_text(USER, command)
    async with asyncio.timeout(10):
        while True:
            fresh = stack.telegram.sent_messages(USER)[sent:]
            if fresh and "reply_markup" in fresh[-1]:
                return fresh[-1]
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def pressed_then_deleted(
    stack: Stack, menu: dict[str, Any], row: int
) -> AsyncIterator[list[MutableMapping[str, Any]]]:
    """Press the button of ``row`` under ``menu``, then delete ``menu`` before the bot is back.

    The block runs once the press is handled; it yields the log events from the press on.
    """
    data = menu["reply_markup"]["inline_keyboard"][row][0]["callback_data"]
    with structlog.testing.capture_logs() as logs:
        stack.telegram.press_button(USER, data, message_id=menu["message_id"])
        user_deletes(stack.telegram, USER, menu["message_id"])
        await stack.telegram.wait_for("editMessageText")
        await stack.veil.dispatcher["in_flight"].wait_idle(10)
        yield logs


async def test_a_model_chosen_under_a_list_deleted_since_is_chosen_untold(tmp_path: Path) -> None:
    async with running_stack(tmp_path, models=("veil-test", "veil-large")) as stack:
        menu = await list_of(stack, "/model")
        sent = len(stack.telegram.calls_of("sendMessage"))
        async with pressed_then_deleted(stack, menu, row=1) as logs:
            stack.telegram.send_text(USER, "Which model?")
            async with asyncio.timeout(10):
                while len(stack.telegram.calls_of("sendMessage")) == sent:  # noqa: ASYNC110 -- polls the fake's record
                    await asyncio.sleep(0.02)
    sends = stack.telegram.calls_of("sendMessage")[sent:]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == []
    assert [c.params["text"] for c in sends] == [ANSWER]  # the answer, no apology before it
    assert stack.vllm.requests[-1]["model"] == "veil-large"


async def test_forget_confirmed_under_a_question_deleted_since_erases_untold(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, answer="Noted.") as stack:
        stack.telegram.send_text(USER, "Remember the marmalade.")
        await stack.stored_turns(USER, 2)
        confirm = await list_of(stack, "/forget")
        sent = len(stack.telegram.calls_of("sendMessage"))
        async with pressed_then_deleted(stack, confirm, row=0) as logs:
            history = await stack.veil.store.conversations(USER, limit=10)
    sends = stack.telegram.calls_of("sendMessage")[sent:]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == []
    assert sends == []  # no apology
    assert history == []
