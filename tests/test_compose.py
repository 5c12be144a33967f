"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is read as compose reads it (YAML, ``${VAR:-default}`` with no variables set),
and every service of a profile that runs an image of this Dockerfile (``runtime``, or
``playground`` for the playground) is started as a local process: the image's ENTRYPOINT and the
service's command, with the image's and the service's environment. Named
volumes and secrets become folders under ``tmp_path``, a service's own files a folder of its own,
service names ``127.0.0.1`` with free ports, and the fake vLLM stands in for the model server.
Services start in ``depends_on`` order, each waiting for its conditions (a one-shot's exit 0, a
health check's exit 0), and then a question goes through the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import re
import shlex
import sys
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information

from bot.settings import BotSettings
from common.container import (
    BOT_SHUTDOWN_GRACE_S,
    BOT_STOP_GRACE_S,
    BOT_STOP_SLACK_S,
    ContainerError,
    check_stop_period,
    make_keys,
    settings_from_files,
)
from launcher import chain
from models import MasterKey, Store
from sealed.encoding import b64e
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.harness import REPO, ManagedProcess, child_environment, free_port, run_python
from tests.playpage import pay_gram_in_the_playground

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
MODEL_ALIAS = "model"
# Services of a profile that the local chain leaves out, and why.
LEFT_OUT = {"demo-model": "it only fills the demo-model volume that llama.cpp's server reads"}
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}")

Service = dict[str, Any]


class MissingVariable(Exception):
    """``${NAME:?message}`` with ``NAME`` unset or empty: compose refuses the file so."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:  # noqa: ANN401 -- any YAML value
    """``${NAME:-default}``, ``${NAME:?message}`` and ``$$`` replaced as compose does."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, how, rest = match.groups()
            if how == "?" and not env.get(name):
                raise MissingVariable(f"{name}: {rest}")
            return env.get(name) or (rest if how == "-" else "")

        return _VARIABLE.sub(replace, value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


# Lists that compose joins when a later file names them too (the rest the later file replaces).
_JOINED = frozenset({"ports", "secrets", "volumes", "expose"})


def merged(base: Any, override: Any, key: str = "") -> Any:  # noqa: ANN401 -- any YAML value
    """``override`` laid over ``base`` as compose merges a later ``-f`` file (or the override)."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {
            k: merged(base[k], v, k) if k in base else v for k, v in {**base, **override}.items()
        }
    if key in _JOINED and isinstance(base, list) and isinstance(override, list):
        return [*base, *(item for item in override if item not in base)]
    return override


def compose_config(
    *files: Path | dict[str, Any], variables: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The compose file as compose sees it: ``variables`` set (none by default), ``files`` after.

    ``files`` are later ``-f`` files (or ``docker-compose.override.yml``): a path, or its YAML
    already read.
    """
    env = variables or {}
    config: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), env)
    for file in files:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) if isinstance(file, Path) else file
        config = merged(config, interpolate(raw, env))
    return config


def services_of(config: dict[str, Any], profiles: set[str]) -> dict[str, Service]:
    """The services that ``docker compose --profile …`` starts for ``profiles``."""
    services: dict[str, Service] = config["services"]
    return {
        name: service
        for name, service in services.items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }


def dockerfile_stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Each named stage of the Dockerfile: its base (``FROM``) and its (keyword, arguments)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    )
    instructions = [line.split(None, 1) for line in joined.splitlines() if line.strip()]
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []  # before the first FROM: the global ARGs, unused here
    for keyword, *rest in instructions:
        arguments = rest[0].strip() if rest else ""
        if keyword.upper() == "FROM":
            words = arguments.split()
            named = len(words) >= 3 and words[-2].upper() == "AS"
            current = []
            stages[words[-1] if named else ""] = (words[-3] if named else words[-1], current)
        else:
            current.append((keyword.upper(), arguments))
    return stages


def dockerfile_stage(target: str) -> list[tuple[str, str]]:
    """The instructions that make the image ``target``: its base stages' first, then its own."""
    stages = dockerfile_stages()
    assert target in stages, f"no stage {target} in the Dockerfile"
    base, own = stages[target]
    return [*(dockerfile_stage(base) if base in stages else []), *own]


def image_instruction(keyword: str, target: str = "runtime") -> str:
    """The arguments of the image's last ``keyword`` instruction."""
    found = [arguments for word, arguments in dockerfile_stage(target) if word == keyword]
    assert found, f"the {target} image has no {keyword}"
    return found[-1]


