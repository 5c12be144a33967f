"""Benchmark of the sealed channel: crypto cost, and what the gateway adds end to end.

Prints seal/open time per request, per-chunk overhead, the client authentication's cost (the
bot's Ed25519 signature over the sealed bytes and the gateway's check), and, with 1, 50 and 200
concurrent
streams against the fake vLLM on loopback, time to first token and total time through the
gateway divided by the same measured directly against the fake vLLM in the same run.
The fake vLLM and the gateway run as separate processes, as in production.

    uv run python bench/sealed.py [--tokens 64] [--token-delay 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ed25519

from sealed.auth import (
    CLIENT_KEY_HEADER,
    CLIENT_SIGNATURE_HEADER,
    check_client_signature,
    client_auth_headers,
    parse_verify_key,
)
from sealed.bundle import KeyBundle
from sealed.receipt import ReceiptStatus, UsageReceipt, sign_receipt
from sealed.request import new_request_secrets, open_request, seal_request
from sealed.stream import ChunkOpener, ChunkSealer, Final
from sealed.suites import KeyPair, Suite
from services.inference import InferenceClient, TextDelta
from tests.harness import CLIENT_KEY, ManagedProcess, client_keys_setting, new_operator_key

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


async def direct_stream(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """Time to first content delta and total time, straight from the fake vLLM."""
    start = time.perf_counter()
    first = 0.0
    body = {
        "model": "veil-test",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 2000,
    }
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        async for line in response.content:
            if (
                not first
                and line.startswith(b"data: {")
                and b'"content":"' in line
                and b'"content":""' not in line
            ):
                first = time.perf_counter() - start
    return first, time.perf_counter() - start


async def sealed_stream(client: InferenceClient) -> tuple[float, float]:
    """Time to first text delta and total time through the gateway."""
    start = time.perf_counter()
    first = 0.0
    async for item in client.stream(
        MESSAGES, model="veil-test", cache_salt="bench", max_tokens=2000
    ):
        if not first and isinstance(item, TextDelta):
            first = time.perf_counter() - start
    return first, time.perf_counter() - start


async def measure(concurrency: int, fn: object) -> tuple[float, float]:
    """Median time to first token and total time of ``concurrency`` streams at once."""
    results = await asyncio.gather(*(fn() for _ in range(concurrency)))  # type: ignore[operator]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


async def end_to_end(tokens: int, delay: float, levels: list[int]) -> None:
    """Run fake vLLM and a gateway as processes; compare sealed streams with direct ones."""
    answer = " ".join(f"w{i}" for i in range(tokens))
    with tempfile.TemporaryDirectory() as tmp:
        key_file, verify_key = await new_operator_key(Path(tmp))
        vllm = await ManagedProcess.start(
            "-m", "tests.fakes.vllm", "--answer", answer, "--token-delay", str(delay), env={}
        )
        line = await vllm.wait_for_line("listening on")
        vllm_url = line.split()[-1]
        profile = os.environ.get("VEIL_BENCH_PROFILE")
        command = (
            ("-m", "cProfile", "-o", profile, "-m", "gateway") if profile else ("-m", "gateway")
        )
        gateway = await ManagedProcess.start(
            *command,
            env={
                "VEIL_OPERATOR_KEY_FILE": str(key_file),
                "VEIL_CLIENT_KEYS": client_keys_setting(),
                "VEIL_VLLM_URL": vllm_url,
                "VEIL_GATEWAY_PORT": "0",
            },
        )
        try:
            try:
                await gateway.wait_for_line("gateway.started")
            except TimeoutError:
                print(
                    "gateway:",
                    gateway.process.returncode,
                    gateway.output,
                    vllm.output,
                    file=sys.stderr,
                )
                raise
            gateway_url = str(gateway.json_event("gateway.started")["url"])
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                client = InferenceClient(
                    [gateway_url], [verify_key], session, client_key=CLIENT_KEY
                )
                await sealed_stream(client)  # warm up: bundle fetch, connections
                await direct_stream(session, vllm_url)
                print(f"\nend to end: {tokens} tokens at {delay * 1000:.0f} ms/token, medians")
                print(
                    f"{'streams':>8} {'TTFT direct':>12} {'TTFT sealed':>12} {'+TTFT ms':>9} "
                    f"{'total direct':>13} {'total sealed':>13} {'ratio':>6}"
                )
                for level in levels:
                    # One untimed round at this concurrency first, for both paths, so the
                    # connection pools are warm (as in steady production); then the timed one.
                    await measure(level, lambda: direct_stream(session, vllm_url))
                    await measure(level, lambda: sealed_stream(client))
                    d_first, d_total = await measure(
                        level, lambda: direct_stream(session, vllm_url)
                    )
                    s_first, s_total = await measure(level, lambda: sealed_stream(client))
                    print(
                        f"{level:>8} {d_first * 1000:>10.2f}ms {s_first * 1000:>10.2f}ms "
                        f"{(s_first - d_first) * 1000:>9.2f} {d_total:>12.3f}s {s_total:>12.3f}s "
                        f"{s_total / d_total:>6.3f}"
                    )
        finally:
            await gateway.stop()
            await vllm.stop()


def main() -> None:
    """Print the micro-benchmarks, then the end-to-end table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument("--levels", default="1,50,200")
    args = parser.parse_args()
    for suite in Suite:
        figures = micro(suite)
        print(
            f"{suite.name:>16}: seal {figures['seal']:.0f} µs, open {figures['open']:.0f} µs "
            f"per ~1 KB request; chunk seal+open {figures['chunk']:.1f} µs; "
            f"receipt sign {figures['receipt']:.0f} µs; client auth sign "
            f"{figures['auth_sign']:.0f} µs + verify {figures['auth_verify']:.0f} µs"
        )
    asyncio.run(end_to_end(args.tokens, args.token_delay, [int(x) for x in args.levels.split(",")]))


if __name__ == "__main__":
    main()
