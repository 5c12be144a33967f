"""``python -m gateway`` as a real process: keygen, settings errors, serving, stopping."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from yarl import URL

from common.settings import SettingsError, load_settings
from gateway.limits import Limits
from gateway.settings import GatewaySettings
from services.inference import ChatRequest, InferenceClient, TextDelta
from tests.fakes.relay import HalfOpenClients
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    CLIENT_KEY,
    REPO,
    ManagedProcess,
    child_environment,
    client_keys_setting,
    gateway_env,
    run_python,
)

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

PROMPT = "process-level secret prompt: periwinkle-otter"
ANSWER = "process-level secret answer: saffron-lantern"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "gateway", *args, env=env, timeout=30)


def test_keygen_writes_private_file_and_prints_verify_key(tmp_path: Path) -> None:
    key_file = tmp_path / "operator.key"
    result = run("keygen", "--out", str(key_file))
    assert result.returncode == 0, result.stderr
    verify_key = result.stdout.strip()
    assert len(base64.urlsafe_b64decode(verify_key + "=")) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert verify_key not in key_file.read_text()  # the file holds the private seed only
    again = run("keygen", "--out", str(key_file))
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_missing_and_bad_settings_stop_with_one_line(tmp_path: Path) -> None:
    missing = run()
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "veil: setting VEIL_OPERATOR_KEY_FILE is required but not set"
    ]
    clients = {"VEIL_CLIENT_KEYS": client_keys_setting()}
    no_clients = run(env={"VEIL_OPERATOR_KEY_FILE": str(tmp_path / "k")})
    assert no_clients.stderr.strip().splitlines() == [
        "veil: setting VEIL_CLIENT_KEYS is required but not set"
    ]
    bad_port = run(
        env={"VEIL_OPERATOR_KEY_FILE": str(tmp_path / "k"), **clients, "VEIL_GATEWAY_PORT": "x"}
    )
    assert bad_port.returncode == 2
    (line,) = bad_port.stderr.strip().splitlines()
    assert "VEIL_GATEWAY_PORT" in line
    no_file = run(env={"VEIL_OPERATOR_KEY_FILE": str(tmp_path / "absent.key"), **clients})
    assert no_file.returncode == 2
    (line,) = no_file.stderr.strip().splitlines()
    assert "VEIL_OPERATOR_KEY_FILE" in line
    key_file = tmp_path / "open.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    key_file.chmod(0o644)
    too_open = run(env={"VEIL_OPERATOR_KEY_FILE": str(key_file), **clients})
    assert too_open.returncode == 2
    assert "0600" in too_open.stderr
    key_file.chmod(0o600)
    both = run(
        env={
            "VEIL_OPERATOR_KEY_FILE": str(key_file),
            **clients,
            "VEIL_VLLM_URL": "http://veil:secret@127.0.0.1:8000",
            "VEIL_VLLM_API_KEY": "k3y",
        }
    )
    assert both.returncode == 2
    assert both.stderr.strip().splitlines() == [
        "veil: setting VEIL_VLLM_URL has a user name and VEIL_VLLM_API_KEY is set: use one"
    ]


# An operator key file that cannot be read said only "cannot read key file …": not there, a
# folder, a file of another kind of text? The line now says which.
@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("absent", "No such file or directory"),
        ("a folder", "Is a directory"),
        ("binary", "it is not text"),
    ],
)
def test_an_operator_key_file_that_cannot_be_read_says_why(
    tmp_path: Path, kind: str, reason: str
) -> None:
    key_file = tmp_path / "operator.key"
    if kind == "a folder":
        key_file.mkdir()
    elif kind == "binary":
        key_file.write_bytes(b"\xff\xfe\x00 not ascii")
        key_file.chmod(0o600)
    result = run(
        env={"VEIL_OPERATOR_KEY_FILE": str(key_file), "VEIL_CLIENT_KEYS": client_keys_setting()}
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"veil: setting VEIL_OPERATOR_KEY_FILE: cannot read key file {key_file}: {reason}"
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VEIL_HEADER_TIMEOUT", "0"),
        ("VEIL_BODY_TIMEOUT", "-1"),
        ("VEIL_MAX_CONNECTIONS", "0"),
        ("VEIL_CLIENT_IDLE_TIMEOUT", "0"),
        ("VEIL_MAX_STREAM_SECONDS", "soon"),
        ("VEIL_BACKEND_IDLE_TIMEOUT", "0"),
        ("VEIL_METRICS_PORT", "70000"),
        ("VEIL_RECEIPT_TTL", "never"),
        ("VEIL_GATEWAY_HOST", ""),  # was every interface, then a traceback building its URL
        ("VEIL_METRICS_HOST", ""),
        ("VEIL_GATEWAY_HOST", "gpu..example.com"),  # was a UnicodeError traceback
        ("VEIL_METRICS_HOST", "gpu..example.com"),
    ],
)
def test_bad_hardening_settings_stop_with_a_line_naming_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    monkeypatch.setenv("VEIL_OPERATOR_KEY_FILE", str(tmp_path / "k"))
    monkeypatch.setenv("VEIL_CLIENT_KEYS", client_keys_setting())
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as stopped:
        load_settings(GatewaySettings)
    assert str(stopped.value.code).startswith(f"veil: setting {name} is invalid")


def test_hardening_settings_have_their_documented_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VEIL_OPERATOR_KEY_FILE", str(tmp_path / "k"))
    monkeypatch.setenv("VEIL_CLIENT_KEYS", client_keys_setting())
    monkeypatch.setenv("VEIL_MULTIMODAL_MODELS", " vision , other-vision ,")
    settings = load_settings(GatewaySettings)
    assert settings.limits == Limits(
        header_timeout=10,
        body_timeout=30,
        max_connections=1024,
        client_idle_timeout=30,
        max_stream_seconds=600,
        backend_idle_timeout=60,
        receipt_ttl=900,
    )
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9600)
    assert settings.vision_models == {"vision", "other-vision"}


@pytest.mark.parametrize(
    ("taken_setting", "free_setting", "named"),
    [
        ("VEIL_METRICS_PORT", "VEIL_GATEWAY_PORT", "VEIL_METRICS_HOST:VEIL_METRICS_PORT"),
        ("VEIL_GATEWAY_PORT", "VEIL_METRICS_PORT", "VEIL_GATEWAY_HOST:VEIL_GATEWAY_PORT"),
    ],
)
def test_a_taken_port_stops_with_one_line_naming_its_setting(
    tmp_path: Path, taken_setting: str, free_setting: str, named: str
) -> None:
    key_file = tmp_path / "operator.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            env={
                "VEIL_OPERATOR_KEY_FILE": str(key_file),
                "VEIL_CLIENT_KEYS": client_keys_setting(),
                "VEIL_VLLM_URL": "http://127.0.0.1:9",  # nothing there: models stay unknown
                free_setting: "0",
                taken_setting: str(port),
            }
        )
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("veil:")]
    # The listener whose port is taken, and the reason without asyncio's wording around it.
    assert line == f"veil: cannot listen on {named} (127.0.0.1:{port}): address already in use"


@pytest.mark.parametrize(
    ("loop_setting", "loop"), [(None, "uvloop"), ("asyncio", "asyncio"), ("uvloop", "uvloop")]
)
async def test_gateway_process_serves_sealed_answers_and_stops(
    tmp_path: Path, http: aiohttp.ClientSession, loop_setting: str | None, loop: str
) -> None:
    key_file = tmp_path / "operator.key"
    verify_key = run("keygen", "--out", str(key_file)).stdout.strip()
    chosen = {} if loop_setting is None else {"VEIL_GATEWAY_LOOP": loop_setting}
    async with FakeVLLM(answer=ANSWER, api_key="k-123") as fake:
        gateway = await ManagedProcess.start(
            "-m",
            "gateway",
            env={
                **gateway_env(fake.url, key_file),
                "VEIL_VLLM_API_KEY": "k-123",
                "VEIL_MAX_COMPLETION_TOKENS": "1024",  # the ceiling must fit the model's context
                **chosen,
            },
        )
        try:
            await gateway.wait_for_line("gateway.started")
            started = gateway.json_event("gateway.started")
            assert started["loop"] == loop  # the loop that runs, not the setting read back
            assert started["models"] == ["veil-test"]
            assert isinstance(started["frozen_objects"], int)
            assert started["frozen_objects"] > 20_000  # start-up's objects, set aside
            async with http.get(str(started["metrics_url"])) as response:
                assert response.status == 200
                assert "veil_gateway_connections" in await response.text()
            async with http.get(f"{started['url']}/metrics") as response:
                assert response.status == 404
            assert await ask(http, str(started["url"]), verify_key) == ANSWER
            await gateway.wait_for_line("gateway.relayed")
        finally:
            code = await gateway.stop()
    assert code == 0
    assert "gateway.stopped" in gateway.output
    for secret in ("periwinkle", "saffron", "k-123"):
        assert secret not in gateway.output


# Python's own handlers until the gateway's event loop took the signals: a SIGTERM while it
# was still starting (its operator key being read, say) ended it with no line at all (killed
# by the signal, exit -15), a SIGINT with KeyboardInterrupt's traceback in plain text.
_SIGNALLED_WHILE_STARTING = """
import os, runpy, signal, sys

