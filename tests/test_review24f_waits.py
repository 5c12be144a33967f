"""The waits chat24 added, attacked: none may hang the user's updates, which go in order.

``/new`` (or a /history switch) waits until the user's question sent before it has read its
conversation, which waits for the previous answer's final message to go out. The user's
updates are handled one at a time, in order: a ``/cancel`` sent behind that ``/new`` must still
be carried out once the final message goes out, in the order sent (no deadlock: nothing the
wait waits for waits for the updates behind it).
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

from services.chat import CLOSE_SLACK_S
from tests.botstack import TOKEN, process_stack, running_stack
from tests.harness import ManagedProcess, wait_until
from tests.test_bot_topics import echo
from tests.test_twice24_history import HeldAnswer

if TYPE_CHECKING:
    from pathlib import Path

USER = 2441
PAUSE_AT = 3  # "re: third …" pauses after this many tokens, still streaming when /cancel comes


async def test_cancel_behind_a_waiting_new_stops_the_question_it_waited_for(
    tmp_path: Path,
) -> None:
    telegram = HeldAnswer("re: second", token=TOKEN)
    async with running_stack(tmp_path, answer=echo, telegram_server=telegram) as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "first")
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        stack.telegram.send_text(USER, "second")
        async with asyncio.timeout(10):
            await telegram.holding.wait()  # its stream ended, its final message going out
        stack.vllm.pauses = {PAUSE_AT}  # "third" will stream, then wait
        stack.telegram.send_text(USER, "third")  # waits for "second" to be stored
        new = stack.telegram.send_text(USER, "/new")  # waits for "third" to open
        cancel = stack.telegram.send_text(USER, "/cancel")  # behind /new, in order
        await wait_until(
            lambda: not {u["update_id"] for u in telegram.updates.pending} & {new, cancel},
            within=10,
        )
        telegram.gate.set()
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        # The /cancel was handled after /new, and stopped "third" mid-stream: no resume needed.
        await stack.final_messages(USER, 4, within=30)
        assert await stack.veil.chat.wait_idle(30)
        said = [m["text"] for m in stack.telegram.sent_messages(USER)]
        active = await stack.veil.store.active_conversation(USER)
        fresh = await stack.veil.store.history(USER, active)
        conversations = await stack.veil.store.conversations(USER)
        older = min(c.conversation_id for c in conversations)
        stored = [t.text for t in await stack.veil.store.history(USER, older)]
    assert texts("new_conversation") in said
    assert texts("nothing_to_cancel") not in said
    stopped = [s for s in said if s.startswith("re: third")]
    assert len(stopped) == 1
    assert stopped[0] != echo_of("third")  # stopped mid-answer: its part only
    assert said.index(texts("new_conversation")) < said.index(stopped[0])
    assert fresh == []
    assert stored[-2:] == ["third", stopped[0]]


def echo_of(question: str) -> str:
    """The whole answer the fake model gives ``question``."""
    return f"re: {question} and a few more words to stream"


async def test_a_shutdown_while_new_waits_ends_within_its_bound(tmp_path: Path) -> None:
    """SIGTERM while /new waits on a question held behind a final message that never goes out.

    The process must still stop within the shutdown's bound (grace, stop grace and the close
    slack), exit 0, and leave the held answer to the outbox rather than hang on the wait.
    """
    telegram = HeldAnswer("re: second", token=TOKEN)
    async with process_stack(tmp_path / "data", telegram_server=telegram) as stack:
        stack.vllm.answer = echo
        env = stack.env | {"VEIL_SHUTDOWN_GRACE": "1", "VEIL_STOP_GRACE": "1"}
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started", within=60)
            stack.telegram.send_text(USER, "second")
            async with asyncio.timeout(30):
                await telegram.holding.wait()  # its final message held: never answered
            stack.telegram.send_text(USER, "third")  # waits for "second" to be stored
            new = stack.telegram.send_text(USER, "/new")  # waits for "third" to open
            await wait_until(
                lambda: all(u["update_id"] != new for u in telegram.updates.pending), within=10
            )
            bot.process.send_signal(signal.SIGTERM)
            code = await bot.wait(within=1 + 1 + CLOSE_SLACK_S + 15)
        finally:
            await bot.stop(within=15)
    assert code == 0
