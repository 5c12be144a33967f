"""Building blocks the tests and benchmarks share: a settable clock and an in-process gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.keys import KeyRing
from gateway.server import Gateway, build_app
from gateway.vllm import VLLMClient
from sealed.encoding import b64d
from sealed.suites import Suite

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a child told its port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Clock:
    """A clock tests move by hand; callable like ``time.time``."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        """The clock's current time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


@dataclass
class RunningGateway:
    """A gateway serving on 127.0.0.1."""

    url: str
    gateway: Gateway
    operator: ed25519.Ed25519PrivateKey

    @property
    def verify_key(self) -> bytes:
        """The operator's raw verify key, as the bot pins it."""
        return self.operator.public_key().public_bytes_raw()


@contextlib.asynccontextmanager
async def run_gateway(  # noqa: PLR0913 -- every knob a test may turn
    vllm_url: str,
    *,
    operator: ed25519.Ed25519PrivateKey | None = None,
    clock: Clock | None = None,
    suite: Suite = Suite.X25519,
    max_streams: int = 64,
    rotation_seconds: int = 3600,
    grace_seconds: int = 600,
    api_key: str | None = None,
) -> AsyncIterator[RunningGateway]:
    """Run a real gateway app in front of ``vllm_url`` on a free port."""
    operator = operator or ed25519.Ed25519PrivateKey.generate()
    clock = clock or Clock()
    async with aiohttp.ClientSession() as session:
        gateway = Gateway(
            ring=KeyRing(
                operator,
                suite=suite,
                rotation_seconds=rotation_seconds,
                grace_seconds=grace_seconds,
                now=int(clock()),
            ),
            vllm=VLLMClient(vllm_url, api_key, session),
            max_streams=max_streams,
            max_skew=120,
            clock=clock,
        )
        await gateway.refresh_models()
        runner = web.AppRunner(build_app(gateway), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield RunningGateway(f"http://127.0.0.1:{port}", gateway, operator)
        finally:
            await runner.cleanup()


def child_environment() -> dict[str, str]:
    """The little of our environment a child process needs (coverage's settings included)."""
    keep = {"PATH", "HOME", "LANG", "TMPDIR"}
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith("COVERAGE_")}


class ManagedProcess:
    """A child process whose stderr is collected line by line while it runs."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], cwd: str | None = None) -> ManagedProcess:
        """Start ``python args…`` with ``env`` (merged over a minimal base environment)."""
        base = child_environment()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env={**base, "PYTHONUNBUFFERED": "1", **env},
            cwd=cwd or str(REPO),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
            self._new_line.set()
        self._new_line.set()

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        return "\n".join(self.lines)

    async def wait_for_line(self, needle: str, within: float = 20.0) -> str:
        """The first output line containing ``needle``; fails if the process exits first."""
        async with asyncio.timeout(within):
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                if self._reader.done():
                    raise AssertionError(f"process exited without {needle!r}:\n{self.output}")
                self._new_line.clear()
                await self._new_line.wait()

    def json_event(self, event: str) -> dict[str, object]:
        """The first JSON log line whose ``event`` is ``event``."""
        for line in self.lines:
            if line.startswith("{") and f'"{event}"' in line:
                value = json.loads(line)
                if value.get("event") == event:
                    return dict(value)
        raise AssertionError(f"no {event} event in:\n{self.output}")

    async def stop(self, within: float = 15.0) -> int:
        """SIGTERM, wait, and return the exit code (SIGKILL if it does not stop in time)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._reader
        return code

    async def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._reader


async def new_operator_key(directory: Path) -> tuple[Path, bytes]:
    """Run ``python -m gateway keygen`` into ``directory``; return the file and the verify key."""
    key_file = directory / "operator.key"
    keygen = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "keygen",
        "--out",
        str(key_file),
        stdout=asyncio.subprocess.PIPE,
        env=child_environment(),
        cwd=REPO,
    )
    printed = (await keygen.communicate())[0].decode().strip()
    if keygen.returncode != 0:
        raise RuntimeError(f"keygen failed with exit {keygen.returncode}")
    return key_file, b64d(printed)