def signal_on_open(event, args):
    if event == "open" and str(args[0]) == os.environ["VEIL_OPERATOR_KEY_FILE"] and not sent:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGNAME)

sent = []
sys.addaudithook(signal_on_open)
sys.argv = ["gateway"]
runpy.run_module("gateway", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_a_signal_while_the_gateway_starts_stops_it_in_one_line(
    tmp_path: Path, signame: str, loop: str
) -> None:
    key_file = tmp_path / "operator.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    async with FakeVLLM(answer=ANSWER) as fake:
        gateway = await ManagedProcess.start(
            "-c",
            _SIGNALLED_WHILE_STARTING.replace("SIGNAME", signame),
            env={
                **gateway_env(fake.url, key_file),
                "VEIL_MAX_COMPLETION_TOKENS": "1024",
                "VEIL_GATEWAY_LOOP": loop,
            },
        )
        try:
            code = await gateway.wait()  # the signal it sends itself stops it
        finally:
            await gateway.stop()
        assert fake.listings == 0  # nothing was served, nor the models asked for
    assert code == 0, gateway.output
    (line,) = [json.loads(line) for line in gateway.lines]
    assert (line["event"], line["signal"]) == ("gateway.stopped_before_start", signame)


# On uvloop (the default) an accept() failure libuv leaves to Python (ENOBUFS, ENOMEM, EPERM,
# EINVAL) closes the listener for good and reports nothing: the gateway ran on, reachable by
# no one, and exited only when stopped, 0. Here the listening socket is shut down from inside
# the process (a thread of this wrapper, once the test writes the port to ``CUT``): the next
# accept() fails with EINVAL, and it is no listener from then on. With ``CLOSE`` set, on
# asyncio's loop, the server's own socket object is closed instead (its descriptor then -1),
# as uvloop's silent close leaves its socket, which a test could not bring about.
_LISTENER_CUT = """
import gc, os, pathlib, runpy, socket, sys, threading, time

def cut_the_listener(signal_file):
    while not signal_file.exists() or not signal_file.read_text():
        time.sleep(0.05)
    port = int(signal_file.read_text())
    if os.environ.get("CLOSE"):
        gc.unfreeze()  # start-up's objects, the server's socket among them, set aside
        found = [o for o in gc.get_objects() if isinstance(o, socket.socket)]
        gc.freeze()
        for sock in found:
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listening and sock.getsockname()[1] == port:
                    sock.close()
            except OSError:
                pass
        return
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with sock:
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listening and sock.getsockname()[1] == port:
                    sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

cut = pathlib.Path(os.environ["CUT"])
threading.Thread(target=cut_the_listener, args=(cut,), daemon=True).start()
sys.argv = ["gateway"]
runpy.run_module("gateway", run_name="__main__", alter_sys=True)
"""


async def _cut_under(
    tmp_path: Path, url: str = "url", **settings: str
) -> tuple[ManagedProcess, dict[str, Any], int]:
    """A gateway whose listener at ``url`` is cut under it (``_LISTENER_CUT``) and its exit."""
    key_file = tmp_path / "operator.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    cut = tmp_path / "cut"
    async with FakeVLLM(answer=ANSWER) as fake:
        gateway = await ManagedProcess.start(
            "-c",
            _LISTENER_CUT,
            env={
                "CUT": str(cut),
                **gateway_env(fake.url, key_file),
                "VEIL_MAX_COMPLETION_TOKENS": "1024",
                **settings,
            },
        )
        try:
            await gateway.wait_for_line("gateway.started")
            started = gateway.json_event("gateway.started")
            await asyncio.to_thread(cut.write_text, str(URL(str(started[url])).port))
            async with asyncio.timeout(60):
                code = await gateway.process.wait()
        finally:
            await gateway.stop()
    return gateway, started, code


# The metrics listener was not watched: one that died left the gateway serving, unseen by its
# monitoring, until someone restarted it by hand.
@pytest.mark.parametrize(("listener", "url"), [("public", "url"), ("metrics", "metrics_url")])
async def test_a_listener_closed_under_the_gateway_stops_it_with_one_line(
    tmp_path: Path, listener: str, url: str
) -> None:
    gateway, started, code = await _cut_under(tmp_path, url)
    assert started["loop"] == "uvloop"
    assert code == 1
    closed = gateway.json_event("gateway.listener_closed")
    assert (closed["level"], closed["listener"], closed["url"]) == (
        "error",
        listener,
        started[url],
    )
    assert gateway.output.index("gateway.listener_closed") < gateway.output.index("gateway.stopped")


# On asyncio's loop the same cut listener stays in the selector, readable, and every accept()
# fails (EINVAL): asyncio reported each failure, ~20,000 log lines in the 5 s before the check
# stopped the gateway. One line a while now, with the count of those left out.
async def test_a_cut_listener_on_asyncios_loop_is_told_in_a_few_lines(tmp_path: Path) -> None:
    gateway, started, code = await _cut_under(tmp_path, VEIL_GATEWAY_LOOP="asyncio")
    assert started["loop"] == "asyncio"
    assert code == 1
    assert gateway.json_event("gateway.listener_closed")["listener"] == "public"
    accepts = [line for line in gateway.lines if "accept" in line]
    assert 1 <= len(accepts) <= 3, f"{len(accepts)} lines: {accepts[:3]}"
    told = gateway.json_event("gateway.accept_failed")
    assert told["errno"] == errno.EINVAL


async def test_a_listener_whose_socket_is_closed_stops_the_gateway(tmp_path: Path) -> None:
    gateway, started, code = await _cut_under(tmp_path, CLOSE="1", VEIL_GATEWAY_LOOP="asyncio")
    assert code == 1
    closed = gateway.json_event("gateway.listener_closed")
    assert (closed["listener"], closed["url"]) == ("public", started["url"])


# The gateway where uvloop cannot be imported (Windows, say, where it does not build).
NO_UVLOOP_GATEWAY = (
    "import runpy, sys; sys.modules['uvloop'] = None; "
    "runpy.run_module('gateway', run_name='__main__')"
)


def test_an_event_loop_that_cannot_run_stops_with_one_line(tmp_path: Path) -> None:
    key_file = tmp_path / "operator.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    env = {
        "VEIL_OPERATOR_KEY_FILE": str(key_file),
        "VEIL_CLIENT_KEYS": client_keys_setting(),
        "VEIL_VLLM_URL": "http://127.0.0.1:9",
        "VEIL_GATEWAY_PORT": "0",
        "VEIL_METRICS_PORT": "0",
    }
    unknown = run(env={**env, "VEIL_GATEWAY_LOOP": "trio"})
    assert unknown.returncode == 2
    (line,) = unknown.stderr.strip().splitlines()
    assert line.startswith("veil: setting VEIL_GATEWAY_LOOP is invalid: Input should be 'uvloop'")
    absent = run_python("-c", NO_UVLOOP_GATEWAY, env=env, timeout=30)
    assert absent.returncode == 2
    assert absent.stderr.strip().splitlines() == [
        (
            "veil: setting VEIL_GATEWAY_LOOP is uvloop, but uvloop is not installed here: "
            "install it, or set VEIL_GATEWAY_LOOP=asyncio"
        )
    ]


