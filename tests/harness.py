"""Building blocks the tests and benchmarks share.

A settable clock, a tick source driven by hand (for shaped streams), an in-process gateway,
and sealed requests made and read by hand for tests that speak the wire protocol directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519
from multidict import CIMultiDict

from gateway.clients import ClientPolicy
from gateway.keys import KeyRing
from gateway.limits import Limits
from gateway.routes import listen
from gateway.server import Gateway
from gateway.shaping import Shaping
from gateway.vllm import VLLMClient
from sealed.auth import PROOF_HEADER, cancel_proof, client_auth_headers, receipt_proof
from sealed.encoding import b64d, b64e
from sealed.keyfile import CLIENT_KEY_HEADER
from sealed.request import new_request_secrets, seal_request
from sealed.stream import ChunkOpener, Delta, Final, Reasoning
from sealed.suites import Suite
from tests.fakes.relay import RecordingProxy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Collection, Mapping
    from typing import Any

    from tests.fakes.gated import GatedTelegram

REPO = Path(__file__).resolve().parent.parent

# The client key the tests' bots sign with; ``run_gateway`` pins it unless told otherwise.
CLIENT_KEY = ed25519.Ed25519PrivateKey.generate()
CLIENT_VERIFY_KEY = CLIENT_KEY.public_key().public_bytes_raw()


def client_policy(
    key: bytes = CLIENT_VERIFY_KEY,
    *,
    name: str = "test",
    streams: int = 64,
    tokens_per_minute: int = 0,
    max_tokens: int = 2048,
) -> ClientPolicy:
    """A pinned client with the given limits (the test key and generous limits by default).

    The ceiling is also what a request without ``max_completion_tokens`` gets; 2048 leaves
    room for a prompt in the fake model server's 4096-token context.
    """
    return ClientPolicy(name, key, streams, tokens_per_minute, max_tokens)


def client_keys_setting(key: bytes = CLIENT_VERIFY_KEY, name: str = "test") -> str:
    """``VEIL_CLIENT_KEYS`` pinning ``key``, for a gateway process."""
    return f"{name}:{b64e(key)}"


def install_client_key(directory: Path) -> Path:
    """Write the tests' client key as ``directory/client.key`` (the bot's default path)."""
    path = directory / "client.key"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{CLIENT_KEY_HEADER} {b64e(CLIENT_KEY.private_bytes_raw())}\n")
        path.chmod(0o600)
    return path


FREE_PORTS_FROM = 20000  # free_port's ports: from here to the ephemeral range


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a child told its port).

    Picked below the kernel's ephemeral range: a port from that range (what binding port 0
    gives) can be handed to any other socket of the machine (a server started on port 0, a
    connection's own end) before the child binds it, and was, twice in a day under three test
    workers ("address already in use").
    """
    lowest, _ = _ephemeral_range()
    if lowest - FREE_PORTS_FROM < 1000:  # a range this machine does not leave
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            chosen: int = sock.getsockname()[1]
            return chosen
    for _ in range(100):
        port = random.randrange(FREE_PORTS_FROM, lowest)  # noqa: S311 -- not a secret
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: try another
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default where it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