def image_entrypoint(target: str = "runtime") -> list[str]:
    """The image's ENTRYPOINT (exec form)."""
    entrypoint: list[str] = json.loads(image_instruction("ENTRYPOINT", target))
    return entrypoint


def image_healthcheck(target: str = "runtime") -> list[str]:
    """The image's HEALTHCHECK command (exec form)."""
    _, _, command = image_instruction("HEALTHCHECK", target).partition(" CMD ")
    healthcheck: list[str] = json.loads(command)
    return healthcheck


def image_env(target: str = "runtime") -> dict[str, str]:
    """The image's ENV settings, but PATH and PYTHONPATH: the local interpreter stands in."""
    env: dict[str, str] = {}
    for keyword, arguments in dockerfile_stage(target):
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                if name not in {"PATH", "PYTHONPATH"}:
                    env[name] = value
    return env


def image_target(service: Service) -> str | None:
    """The Dockerfile target the service builds, if it builds one."""
    build = service.get("build")
    return str(build["target"]) if isinstance(build, dict) and "target" in build else None


def is_ours(service: Service) -> bool:
    """Whether the service runs Veil: the runtime image, or the playground image built on it."""
    return image_target(service) in {"runtime", "playground"}


def aliases(name: str, service: Service) -> set[str]:
    """The names the service answers to: its own and its network aliases."""
    names = {name}
    networks = service.get("networks") or {}
    if isinstance(networks, dict):
        for network in networks.values():
            names.update((network or {}).get("aliases", []))
    return names


def listening_ports(service: Service) -> set[int]:
    """The ports a service listens on: its ``*_PORT`` settings and ``--port`` arguments."""
    ports = {int(v) for k, v in (service.get("environment") or {}).items() if k.endswith("_PORT")}
    command = service.get("command") or []
    ports.update(int(command[i + 1]) for i, arg in enumerate(command[:-1]) if arg == "--port")
    return ports


