"""Memory per concurrent answer (issue 14): what the bot holds while answers stream.

``ANSWERS`` private-chat answers stream at once through the real bot, gateway and fakes (all in
this process, the gateway unshaped: a record a token). The fake model holds every stream at two
token positions; at each, tracemalloc measures the memory allocated since the questions came in
and still held on the bot's side: traces with a frame in the bot's packages or in aiogram and
none in the gateway's, the fakes' or the tests'. Two bounds: bytes per answer at the first
hold (everything an answer in progress keeps: aiogram's update and handler chain, the tasks,
the sinks, the sealed stream's state), and bytes per token between the two holds (an answer
keeps its text, not an object per token: about its own size).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import aiogram

from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM

if TYPE_CHECKING:
    from tests.botstack import Stack

REPO = Path(__file__).resolve().parent.parent
BOT_SIDE = tuple(
    [str(REPO / name) + "/" for name in ("bot", "handlers", "services", "sealed", "models")]
    + [str(Path(aiogram.__file__).parent) + "/"]
)
OTHER_SIDE = tuple(str(REPO / name) + "/" for name in ("gateway", "tests", "playground"))
ANSWERS = 6
FIRST, SECOND = 32, 128  # token positions where the fake model holds every stream
WORDS = 140
FRAMES = 12
# Measured here: ~66 KB per answer in progress (about half of it aiogram's update and handler
# chain) and ~25 B per token; before these bounds, ~72 KB and ~74 B per token (a str object
# per token kept twice, and aiogram's FSM layer on every update). The per-answer bound leaves
# room for a few more keep-alive connections under load; the per-token one is the sharp one.
MAX_BYTES_PER_ANSWER = 76_000
MAX_BYTES_PER_TOKEN = 40


def words(count: int) -> str:
    """An answer of ``count`` numbered words (one token each for the fake model)."""
    return " ".join(f"w{i:04d}" for i in range(count))


def bot_side_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes held by traces with a frame in the bot's code or aiogram and none elsewhere."""
    total = 0
    for trace in snapshot.traces:
        files = [frame.filename for frame in trace.traceback]
        if any(f.startswith(OTHER_SIDE) for f in files):
            continue
        if any(f.startswith(BOT_SIDE) for f in files):
            total += trace.size
    return total


def shown(stack: Stack, chat: int) -> str:
    """The text of the newest draft shown in ``chat``."""
    drafts = stack.telegram.drafts(chat)
    return str(drafts[-1].params.get("text", "")) if drafts else ""


async def held_at(stack: Stack, chats: list[int], position: int) -> int:
    """Wait until every stream is held at ``position`` and shown up to it; the bytes held."""
    last = f"w{position - 1:04d}"
    async with asyncio.timeout(60):
        while stack.vllm.paused < len(chats):  # noqa: ASYNC110 -- polls the fake's count
            await asyncio.sleep(0.02)
        for chat in chats:
            while last not in shown(stack, chat):  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # a draft call answered just now settles
    gc.collect()
    return bot_side_bytes(tracemalloc.take_snapshot())


async def test_memory_per_concurrent_answer(tmp_path: Path) -> None:
    """Concurrent answers hold a bounded amount each, and their text costs about its size."""
    model = FakeVLLM(answer=words(WORDS))
    async with running_stack(tmp_path, model_server=model) as stack:
        stack.telegram.send_text(1, "warm up")  # aiogram builds its models on first use
        await stack.final_messages(1, within=30)
        model.pauses = {FIRST, SECOND}
        chats = [1000 + i for i in range(ANSWERS)]
        gc.collect()
        tracemalloc.start(FRAMES)
        try:
            for chat in chats:
                stack.telegram.send_text(chat, "tell me a long story")
            first = await held_at(stack, chats, FIRST)
            model.resume()
            second = await held_at(stack, chats, SECOND)
        finally:
            model.resume()
            tracemalloc.stop()
        for chat in chats:
            assert await stack.reply_text(chat, within=60) == words(WORDS)
    per_answer = first / ANSWERS
    per_token = (second - first) / ANSWERS / (SECOND - FIRST)
    measured = f"{per_answer:.0f} B per answer in progress, {per_token:.1f} B per token"
    assert per_answer <= MAX_BYTES_PER_ANSWER, measured
    assert per_token <= MAX_BYTES_PER_TOKEN, measured
