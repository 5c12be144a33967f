"""Benchmark of the whole private-chat path: the bot process under 1 and 50 users at once.

The bot runs as ``python -m bot`` against the fake Telegram server (in this process), a real
gateway process and the fake vLLM (in this process, so its token times share our clock),
answering 300-word answers at 20 ms a word. Printed per run: the bot's CPU seconds per answer,
Bot API calls by method, first token → first visible draft, last token → final message, the
most updates a second sent to one chat, the bot's peak RSS, and the share of answers that
arrived complete; the gateway's sealed records and bytes per answer (from its metrics) and its
CPU time per relayed token; then the same with 1 in 5 draft calls answered 429 (retry_after 3).
Every run is made once per stream shape in ``--shapes`` (a gateway each: shaped, ``tick``, the
default; per-token, ``off``), in the same run of the benchmark.

    uv run python bench/chat.py [--users 1,50] [--words 300] [--word-delay 0.02] [--clean-only]
        [--shapes tick,off] [--rounds 1]

With several levels it also prints the RSS growth per concurrent answer above the smallest.
With ``--rounds N`` each run is made N times (a fresh bot each) and the latencies are also
printed as the median of the rounds' medians with their range: single runs of the same code
spread fourfold here (the ends of 50 answers at once, on two cores shared by five processes).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import operator
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from tests.botstack import TOKEN, bot_env
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.harness import GatewayProcess, ManagedProcess, gateway_process, new_operator_key

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Result:
    """One run's figures."""

    users: int
    cpu_per_answer: float
    calls: dict[str, int]
    first_draft_ms: list[float]
    final_ms: list[float]
    max_updates_per_second: int
    rss_mib: float
    complete: float
    records: float  # sealed records per answer, gateway to bot
    sealed_kib: float  # their bytes per answer
    gateway_us_per_token: float  # the gateway process's CPU time per relayed token


async def gateway_counts(gateway: GatewayProcess) -> tuple[float, float, float]:
    """The gateway's sealed chunks and bytes sent so far (its metrics), and its CPU seconds."""
    async with aiohttp.ClientSession() as http, http.get(gateway.metrics_url) as response:
        text = await response.text()
    values = dict.fromkeys(("veil_gateway_chunks_total", "veil_gateway_sealed_bytes_total"), 0.0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    chunks, size = values.values()
    return chunks, size, cpu_seconds(gateway.pid)


def answer_for(words: int) -> str:
    """A 300-word answer in a few paragraphs, with some Markdown."""
    body = [f"**Point {i // 50 + 1}.** " if i % 50 == 0 else "" for i in range(words)]
    text = " ".join(f"{prefix}word{i}" for i, prefix in enumerate(body))
    return text.replace(" **Point", "\n\n**Point")


async def run(  # noqa: PLR0913 -- one run's knobs and fixtures
    users: int,
    words: int,
    delay: float,
    *,
    flaky: bool,
    first_chat: int,
    gateway: GatewayProcess,
    verify_key: bytes,
    telegram: FakeTelegram,
    vllm: FakeVLLM,
) -> Result:
    """Start a fresh bot process, let ``users`` ask at once, measure, stop it.

    The users' chats are ``first_chat`` on: each run's own (the fake Telegram keeps every
    run's messages).
    """
    with tempfile.TemporaryDirectory() as data:
        env = bot_env(telegram.url, gateway.url, verify_key, Path(data))
        env["VEIL_DRAFT_INTERVAL"] = "1.0"
        env["VEIL_LOG_LEVEL"] = "WARNING"
        telegram.calls.clear()
        telegram.clear_failures()
        profile = os.environ.get("VEIL_BENCH_PROFILE")
        command = ("-m", "cProfile", "-o", profile, "-m", "bot") if profile else ("-m", "bot")
        bot = await ManagedProcess.start(*command, env=env)
        # Its last call before it polls: the fake records a long poll only once it returns (an
        # empty one after its whole timeout, 10 s), and updates sent now wait for the first.
        await telegram.wait_for("setMyCommands", timeout=60)
        await asyncio.sleep(0.5)  # let start-up settle before the CPU clock starts
        telegram.calls.clear()
        vllm.requests.clear()
        vllm.token_times.clear()
        if flaky:
            telegram.fail_every({"sendMessageDraft", "editMessageText"}, nth=5, retry_after=3)
        cpu_before = cpu_seconds(bot.process.pid)
        counts_before = await gateway_counts(gateway)
        chats = [first_chat + i for i in range(users)]
        for chat in chats:
            telegram.send_text(chat, f"user {chat}: tell me a long story")
        expected = answer_for(words)
        deadline = asyncio.get_running_loop().time() + words * delay + 60
        while asyncio.get_running_loop().time() < deadline:
            done = sum(1 for chat in chats if telegram.sent_messages(chat))
            if done == users:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        cpu = cpu_seconds(bot.process.pid) - cpu_before
        chunks, size, gateway_cpu = map(operator.sub, await gateway_counts(gateway), counts_before)
        rss = peak_rss_mib(bot.process.pid)
        await bot.stop()
    calls = collections.Counter(c.method for c in telegram.calls if c.method != "getUpdates")
    first_draft, final, complete, busiest = timings(telegram, vllm, expected)
    return Result(
        users,
        cpu / users,
        dict(calls),
        first_draft,
        final,
        busiest,
        rss,
        complete / users,
        chunks / users,
        size / users / 1024,
        gateway_cpu / (users * len(split_tokens(expected))) * 1e6,
    )


def timings(
    telegram: FakeTelegram, vllm: FakeVLLM, expected: str
) -> tuple[list[float], list[float], int, int]:
    """The answers' latencies, how many arrived complete, the most updates to a chat in 1 s.

    Per answer, in ms: first token → first draft, last token → final message.
    """
    first_draft: list[float] = []
    final: list[float] = []
    complete = busiest = 0
    for request_index, first_at, last_at in vllm.token_times:
        prompt = vllm.requests[request_index]["messages"][-1]["content"]
        chat = int(prompt.split()[1].rstrip(":"))
        drafts = [c for c in telegram.drafts(chat) if c.at >= first_at]
        if drafts:
            first_draft.append((drafts[0].at - first_at) * 1000)
        finals = [
            c
            for c in telegram.calls_of("sendMessage")
            if c.params.get("chat_id") == chat and c.answered == "ok"
        ]
        if finals:
            final.append((finals[-1].at - last_at) * 1000)
        text = "\n\n".join(m.get("text", "") for m in telegram.sent_messages(chat))
        complete += text.replace("**", "") == expected.replace("**", "")
        updates = [
            c.at
            for c in telegram.calls
            if c.method in {"sendMessageDraft", "editMessageText"}
            and c.params.get("chat_id") == chat
            and c.answered == "ok"
        ]
        for start in updates:
            busiest = max(busiest, sum(1 for at in updates if start <= at < start + 1.0))
    return first_draft, final, complete, busiest


def show(result: Result, label: str) -> None:
    """Print one run."""

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.0f}" if values else "n/a"

    def worst(values: list[float]) -> str:
        return f"{max(values):.0f}" if values else "n/a"

    print(f"\n{label}: {result.users} user(s)")
    print(f"  bot CPU per answer        {result.cpu_per_answer:.3f} s")
    print(f"  Bot API calls             {dict(sorted(result.calls.items()))}")
    print(
        f"  first token → first draft median {med(result.first_draft_ms)} ms, "
        f"worst {worst(result.first_draft_ms)} ms"
    )
    print(
        f"  last token → final message median {med(result.final_ms)} ms, "
        f"worst {worst(result.final_ms)} ms"
    )
    print(f"  most draft updates in any 1 s to one chat {result.max_updates_per_second}")
    print(f"  bot peak RSS              {result.rss_mib:.0f} MiB")
    print(f"  answers complete          {result.complete:.0%}")
    print(
        f"  gateway: {result.records:.0f} records, {result.sealed_kib:.1f} KiB sealed per answer;"
        f" CPU {result.gateway_us_per_token:.0f} µs per relayed token"
    )


