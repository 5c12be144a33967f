"""Benchmark of group answers: N members mention the bot in one group, then in 10 groups.

The bot runs as ``python -m bot`` against the fake Telegram server (in this process, with
Telegram's flood limit of 20 sends and edits a minute per group turned on), a real gateway
process and the fake vLLM. Printed per scenario: the most sends + edits in any 60 s to one
group (must stay ≤ 20), 429s received, the share of answers that arrived complete, and
last token → final edit (median and worst; in one busy group most of it is waiting for the
group's turn, which is the point).

    uv run python bench/groups.py [--users 20] [--words 40] [--word-delay 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.botstack import TOKEN, bot_env
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import ManagedProcess, gateway_process, new_operator_key

GROUP_LIMIT = 20  # Telegram's sends and edits a minute into one group
BASE_GROUP = -1_002_000_000_000


def answer_for(words: int) -> str:
    """The fake model's answer: ``words`` words."""
    return " ".join(f"word{n}" for n in range(words)) + "."


@dataclass(frozen=True)
class Servers:
    """What a scenario talks to: the fakes, and the bot's environment."""

    telegram: FakeTelegram
    vllm: FakeVLLM
    env: dict[str, str]


async def scenario(users: int, groups: int, words: int, servers: Servers) -> None:
    """Start a bot, let ``users`` mention it spread over ``groups``, wait, print."""
    telegram, vllm, env = servers.telegram, servers.vllm, servers.env
    telegram.calls.clear()
    telegram.floods.clear()
    telegram.limit_groups(GROUP_LIMIT)
    bot = await ManagedProcess.start("-m", "bot", env=env)
    try:
        # Its last call before it polls (a long poll is recorded only once it returns: 10 s).
        await telegram.wait_for("setMyCommands", timeout=60)
        telegram.calls.clear()
        vllm.requests.clear()
        vllm.token_times.clear()
        base = BASE_GROUP - groups * 1000  # each scenario in groups of its own
        chats = [base - (n % groups) for n in range(users)]
        for n, chat in enumerate(chats):
            telegram.send_text(9_000_000 + n, f"@veil_test_bot question {n}", chat_id=chat)
        expected = answer_for(words)
        per_group = -(-users // groups)
        deadline = asyncio.get_running_loop().time() + per_group * 3 * 60 / GROUP_LIMIT + 120
        while asyncio.get_running_loop().time() < deadline:
            done = sum(
                1
                for chat in set(chats)
                for m in telegram.sent_messages(chat)
                if m.get("text") == expected
            )
            if done == users:
                break
            await asyncio.sleep(0.2)
    finally:
        await bot.stop()
    busiest = 0
    for chat in set(chats):
        times = [
            c.at
            for c in telegram.calls
            if c.method in {"sendMessage", "editMessageText"}
            and c.params.get("chat_id") == chat
            and c.answered == "ok"
        ]
        for start in times:
            busiest = max(busiest, sum(1 for at in times if start <= at < start + 60.0))
    complete = sum(
        1 for chat in set(chats) for m in telegram.sent_messages(chat) if m.get("text") == expected
    )
    finals = []
    for _index, _first, last in vllm.token_times:
        edits = [
            c.at
            for c in telegram.calls_of("editMessageText")
            if c.answered == "ok" and c.params.get("text") == expected and c.at >= last
        ]
        if edits:
            finals.append((min(edits) - last) * 1000)
    print(f"\n{users} users in {groups} group(s), {words}-word answers")
    print(f"  most sends + edits in 60 s to one group  {busiest} (limit {GROUP_LIMIT})")
    print(f"  429s received                            {len(telegram.floods)}")
    print(f"  answers complete                         {complete}/{users}")
    if finals:
        print(
            f"  last token → final edit  median {statistics.median(finals):.0f} ms,"
            f" worst {max(finals):.0f} ms"
        )


async def main_async(users: int, words: int, delay: float) -> None:
    """Start the fakes and a gateway, then run both scenarios."""
    with tempfile.TemporaryDirectory() as tmp:
        key_file, verify_key = await new_operator_key(Path(tmp))
        async with (
            FakeTelegram(token=TOKEN) as telegram,
            FakeVLLM(answer=answer_for(words), token_delay=delay) as vllm,
            gateway_process(vllm.url, key_file) as gateway,
        ):
            for groups in (1, 10):
                with tempfile.TemporaryDirectory() as data:
                    env = bot_env(telegram.url, gateway.url, verify_key, Path(data))
                    env["VEIL_LOG_LEVEL"] = "WARNING"
                    env["VEIL_FREE_TOKENS_PER_DAY"] = "1000000"
                    await scenario(users, groups, words, Servers(telegram, vllm, env))


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--word-delay", type=float, default=0.02)
    args = parser.parse_args()
    asyncio.run(main_async(args.users, args.words, args.word_delay))


if __name__ == "__main__":
    main()
