"""Benchmark of the sealed channel: crypto cost, and what the gateway adds end to end.

Prints seal/open time per request, per-chunk overhead, the client authentication's cost (the
bot's Ed25519 signature over the sealed bytes and the gateway's check), and then, with 1, 50
and 200 concurrent streams against the fake vLLM on loopback, for each path in the same run
(direct to the fake vLLM; a per-token gateway, ``VEIL_STREAM_SHAPE=off``; a shaped gateway per
tick in ``--ticks``; each on its default event loop, uvloop; with ``--asyncio`` each gateway
again on asyncio's own loop, ``VEIL_GATEWAY_LOOP=asyncio``; with ``--processes N`` each shaped
path again as N gateway processes, each its own gateway with its own key, the requests going to
them in turn as the bot sends them to the gateways it is given; with ``--baseline DIR``
each gateway again from the source tree in DIR, say the main branch's, for a before/after in
one run, the paths taking turns): median time to first
text and total time (and their difference and ratio to direct), records and sealed bytes per
answer, and the gateway process's CPU time per relayed token (from /proc, all its threads; the
median of the rounds, and with more than one round their range).
The fake vLLM and every gateway run as separate processes, as in production; the client here
seals, signs and opens as the bot does.

    uv run python bench/sealed.py [--tokens 64] [--token-delay 0.01] [--ticks 0.1,0.15,0.25]
        [--rounds 3] [--spread] [--asyncio] [--processes 4] [--baseline DIR]

``--spread``: each level's streams come as a steady flow (one every answer's duration / level,
twice the level, the second half timed) instead of all at the same instant.

    git archive main | tar -x -C /tmp/base   # a baseline tree, if wanted
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.shaping import DEFAULT_TICK
from sealed.auth import (
    CLIENT_KEY_HEADER,
    CLIENT_SIGNATURE_HEADER,
    check_client_signature,
    client_auth_headers,
    parse_verify_key,
)
from sealed.bundle import KeyBundle, verify_bundle
from sealed.receipt import ReceiptStatus, UsageReceipt, sign_receipt
from sealed.request import new_request_secrets, open_request, seal_request
from sealed.stream import ChunkOpener, ChunkSealer, Delta, Final
from sealed.suites import KeyPair, Suite
from tests.harness import (
    CLIENT_KEY,
    SEALED_REQUEST_TYPE,
    ManagedProcess,
    client_keys_setting,
    new_operator_key,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MESSAGES = [{"role": "user", "content": "Tell me about the sea. " * 40}]


def micro(suite: Suite, rounds: int = 300) -> dict[str, float]:
    """Seal/open of a ~1 KB request, and seal+open of one chunk, in microseconds."""
    keypair = KeyPair.generate(suite)
    bundle = KeyBundle(suite, keypair.public_bytes, keypair.key_id, 0, 2**40, ("m",), b"\0" * 32)
    chat = {"model": "m", "messages": MESSAGES}
    sealed = []
    start = time.perf_counter()
    for _ in range(rounds):
        request_id, key = new_request_secrets()
        sealed.append(
            seal_request(bundle, chat, request_id=request_id, response_key=key, timestamp=0)
        )
    seal_us = (time.perf_counter() - start) / rounds * 1e6
    start = time.perf_counter()
    for body in sealed:
        open_request(body, keypair)
    open_us = (time.perf_counter() - start) / rounds * 1e6
    key = b"\x01" * 32
    sealer, opener = ChunkSealer(key), ChunkOpener(key)
    chunks = 5000
    start = time.perf_counter()
    for _ in range(chunks):
        opener.feed(sealer.delta(" token"))
    chunk_us = (time.perf_counter() - start) / chunks * 1e6
    # A shaped stream seals once a tick: 15 tokens' text in one 256-byte record.
    sealer, opener = ChunkSealer(key), ChunkOpener(key)
    start = time.perf_counter()
    for _ in range(chunks // 15):
        opener.feed(sealer.delta(" token" * 15, pad_to=256))
    tick_us = (time.perf_counter() - start) / (chunks // 15 * 15) * 1e6
    signer = ed25519.Ed25519PrivateKey.generate()
    start = time.perf_counter()
    for _ in range(rounds):
        sign_receipt(UsageReceipt(b"\0" * 16, "m", 10, 10, ReceiptStatus.COMPLETE), signer)
    receipt_us = (time.perf_counter() - start) / rounds * 1e6
    _ = Final
    sign_us, verify_us = client_auth(sealed[0], rounds)
    return {
        "seal": seal_us,
        "open": open_us,
        "chunk": chunk_us,
        "tick": tick_us,
        "receipt": receipt_us,
        "auth_sign": sign_us,
        "auth_verify": verify_us,
    }


def client_auth(body: bytes, rounds: int) -> tuple[float, float]:
    """Client authentication of one sealed body: the bot's signing and the gateway's check (µs)."""
    start = time.perf_counter()
    for _ in range(rounds):
        headers = client_auth_headers(CLIENT_KEY, body)
    sign_us = (time.perf_counter() - start) / rounds * 1e6
    verify_key = parse_verify_key(headers[CLIENT_KEY_HEADER])
    start = time.perf_counter()
    for _ in range(rounds):
        check_client_signature(verify_key, headers[CLIENT_SIGNATURE_HEADER], body)
    verify_us = (time.perf_counter() - start) / rounds * 1e6
    return sign_us, verify_us


@dataclass(frozen=True)
class Member:
    """One gateway process: where it listens, and its verified bundle."""

    process: ManagedProcess
    url: str
    bundle: KeyBundle


@dataclass
class Gateway:
    """One path under test: its gateway processes, and how they shape their streams.

    The client takes the processes in turn, as the bot takes the gateways of
    ``VEIL_GATEWAYS`` (round robin); each has its own key, as separate gateways do.
    """

    label: str
    members: list[Member]
    turn: int = 0

    def next(self) -> Member:
        """The process the next request goes to."""
        member = self.members[self.turn % len(self.members)]
        self.turn += 1
        return member

    def cpu_seconds(self) -> float:
        """CPU time all the path's processes have used so far."""
        return sum(cpu_seconds(member.process.process.pid) for member in self.members)


