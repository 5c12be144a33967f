"""Many distinct users through the whole bot: what it keeps per user is let go of, or bounded.

A bot that runs for a month meets users by the hundred thousand. Each asks one question here,
through fake Telegram, the real bot, the gateway and the fake model; once every answer is in and
the bot is idle, nothing it keeps per user, chat or update may still hold them all: the update
order's queues, the answers in progress, the chats' turns, the holds, the drafts timed are
empty, and the unwrapped data keys are the store's bounded newest (``DATA_KEYS_KEPT``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.order import ORDER
from models.store import DATA_KEYS_KEPT
from tests.botstack import running_stack

if TYPE_CHECKING:
    from pathlib import Path

    from tests.botstack import Stack

USERS = 1_050  # past the store's 1,000 kept keys
BATCH = 50  # within the gateway's 64 streams a client (``tests.harness.client_policy``)


async def ask_each(stack: Stack, users: range) -> None:
    """Each user asks one question, ``BATCH`` at a time; wait for every answer and its storing."""
    for at in range(0, len(users), BATCH):
        batch = users[at : at + BATCH]
        for user in batch:
            stack.telegram.send_text(user, "one question")
        async with asyncio.timeout(120):
            for user in batch:
                while not stack.telegram.sent_messages(user):  # noqa: ASYNC110 -- polls the fake
                    await asyncio.sleep(0.02)
    assert await stack.veil.chat.wait_idle(within=60)


async def test_a_thousand_users_leave_nothing_per_user_behind(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        users = range(500_000, 500_000 + USERS)
        await ask_each(stack, users)
        assert all(
            stack.telegram.sent_messages(user)[0]["text"] == "Hello from the fake model."
            for user in users
        )
        veil = stack.veil
        dispatcher = veil.dispatcher
        editors = dispatcher["editors"]
        held = {
            "update order queues": dispatcher[ORDER].chats,
            "answers in progress": len(veil.chat._active),
            "titles being made": len(veil.chat._titling),
            "erasures": len(veil.chat._forgetting),
            "answers running (handlers)": len(dispatcher["answering"]._running),
            "holds running": len(veil.credit._running),
            "drafts timed": len(veil.operations.metrics._first_text_waits),
            "chats' turns": len(editors._turns),
            "group answers asking": len(dispatcher["kit"].asking),
        }
        assert held == dict.fromkeys(held, 0)
        keys = len(veil.store._data_keys)  # the structure's size (a failure prints no key)
        assert keys <= DATA_KEYS_KEPT < USERS
