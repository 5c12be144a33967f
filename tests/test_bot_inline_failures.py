"""An inline answer that fails with a bug says so in its message, as the private chat does.

A failure that is no ``VeilError`` (a bug) was only logged: the inline message kept "…" and its
stop button for ever, or the part of the answer shown with nothing said. Here the bug is real:
an edit of the inline message is refused with a body that has the Bot API's shape but no
``description`` (``HostileTelegram``'s ``undescribed``, as a proxy that rewrites error bodies
answers), which the edited answer's sink does not survive (it reads the refusal's text).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.test_bot_inline import ANSWER, FAST_EDITS, QUESTION, USER, ask_inline, final_edit

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

SORRY = (
    "Something went wrong on my side. Please try again; if it keeps happening, /paysupport "
    "reaches a person."
)
CUT = "✂️ The answer reached its length limit; ask for more in the private chat with Veil."


async def settled_text(stack: Stack, inline_message_id: str, ending: str) -> dict[str, Any]:
    """Wait until the inline message has no stop button and its text ends with ``ending``."""
    async with asyncio.timeout(20):
        while True:
            message = await final_edit(stack, inline_message_id)
            if str(message["text"]).endswith(ending):
                return message
            await asyncio.sleep(0.02)


async def test_a_bug_before_the_answer_is_shown_replaces_the_placeholder_with_a_notice(
    tmp_path: Path,
) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("editMessageText", "undescribed")  # the first edit: a progress edit
    with structlog.testing.capture_logs() as logs:
        async with running_stack(
            tmp_path, answer=ANSWER, token_delay=0.01, telegram_server=telegram, **FAST_EDITS
        ) as stack:
            _, inline_id = await ask_inline(stack, USER, QUESTION)
            message = await settled_text(stack, inline_id, SORRY)
    assert telegram.misbehaved == [("editMessageText", "undescribed")]
    assert message["text"] == SORRY  # the notice alone: no "…", no stop button
    assert not (message.get("reply_markup") or {}).get("inline_keyboard")
    assert [e["error"] for e in logs if e["event"] == "handler_failed"] == ["TypeError"]


async def test_a_bug_after_the_answer_is_shown_is_noted_under_it(tmp_path: Path) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave(
        "editMessageText", "undescribed", when=lambda p: str(p.get("text", "")).endswith(CUT)
    )
    with structlog.testing.capture_logs() as logs:
        async with running_stack(
            tmp_path,
            answer=ANSWER,
            max_answer_tokens=16,
            min_answer_tokens=8,
            telegram_server=telegram,
            **FAST_EDITS,
        ) as stack:
            _, inline_id = await ask_inline(stack, USER, QUESTION)
            message = await settled_text(stack, inline_id, SORRY)
    assert telegram.misbehaved == [("editMessageText", "undescribed")]
    shown, notice = str(message["text"]).rsplit("\n\n", 1)
    assert shown.startswith(f"❓ {QUESTION}\n\nobsidian-kettledrum-0")  # the part shown stays
    assert notice == SORRY
    assert [e["error"] for e in logs if e["event"] == "handler_failed"] == ["TypeError"]
