"""What a month of uptime leaves behind: the bot's memory after N distinct users, one question each.

The whole stack runs in this process (``tests/botstack.py``: the real bot, gateway and fakes).
``--users`` distinct users each ask one question in their private chat, ``--batch`` at a time;
once every answer is in and the bot is idle, this prints the process's RSS (all sides: bot,
gateway, fakes) and every non-empty dict, set, list or deque reachable from the bot's parts
(``Veil`` and the dispatcher's workflow data), by the path it is reached by, with its size.
A structure whose size follows the users (``per user`` near 1) grows for good as more users
come; a bounded one stops at its bound. Run it at two sizes and compare.

    uv run python bench/uptime.py [--users 1000] [--batch 50] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import resource
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.logs import configure_logging
from tests.botstack import Stack, running_stack

if TYPE_CHECKING:
    from collections.abc import Callable

CONTAINERS = (dict, set, frozenset, list, collections.deque)
# What the walk does not enter: code, the loop, and what the bot only talks to.
STOP = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    asyncio.AbstractEventLoop,
    str,
    bytes,
    int,
    float,
)
DEPTH = 9
ANSWER = "A short answer."
PACE = {"edit_interval": 0.2, "group_messages_per_minute": 6000}  # groups' and edits' pace


def rss_mib() -> float:
    """This process's resident memory now, MiB (``/proc``; the peak where that is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children(thing: object) -> list[tuple[str, object]]:
    """(name, object) for what ``thing`` holds: attributes, slots, items."""
    if isinstance(thing, dict):
        return [(f"[{key!r}]"[:40], value) for key, value in list(thing.items())[:50]]
    if isinstance(thing, (list, tuple, collections.deque, set, frozenset)):
        return [(f"[{i}]", value) for i, value in enumerate(list(thing)[:50])]
    found: list[tuple[str, object]] = []
    own = getattr(thing, "__dict__", None)
    if isinstance(own, dict):
        found += [(f".{name}", value) for name, value in own.items()]
    for klass in type(thing).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if isinstance(name, str) and hasattr(thing, name):
                found.append((f".{name}", getattr(thing, name)))
    return found


def footprint(container: Any) -> int:  # noqa: ANN401 -- any of ``CONTAINERS``
    """Bytes of ``container`` and what it holds directly (keys, values; not what they hold)."""
    items = list(container.items()) if isinstance(container, dict) else list(container)
    held = [part for item in items for part in (item if isinstance(container, dict) else (item,))]
    return sys.getsizeof(container) + sum(sys.getsizeof(part) for part in held)


def structures(roots: dict[str, object]) -> list[tuple[int, str, str, int]]:
    """(size, path, type, bytes) of each non-empty container reachable from ``roots``, once."""
    seen: set[int] = set()
    found: list[tuple[int, str, str, int]] = []
    queue: collections.deque[tuple[str, object, int]] = collections.deque(
        (name, root, 0) for name, root in roots.items()
    )
    while queue:
        path, thing, depth = queue.popleft()
        if id(thing) in seen or isinstance(thing, STOP) or depth > DEPTH:
            continue
        seen.add(id(thing))
        if isinstance(thing, CONTAINERS) and len(thing) and not isinstance(thing, tuple):
            found.append((len(thing), path, type(thing).__name__, footprint(thing)))
        queue.extend((path + name, child, depth + 1) for name, child in _children(thing))
    return found


def _asked(stack: Stack, user: int, where: str) -> Callable[[], bool]:
    """Ask ``user``'s question ``where``; a check that its answer is in."""
    question = f"one question from {user}"
    if where == "group":  # each in a group of their own
        group = -1_000_000_000_000 - user
        stack.telegram.send_text(user, f"@veil_test_bot {question}", chat_id=group)
        return lambda: any(
            ANSWER in str(m.get("text")) for m in stack.telegram.sent_messages(group)
        )
    if where == "inline":
        stack.telegram.inline_query(user, question)
        return lambda: (
            ANSWER
            in str(stack.telegram.state.inline_messages.get(f"inline-{user}", {}).get("text"))
        )
    stack.telegram.send_text(user, question)
    return lambda: bool(stack.telegram.sent_messages(user))


async def choose(stack: Stack, users: list[int]) -> None:
    """Each inline asker picks the article their query was answered with."""
    for user in users:
        question = f"one question from {user}"
        answered = await stack.telegram.wait_for(
            "answerInlineQuery", lambda c, q=question: q in c.params["results"][0]["title"]
        )
        result = answered.params["results"][0]["id"]
        stack.telegram.choose_inline_result(
            user, result, question, inline_message_id=f"inline-{user}"
        )


async def ask(stack: Stack, users: list[int], batch: int, where: str) -> float:
    """Each user asks one question, ``batch`` at a time; seconds until all are answered."""
    started = time.monotonic()
    for at in range(0, len(users), batch):
        answered = [_asked(stack, user, where) for user in users[at : at + batch]]
        if where == "inline":
            await choose(stack, users[at : at + batch])
        async with asyncio.timeout(60 + batch):
            for done in answered:
                while not done():  # noqa: ASYNC110 -- polls the fake
                    await asyncio.sleep(0.02)
    async with asyncio.timeout(60):
        while stack.veil.chat.running:  # noqa: ASYNC110 -- the last answers are stored
            await asyncio.sleep(0.02)
    return time.monotonic() - started


async def measure(users: int, batch: int, top: int, where: str) -> None:
    """Run ``users`` distinct users through the bot; print RSS and the structures' sizes."""
    configure_logging("WARNING")  # a line an answer would be most of the run
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp), answer=ANSWER, **PACE) as stack:
            # The harness's gateway reads a clock tests move by hand: a run of minutes needs
            # the wall clock, or its requests come out stale (400) past the allowed skew.
            stack.gateway.gateway.clock = time.time
            stack.telegram.send_text(1, "warm up")
            await stack.final_messages(1, within=30)
            gc.collect()
            before = rss_mib()
            took = await ask(stack, [100_000 + i for i in range(users)], batch, where)
            gc.collect()
            after = rss_mib()
            veil = stack.veil
            roots: dict[str, object] = {
                f"veil.{name}": getattr(veil, name)
                for name in ("store", "chat", "credit", "shop", "desk", "operations", "relay")
            }
            workflow: dict[str, Any] = veil.dispatcher.workflow_data
            roots |= {f"dp[{name!r}]": value for name, value in workflow.items()}
            roots["dispatcher"] = veil.dispatcher
            roots["gateway"] = stack.gateway.gateway
            found = sorted(structures(roots), reverse=True)
    print(f"{users} distinct users, one question each ({where}), answered in {took:.1f} s")
    print(f"RSS (whole process: bot, gateway, fakes): {before:.1f} MiB before, {after:.1f} after")
    print(f"  {'size':>7} {'per user':>8} {'KiB':>8}  structure (type)")
    for size, path, kind, taken in found[:top]:
        print(f"  {size:7d} {size / users:8.3f} {taken / 1024:8.1f}  {path} ({kind})")


def main() -> None:
    """Parse arguments and measure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--where", choices=("private", "group", "inline"), default="private")
    args = parser.parse_args()
    asyncio.run(measure(args.users, args.batch, args.top, args.where))


if __name__ == "__main__":
    main()
