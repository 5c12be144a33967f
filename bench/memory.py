"""What an answer in progress holds, by holder: tracemalloc bytes per private-chat answer.

The whole stack runs in this process (``tests/botstack.py``: the real bot, gateway and fakes).
After a warm-up answer, ``--answers`` questions are asked at once; the fake model holds every
stream at token ``--hold`` of a 200-word answer, and once each shows a draft up to there,
tracemalloc (25 frames, started after the warm-up) takes a snapshot. Traces with a frame in the
gateway's, the fakes' or the tests' code (or the listeners' guard, serving only the gateway
here) are left out, and so are traces with no frame in the bot's packages or aiogram: what
remains is the bot's side. Each is put under the holder of its
newest frame (aiogram's types and pydantic: aiogram's objects; the rest of aiogram: its handling
of the update; aiohttp; asyncio; our packages), or, when that frame is elsewhere (the standard
library, C), under the nearest frame that is one of those. Also printed: the aiogram ``Update``
and ``Message`` objects alive, and the tasks. With ``--group`` the questions are mentions in one
group instead: one answer streams (held), the others wait for the group's turn. With ``--inline``
they are inline questions, each answer streaming into its own inline message by edits, and each
is held once an edit shows it up to there.

    uv run python bench/memory.py [--answers 40] [--hold 50] [--group | --inline]
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

from tests.botstack import Stack, running_stack
from tests.fakes.vllm import FakeVLLM

REPO = Path(__file__).resolve().parent.parent
WORDS = 200
GROUP = -1_001_234_567
GROUP_PACE = {"edit_interval": 0.2, "group_messages_per_minute": 6000}  # the group's queue moves
FRAMES = 25
OURS = tuple(
    f"{REPO / name}/" for name in ("bot", "handlers", "services", "sealed", "models", "common")
)
# The listeners' guard (``common.connections``) is the gateway's here: the bot polls and serves no
# request while answers stream, and a gateway connection's state, made in the guard's callbacks,
# has no frame in gateway/ (counted as the bot's, it added ~8 KB to each answer since 5939918).
OTHER = (
    *(f"{REPO / name}/" for name in ("gateway", "tests", "playground")),
    f"{REPO / 'common' / 'connections.py'}",
)
AIOGRAM = f"{Path(aiogram.__file__).parent}/"
TYPES = (f"{AIOGRAM}types/", f"{AIOGRAM}methods/", f"{Path(pydantic.__file__).parent}/")
AIOHTTP = f"{Path(aiohttp.__file__).parent}/"
ASYNCIO = f"{Path(asyncio.__file__).parent}/"
HOLDERS = ("aiogram handling", "aiogram objects", "aiohttp", "asyncio", "ours", "rest")


async def all_held(stack: Stack, model: FakeVLLM, users: list[int], hold: int) -> None:
    """Wait until every private chat's stream is held at ``hold`` and shown up to it."""
    last = f"w{hold - 1:04d}"
    while model.paused < len(users):  # noqa: ASYNC110 -- polls the fake's count
        await asyncio.sleep(0.05)
    for user in users:
        while not any(  # noqa: ASYNC110 -- polls the fake's record
            last in str(d.params.get("text")) for d in stack.telegram.drafts(user)
        ):
            await asyncio.sleep(0.05)


async def ask_inline(stack: Stack, users: list[int]) -> list[str]:
    """Ask each user's inline question and choose its article; the inline messages' ids."""
    for user in users:
        stack.telegram.inline_query(user, f"tell me a long story {user}")
    chosen = []
    for user in users:
        question = f"tell me a long story {user}"
        answered = await stack.telegram.wait_for(
            "answerInlineQuery", lambda c, q=question: q in c.params["results"][0]["title"]
        )
        result_id = answered.params["results"][0]["id"]
        chosen.append(f"inline-{result_id}")
        stack.telegram.choose_inline_result(user, result_id, question, inline_message_id=chosen[-1])
    return chosen


async def all_edited(stack: Stack, model: FakeVLLM, inline: list[str], hold: int) -> None:
    """Wait until every inline answer is held at ``hold`` and an edit shows it up to there."""
    last = f"w{hold - 1:04d}"
    while model.paused < len(inline):  # noqa: ASYNC110 -- polls the fake's count
        await asyncio.sleep(0.05)
    for message in inline:
        while last not in str(  # noqa: ASYNC110 -- polls the fake's record
            stack.telegram.state.inline_messages[message].get("text")
        ):
            await asyncio.sleep(0.05)


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


async def measure(answers: int, hold: int, *, group: bool, inline: bool) -> None:
    """Ask ``answers`` questions at once, hold them at ``hold``, print what they hold."""
    model = FakeVLLM(answer=" ".join(f"w{i:04d}" for i in range(WORDS)))
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp), model_server=model, **GROUP_PACE) as stack:
            stack.telegram.send_text(1, "warm up")  # aiogram builds its models on first use
            await stack.final_messages(1, within=30)
            model.pauses = {hold}
            users = [1000 + i for i in range(answers)]
            gc.collect()
            tracemalloc.start(FRAMES)
            if inline:
                messages = await ask_inline(stack, users)
            for user in users:
                if group:
                    stack.telegram.send_text(user, "@veil_test_bot tell me", chat_id=GROUP)
                elif not inline:
                    stack.telegram.send_text(user, "tell me a long story")
            async with asyncio.timeout(120):
                if group:
                    await one_held(model)
                elif inline:
                    await all_edited(stack, model, messages, hold)
                else:
                    await all_held(stack, model, users, hold)
            await asyncio.sleep(0.5)  # a draft call answered just now settles
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
            kinds = (Update, Message)
            alive = collections.Counter(
                type(thing).__name__ for thing in gc.get_objects() if isinstance(thing, kinds)
            )
            tasks = len(asyncio.all_tasks())
            model.pauses = set()
            model.resume()
            async with asyncio.timeout(300):
                while len(model.requests) < answers + 1:  # noqa: ASYNC110 -- polls the fake
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the last answers end
    where = "answers held at"
    if group:
        where = "mentions in one group, one streaming, held at"
    elif inline:
        where = "inline answers held at"
    print(f"{answers} {where} token {hold}; bytes per answer in progress:")
    report(snapshot, answers)
    print(f"aiogram objects alive: {dict(alive)}; tasks in this process (all sides): {tasks}")


async def one_held(model: FakeVLLM) -> None:
    """Wait until the group's first answer is held; the others wait for the group's turn."""
    while model.paused < 1:  # noqa: ASYNC110 -- polls the fake's count
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # every mention has been handled meanwhile


def report(snapshot: tracemalloc.Snapshot, answers: int) -> None:
    """Bytes per answer by holder."""
    held: collections.Counter[str] = collections.Counter()
    for trace in snapshot.traces:
        holder = classify(trace.traceback)
        if holder is not None:
            held[holder] += trace.size
    for holder in HOLDERS:
        print(f"  {holder:18} {held[holder] / answers / 1000:6.1f} KB")
    print(f"  {'total':18} {sum(held.values()) / answers / 1000:6.1f} KB")


def main() -> None:
    """Parse arguments and measure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--hold", type=int, default=50)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--group", action="store_true", help="mentions in one group instead")
    where.add_argument("--inline", action="store_true", help="inline questions instead")
    args = parser.parse_args()
    asyncio.run(measure(args.answers, args.hold, group=args.group, inline=args.inline))


if __name__ == "__main__":
    main()