async def wait_until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Return once ``condition()`` holds; fail with ``TimeoutError`` after ``within`` seconds.

    For state a fake records without an event to wait on (calls seen, connections closed).
    """
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 -- recorded state has no event
            await asyncio.sleep(0.005)


class ManualTicker:
    """A tick source a test drives by hand: ``tick()`` is one tick for every stream following.

    ``issued`` counts the ticks given; ``following`` is how many streams wait for ticks now.
    """

    def __init__(self) -> None:
        self.issued = 0
        self._subscribers: dict[int, Callable[[], None]] = {}
        self._next_key = 0

    @property
    def following(self) -> int:
        """Streams subscribed now."""
        return len(self._subscribers)

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` at every tick from now on; returns the function that stops it."""
        key = self._next_key
        self._next_key += 1
        self._subscribers[key] = callback

        def stop() -> None:
            self._subscribers.pop(key, None)

        return stop

    def tick(self) -> None:
        """One tick, now."""
        self.issued += 1
        for callback in list(self._subscribers.values()):
            callback()


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
    """A gateway serving on 127.0.0.1, with its metrics listener."""

    url: str
    gateway: Gateway
    operator: ed25519.Ed25519PrivateKey
    metrics_url: str = ""

    @property
    def verify_key(self) -> bytes:
        """The operator's raw verify key, as the bot pins it."""
        return self.operator.public_key().public_bytes_raw()

    async def metrics(self, http: aiohttp.ClientSession) -> str:
        """The metrics text, from the metrics listener."""
        async with http.get(self.metrics_url) as response:
            return await response.text()


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL (``http://127.0.0.1:<port>``)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


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
    clients: Mapping[bytes, ClientPolicy] | None = None,
    limits: Limits | None = None,
    models: tuple[str, ...] = (),
    multimodal_models: Collection[str] = (),
    max_skew: int = 120,
    shaping: Shaping | None = None,
    monotonic: Clock | None = None,
) -> AsyncIterator[RunningGateway]:
    """Run a real gateway (both listeners, as ``python -m gateway`` does) on free ports.

    ``models`` fixes the served models (else the model server is asked), ``limits`` the
    timeouts and caps (short ones make a timeout test fast). Streams are unshaped (a record a
    piece of text, as tests that count pieces expect) unless ``shaping`` says otherwise; the
    product's default is shaped (``gateway.shaping``). ``monotonic`` paces the model list's asks
    and warnings (``Gateway.models_on_demand``; else the real monotonic clock).
    """
    operator = operator or ed25519.Ed25519PrivateKey.generate()
    clock = clock or Clock()
    limits = limits or Limits()
    async with aiohttp.ClientSession() as session:
        gateway = Gateway(
            ring=KeyRing(
                operator,
                suite=suite,
                rotation_seconds=rotation_seconds,
                grace_seconds=grace_seconds,
                now=int(clock()),
            ),
            vllm=VLLMClient(vllm_url, api_key, session, idle_timeout=limits.backend_idle_timeout),
            clients=clients if clients is not None else {CLIENT_VERIFY_KEY: client_policy()},
            max_streams=max_streams,
            max_skew=max_skew,
            clock=clock,
            fixed_models=models,
            limits=limits,
            multimodal_models=frozenset(multimodal_models),
            shaping=shaping or Shaping.off(),
            monotonic=monotonic or time.monotonic,
        )
        await gateway.refresh_models()
        listeners = await listen(
            gateway,
            host="127.0.0.1",
            port=0,
            metrics_host="127.0.0.1",
            metrics_port=0,
        )
        try:
            yield RunningGateway(listeners.url, gateway, operator, listeners.metrics_url)
        finally:
            await listeners.close()


class CountingProxy(RecordingProxy):
    """A recording TCP proxy that also counts the connections that have ended.

    Put between the gateway and the fake model server, ``closed`` going up shows that the
    gateway hung up on the model server (pooled keep-alive connections stay open).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.closed = 0

    @classmethod
    def to(cls, url: str) -> CountingProxy:
        """A proxy to the server at ``http://host:port``."""
        host, port = url.removeprefix("http://").split(":")
        return cls(host, int(port))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await super()._handle(reader, writer)
        finally:
            self.closed += 1


SEALED_REQUEST_TYPE = "application/vnd.veil.sealed-request"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Say hello"}]


@dataclass(frozen=True)
class SealedCall:
    """One sealed request made by hand, with the secrets only its asker holds."""

    body: bytes
    request_id: bytes
    response_key: bytes

    def headers(self, key: ed25519.Ed25519PrivateKey = CLIENT_KEY) -> dict[str, str]:
        """Content type and the client signature of ``key`` over the body."""
        return {"Content-Type": SEALED_REQUEST_TYPE, **client_auth_headers(key, self.body)}

    def cancel(self) -> dict[str, str]:
        """The JSON body of ``POST /v1/sealed/cancel`` for this request."""
        proof = cancel_proof(self.response_key, self.request_id)
        return {"request_id": self.request_id.hex(), "proof": b64e(proof)}

    def receipt_headers(self) -> dict[str, str]:
        """The proof header of ``GET /v1/sealed/receipts/{id}`` for this request."""
        return {PROOF_HEADER: b64e(receipt_proof(self.response_key, self.request_id))}


def seal_call(
    running: RunningGateway,
    chat: dict[str, Any] | None = None,
    *,
    timestamp: int | None = None,
) -> SealedCall:
    """Seal ``chat`` (a one-message chat to ``veil-test`` by default) to the gateway's key."""
    chat = chat if chat is not None else {"model": "veil-test", "messages": MESSAGES}
    request_id, response_key = new_request_secrets()
    body = seal_request(
        running.gateway.ring.bundle().bundle,
        chat,
        request_id=request_id,
        response_key=response_key,
        timestamp=running.gateway.now() if timestamp is None else timestamp,
    )
    return SealedCall(body, request_id, response_key)


