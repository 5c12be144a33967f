"""The upkeep's sweep spares the Mini App's answers still being relayed, and titles being asked.

The sweep releases holds older than the longest an answer can run (a crash's), sparing the
chat service's answers in progress. A Mini App answer is the relay's, which the service does
not see: one whose gateway took its read timeout (120 s) to begin, then ran its full time,
outlived that lifetime, and the sweep gave its credit back while the model still wrote: free
to spend again, in the private chat, until the answer's late charge took it (an overdraft).
Here the sweep runs with a clock past the lifetime while a relayed answer waits for its first
token: its hold stays, and the answer is charged once when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from bot.app import sweep
from services.credit import Credit
from services.titles import clean_title
from tests.books import inconsistent_users
from tests.botstack import running_stack
from tests.harness import wait_until
from tests.miniapp import page, settled, webapp_stack

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import aiohttp

    from bot.app import Veil

ANSWER = "Three turns of the key, then lift."


@contextlib.contextmanager
def ahead_of_every_hold(veil: Veil) -> Iterator[None]:
    """The chat service's credit, its clock past the longest an answer runs: all holds stale."""
    later = veil.chat.hold_lifetime + 60
    own = veil.chat.credit
    veil.chat.credit = Credit(
        veil.store, own.prices, own.free_tokens_per_day, clock=lambda: time.time() + later
    )
    try:
        yield
    finally:
        veil.chat.credit = own


async def test_the_sweep_spares_a_mini_app_answer_still_being_relayed(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        veil, relay = stack.veil, stack.veil.relay
        assert relay is not None
        stack.vllm.pauses = {0}  # the model reads the prompt: no token yet
        asking = asyncio.create_task(page(stack, http).ask("How does the old lock open?"))
        await wait_until(lambda: bool(relay.holding()))
        held = next(iter(relay.holding()))
        with ahead_of_every_hold(veil):
            assert await sweep(veil) == 0
        stack.vllm.pauses = set()
        stack.vllm.resume()
        asked = await asking
        assert (asked.status, asked.text) == (200, ANSWER)
        state = await settled(stack, bytes.fromhex(held))
        assert state.charge is not None
        assert state.charge.outcome == "settled"
        assert await inconsistent_users(stack.store) == []


async def test_the_sweep_spares_a_title_still_being_asked(tmp_path: Path) -> None:
    # A conversation's title is asked in a request of its own after its first answer, held and
    # billed like any; the sweep spared only the answers in progress, not the titles.
    user = 29001
    async with running_stack(tmp_path, answer=ANSWER, conversation_titles=True) as stack:
        veil = stack.veil
        stack.vllm.pauses = {3}  # the answer waits at its fourth token
        stack.telegram.send_text(user, "How does the old lock open?")
        await wait_until(lambda: stack.vllm.paused == 1)
        stack.vllm.pauses = {0}  # the answer, past it, goes on; the title's stream waits
        stack.vllm.resume()
        await wait_until(lambda: stack.vllm.paused == 1 and len(stack.vllm.requests) == 2)
        with ahead_of_every_hold(veil):
            assert await sweep(veil) == 0
        stack.vllm.pauses = set()
        stack.vllm.resume()
        assert await veil.chat.wait_idle(within=30)
        conversations = await veil.store.conversations(user)
        assert [c.title for c in conversations] == [clean_title(ANSWER)]
        assert await inconsistent_users(veil.store) == []