def show_memory(results: list[Result]) -> None:
    """RSS growth per concurrent answer above the smallest run (the import floor and one answer)."""
    floor = min(results, key=lambda result: result.users)
    for result in results:
        if result.users == floor.users:
            continue
        growth = (result.rss_mib - floor.rss_mib) * 1024 / (result.users - floor.users)
        print(
            f"  RSS growth at {result.users} answers: {growth:.0f} KiB per answer above"
            f" {floor.users} ({floor.rss_mib:.0f} → {result.rss_mib:.0f} MiB; aim ≤ 50 KB)"
        )


def show_rounds(rounds: list[Result]) -> None:
    """The latencies over several runs of one level: the median of their medians, the range."""
    for label, medians in (
        ("first token → first draft", [statistics.median(r.first_draft_ms) for r in rounds]),
        ("last token → final message", [statistics.median(r.final_ms) for r in rounds]),
    ):
        print(
            f"  {label} over {len(rounds)} rounds: median {statistics.median(medians):.0f} ms"
            f" (rounds {min(medians):.0f} to {max(medians):.0f} ms)"
        )


async def main_async(  # noqa: PLR0913 -- the benchmark's knobs
    levels: list[int],
    words: int,
    delay: float,
    *,
    flaky_too: bool,
    shapes: list[str],
    rounds: int = 1,
) -> None:
    """Start the fakes, then for each shape a gateway and every level with and without 429s."""
    with tempfile.TemporaryDirectory() as tmp:
        key_file, verify_key = await new_operator_key(Path(tmp))
        async with (
            FakeTelegram(token=TOKEN) as telegram,
            FakeVLLM(answer=answer_for(words), token_delay=delay) as vllm,
        ):
            first_chat = 10_000_000
            for shape in shapes:
                env = {"VEIL_STREAM_SHAPE": shape}
                async with gateway_process(vllm.url, key_file, env) as gateway:
                    for flaky in (False, True) if flaky_too else (False,):
                        results = []
                        for users in levels:
                            made = []
                            for _ in range(rounds):
                                result = await run(
                                    users,
                                    words,
                                    delay,
                                    flaky=flaky,
                                    first_chat=first_chat,
                                    gateway=gateway,
                                    verify_key=verify_key,
                                    telegram=telegram,
                                    vllm=vllm,
                                )
                                bot_api = "1 in 5 drafts answered 429 (retry_after 3)"
                                show(result, f"{shape}, {bot_api if flaky else 'clean Bot API'}")
                                made.append(result)
                                first_chat += users
                            if rounds > 1:
                                show_rounds(made)
                            results.append(made[0])
                        show_memory(results)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", default="1,50")
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--word-delay", type=float, default=0.02)
    parser.add_argument("--clean-only", action="store_true", help="skip the runs with 429s")
    parser.add_argument(
        "--shapes",
        default="tick,off",
        help="the gateway's stream shapes to run, each a VEIL_STREAM_SHAPE (comma-separated)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each level")
    args = parser.parse_args()
    levels = [int(x) for x in args.users.split(",")]
    asyncio.run(
        main_async(
            levels,
            args.words,
            args.word_delay,
            flaky_too=not args.clean_only,
            shapes=args.shapes.split(","),
            rounds=args.rounds,
        )
    )


if __name__ == "__main__":
    main()
