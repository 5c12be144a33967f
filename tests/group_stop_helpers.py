"""A group's answer held while it is being written, for the tests of stopping it there.

The real bot long-polls the fake Telegram, through a real gateway to the fake vLLM, which holds
each stream at a token (``HELD_AT``) until resumed, so a stop lands while the answer is being
written; the holds are read from the ledger as ``audit`` reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import wait_until
from tests.test_bot_groups import ANN, BOB, FAST, GROUP, QUESTION, replies

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.botstack import Stack

LONG = " ".join(f"word{n}" for n in range(60))
HELD_AT = 12  # the token before which the model holds every stream until resumed
WITHDRAWN = "Stopped: your question here will not be answered, nor charged."


def held_model() -> FakeVLLM:
    """The fake model, holding every stream before token ``HELD_AT`` until resumed."""
    model = FakeVLLM(answer=LONG)
    model.pauses = {HELD_AT}
    return model


@contextlib.asynccontextmanager
async def held_stack(tmp_path: Path, model: FakeVLLM | None = None) -> AsyncIterator[Stack]:
    """The bot at the group's fast pace, its model ``held_model()`` unless given another."""
    async with running_stack(tmp_path, model_server=model or held_model(), **FAST) as stack:
        yield stack


async def streaming(stack: Stack, chat_id: int = GROUP) -> None:
    """Wait until an answer is held by the model with part of it shown in ``chat_id``."""
    await wait_until(lambda: stack.vllm.paused >= 1, within=10)
    await stack.telegram.wait_for(
        "editMessageText",
        lambda c: (
            c.params.get("chat_id") == chat_id and str(c.params.get("text")).startswith("word0")
        ),
    )


async def asked(stack: Stack, user_id: int) -> None:
    """``user_id`` asks ``QUESTION`` in the group; wait until the answer is held, part shown."""
    stack.telegram.send_text(user_id, f"@veil_test_bot {QUESTION}", chat_id=GROUP)
    await streaming(stack)


async def waiting(stack: Stack, user_id: int, question: str) -> None:
    """``user_id`` asks ``question`` in the group; wait until it waits for its turn."""
    stack.telegram.send_text(user_id, f"@veil_test_bot {question}", chat_id=GROUP)
    await wait_until(lambda: (GROUP, user_id) in stack.veil.dispatcher["kit"].asking, within=10)


async def behind_bob(stack: Stack, question: str = "and mine?") -> dict[str, Any]:
    """Bob's answer is being written while Ann's ``question`` waits its turn: Bob's answer."""
    await asked(stack, BOB)
    (bobs,) = replies(stack)
    await waiting(stack, ANN, question)
    return bobs


def flood_next_edit(stack: Stack, seconds: int) -> None:
    """Telegram refuses the bot's next edit with a flood wait of ``seconds``."""
    stack.telegram.fail_next(
        "editMessageText",
        status=429,
        description=f"Too Many Requests: retry after {seconds}",
        retry_after=seconds,
    )


async def closed_holds(stack: Stack, user_id: int) -> list[tuple[Any, ...]]:
    """The user's closed holds, oldest first: (outcome, receipt status, completion, charged)."""
    return await stack.veil.store.read(
        lambda db: db.execute(
            "SELECT outcome, receipt_status, completion_used, charged FROM holds"
            " WHERE user_id = ? AND outcome IS NOT NULL ORDER BY created_at",
            [user_id],
        ).fetchall()
    )


async def charged(stack: Stack, user_id: int) -> None:
    """Wait until the user's answer has ended and its charge is written."""
    async with asyncio.timeout(10):
        while not await closed_holds(stack, user_id):  # noqa: ASYNC110 -- polls the store
            await asyncio.sleep(0.02)


async def statuses(stack: Stack, user_id: int) -> list[str]:
    """Once no answer runs, the receipt status of each of the user's closed holds."""
    assert await stack.veil.chat.wait_idle(10)
    return [status for _, status, _, _ in await closed_holds(stack, user_id)]


async def told(stack: Stack, chat_id: int, user_id: int, count: int = 1) -> list[str]:
    """Wait until ``user_id`` was told ``count`` notices alone in ``chat_id``; their texts."""
    await wait_until(
        lambda: len(stack.telegram.ephemeral_messages(chat_id, user_id)) >= count, within=10
    )
    return [m["text"] for m in stack.telegram.ephemeral_messages(chat_id, user_id)]