@dataclass
class SealedReply:
    """What a sealed call got back: a refusal, or the opened records of a stream."""

    status: int
    code: str | None = None
    texts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)  # REASONING records' texts
    final: Final | None = None
    chunk_lengths: list[int] = field(default_factory=list)
    retry_after: str | None = None

    @property
    def text(self) -> str:
        """The answer's text."""
        return "".join(self.texts)


async def post_sealed(
    http: aiohttp.ClientSession,
    url: str,
    call: SealedCall,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> SealedReply:
    """POST ``call`` (or other ``body`` bytes with its headers) and read the reply to its end."""
    async with http.post(
        f"{url}/v1/sealed/chat/completions",
        data=io.BytesIO(call.body if body is None else body),
        headers=CIMultiDict(call.headers() if headers is None else headers),  # each one kept
    ) as response:
        if response.status != 200:
            payload = await response.json(content_type=None)
            code = payload["error"]["code"]
            return SealedReply(
                response.status, code, retry_after=response.headers.get("Retry-After")
            )
        return await read_sealed(response, call.response_key)


async def read_sealed(
    response: aiohttp.ClientResponse, response_key: bytes, *, already: bytes = b""
) -> SealedReply:
    """Open a sealed stream to its end, checking every chunk (``already``: bytes read before)."""
    reply = SealedReply(response.status)
    opener = ChunkOpener(response_key)
    raw = bytearray()
    pieces = [already] if already else []

    async def data_in() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
        async for data in response.content.iter_any():
            yield data

    async for data in data_in():
        raw += data
        for record in opener.feed(data):
            if isinstance(record, Delta):
                reply.texts.append(record.text)
            elif isinstance(record, Reasoning):
                reply.reasoning.append(record.text)
            else:
                reply.final = record
    opener.close()
    while raw:
        length = int.from_bytes(raw[:4], "big")
        reply.chunk_lengths.append(length)
        del raw[: 4 + length]
    return reply


CHILD_SITE = REPO / "tests" / "childsite"  # its sitecustomize.py: see there


def child_environment(*, measured: bool = True) -> dict[str, str]:
    """The little of our environment a child process needs (coverage's settings included).

    A child that coverage measures also gets ``tests/childsite`` on its path, whose
    ``sitecustomize`` spares it the tracer's cost while libraries are first imported.
    ``measured=False`` keeps coverage out of it (a child under a file size limit: coverage's
    data file would meet the limit too, and say so on its stderr).
    """
    keep = {"PATH", "HOME", "LANG", "TMPDIR"}
    env = {
        k: v for k, v in os.environ.items() if k in keep or (measured and k.startswith("COVERAGE_"))
    }
    if "COVERAGE_PROCESS_CONFIG" in env:
        env["PYTHONPATH"] = str(CHILD_SITE)
    return env


def run_python(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python args…`` in the repository, run to its end; its output captured as text.

    ``env`` is merged over the minimal base environment a child gets.
    """
    return subprocess.run(  # noqa: S603 -- this interpreter, this project's own code
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**child_environment(), **(env or {})},
        timeout=timeout,
        check=False,
    )


class ManagedProcess:
    """A child process whose stderr is collected line by line while it runs."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        output: asyncio.StreamReader,
        pipe: asyncio.ReadTransport,
    ) -> None:
        self.process = process
        self.lines: list[str] = []
        self._output = output
        self._pipe = pipe
        self._new_line = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls,
        *args: str,
        env: dict[str, str],
        cwd: str | None = None,
        measured: bool | None = None,
    ) -> ManagedProcess:
        """Start ``python args…`` with ``env`` (merged over a minimal base environment).

        Its stdout and stderr go to one pipe of ours (not asyncio's), so that ``deafen`` can
        close our end of it as a launcher that died would. ``measured``: ``child_environment``'s;
        False for a child the test SIGKILLs (``kill``), which never writes coverage's data: its
        tracer (about a third of its CPU) would buy nothing. None: measured unless it kills
        itself (``VEIL_TEST_KILL_AT``, ``tests/killsite``).
        """
        if measured is None:
            measured = "VEIL_TEST_KILL_AT" not in env
        base = {**child_environment(measured=measured), **env}
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                env={**base, "PYTHONUNBUFFERED": "1"},
                cwd=cwd or str(REPO),
                stdout=write_end,
                stderr=asyncio.subprocess.STDOUT,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the child holds its own copy
        output = asyncio.StreamReader()
        pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(output), os.fdopen(read_end, "rb")
        )
        return cls(process, output, pipe)

    async def _read(self) -> None:
        async for raw in self._output:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
            self._new_line.set()
        self._pipe.close()
        self._new_line.set()

    async def deafen(self) -> None:
        """Stop reading the process's output and close the pipe: its next write breaks it.

        As a launcher reading the process's stderr that was killed (SIGKILL) leaves it.
        """
        self._pipe.close()  # the reader then sees the end of the output
        await self._reader

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        return "\n".join(self.lines)

    async def wait_for_line(self, needle: str, within: float = 60.0) -> str:
        """The first output line containing ``needle``; fails if the process exits first.

        ``within`` only bounds a failure: a loaded machine may take many seconds to start a
        process, and the failure then shows what the process printed.
        """
        try:
            async with asyncio.timeout(within):
                while True:
                    for line in self.lines:
                        if needle in line:
                            return line
                    if self._reader.done():
                        message = f"process exited without {needle!r}:\n{self.output}"
                        raise AssertionError(message)
                    self._new_line.clear()
                    await self._new_line.wait()
        except TimeoutError:
            message = f"no {needle!r} within {within} s; the process printed:\n{self.output}"
            raise AssertionError(message) from None

    def json_event(self, event: str) -> dict[str, object]:
        """The first JSON log line whose ``event`` is ``event``."""
        for line in self.lines:
            if line.startswith("{") and f'"{event}"' in line:
                value = json.loads(line)
                if value.get("event") == event:
                    return dict(value)
        raise AssertionError(f"no {event} event in:\n{self.output}")

    async def wait(self, within: float = 60.0) -> int:
        """The exit code once the process ends by itself, and its output is read to the end."""
        async with asyncio.timeout(within):
            code = await self.process.wait()
            await self._reader
        return code

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


