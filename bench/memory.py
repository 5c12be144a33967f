"""What an answer in progress holds, by holder: tracemalloc bytes per private-chat answer.

The whole stack runs in this process (``tests/botstack.py``: the real bot, gateway and fakes).
After a warm-up answer, ``--answers`` questions are asked at once; the fake model holds every
stream at token ``--hold`` of a 200-word answer, and once each shows a draft up to there,
tracemalloc (25 frames, started after the warm-up) takes a snapshot. Traces with a frame in the
gateway's, the fakes' or the tests' code are left out, and so are traces with no frame in the
bot's packages or aiogram: what remains is the bot's side. Each is put under the holder of its
newest frame (aiogram's types and pydantic: aiogram's objects; the rest of aiogram: its handling
of the update; aiohttp; asyncio; our packages), or, when that frame is elsewhere (the standard
library, C), under the nearest frame that is one of those. Also printed: the aiogram ``Update``
and ``Message`` objects alive, and the tasks.

    uv run python bench/memory.py [--answers 40] [--hold 50]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiogram
import aiohttp
import pydantic
from aiogram.types import Message, Update

from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM

REPO = Path(__file__).resolve().parent.parent
WORDS = 200
FRAMES = 25
OURS = tuple(
    f"{REPO / name}/" for name in ("bot", "handlers", "services", "sealed", "models", "common")
)
OTHER = tuple(f"{REPO / name}/" for name in ("gateway", "tests", "playground"))
AIOGRAM = f"{Path(aiogram.__file__).parent}/"
TYPES = (f"{AIOGRAM}types/", f"{AIOGRAM}methods/", f"{Path(pydantic.__file__).parent}/")
AIOHTTP = f"{Path(aiohttp.__file__).parent}/"
ASYNCIO = f"{Path(asyncio.__file__).parent}/"
HOLDERS = ("aiogram handling", "aiogram objects", "aiohttp", "asyncio", "ours", "rest")


def holder_of(filename: str) -> str | None:
    """The holder a frame's file names, or None for any other file."""
    if filename.startswith(TYPES):
        return "aiogram objects"
    known = (
        (AIOGRAM, "aiogram handling"),
        (AIOHTTP, "aiohttp"),
        (ASYNCIO, "asyncio"),
        (OURS, "ours"),
    )
    return next((name for prefix, name in known if filename.startswith(prefix)), None)


def classify(traceback: tracemalloc.Traceback) -> str | None:
    """The trace's holder, or None when it is not the bot's side."""
    files = [frame.filename for frame in traceback]
    if any(f.startswith(OTHER) for f in files) or not any(
        f.startswith((*OURS, AIOGRAM)) for f in files
    ):
        return None
    for filename in reversed(files):  # newest first
        holder = holder_of(filename)
        if holder is not None:
            return holder
    return "rest"


async def measure(answers: int, hold: int) -> None:
    """Ask ``answers`` questions at once, hold them at ``hold``, print what they hold."""
    model = FakeVLLM(answer=" ".join(f"w{i:04d}" for i in range(WORDS)))
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp), model_server=model) as stack:
            stack.telegram.send_text(1, "warm up")  # aiogram builds its models on first use
            await stack.final_messages(1, within=30)
            model.pauses = {hold}
            chats = [1000 + i for i in range(answers)]
            gc.collect()
            tracemalloc.start(FRAMES)
            for chat in chats:
                stack.telegram.send_text(chat, "tell me a long story")
            last = f"w{hold - 1:04d}"
            async with asyncio.timeout(120):
                while model.paused < answers:  # noqa: ASYNC110 -- polls the fake's count
                    await asyncio.sleep(0.05)
                for chat in chats:
                    while not any(  # noqa: ASYNC110 -- polls the fake's record
                        last in str(d.params.get("text")) for d in stack.telegram.drafts(chat)
                    ):
                        await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a draft call answered just now settles
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
            alive = collections.Counter(
                type(thing).__name__
                for thing in gc.get_objects()
                if isinstance(thing, (Update, Message))
            )
            tasks = len(asyncio.all_tasks())
            model.resume()
            for chat in chats:
                await stack.reply_text(chat, within=120)
    held: collections.Counter[str] = collections.Counter()
    for trace in snapshot.traces:
        holder = classify(trace.traceback)
        if holder is not None:
            held[holder] += trace.size
    print(f"{answers} answers held at token {hold}; bytes per answer in progress:")
    for holder in HOLDERS:
        print(f"  {holder:18} {held[holder] / answers / 1000:6.1f} KB")
    print(f"  {'total':18} {sum(held.values()) / answers / 1000:6.1f} KB")
    print(f"aiogram objects alive: {dict(alive)}; tasks in this process (all sides): {tasks}")


def main() -> None:
    """Parse arguments and measure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--hold", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(measure(args.answers, args.hold))


if __name__ == "__main__":
    main()
