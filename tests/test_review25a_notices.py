"""Notices for one member of a group, on a Bot API server that does not know ephemeral messages.

The Bot API ignores a parameter it does not know: a server older than 10.2 sends a message
given ``ephemeral_message_parameters`` to everyone. The real bot talks to the fake Telegram
playing such a server (``ephemeral_support = "ignored"``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_groups import ANN, FAST, GROUP, replies
from tests.test_groups25_help import HELP

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_notice_a_server_showed_to_all_is_deleted_soon(tmp_path: Path) -> None:
    # /help@veil went up for the whole group to read, and stayed: so did every notice meant
    # for one member (the usage line, "no credit", /terms), one a command.
    async with running_stack(tmp_path, notice_seconds=0.5, **FAST) as stack:
        stack.telegram.state.ephemeral_support = "ignored"
        stack.telegram.send_text(ANN, "/help@veil_test_bot", chat_id=GROUP)
        await wait_until(lambda: [m.get("text") for m in replies(stack)] == [HELP], within=10)
        await stack.telegram.wait_for("deleteMessage", timeout=10)
        async with asyncio.timeout(5):
            while replies(stack):  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
