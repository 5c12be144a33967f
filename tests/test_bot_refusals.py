"""Telegram's refusals without their description, as a proxy that rewrites error bodies sends.

The Bot API always says why it refuses a call (``description``); a proxy may answer in its
shape without it (``{"ok": false, "error_code": 400}``). aiogram reads the description as text
(a 5xx's for "restart") and so does the bot ("not modified" in it): each such refusal raised a
``TypeError`` (a bug, "something went wrong") where the refusal itself was to be handled: a
progress edit skipped, a 5xx tried again. The session now gives such a refusal the HTTP
status's phrase as its description (``bot.telegram._described``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
import structlog

from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.test_bot_inline import ANSWER, FAST_EDITS, QUESTION, USER, ask_inline, final_edit

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack


async def settled(stack: Stack, inline_message_id: str) -> dict[str, object]:
    """The inline message once it has no stop button (the answer's end)."""
    async with asyncio.timeout(20):
        while True:
            message = await final_edit(stack, inline_message_id)
            if not (message.get("reply_markup") or {}).get("inline_keyboard"):
                return message
            await asyncio.sleep(0.02)


async def test_a_progress_edit_refused_without_a_description_is_skipped(tmp_path: Path) -> None:
    telegram = HostileTelegram(token=TOKEN)
    for _ in range(2):  # the first progress edit, and its plain retry
        telegram.misbehave("editMessageText", "undescribed")
    with structlog.testing.capture_logs() as logs:
        async with running_stack(
            tmp_path, answer=ANSWER, token_delay=0.01, telegram_server=telegram, **FAST_EDITS
        ) as stack:
            _, inline_id = await ask_inline(stack, USER, QUESTION)
            message = await settled(stack, inline_id)
    assert telegram.misbehaved == [("editMessageText", "undescribed")] * 2
    assert message["text"] == f"❓ {QUESTION}\n\n{ANSWER}"
    assert not [e for e in logs if e["event"] == "handler_failed"]
    skipped = [e["error"] for e in logs if e["event"] == "editing.progress_failed"]
    assert skipped
    assert set(skipped) == {"TelegramBadRequest"}


@pytest.mark.parametrize(
    ("mode", "retried_by"),
    [
        # The session tries a 5xx once more; with no description, aiogram raised TypeError.
        pytest.param("undescribed_502", "telegram.server_error", id="bare_502"),
        # A proxy's error body nested deeper than any JSON parser goes (RecursionError, not a
        # ValueError): a reply that is not the Bot API's, as aiogram reads it, so the final
        # part is tried again; reading it for a description must not turn it into a bug.
        pytest.param("nested_502", "streaming.final_retried", id="nested_502"),
    ],
)
async def test_a_private_answer_refused_by_a_proxy_s_502_is_sent_again(
    tmp_path: Path, mode: str, retried_by: str
) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", mode, when=lambda p: p.get("text") == ANSWER)
    with structlog.testing.capture_logs() as logs:
        async with running_stack(tmp_path, answer=ANSWER, telegram_server=telegram) as stack:
            stack.telegram.send_text(USER, QUESTION)
            await stack.telegram.wait_for(
                "sendMessage", lambda c: c.params.get("text") == ANSWER, timeout=20
            )
            told = [m["text"] for m in stack.telegram.sent_messages(USER)]
    assert telegram.misbehaved == [("sendMessage", mode)]
    assert told.count(ANSWER) == 1
    assert not [e for e in logs if e["event"] == "handler_failed"]
    assert [e["event"] for e in logs if e["event"] == retried_by] == [retried_by]