async def ask(http: aiohttp.ClientSession, url: str, verify_key: str) -> str:
    """Ask the gateway process at ``url`` the test prompt as the pinned client; the answer."""
    client = InferenceClient(
        [url], [base64.urlsafe_b64decode(verify_key + "=")], http, client_key=CLIENT_KEY
    )
    parts = [
        item.text
        async for item in client.stream(
            ChatRequest([{"role": "user", "content": PROMPT}], model="veil-test", cache_salt="s")
        )
        if isinstance(item, TextDelta)
    ]
    return "".join(parts)


def metric_value(metrics: str, name: str) -> float:
    """The value of an unlabelled sample in a Prometheus text exposition."""
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in the metrics")


# Run the gateway with only 128 descriptors, as on the host where half-open connections stopped
# real requests and asyncio flooded stderr with accept errors.
LOW_FD_GATEWAY = (
    "import resource, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)); "
    "runpy.run_module('gateway', run_name='__main__')"
)


async def test_half_open_flood_under_a_low_descriptor_limit_is_capped_and_quiet(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    key_file = tmp_path / "operator.key"
    verify_key = run("keygen", "--out", str(key_file)).stdout.strip()
    async with FakeVLLM(answer=ANSWER) as fake:
        gateway = await ManagedProcess.start(
            "-c",
            LOW_FD_GATEWAY,
            env={
                **gateway_env(fake.url, key_file),
                "VEIL_MAX_COMPLETION_TOKENS": "1024",
                "VEIL_HEADER_TIMEOUT": "1",
            },
        )
        try:
            await gateway.wait_for_line("gateway.started")
            started = gateway.json_event("gateway.started")
            # 128 descriptors less the margin, shared with as many model-server connections.
            assert started["max_connections"] == 48
            host, port = str(started["url"]).removeprefix("http://").split(":")
            async with HalfOpenClients(host, int(port), 150) as flood:
                async with asyncio.timeout(10):
                    await flood.wait_closed_by_server(150 - 48)  # past the cap: closed at once
                async with asyncio.timeout(10):
                    await flood.wait_closed_by_server()  # the rest: by the header timeout
            assert await ask(http, str(started["url"]), verify_key) == ANSWER
            async with http.get(str(started["metrics_url"])) as response:
                metrics = await response.text()
            refused = metric_value(metrics, "veil_gateway_connections_refused_total")
            timed_out = metric_value(metrics, "veil_gateway_header_timeouts_total")
            # Each half-open connection was either turned away at the cap or closed by the
            # header timeout; how many of each depends on how fast the flood was accepted (a
            # slow machine frees slots by timeout while the flood still arrives).
            assert refused + timed_out == 150
            assert refused >= 1
            assert timed_out >= 48
        finally:
            code = await gateway.stop()
    assert code == 0
    # No flood: should the descriptors run out for a moment anyway, one warning a 10 s at most.
    assert gateway.output.count("accept") <= 1
    assert len(gateway.lines) < 20


# The gateway with only a few descriptors left under its limit (the rest held by the process,
# as by another library's files): a burst of connections runs it out of descriptors at accept.
DESCRIPTORS_LEFT = 30
SHORT_OF_DESCRIPTORS_GATEWAY = f"""
import os, resource, runpy
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
held = []
while True:
    try:
        held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        break
for fd in held[-{DESCRIPTORS_LEFT}:]:
    os.close(fd)
runpy.run_module("gateway", run_name="__main__")
"""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_connections_past_the_last_descriptor_are_told_by_the_event_loop_s_way(
    tmp_path: Path, http: aiohttp.ClientSession, loop: str
) -> None:
    # gateway/descriptors.py: on asyncio's loop the connections wait in the backlog and one
    # line says accept() failed; uvloop (libuv) accepts them on a spare descriptor and closes
    # them at once, and says nothing. Either way the gateway goes on serving.
    key_file = tmp_path / "operator.key"
    verify_key = run("keygen", "--out", str(key_file)).stdout.strip()
    flood = 2 * DESCRIPTORS_LEFT
    async with FakeVLLM(answer=ANSWER) as fake:
        gateway = await ManagedProcess.start(
            "-c",
            SHORT_OF_DESCRIPTORS_GATEWAY,
            env={
                **gateway_env(fake.url, key_file),
                "VEIL_MAX_COMPLETION_TOKENS": "1024",
                "VEIL_HEADER_TIMEOUT": "1",
                "VEIL_GATEWAY_LOOP": loop,
            },
        )
        try:
            await gateway.wait_for_line("gateway.started")
            started = gateway.json_event("gateway.started")
            assert started["max_connections"] == 48  # the cap is not what turns them away
            host, port = str(started["url"]).removeprefix("http://").split(":")
            async with HalfOpenClients(host, int(port), flood) as clients:
                async with asyncio.timeout(30):
                    await clients.wait_closed_by_server()
            assert await ask(http, str(started["url"]), verify_key) == ANSWER
            async with http.get(str(started["metrics_url"])) as response:
                metrics = await response.text()
        finally:
            code = await gateway.stop()
    assert code == 0
    refused = metric_value(metrics, "veil_gateway_connections_refused_total")
    timed_out = metric_value(metrics, "veil_gateway_header_timeouts_total")
    assert refused == 0
    failed = [line for line in gateway.lines if "gateway.accept_failed" in line]
    if loop == "asyncio":
        assert timed_out == flood  # every one accepted in the end, and timed out
        assert len(failed) == 1
        assert gateway.json_event("gateway.accept_failed")["errno"] == errno.EMFILE
    else:
        assert 0 < timed_out < flood  # the rest were closed unseen
        assert failed == []


# ``ulimit -n 12``: asyncio's loop starts (with a connection cap of 1); uvloop's did not, and the
# gateway died with a ``process.crashed`` traceback that said "RuntimeError (message withheld)"
# (EMFILE, masked by "Cannot close a running event loop"), nothing of the limit.
# The limit is set before the gateway's interpreter starts, as the shell's ``ulimit`` does.
LOW_LIMIT_GATEWAY = """
import os, resource, sys
limit = int(os.environ["LIMIT"])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
os.execv(sys.executable, [sys.executable, "-m", "gateway"])
"""
LOOP_REFUSED = (
    "veil: the uvloop event loop could not start: no file descriptor left under the"
    " process's limit ({limit}, ulimit -n); raise the limit"
)


async def test_a_descriptor_limit_uvloop_cannot_start_under_is_one_line(tmp_path: Path) -> None:
    # Where the descriptors run out first (the key file, the loop's making, its start) shifts
    # with what the interpreter holds, so a range of limits is tried; each ends in a line.
    key_file = tmp_path / "operator.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    refused = []
    for limit in range(8, 15):
        gateway = await ManagedProcess.start(
            "-c",
            LOW_LIMIT_GATEWAY,
            env={
                "LIMIT": str(limit),
                "VEIL_OPERATOR_KEY_FILE": str(key_file),
                "VEIL_CLIENT_KEYS": client_keys_setting(),
                "VEIL_GATEWAY_MODELS": "m",  # no model server asked
                "VEIL_GATEWAY_PORT": "0",
                "VEIL_METRICS_PORT": "0",
                "VEIL_GATEWAY_LOOP": "uvloop",
            },
        )
        try:
            async with asyncio.timeout(60):
                code = await gateway.process.wait()
        finally:
            await gateway.stop()
        assert "process.crashed" not in gateway.output, limit
        if "gateway.started" in gateway.output:
            continue  # enough to start on
        assert code == 2, (limit, gateway.output)
        if gateway.lines[-1] == LOOP_REFUSED.format(limit=limit):
            refused.append(limit)
    assert refused  # the loop's own failure was met, at one limit at least


async def test_a_stop_cuts_an_upload_still_on_its_way_and_the_gateway_exits(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A request whose body stalls (a client gone quiet mid-upload) holds its handler; at a
    # stop the gateway must cut it within its own stop wait, not aiohttp's default minute
    # (waited twice: two minutes), past any orchestrator's stop period (compose: 10 s).
    key_file = tmp_path / "operator.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    async with FakeVLLM(answer=ANSWER) as fake:
        gateway = await ManagedProcess.start(
            "-m",
            "gateway",
            env={
                **gateway_env(fake.url, key_file),
                "VEIL_MAX_COMPLETION_TOKENS": "1024",
                "VEIL_BODY_TIMEOUT": "600",  # only the stop can end this upload
                "VEIL_HEADER_TIMEOUT": "600",
            },
        )
        writer = None
        try:
            await gateway.wait_for_line("gateway.started")
            started = gateway.json_event("gateway.started")
            host, port = str(started["url"]).removeprefix("http://").split(":")
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"POST /v1/sealed/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
                b"Content-Type: application/vnd.veil.sealed-request\r\n"
                b"Content-Length: 4096\r\n\r\n" + b"\x00" * 100
            )
            await writer.drain()
            async with asyncio.timeout(10):  # the connection is taken, its head read
                while True:
                    async with http.get(str(started["metrics_url"])) as response:
                        metrics = await response.text()
                    if metric_value(metrics, "veil_gateway_connections") >= 1:
                        break
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # the handler is reading the body that never comes
            code = await gateway.stop(within=30)
        finally:
            if writer is not None:
                writer.close()
            await gateway.stop()
    assert code == 0  # stopped by itself, not killed at the 30 s
    assert "gateway.stopped" in gateway.output


# A signal while the stopped process ends: atexit runs after main returned (its handlers put
# back), before the process is gone, and this one sends the signal then.
_SIGNALLED_AT_EXIT = """
import atexit, os, runpy, signal, sys

atexit.register(os.kill, os.getpid(), signal.SIGNAME)
sys.argv = ["gateway"]
runpy.run_module("gateway", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_a_signal_while_the_stopped_gateway_exits_changes_nothing(
    tmp_path: Path, signame: str, loop: str
) -> None:
    # It killed the stopped gateway (exit -15), or ended it in KeyboardInterrupt's traceback.
    key_file = tmp_path / "operator.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    async with FakeVLLM(answer=ANSWER) as fake:
        gateway = await ManagedProcess.start(
            "-c",
            _SIGNALLED_AT_EXIT.replace("SIGNAME", signame),
            env={
                **gateway_env(fake.url, key_file),
                "VEIL_MAX_COMPLETION_TOKENS": "1024",
                "VEIL_GATEWAY_LOOP": loop,
            },
        )
        try:
            await gateway.wait_for_line("gateway.started")
        finally:
            code = await gateway.stop()
    assert code == 0, gateway.output
    assert "Traceback" not in gateway.output
    assert "KeyboardInterrupt" not in gateway.output
    for line in gateway.lines:
        json.loads(line)  # every line a log line


def _read_until(fd: int, needle: bytes) -> bytes:
    """What ``fd`` gives until a line holding ``needle`` has ended (or the writers are gone)."""
    seen = b""
    while not (needle in seen and seen.endswith(b"\n")):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
    return seen


def _fill(fd: int) -> None:
    """Write to the non-blocking ``fd`` until its pipe takes no more (EAGAIN)."""
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(fd, b"x" * 4096)


async def test_a_gateway_whose_stderr_nobody_reads_still_stops_with_exit_0(
    tmp_path: Path,
) -> None:
    # stderr a non-blocking pipe, full: each line was dropped (lost_line), but the rest of one
    # stayed buffered and Python's own flush at exit failed on it: exit 120 after a good stop.
    key_file = tmp_path / "operator.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the pipe's, so the gateway's stderr too
    async with FakeVLLM(answer=ANSWER) as fake:
        gateway = subprocess.Popen(  # noqa: ASYNC220 -- a pipe of our own for its stderr
            [sys.executable, "-m", "gateway"],
            stderr=write_end,
            cwd=REPO,
            env=child_environment()
            | {
                **gateway_env(fake.url, key_file),
                "VEIL_MAX_COMPLETION_TOKENS": "1024",
            },
        )
        try:
            started = await asyncio.to_thread(_read_until, read_end, b"gateway.started")
            assert b"gateway.started" in started
            _fill(write_end)  # nobody reads from here on
            gateway.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(gateway.wait, 60)
        finally:
            if gateway.poll() is None:
                gateway.kill()
            os.close(write_end)
            os.close(read_end)
    assert code == 0