async def asked_while_held(
    env: dict[str, str], telegram: GatedTelegram, user: int, text: str
) -> ManagedProcess:
    """Start ``python -m bot`` with ``env`` and have ``user`` send ``text``, sendMessage held.

    Returns once the bot's first sendMessage to ``user`` waits at ``telegram``, unanswered (the
    gate's ``held_chats``, ``let_through`` and the like set before are kept). Each caller kills
    it there, so it runs unmeasured (``ManagedProcess.start``).
    """
    bot = await ManagedProcess.start("-m", "bot", env=env, measured=False)
    await bot.wait_for_line("bot.started")
    telegram.hold_messages_to(user)
    telegram.send_text(user, text)
    async with asyncio.timeout(30):
        await telegram.holding.wait()
    return bot


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


@dataclass(frozen=True)
class GatewayProcess:
    """A started ``python -m gateway``: where it listens, where its metrics are, its pid."""

    url: str
    metrics_url: str
    pid: int


def gateway_env(vllm_url: str, key_file: Path, port: int = 0) -> dict[str, str]:
    """The settings of ``python -m gateway`` for ``vllm_url`` on ``port`` (0: a free one)."""
    return {
        "VEIL_OPERATOR_KEY_FILE": str(key_file),
        "VEIL_CLIENT_KEYS": client_keys_setting(),
        "VEIL_VLLM_URL": vllm_url,
        "VEIL_GATEWAY_PORT": str(port),
        "VEIL_METRICS_PORT": "0",  # never clash with another gateway's 9600
    }


@contextlib.asynccontextmanager
async def gateway_process(
    vllm_url: str, key_file: Path, env: dict[str, str] | None = None
) -> AsyncIterator[GatewayProcess]:
    """``python -m gateway`` for ``vllm_url`` on free ports, started."""
    process = await ManagedProcess.start(
        "-m", "gateway", env=gateway_env(vllm_url, key_file) | (env or {})
    )
    try:
        await process.wait_for_line("gateway.started")
        started = process.json_event("gateway.started")
        yield GatewayProcess(str(started["url"]), str(started["metrics_url"]), process.process.pid)
    finally:
        await process.stop()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What ``sql`` reads from the SQLite file at ``path`` (a bot's, read beside it)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


@contextlib.asynccontextmanager
async def restarted(env: dict[str, str], db: Path) -> AsyncIterator[ManagedProcess]:
    """Start ``python -m bot`` again on ``env``; yield it once it delivered what was left.

    Delivered: it logged ``chat.redelivered`` and the ``undelivered`` table in ``db`` is empty.
    Stopped afterwards, cleanly (exit 0).
    """
    bot = await ManagedProcess.start("-m", "bot", env=env)
    try:
        await bot.wait_for_line("chat.redelivered")
        await wait_until(lambda: rows(db, "SELECT 1 FROM undelivered") == [])
        yield bot
    finally:
        assert await bot.stop() == 0


def audited(env: dict[str, str]) -> str:
    """What ``python -m bot audit`` prints of the bot with settings ``env``, once it passed."""
    audit = run_python("-m", "bot", "audit", env=env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    return audit.stdout