@dataclass(frozen=True)
class Sample:
    """One answer as the client saw it."""

    first: float  # seconds to the first text
    total: float  # seconds to the final record
    records: int  # sealed records (chunks) on the wire
    size: int  # bytes of the sealed stream on the wire (HTTP framing aside)


async def direct_stream(session: aiohttp.ClientSession, url: str) -> Sample:
    """Time to first content delta and total time, straight from the fake vLLM."""
    start = time.perf_counter()
    first = 0.0
    size = events = 0
    body = {
        "model": "veil-test",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 2000,
    }
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        async for line in response.content:
            size += len(line)
            events += line.startswith(b"data: ")
            if (
                not first
                and line.startswith(b"data: {")
                and b'"content":"' in line
                and b'"content":""' not in line
            ):
                first = time.perf_counter() - start
    return Sample(first, time.perf_counter() - start, events, size)


async def sealed_stream(session: aiohttp.ClientSession, gateway: Gateway) -> Sample:
    """Seal, sign and send one request as the bot does; read and check the answer."""
    start = time.perf_counter()
    member = gateway.next()
    request_id, key = new_request_secrets()
    chat = {"model": "veil-test", "messages": MESSAGES, "max_completion_tokens": 2000}
    body = seal_request(
        member.bundle, chat, request_id=request_id, response_key=key, timestamp=int(time.time())
    )
    headers = {"Content-Type": SEALED_REQUEST_TYPE, **client_auth_headers(CLIENT_KEY, body)}
    opener = ChunkOpener(key)
    first = 0.0
    records = size = 0
    async with session.post(
        f"{member.url}/v1/sealed/chat/completions", data=body, headers=headers
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"{gateway.label} refused a stream: {await response.text()}")
        async for data in response.content.iter_any():
            size += len(data)
            for record in opener.feed(data):
                records += 1
                if not first and isinstance(record, Delta) and record.text:
                    first = time.perf_counter() - start
    opener.close()
    return Sample(first, time.perf_counter() - start, records, size)


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by process ``pid``, all its threads, from /proc (Linux).

    ``sched`` gives nanoseconds where the kernel has it; ``stat`` (clock ticks) otherwise.
    """
    total = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "sched").read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    total += float(line.split(":")[1]) / 1000  # milliseconds
    except FileNotFoundError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def measure(
    concurrency: int, fn: Callable[[], Awaitable[Sample]], *, spread: float = 0.0
) -> list[Sample]:
    """``concurrency`` streams: all at once, or (``spread``) as a steady flow at that level.

    With ``spread`` (an answer's duration), twice ``concurrency`` streams start one every
    ``spread / concurrency`` seconds, so that about ``concurrency`` run at any moment once the
    first answers end; only the second half, which started into that steady state, is returned.
    """
    if not spread:
        return list(await asyncio.gather(*(fn() for _ in range(concurrency))))
    gap = spread / concurrency
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for index in range(2 * concurrency):
        await asyncio.sleep(max(0.0, start + index * gap - loop.time()))
        tasks.append(asyncio.ensure_future(fn()))
    return list(await asyncio.gather(*tasks))[concurrency:]


def median(samples: list[Sample], field: str) -> float:
    """The median of one field over the samples."""
    return float(statistics.median(getattr(sample, field) for sample in samples))


async def start_gateway(
    label: str, env: dict[str, str], key_file: Path, verify_key: bytes, vllm_url: str
) -> Member:
    """A gateway process with ``env`` over the common settings; its verified bundle."""
    profile = os.environ.get("VEIL_BENCH_PROFILE")
    baseline = env.pop("BENCH_TREE", None)
    if baseline is not None:
        command: tuple[str, ...] = ("-c", BASELINE_GATEWAY.format(tree=baseline))
    elif profile:
        command = ("-m", "cProfile", "-o", f"{profile}.{label}", "-m", "gateway")
    else:
        command = ("-m", "gateway")
    process = await ManagedProcess.start(
        *command,
        env={
            "VEIL_OPERATOR_KEY_FILE": str(key_file),
            "VEIL_CLIENT_KEYS": client_keys_setting(),
            "VEIL_VLLM_URL": vllm_url,
            "VEIL_GATEWAY_PORT": "0",
            "VEIL_METRICS_PORT": "0",
            # a steady flow (--spread) has more than its level in flight while answers overrun
            "VEIL_MAX_STREAMS": "1024",
            **env,
        },
    )
    try:
        await process.wait_for_line("gateway.started")
    except (TimeoutError, AssertionError):
        print(f"gateway {label}:", process.output, file=sys.stderr)
        raise
    url = str(process.json_event("gateway.started")["url"])
    async with aiohttp.ClientSession() as session, session.get(f"{url}/v1/keys") as response:
        wire = await response.json()
    bundle = verify_bundle(wire, [verify_key], now=int(time.time())).bundle
    return Member(process, url, bundle)


# The gateway of another source tree (its packages first on the path; the same environment).
BASELINE_GATEWAY = (
    "import runpy, sys; sys.path.insert(0, {tree!r}); "  # noqa: ISC003 -- one command, two lines
    + "runpy.run_module('gateway', run_name='__main__')"
)


async def end_to_end(  # noqa: PLR0913 -- the benchmark's knobs
    tokens: int,
    delay: float,
    levels: list[int],
    ticks: list[float],
    *,
    on_asyncio: bool,
    rounds: int,
    baseline: str | None = None,
    spread: bool = False,
    processes: int = 1,
) -> None:
    """Run fake vLLM and gateways as processes; compare per-token and shaped streams.

    ``spread``: the streams of a level come as a steady flow (``measure``), not all at once.
    ``processes``: above 1, every shaped path runs again as that many gateway processes, each
    with its own key, the requests going to them in turn (``Gateway``).
    """
    answer = " ".join(f"w{i}" for i in range(tokens))
    variants: list[tuple[str, dict[str, str]]] = [("per-token", {"VEIL_STREAM_SHAPE": "off"})]
    variants += [
        (f"tick {tick * 1000:.0f} ms", {"VEIL_STREAM_SHAPE": "tick", "VEIL_STREAM_TICK": str(tick)})
        for tick in ticks
    ]
    if baseline is not None:
        variants += [
            (f"{label} (before)", {**env, "BENCH_TREE": baseline}) for label, env in list(variants)
        ]
    if processes > 1:
        variants += [
            (f"{label} x{processes}", {**env, "BENCH_PROCESSES": str(processes)})
            for label, env in list(variants)
            if env["VEIL_STREAM_SHAPE"] != "off"
        ]
    if on_asyncio:
        variants += [
            (f"{label} asyncio", {**env, "VEIL_GATEWAY_LOOP": "asyncio"})
            for label, env in list(variants)
        ]
    with tempfile.TemporaryDirectory() as tmp:
        key_file, verify_key = await new_operator_key(Path(tmp))
        vllm = await ManagedProcess.start(
            "-m", "tests.fakes.vllm", "--answer", answer, "--token-delay", str(delay), env={}
        )
        line = await vllm.wait_for_line("listening on")
        vllm_url = line.split()[-1]
        gateways = [
            Gateway(
                label,
                [
                    await start_gateway(label, dict(env), key_file, verify_key, vllm_url)
                    for _ in range(int(env.pop("BENCH_PROCESSES", "1")))
                ],
            )
            for label, env in variants
        ]
        try:
            # Idle pooled connections go before the gateway closes them (its header timeout,
            # 10 s), which a slow round on another path would otherwise outlast.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=5)
            async with aiohttp.ClientSession(connector=connector) as session:
                for gateway in gateways:  # warm up: connections, first requests
                    for _ in gateway.members:
                        await sealed_stream(session, gateway)
                await direct_stream(session, vllm_url)
                arrivals = "a steady flow at each level" if spread else "each level at once"
                print(
                    f"\nend to end: {tokens} tokens at {delay * 1000:.0f} ms/token, streams "
                    f"arriving {arrivals}, medians of {rounds} round(s); CPU is the gateway "
                    "process's, per relayed token"
                )
                print(
                    f"{'streams':>7} {'path':<24} {'TTFT':>9} {'+TTFT':>8} {'total':>8} "
                    f"{'ratio':>6} {'records':>8} {'KB/answer':>9} {'CPU/token':>10}"
                )
                for level in levels:
                    await end_to_end_level(
                        session,
                        vllm_url,
                        gateways,
                        level=level,
                        tokens=tokens,
                        rounds=rounds,
                        spread=tokens * delay if spread else 0.0,
                    )
        finally:
            for member in (member for gateway in gateways for member in gateway.members):
                await member.process.stop()
            await vllm.stop()


async def end_to_end_level(  # noqa: PLR0913 -- one row group's inputs
    session: aiohttp.ClientSession,
    vllm_url: str,
    gateways: list[Gateway],
    *,
    level: int,
    tokens: int,
    rounds: int,
    spread: float = 0.0,
) -> None:
    """One concurrency level: a warm round, then ``rounds`` timed rounds on every path.

    ``spread`` as ``measure``'s (0: the level's streams all at once).
    """
    # One untimed round at this concurrency first, on every path, so the connection pools
    # are warm (as in steady production); then the timed rounds, the paths taking turns.
    await measure(level, lambda: direct_stream(session, vllm_url))
    for gateway in gateways:
        await measure(level, functools.partial(sealed_stream, session, gateway))
    streams = 2 * level if spread else level  # answers relayed a round (CPU per token)
    direct: list[Sample] = []
    sealed: dict[str, list[Sample]] = {gateway.label: [] for gateway in gateways}
    cpu: dict[str, list[float]] = {label: [] for label in sealed}  # µs a token, each round
    for _ in range(rounds):
        direct += await measure(level, lambda: direct_stream(session, vllm_url), spread=spread)
        for gateway in gateways:
            before = gateway.cpu_seconds()
            sealed[gateway.label] += await measure(
                level, functools.partial(sealed_stream, session, gateway), spread=spread
            )
            cpu[gateway.label].append((gateway.cpu_seconds() - before) / (streams * tokens) * 1e6)
    d_first, d_total = median(direct, "first"), median(direct, "total")
    print(
        f"{level:>7} {'direct (fake vLLM)':<24} {d_first * 1000:>7.1f}ms {'':>8} "
        f"{d_total:>7.3f}s {'':>6} {median(direct, 'records'):>8.0f} "
        f"{median(direct, 'size') / 1024:>9.1f}"
    )
    for label, samples in sealed.items():
        first, total = median(samples, "first"), median(samples, "total")
        per_round = cpu[label]
        spread_of = f" ({min(per_round):.1f} to {max(per_round):.1f})" if rounds > 1 else ""
        print(
            f"{level:>7} {label:<24} {first * 1000:>7.1f}ms {(first - d_first) * 1000:>6.1f}ms "
            f"{total:>7.3f}s {total / d_total:>6.3f} {median(samples, 'records'):>8.0f} "
            f"{median(samples, 'size') / 1024:>9.1f} {statistics.median(per_round):>8.1f}µs"
            f"{spread_of}"
        )


def main() -> None:
    """Print the micro-benchmarks, then the end-to-end table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument("--levels", default="1,50,200")
    parser.add_argument(
        "--ticks",
        default=str(DEFAULT_TICK),
        help="shaped gateways to run, one per tick in seconds (comma-separated)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds per level")
    parser.add_argument(
        "--spread",
        action="store_true",
        help="streams come as a steady flow keeping each level in flight, not all at once",
    )
    parser.add_argument(
        "--asyncio",
        action="store_true",
        help="also run every gateway on asyncio's own event loop (VEIL_GATEWAY_LOOP=asyncio)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="also run every shaped gateway as N processes, taken in turn (as the bot takes "
        "the gateways it is given)",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run every gateway from the source tree in DIR (a before/after in one run)",
    )
    args = parser.parse_args()
    for suite in Suite:
        figures = micro(suite)
        print(
            f"{suite.name:>16}: seal {figures['seal']:.0f} µs, open {figures['open']:.0f} µs "
            f"per ~1 KB request; chunk seal+open {figures['chunk']:.1f} µs a token per-token, "
            f"{figures['tick']:.2f} µs a token shaped (15 a record); "
            f"receipt sign {figures['receipt']:.0f} µs; client auth sign "
            f"{figures['auth_sign']:.0f} µs + verify {figures['auth_verify']:.0f} µs"
        )
    asyncio.run(
        end_to_end(
            args.tokens,
            args.token_delay,
            [int(x) for x in args.levels.split(",")],
            [float(x) for x in args.ticks.split(",")],
            on_asyncio=args.asyncio,
            baseline=str(Path(args.baseline).resolve()) if args.baseline else None,
            rounds=args.rounds,
            spread=args.spread,
            processes=args.processes,
        )
    )


if __name__ == "__main__":
    main()