@dataclass
class LocalCompose:
    """A compose profile's services as local processes (see the module docstring)."""

    root: Path
    config: dict[str, Any]
    services: dict[str, Service]
    secrets: Mapping[str, Path]
    extra_env: Mapping[str, Mapping[str, str]]
    answer: str
    outside: tuple[
        str, ...
    ] = ()  # base URLs outside compose (a proxy, the internet): kept as they are
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, service in self.services.items():
            if not is_ours(service) and not self.is_model_server(service):
                assert name in LEFT_OUT, f"compose service {name} has no local stand-in"
            for port in listening_ports(service):
                local = free_port()
                for host in aliases(name, service):
                    self.ports[(host, port)] = local

    @staticmethod
    def is_model_server(service: Service) -> bool:
        """Whether the service is the one the gateway reaches as ``model``."""
        return MODEL_ALIAS in aliases("", service)

    def mounts(self, name: str) -> dict[str, Path]:
        """The service's mount points and the local folders that stand in for them."""
        service = self.services[name]
        mounts: dict[str, Path] = {}
        for volume in service.get("volumes") or []:
            source, target = volume.split(":")[:2]
            local = (
                REPO / source if source.startswith((".", "/")) else self.root / "volumes" / source
            )
            local.mkdir(mode=0o700, parents=True, exist_ok=True)
            mounts[target] = local
        if service.get("secrets"):
            folder = self.root / "secrets" / name
            folder.mkdir(parents=True, exist_ok=True)
            for secret in service["secrets"]:
                source = secret if isinstance(secret, str) else secret["source"]
                target = source if isinstance(secret, str) else secret.get("target", source)
                given = self.secrets.get(source) or REPO / self.config["secrets"][source]["file"]
                (folder / target).write_bytes(given.read_bytes())
            mounts["/run/secrets"] = folder
        return mounts

    def path(self, name: str, path: str) -> str:
        """A path inside the container, as a local path."""
        for target, local in sorted(self.mounts(name).items(), key=lambda m: -len(m[0])):
            if path == target or path.startswith(target + "/"):
                return str(local / path[len(target) :].lstrip("/"))
        own = self.root / "rootfs" / name / path.lstrip("/")
        own.parent.mkdir(parents=True, exist_ok=True)
        return str(own)

    def url(self, name: str, url: str) -> str:
        """A URL naming a service (or, in ``name``'s container, loopback) at its local port.

        A port of ``name``'s own that none of its settings listens on is a port of its own here
        too, where nothing listens: a health check's URL left behind by its listener's port
        fails here as it fails in the container.
        """
        if url.startswith(self.outside):
            return url
        parts = urlsplit(url)
        host = name if parts.hostname in ("127.0.0.1", "localhost") else parts.hostname or ""
        key = (host, parts.port or 80)
        if key not in self.ports and host == name:
            self.ports[key] = free_port()
        if key in self.ports:
            return parts._replace(netloc=f"127.0.0.1:{self.ports[key]}").geturl()
        assert parts.hostname in self.config["services"], f"{url} names no compose service"
        return url  # a service of another profile: unreachable here, as in compose

    def published(self, name: str) -> dict[int, int]:
        """The ports ``name`` publishes on the host: each container port and its local port.

        Docker forwards a published port to the container's own address, never to its
        loopback: a listener there that binds 127.0.0.1 (a ``*_HOST`` setting's default) is
        out of reach. Such a port is refused here, naming the setting.
        """
        service = self.services[name]
        environment = {str(k): str(v) for k, v in (service.get("environment") or {}).items()}
        found: dict[int, int] = {}
        for entry in service.get("ports") or []:
            container = int(str(entry).rsplit(":", 1)[-1])
            settings = [
                k for k, v in environment.items() if k.endswith("_PORT") and v == str(container)
            ]
            assert settings, f"{name} publishes {container}, where none of its settings listens"
            for setting in settings:
                host = environment.get(setting.removesuffix("_PORT") + "_HOST", "127.0.0.1")
                assert host == "0.0.0.0", (
                    f"{name} publishes {container}, but {setting.removesuffix('_PORT')}_HOST is"
                    f" {host}: Docker's forwarding never reaches it"
                )
            found[container] = self.ports[(name, container)]
        return found

    def value(self, name: str, key: str, value: str) -> str:
        """A setting's value, mapped to this machine."""
        if key.endswith("_PORT"):
            return str(self.ports[(name, int(value))])
        if key.endswith("_HOST") and value == "0.0.0.0":
            return "127.0.0.1"
        if value.startswith("/"):
            return ":".join(self.path(name, part) for part in value.split(":"))
        if "://" in value:
            return self.url(name, value)
        return value

    def arguments(self, name: str, args: list[str]) -> list[str]:
        """Command-line arguments, mapped to this machine."""
        mapped: list[str] = []
        for index, arg in enumerate(args):
            before = args[index - 1] if index else ""
            if before == "--port":
                mapped.append(str(self.ports[(name, int(arg))]))
            elif before == "--host":
                mapped.append("127.0.0.1")
            else:
                mapped.append(self.value(name, "", arg))
        return mapped

    def environment(self, name: str) -> dict[str, str]:
        """The service's environment (the image's, then compose's), mapped to this machine."""
        service = self.services[name]
        settings = {**image_env(str(image_target(service))), **(service.get("environment") or {})}
        env = {key: self.value(name, key, str(value)) for key, value in settings.items()}
        return {**env, **self.extra_env.get(name, {})}

    async def up(self) -> None:
        """Start every service once its ``depends_on`` conditions hold, as compose does."""
        launched = {name: asyncio.Event() for name in self.services}

        async def bring_up(name: str) -> None:
            for dependency, rule in (self.services[name].get("depends_on") or {}).items():
                if dependency in self.services:
                    await launched[dependency].wait()
                    await self.wait(dependency, rule["condition"])
            await self.start(name)
            launched[name].set()

        async with asyncio.timeout(90), asyncio.TaskGroup() as group:
            for name in self.services:
                group.create_task(bring_up(name))

    async def start(self, name: str) -> None:
        """Start the service (or its stand-in; nothing for one left out)."""
        service = self.services[name]
        if self.is_model_server(service):
            await self.start_fake_model(name, service)
        elif is_ours(service):
            entrypoint = image_entrypoint(str(image_target(service)))
            assert entrypoint[:2] == ["python", "-m"], entrypoint
            args = [*entrypoint[1:], *self.arguments(name, service["command"])]
            self.processes[name] = await ManagedProcess.start(*args, env=self.environment(name))
        else:
            return
        self.started.append(name)

    async def start_fake_model(self, name: str, service: Service) -> None:
        """The fake vLLM on the model server's port, serving its model with its API key."""
        command: list[str] = service["command"]
        model = command[command.index("--alias") + 1]
        port = self.ports[(name, int(command[command.index("--port") + 1]))]
        key_file = Path(self.path(name, command[command.index("--api-key-file") + 1]))
        api_key = (await asyncio.to_thread(key_file.read_text, encoding="ascii")).strip()
        fake = await ManagedProcess.start(
            "-m",
            "tests.fakes.vllm",
            "--port",
            str(port),
            "--model",
            model,
            "--api-key",
            api_key,
            "--answer",
            self.answer,
            env={},
        )
        await fake.wait_for_line("listening on")
        self.processes[name] = fake

    async def wait(self, name: str, condition: str) -> None:
        """Wait until ``name`` meets a ``depends_on`` condition (one left out meets all)."""
        process = self.processes.get(name)
        if process is None:
            return
        if condition == "service_completed_successfully":
            async with asyncio.timeout(60):
                code = await process.process.wait()
            assert code == 0, f"{name} exited {code}:\n{process.output}"
        elif condition == "service_healthy":
            await self.healthy(name)

    async def healthy(self, name: str, within: float = 60.0) -> None:
        """Run the service's health check until it passes (fail past ``within`` seconds)."""
        if self.is_model_server(self.services[name]):
            return  # the fake said "listening on": its /health answers
        test: list[str] = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        args = test[1:]
        assert args[0] == "python", args
        async with asyncio.timeout(within):
            while True:
                check = await asyncio.create_subprocess_exec(
                    sys.executable,
                    *args[1:],
                    env={**child_environment(), **self.environment(name)},
                    cwd=REPO,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                if await check.wait() == 0:
                    return
                process = self.processes[name]
                assert process.process.returncode is None, f"{name} died:\n{process.output}"
                await asyncio.sleep(0.3)

    async def stop(self) -> None:
        """Stop every service, newest first."""
        for name in reversed(self.started):
            await self.processes[name].stop()


@contextlib.asynccontextmanager
async def local_compose(  # noqa: PLR0913 -- what a compose run is given: profiles, files, variables…
    root: Path,
    profiles: set[str],
    *,
    secrets: Mapping[str, Path] | None = None,
    extra_env: Mapping[str, Mapping[str, str]] | None = None,
    answer: str = "Hello from compose.",
    files: Sequence[Path | dict[str, Any]] = (),
    variables: Mapping[str, str] | None = None,
    outside: Sequence[str] = (),
) -> AsyncIterator[LocalCompose]:
    """Start a profile's services locally in compose's order; stop them afterwards.

    ``files`` and ``variables`` as ``compose_config`` takes them: later ``-f`` files (an
    override), and the shell's or the ``.env``'s variables. URLs under an ``outside`` base URL
    name a server outside compose and are handed over as they are.
    """
    config = compose_config(*files, variables=variables)
    services = services_of(config, profiles)
    chain = LocalCompose(
        root, config, services, secrets or {}, extra_env or {}, answer, tuple(outside)
    )
    try:
        await chain.up()
        yield chain
    finally:
        await chain.stop()


@contextlib.asynccontextmanager
async def cpu_bot_on_telegram(
    root: Path,
    *,
    secrets: Mapping[str, Path] | None = None,
    **options: Any,  # noqa: ANN401 -- local_compose's
) -> AsyncIterator[tuple[FakeTelegram, LocalCompose]]:
    """The cpu profile with a bot token (its secret file under ``root``), on the fake Telegram.

    ``secrets`` are more secret files; ``options`` go to ``local_compose`` as they are.
    """
    token = root / "bot_token"
    token.write_text(f"{TOKEN}\n", encoding="ascii")
    async with (
        FakeTelegram(token=TOKEN) as telegram,
        local_compose(
            root,
            {"cpu"},
            secrets={"bot_token": token, **(secrets or {})},
            # api.telegram.org, as the bot's default VEIL_TELEGRAM_API names it, is the fake.
            extra_env={"bot": {"VEIL_TELEGRAM_API": telegram.url}},
            **options,
        ) as chain,
    ):
        yield telegram, chain


async def test_cpu_profile_answers_a_question_through_telegram(tmp_path: Path) -> None:
    async with cpu_bot_on_telegram(tmp_path, answer="The compose chain answers.") as (
        telegram,
        chain,
    ):
        # Its last start-up call: the bot polls next (a long poll is recorded only once it
        # returns, 10 s later when nothing is queued; the question is the poll's at once).
        await telegram.wait_for("setMyCommands", timeout=60)
        telegram.send_text(4242, "Is the compose chain up?")
        reply = await telegram.wait_for(  # rich messages are on by default
            "sendRichMessage", lambda c: c.params["chat_id"] == 4242, timeout=30
        )
        keys_output = chain.processes["keys"].output
    assert reply.params["rich_message"] == {"markdown": "The compose chain answers."}
    assert sorted(chain.started) == ["bot", "gateway", "keys", "llama-cpp"]
    assert chain.started[0] == "keys"  # everything waits for the keys
    assert chain.started[-1] == "bot"  # the bot waits for a healthy gateway
    assert "creating the operator key" in keys_output
    assert "creating the client key" in keys_output
    for key in ("gateway-keys/operator.key", "bot-keys/client.key", "model-keys/api-key"):
        assert (tmp_path / "volumes" / key).stat().st_mode & 0o077 == 0
    assert (tmp_path / "volumes" / "bot-data" / "veil.db").is_file()


async def test_without_a_token_the_bot_uses_the_playground_profile(tmp_path: Path) -> None:
    async with local_compose(
        tmp_path, {"cpu", "playground"}, answer="Hello from the compose playground."
    ) as chain:
        base = chain.url("bot", "http://playground:8080")
        await chain.processes["bot"].wait_for_line("bot.started", within=60)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/ui/send", json={"text": "hi"}) as sent:
                assert sent.status == 200
            async with asyncio.timeout(30):
                while True:
                    async with http.get(f"{base}/ui/state") as reply:
                        state = await reply.json()
                    texts = [m["html"] for m in state["messages"] if not m["outgoing"]]
                    if texts:
                        break
                    await asyncio.sleep(0.1)
            credited = await pay_gram_in_the_playground(base, http)
    assert texts == ["Hello from the compose playground."]
    assert credited.startswith("Received 1 GRAM. 250 ★ added.")
    assert "no bot token: using the Telegram playground" in chain.processes["bot"].output


def network_members(services: dict[str, Service]) -> dict[str, set[str]]:
    """Each network and the services on it."""
    members: dict[str, set[str]] = {}
    for name, service in services.items():
        for network in service.get("networks") or []:
            members.setdefault(network, set()).add(name)
    return members


def test_only_the_bot_reaches_the_gateway_and_only_the_gateway_the_model_server() -> None:
    config = compose_config()
    for profile, model_server in (("cpu", "llama-cpp"), ("gpu", "vllm")):
        services = services_of(config, {profile, "playground"})
        assert [n for n, s in services.items() if LocalCompose.is_model_server(s)] == [model_server]
        members = network_members(services)
        neighbours = set().union(*(m for m in members.values() if "gateway" in m))
        assert neighbours == {"gateway", "bot", model_server}
        for network, names in members.items():
            if model_server in names:
                assert names <= {model_server, "gateway"}, (network, names)
        for network in ("gateway", "model"):
            assert config["networks"][network]["internal"] is True
        published = {n for n, s in services.items() if s.get("ports")}
        assert published == {"playground"}
        assert all(p.startswith("127.0.0.1:") for p in services["playground"]["ports"])


def test_the_second_gateway_of_operations_md_is_the_gateway_again_and_the_bot_takes_both() -> None:
    """docs/operations.md's override for a second gateway stays a copy of compose's gateway.

    The same image, command, settings, keys, networks, wait for the keys and health check, so a
    change to the gateway service that the copy misses fails here.
    """
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("### Several gateways on one machine", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    override = interpolate(yaml.safe_load(block), {})["services"]
    gateway = compose_config()["services"]["gateway"]
    second = override["gateway-2"]
    for key in ("image", "restart", "command", "environment", "volumes", "depends_on"):
        assert second[key] == gateway[key], key
    assert second["healthcheck"] == gateway["healthcheck"]
    assert set(second["networks"]) == set(gateway["networks"])
    assert set(second) == {*gateway} - {"build"}
    first = compose_config()["services"]["bot"]["environment"]["VEIL_GATEWAYS"]
    assert override["bot"]["environment"]["VEIL_GATEWAYS"] == f"{first},http://gateway-2:8600"


def test_the_image_health_check_is_the_one_compose_runs_for_the_gateway() -> None:
    gateway = compose_config()["services"]["gateway"]
    assert gateway["healthcheck"]["test"] == ["CMD", *image_healthcheck()]
    assert image_instruction("USER").split(":")[0] not in ("0", "root")
    assert json.loads(image_instruction("CMD")) == ["gateway"]


def test_settings_files_fill_only_unset_veil_variables(tmp_path: Path) -> None:
    first, second = tmp_path / "secrets", tmp_path / "keys"
    first.mkdir()
    second.mkdir()
    (first / "VEIL_BOT_TOKEN").write_text("123:abc\n")
    (first / "VEIL_ADMINS").write_text("")  # empty: sets nothing
    (first / "PATH").write_text("/evil")  # not a VEIL_ name: never read
    (first / "VEIL_LOG_LEVEL").write_text("DEBUG")
    (second / "VEIL_BOT_TOKEN").write_text("456:def")  # the first folder wins
    (second / "VEIL_OPERATOR_KEYS").write_text("key-a,key-b\n")
    found = settings_from_files({"VEIL_LOG_LEVEL": "INFO"}, [first, second, tmp_path / "missing"])
    assert found == {"VEIL_BOT_TOKEN": "123:abc", "VEIL_OPERATOR_KEYS": "key-a,key-b"}


async def test_keys_are_made_once_and_the_pins_rewritten(tmp_path: Path) -> None:
    gateway, bot, model = folders = [tmp_path / name for name in ("gateway", "bot", "model")]
    for folder in folders:
        folder.mkdir()
    env = child_environment()
    await asyncio.to_thread(make_keys, gateway, bot, model, env)
    pins = {p.name: p.read_text() for f in folders for p in f.iterdir()}
    (folders[0] / "VEIL_CLIENT_KEYS").unlink()
    await asyncio.to_thread(
        make_keys, gateway, bot, model, env
    )  # keygen would refuse to overwrite a key
    assert {p.name: p.read_text() for f in folders for p in f.iterdir()} == pins
    operator_pub = pins["operator.pub"].strip()
    assert pins["VEIL_OPERATOR_KEYS"].strip() == operator_pub
    assert pins["VEIL_CLIENT_KEYS"].strip() == "bot:" + pins["client.pub"].strip()
    assert pins["VEIL_VLLM_API_KEY"] == pins["api-key"]
    # Safe on any command line: a random key starting with "-" would be taken for an option.
    assert re.fullmatch(r"[0-9a-f]{64}\n", pins["api-key"])


def test_keys_refuse_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ContainerError, match="is not a folder"):
        make_keys(tmp_path / "gateway", tmp_path, tmp_path, child_environment())
    assert list(tmp_path.iterdir()) == []


async def test_the_health_check_fails_when_nothing_answers() -> None:
    port = free_port()
    check = await ManagedProcess.start(
        "-m", "common.container", "health", env={"VEIL_GATEWAY_PORT": str(port)}
    )
    async with asyncio.timeout(30):
        code = await check.process.wait()
    await check.stop()
    assert code == 1
    assert f"unhealthy: http://127.0.0.1:{port}/health did not answer 200" in check.output


def test_the_bots_stop_period_follows_a_setting_the_bot_checks_against_its_graces() -> None:
    # stop_grace_period was a fixed 90s: an operator who raised VEIL_SHUTDOWN_GRACE (say to
    # 120) had the bot killed by compose while it settled answers at every stop. Compose cannot
    # add settings up, so the period is a setting of its own, handed to the bot too, which
    # checks the launcher's rule: the graces and the slack to close.
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["bot"]
    assert raw["stop_grace_period"] == "${VEIL_BOT_STOP_PERIOD:-90}s"
    assert raw["environment"]["VEIL_BOT_STOP_PERIOD"] == "${VEIL_BOT_STOP_PERIOD:-90}"
    bot = compose_config()["services"]["bot"]
    period = float(bot["stop_grace_period"].removesuffix("s"))
    graces = float(bot["environment"]["VEIL_SHUTDOWN_GRACE"]) + BOT_STOP_GRACE_S
    assert period >= graces + BOT_STOP_SLACK_S  # compose's defaults hold the bot's
    check_stop_period(bot["environment"])  # and its entry point says so
    fields = BotSettings.model_fields
    defaults = (fields["shutdown_grace"].default, fields["stop_grace"].default)
    assert defaults == (BOT_SHUTDOWN_GRACE_S, BOT_STOP_GRACE_S)
    assert chain.BOT_STOP_SLACK_S == BOT_STOP_SLACK_S
    raised = {"VEIL_SHUTDOWN_GRACE": "120", "VEIL_BOT_STOP_PERIOD": "175"}
    check_stop_period(raised)  # 120 + 10 + 45: enough
    with pytest.raises(ContainerError, match="VEIL_BOT_STOP_PERIOD=176"):
        check_stop_period(raised | {"VEIL_STOP_GRACE": "11"})


def test_a_bot_given_a_stop_period_its_graces_outlast_refuses_to_start(tmp_path: Path) -> None:
    # The line says where the period is set (review29f): set in an override's environment, as
    # docs/operations.md says of other settings, it passed this check while compose's
    # stop_grace_period, read from the shell or .env alone, stayed 90 s.
    env = {
        "VEIL_ENV_DIRS": str(tmp_path),
        "VEIL_BOT_TOKEN": TOKEN,
        "VEIL_SHUTDOWN_GRACE": "120",
        "VEIL_BOT_STOP_PERIOD": "90",
    }
    result = run_python("-m", "common.container", "bot", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "veil: setting VEIL_BOT_STOP_PERIOD is 90 s, but VEIL_SHUTDOWN_GRACE (120) and"
        " VEIL_STOP_GRACE (10) need 175 s or more with 45 s to close: set"
        " VEIL_BOT_STOP_PERIOD=175 in the shell or the .env beside docker-compose.yml"
        " (compose's stop_grace_period reads it there, never from a service's environment),"
        " or compose kills the bot while it settles answers"
    )
    result = run_python("-m", "common.container", "bot", env=env | {"VEIL_BOT_STOP_PERIOD": "2m"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "veil: setting VEIL_BOT_STOP_PERIOD is invalid: whole seconds (compose adds the s),"
        " not '2m'"
    )


@pytest.mark.parametrize("grace", ["inf", "1e400"])
def test_a_grace_that_is_no_finite_number_is_left_to_the_bot_to_refuse(grace: str) -> None:
    # VEIL_SHUTDOWN_GRACE=inf (which the bot refuses, naming it) was met by the entry point
    # with "set VEIL_BOT_STOP_PERIOD=inf": advice that compose cannot even read ("infs").
    check_stop_period({"VEIL_SHUTDOWN_GRACE": grace, "VEIL_BOT_STOP_PERIOD": "90"})
    check_stop_period({"VEIL_STOP_GRACE": grace, "VEIL_BOT_STOP_PERIOD": "90"})


@pytest.mark.parametrize(("grace", "advised"), [("30.4", "86"), ("30.6", "86"), ("30", "85")])
def test_the_stop_period_advised_is_one_the_check_then_takes(grace: str, advised: str) -> None:
    # A grace with a fraction: "set VEIL_BOT_STOP_PERIOD=85" for the 85.4 s needed, rounded
    # down, so the period set as told was refused again.
    env = {"VEIL_SHUTDOWN_GRACE": grace, "VEIL_BOT_STOP_PERIOD": "60"}
    with pytest.raises(ContainerError, match=f"set VEIL_BOT_STOP_PERIOD={advised} in the shell"):
        check_stop_period(env)
    check_stop_period(env | {"VEIL_BOT_STOP_PERIOD": advised})


@pytest.mark.parametrize("period", ["inf", "nan", "-inf"])
def test_a_stop_period_that_is_no_finite_number_is_refused(period: str) -> None:
    # VEIL_BOT_STOP_PERIOD=inf or nan passed the check (nan < anything is false).
    with pytest.raises(ContainerError, match="VEIL_BOT_STOP_PERIOD is invalid: whole seconds"):
        check_stop_period({"VEIL_BOT_STOP_PERIOD": period})


def test_a_bot_command_run_once_is_not_held_to_the_serving_bots_stop_period(
    tmp_path: Path,
) -> None:
    # The stop period is compose's wait for a serving bot to stop. A one-off command through
    # the entry point (`docker compose run --rm bot audit`, the backup that operations.md runs
    # with `exec`) stops by itself: it was refused with the stop period's line, so a backup
    # could not be taken until the serving bot's settings were mended.
    env = {
        "VEIL_ENV_DIRS": str(tmp_path),
        "VEIL_SHUTDOWN_GRACE": "120",
        "VEIL_BOT_STOP_PERIOD": "90",
    }
    key = tmp_path / "client.key"
    result = run_python("-m", "common.container", "bot", "keygen", "--out", str(key), env=env)
    assert result.returncode == 0, result.stderr
    assert "VEIL_BOT_STOP_PERIOD" not in result.stderr
    assert key.is_file()


def test_the_product_image_holds_no_emulator_and_the_playground_image_adds_it() -> None:
    stages = dockerfile_stages()
    assert list(stages)[-1] == "runtime"  # a plain `docker build` makes the product image
    # The product image's only files of ours: the build stage's virtual environment, with Veil
    # installed from its wheel (tests/test_wheel.py: product packages only), not linked to /src.
    copied = [args for word, args in dockerfile_stage("runtime") if word in {"COPY", "ADD"}]
    assert copied == ["--from=build /app/.venv /app/.venv"]
    installs = [args for word, args in stages["build"][1] if word == "RUN" and "uv sync" in args]
    assert "--no-editable" in installs[-1]
    # The playground image: the same product image, plus the emulator package and its settings.
    base, own = stages["playground"]
    assert base == stages["runtime"][0]
    assert dockerfile_stage("playground") == [*dockerfile_stage("runtime"), *own]
    assert [args for word, args in own if word in {"COPY", "ADD"}] == [
        "playground/ /opt/veil-dev/playground/"
    ]
    assert image_env("playground") == image_env() | {"VEIL_HEALTH_URL": "http://127.0.0.1:8080/"}
    # compose runs the playground image for the playground alone, under a name of its own.
    services = compose_config()["services"]
    ours = {name: image_target(service) for name, service in services.items() if is_ours(service)}
    assert ours == {
        "keys": "runtime",
        "gateway": "runtime",
        "bot": "runtime",
        "playground": "playground",
    }
    product_images = {services[name]["image"] for name in ("keys", "gateway", "bot")}
    assert len(product_images) == 1
    assert services["playground"]["image"] not in product_images
    # The build context: what the wheel packs (its packages and, beside them, the Mini App's
    # page), and the playground for its own target.
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]
    packages = wheel["build"]["targets"]["wheel"]["packages"]
    packages += list(wheel["build"]["targets"]["wheel"].get("force-include", {}))
    let_in = [
        line.removeprefix("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    assert sorted(let_in) == sorted(
        ["pyproject.toml", "uv.lock", "README.md", *packages, "playground"]
    )


class _Playground(http.server.BaseHTTPRequestHandler):
    """A playground that answers every GET 200 and keeps the paths it was asked."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 -- the base's name
        """Quiet: the test reads ``asked``."""


@pytest.fixture
def playground() -> Iterator[tuple[str, list[str]]]:
    """A playground's URL on 127.0.0.1 and the paths it has been asked so far."""
    asked: list[str] = []

    class Playground(_Playground):
        """This test's own, with a list of its own."""

    Playground.asked = asked
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Playground)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("args", "settings", "answer"),
    [
        (["--help"], {}, (0, "usage: python -m bot")),
        (["audit", "--help"], {}, (0, "usage: python -m bot")),
        ([], {"VEIL_SHUTDOWN_GRACE": "soon"}, (2, "VEIL_SHUTDOWN_GRACE")),
        (["audit"], {"VEIL_LOG_LEVEL": "loud"}, (2, "VEIL_LOG_LEVEL")),
    ],
)
def test_a_bot_without_a_token_answers_help_and_a_bad_setting_without_the_playground(
    tmp_path: Path,
    playground: tuple[str, list[str]],
    args: list[str],
    settings: dict[str, str],
    answer: tuple[int, str],
) -> None:
    # compose's bot has no token and a playground URL: `docker compose run --rm bot --help`,
    # or a bot with a bad setting, first waited up to 2 minutes for a playground nobody had
    # started, only to print the usage or the setting's line. Here the playground answers:
    # it must not even be asked.
    url, asked = playground
    env = {
        "VEIL_ENV_DIRS": str(tmp_path / "secrets"),
        "VEIL_PLAYGROUND_URL": url,
        "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
        "VEIL_DATA_DIR": str(tmp_path / "data"),
        **settings,
    }
    result = run_python("-m", "common.container", "bot", *args, env=env)
    code, says = answer
    assert result.returncode == code, result.stderr
    assert says in result.stdout + result.stderr
    assert asked == []


async def empty_database(data: Path) -> None:
    """A bot's database at ``data`` with nothing in it yet (its master key file made too)."""
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    await store.close()


def test_a_bot_without_a_token_whose_settings_hold_waits_for_the_playground(
    tmp_path: Path, playground: tuple[str, list[str]]
) -> None:
    url, asked = playground
    data = tmp_path / "data"
    asyncio.run(empty_database(data))  # audit reads the bot's database; it makes none
    env = {
        "VEIL_ENV_DIRS": str(tmp_path / "secrets"),
        "VEIL_PLAYGROUND_URL": url,
        "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
        "VEIL_DATA_DIR": str(data),
    }
    # reconcile, which asks Telegram (audit and backup read the data folder alone: no wait);
    # this playground answers its POSTs with nothing, so it ends in a line of its own.
    result = run_python("-m", "common.container", "bot", "reconcile", env=env)
    assert asked[:1] == ["/"], result.stderr
    assert f"no bot token: using the Telegram playground at {url}" in result.stderr


def test_a_playground_url_that_is_no_http_url_is_named(tmp_path: Path) -> None:
    # Checking the bot's settings before waiting must not blame a setting nobody set: the
    # playground's URL given to the bot as VEIL_TELEGRAM_API was refused under that name.
    env = {
        "VEIL_ENV_DIRS": str(tmp_path),
        "VEIL_PLAYGROUND_URL": "ftp://playground",
        "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
        "VEIL_DATA_DIR": str(tmp_path / "data"),
    }
    result = run_python("-m", "common.container", "bot", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "veil: setting VEIL_PLAYGROUND_URL is not an http(s) URL: ftp://playground"
    )
