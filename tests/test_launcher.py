"""``python -m launcher``, where ``scripts/run`` ends: the chains it runs, logs, failure reports."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from bot.settings import BotSettings
from common.container import (
    PLAYGROUND_TON_ADDRESS,
    PLAYGROUND_USDT_MASTER,
    playground_ton_settings,
)
from launcher.chain import ended, playground_webapp_settings, window_settings
from launcher.console import LaunchError, LogFile
from launcher.llama import SOURCE_VERSION
from sealed.encoding import b64e
from services.ton.chain import WalletAddress
from tests.botstack import TOKEN
from tests.fakes.llama_server import ANSWER as LOCAL_ANSWER
from tests.fakes.telegram import FakeTelegram
from tests.fakes.toncenter import USDT_MASTER
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_VERIFY_KEY, ManagedProcess, free_port, run_gateway
from tests.launching import (
    install_client_files,
    install_fake_llama_server,
    launch,
    local_model,
    serving_settings,
)
from tests.playpage import pay_gram_in_the_playground, playground_message, playground_replies

if TYPE_CHECKING:
    from pathlib import Path


def test_the_playground_gets_gram_payments_unless_the_ton_address_is_set() -> None:
    url = "http://127.0.0.1:8080"
    assert playground_ton_settings({}, url + "/") == {
        "VEIL_TON_ADDRESS": PLAYGROUND_TON_ADDRESS,
        "VEIL_TON_TESTNET": "1",
        "VEIL_TONCENTER_URL": url + "/toncenter",
        "VEIL_TON_POLL_INTERVAL": "1",
        "VEIL_TON_USDT_MASTER": PLAYGROUND_USDT_MASTER,
    }
    wallet = WalletAddress.parse(PLAYGROUND_TON_ADDRESS, testnet=True)
    assert wallet.friendly == PLAYGROUND_TON_ADDRESS  # testnet, non-bounceable: a wallet's form
    slower = playground_ton_settings({"VEIL_TON_POLL_INTERVAL": "5"}, url)
    assert slower["VEIL_TON_POLL_INTERVAL"] == "5"
    assert playground_ton_settings({"VEIL_TON_ADDRESS": ""}, url) == {}  # Gram off
    assert playground_ton_settings({"VEIL_TON_ADDRESS": wallet.bounceable}, url) == {}


def test_the_playground_sells_usdt_of_its_chains_master_when_asked() -> None:
    # `VEIL_TON_USDT=1 scripts/run` stopped the bot at start: the playground's bot is on
    # testnet, and the USDT master's default is mainnet's EQ… form ("is a mainnet address but
    # VEIL_TON_TESTNET is on"), though docs/payments-ton.md offers USDT in the playground.
    url = "http://127.0.0.1:8080"
    env = playground_ton_settings({"VEIL_TON_USDT": "1"}, url) | {"VEIL_TON_USDT": "1"}
    values: dict[str, Any] = {n.removeprefix("VEIL_").lower(): v for n, v in env.items()}
    settings = BotSettings(bot_token=TOKEN, operator_keys=b64e(bytes(32)), **values)
    assert settings.usdt_master is not None
    assert settings.usdt_master.raw == WalletAddress.parse(USDT_MASTER).raw  # the chain's
    own = WalletAddress.parse(USDT_MASTER, testnet=False).bounceable
    mine = playground_ton_settings({"VEIL_TON_USDT_MASTER": own}, url)
    assert mine["VEIL_TON_USDT_MASTER"] == own  # one's own master wins


def test_the_playground_gets_the_mini_app_unless_its_url_is_set() -> None:
    url = "http://127.0.0.1:8080"
    assert playground_webapp_settings({}, url) == {
        "VEIL_WEBAPP_URL": "http://127.0.0.1:8480/app/",
        "VEIL_WEBAPP_PORT": "8480",
        "VEIL_WEBAPP_FRAME_ANCESTORS": f"{url} http://localhost:8080",
    }
    moved = playground_webapp_settings({"VEIL_WEBAPP_PORT": "9000"}, url)
    assert moved["VEIL_WEBAPP_URL"] == "http://127.0.0.1:9000/app/"
    assert playground_webapp_settings({"VEIL_WEBAPP_URL": ""}, url) == {}  # no Mini App
    assert playground_webapp_settings({"VEIL_WEBAPP_URL": "https://a.example/"}, url) == {}


async def check_the_mini_app(base: str, webapp_port: int, http: aiohttp.ClientSession) -> None:
    """The bot's menu button and /private open its Mini App, which the playground may frame."""
    app_url = f"http://127.0.0.1:{webapp_port}/app/"
    async with http.get(f"{base}/ui/state") as reply:
        menu = (await reply.json())["menu_button"]
    assert menu["type"] == "web_app"
    assert menu["web_app"]["url"] == app_url
    async with http.post(f"{base}/ui/send", json={"text": "/private"}) as reply:
        assert reply.status == 200
    offer = await playground_message(
        base, http, lambda m: any("web_app" in b for row in m["buttons"] for b in row)
    )
    assert offer["buttons"][0][0]["web_app"]["url"] == app_url
    launch = {"source": "menu", "url": app_url}
    async with http.post(f"{base}/ui/webapp", json=launch) as reply:
        opened = (await reply.json())["url"]
    assert opened.startswith(app_url + "#tgWebAppData=")
    async with http.get(app_url) as page:
        assert page.status == 200
        policy = page.headers["Content-Security-Policy"]
        assert policy.endswith(f" {base} {base.replace('127.0.0.1', 'localhost')}")


async def test_without_a_token_the_playground_chat_works(tmp_path: Path) -> None:
    playground, webapp = free_port(), free_port()
    async with FakeVLLM(answer="Hello from the playground chain.") as vllm:
        env = serving_settings(
            tmp_path,
            VEIL_VLLM_URL=vllm.url,
            VEIL_PLAYGROUND_PORT=str(playground),
            VEIL_WEBAPP_PORT=str(webapp),
        )
        launcher = await launch(env=env)
        try:
            await launcher.wait_for_line("press Ctrl-C to stop", within=90)
            assert f"open http://127.0.0.1:{playground}" in launcher.output
            base = f"http://127.0.0.1:{playground}"
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/ui/send", json={"text": "hi there"}) as reply:
                    assert reply.status == 200
                texts = await playground_replies(base, http)
                credited = await pay_gram_in_the_playground(base, http)
                await check_the_mini_app(base, webapp, http)
        finally:
            code = await launcher.stop()
    assert texts == ["Hello from the playground chain."]
    assert credited.startswith("Received 1 GRAM. 250 ★ added. Balance: ")
    assert code == 0
    assert launcher.lines[-1] == "veil: stopping"
    logs = tmp_path / "logs"
    assert f"veil: logs: {logs}/<part>.log (--verbose shows them here too)" in launcher.lines
    assert "gateway.started" in (logs / "gateway.log").read_text()
    assert "bot.started" in (logs / "bot.log").read_text()
    assert "playground: open" in (logs / "playground.log").read_text()
    # Without --verbose the parts' lines stay in their logs.
    assert not any(line.startswith("[") for line in launcher.lines)


async def test_a_part_that_fails_is_reported_and_the_rest_stopped(tmp_path: Path) -> None:
    async with FakeVLLM() as vllm:
        launcher = await launch(
            env={
                "VEIL_VLLM_URL": vllm.url,
                "VEIL_DATA_DIR": str(tmp_path),
                "VEIL_GATEWAY_SUITE": "not-a-suite",
                "VEIL_BOT_TOKEN": "123456:TEST-TOKEN",
            }
        )
        code = await wait_exit(launcher)
    assert code == 1
    assert "the gateway stopped (exit 2)" in launcher.output
    assert "VEIL_GATEWAY_SUITE" in launcher.output
    assert f"(all of it: {tmp_path / 'logs' / 'gateway.log'})" in launcher.output
    assert "VEIL_GATEWAY_SUITE" in (tmp_path / "logs" / "gateway.log").read_text()
    assert "starting the bot" not in launcher.output


async def wait_exit(process: ManagedProcess) -> int:
    """Wait for a process that is expected to end by itself (stopped all the same if not)."""
    try:
        async with asyncio.timeout(60):
            code = await process.process.wait()
    finally:
        await process.stop()  # a launcher that did not end would leave its parts on their ports
    return code


async def test_missing_local_model_file_is_a_clear_error(tmp_path: Path) -> None:
    launcher = await launch(
        env={"VEIL_DATA_DIR": str(tmp_path), "VEIL_LOCAL_MODEL": str(tmp_path / "nope.gguf")}
    )
    assert await wait_exit(launcher) == 1
    [line] = launcher.lines  # checked before anything is made or started
    assert line == f"veil: VEIL_LOCAL_MODEL: no such file {tmp_path / 'nope.gguf'}"
    assert names_in(tmp_path) == []


async def test_a_model_server_on_another_machine_is_refused_in_one_line(tmp_path: Path) -> None:
    launcher = await launch(
        env={"VEIL_DATA_DIR": str(tmp_path), "VEIL_VLLM_URL": "http://gpu-host:8000"}
    )
    assert await wait_exit(launcher) == 1
    [line] = launcher.lines
    assert line.startswith("veil: VEIL_VLLM_URL=http://gpu-host:8000 is not on this machine")
    assert "run a gateway next to that model server" in line
    assert "VEIL_GATEWAYS" in line
    assert "VEIL_OPERATOR_KEYS" in line
    assert names_in(tmp_path) == []  # no key made, no log started


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "it is empty"),  # the launcher made its logs in the current folder first
        ("~/veil", "it starts with ~"),  # and made a folder named ~ here
    ],
)
async def test_a_data_dir_the_parts_refuse_is_refused_first_making_nothing(
    tmp_path: Path, value: str, why: str
) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    work = tmp_path / "work"
    work.mkdir()
    launcher = await ManagedProcess.start(
        "-m",
        "launcher",
        env={"VEIL_DATA_DIR": value, "VEIL_LOCAL_MODEL": str(model)},
        cwd=str(work),
    )
    assert await wait_exit(launcher) == 1
    [line] = launcher.lines
    assert line.startswith(f"veil: VEIL_DATA_DIR is invalid: {why}")
    assert names_in(work) == []


async def launch_local(tmp_path: Path, settings: dict[str, str]) -> tuple[ManagedProcess, Path]:
    """The run command on a local model whose ``llama-server`` is built already; its data."""
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    data, cache = tmp_path / "data", tmp_path / "llama.cpp"
    install_fake_llama_server(cache)  # built already: nothing to compile
    env = {"VEIL_DATA_DIR": str(data), "VEIL_LOCAL_MODEL": str(model)}
    launcher = await launch(env={**env, "VEIL_LLAMA_CPP_DIR": str(cache), **settings})
    return launcher, data


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VEIL_LOCAL_MODEL_PORT", "x"),  # was a traceback (int() of it, after the keys were made)
        ("VEIL_LOCAL_MODEL_PORT", "70000"),  # was "still loading" until the start gave up
        ("VEIL_PLAYGROUND_PORT", "8080/"),  # was the playground's usage, once the rest ran
        ("VEIL_GATEWAY_PORT", "0"),  # the gateway took any port; the bot was sent to port 0
    ],
)
async def test_a_bad_port_of_the_run_command_is_one_line_before_anything_starts(
    tmp_path: Path, name: str, value: str
) -> None:
    launcher, data = await launch_local(tmp_path, {name: value})
    assert await wait_exit(launcher) == 1
    [line] = launcher.lines
    assert line == f"veil: {name}: a port number from 1 to 65535, not {value!r}"
    assert names_in(data) == []  # no key made, no log started, nothing built


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # the gateway failed to bind once the model server had loaded (after its build)
        ("VEIL_LOCAL_MODEL_PORT", "VEIL_GATEWAY_PORT"),
        ("VEIL_GATEWAY_PORT", "VEIL_PLAYGROUND_PORT"),
    ],
)
async def test_two_parts_given_one_port_are_one_line_before_anything_starts(
    tmp_path: Path, first: str, second: str
) -> None:
    # review29f: each port was checked alone, free before the run; the second part to take
    # the one port failed once the first held it.
    port = str(free_port())
    launcher, data = await launch_local(tmp_path, {first: port, second: port})
    assert await wait_exit(launcher) == 1
    assert launcher.lines == [
        f"veil: {first} and {second} are both {port}: give each part a port of its own"
    ]
    assert names_in(data) == []  # no key made, no log started


async def test_a_data_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    taken = tmp_path / "data"
    taken.write_text("a file where the folder should be")  # was a FileExistsError traceback
    launcher = await launch(
        env={"VEIL_DATA_DIR": str(taken), "VEIL_VLLM_URL": "http://127.0.0.1:9"}
    )
    assert await wait_exit(launcher) == 1
    [line] = launcher.lines
    assert line == f"veil: VEIL_DATA_DIR: cannot make the folder {taken}: File exists"
    assert taken.read_text() == "a file where the folder should be"


async def test_a_llama_cpp_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("cc", "c++", "cmake"):  # the build's tools, so the folder is made next
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed")
        (tools / name).symlink_to(found)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    taken = tmp_path / "llama.cpp"
    taken.write_text("a file where the folder should be")  # was a FileExistsError traceback
    launcher = await launch(
        env={
            "PATH": str(tools),
            "VEIL_DATA_DIR": str(tmp_path / "data"),
            "VEIL_LOCAL_MODEL": str(model),
            "VEIL_LLAMA_CPP_DIR": str(taken),
            "HOME": os.environ.get("HOME", "/"),
        }
    )
    assert await wait_exit(launcher) == 1
    [line] = launcher.lines
    folder = taken / SOURCE_VERSION / "work"
    assert line == f"veil: VEIL_LLAMA_CPP_DIR: cannot make the folder {folder}: Not a directory"


def names_in(folder: Path) -> list[str]:
    """What a folder holds."""
    return sorted(path.name for path in folder.iterdir())


async def test_gateways_elsewhere_run_only_the_bot_and_verbose_streams_its_log(
    tmp_path: Path,
) -> None:
    install_client_files(tmp_path)
    async with (
        FakeVLLM(answer="Hello from the gateway over there.") as vllm,
        run_gateway(vllm.url) as gateway,
        FakeTelegram(token=TOKEN) as telegram,
    ):
        launcher = await launch(
            "--verbose",
            env={
                "VEIL_GATEWAYS": gateway.url,
                "VEIL_OPERATOR_KEYS": b64e(gateway.verify_key),
                "VEIL_VLLM_URL": "http://gpu-host:8000",  # unused: the gateways are elsewhere
                "VEIL_BOT_TOKEN": TOKEN,
                "VEIL_TELEGRAM_API": telegram.url,
                "VEIL_DATA_DIR": str(tmp_path),
                "VEIL_BOT_METRICS_PORT": "0",
            },
        )
        try:
            await launcher.wait_for_line("press Ctrl-C to stop", within=90)
            telegram.send_text(77, "Are you there?")
            reply = await telegram.wait_for(  # rich messages are on by default
                "sendRichMessage", lambda c: c.params["chat_id"] == 77, timeout=30
            )
        finally:
            code = await launcher.stop()
    assert reply.params["rich_message"] == {"markdown": "Hello from the gateway over there."}
    assert code == 0
    output = launcher.output
    assert f"using the gateways at {gateway.url}: no model server or gateway starts" in output
    assert "starting the gateway" not in output
    assert "model server" not in output.replace("no model server", "")
    assert not (tmp_path / "operator.key").exists()
    assert f"client key    bot:{b64e(CLIENT_VERIFY_KEY)}" in output
    assert "(shown here too)" in output
    streamed = [line for line in launcher.lines if line.startswith("[bot] ")]
    assert any("bot.started" in line for line in streamed)
    logged = (tmp_path / "logs" / "bot.log").read_text().splitlines()
    assert [line.removeprefix("[bot] ") for line in streamed] == logged[: len(streamed)]


async def test_gateways_elsewhere_need_the_operator_key(tmp_path: Path) -> None:
    launcher = await launch(
        env={"VEIL_DATA_DIR": str(tmp_path), "VEIL_GATEWAYS": "http://gpu-host:8600"}
    )
    assert await wait_exit(launcher) == 1
    assert "VEIL_GATEWAYS is set: also set VEIL_OPERATOR_KEYS" in launcher.output
    assert "starting" not in launcher.output
    # Refused before the bot's client key is made: it was made, then the run refused.
    assert not {"client.key", "client.pub"} & set(names_in(tmp_path))


async def test_a_model_server_url_without_its_scheme_is_named_as_such(tmp_path: Path) -> None:
    # "127.0.0.1:8000" parses as scheme "127.0.0.1" and no host: it was refused as "not on
    # this machine", which it is.
    launcher = await launch(env={"VEIL_DATA_DIR": str(tmp_path), "VEIL_VLLM_URL": "127.0.0.1:8000"})
    assert await wait_exit(launcher) == 1
    [line] = launcher.lines
    assert line == (
        "veil: VEIL_VLLM_URL=127.0.0.1:8000 is not an http(s) URL: write it with its scheme, as"
        " in http://127.0.0.1:8000"
    )
    assert names_in(tmp_path) == []


def test_a_part_killed_by_a_signal_is_said_to_be_so_by_the_signal_s_name() -> None:
    # A llama-server built for another processor dies of SIGILL: "exit -4" named nothing.
    assert ended(-signal.SIGILL) == "killed by SIGILL"
    assert ended(-signal.SIGKILL) == "killed by SIGKILL"
    assert ended(2) == "exit 2"
    assert ended(-999) == "exit -999"  # no such signal: the number as it came


def test_logs_keep_the_last_runs_and_rotate_when_they_grow(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "gateway.log"
    for run in range(5):
        log = LogFile(path)
        log.write(f"run {run}\n".encode())
        log.close()
    kept = sorted(p.name for p in path.parent.iterdir())
    assert kept == ["gateway.log", "gateway.log.1", "gateway.log.2", "gateway.log.3"]
    assert path.read_text() == "run 4\n"
    assert (path.parent / "gateway.log.3").read_text() == "run 1\n"
    log = LogFile(path, limit=10)
    for line in (b"12345\n", b"67890\n", b"abcde\n"):
        log.write(line)
    log.close()
    assert path.read_text() == "abcde\n"
    assert (path.parent / "gateway.log.1").read_text() == "67890\n"
    assert (path.parent / "gateway.log.2").read_text() == "12345\n"


async def test_the_local_model_server_gets_its_window_and_the_bot_keeps_to_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    # 400-byte questions: without the window the bot would send the whole history, which
    # outgrows the server's 1024 tokens by the seventh question.
    questions = [f"Question {n}: " + "tell me more " * 30 for n in range(7)]
    async with FakeTelegram(token=TOKEN) as telegram:
        env = serving_settings(
            data,
            telegram.url,
            **local_model(tmp_path),
            VEIL_LOCAL_MODEL_CONTEXT="1024",
            VEIL_RICH_MESSAGES="off",  # the answers are read as text
            VEIL_CONVERSATION_TITLES="off",  # one model request (and hold) a question
        )
        launcher = await launch(env=env)
        try:
            await launcher.wait_for_line("press Ctrl-C to stop", within=90)
            for count, question in enumerate(questions, start=1):
                telegram.send_text(77, question)
                async with asyncio.timeout(30):
                    while len(telegram.sent_messages(77)) < count:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
        finally:
            code = await launcher.stop()
    assert code == 0
    assert [m["text"] for m in telegram.sent_messages(77)] == [LOCAL_ANSWER] * len(questions)
    assert "compiling" not in launcher.output  # the binary was there already
    assert "(window 1024 tokens, answers up to 512)" in launcher.output
    model_log = (data / "logs" / "model.log").read_text().splitlines()
    (args,) = [line for line in model_log if line.startswith("args: ")]
    assert "--host 127.0.0.1" in args
    assert "--alias tiny-chat" in args
    assert "--ctx-size 1024 --n-predict 512" in args
    assert "--no-webui --no-slots" in args  # nothing but the API: no page, no slot monitor
    caps = [int(line.split()[1]) for line in model_log if line.startswith("max_tokens: ")]
    assert len(caps) == len(questions)
    assert all(0 < cap <= 512 for cap in caps)


async def test_a_missing_build_tool_is_named_before_anything_starts(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("cc", "c++"):  # compilers, but no CMake
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    data = tmp_path / "data"
    launcher = await launch(
        env={
            "PATH": str(tools),
            "VEIL_DATA_DIR": str(data),
            "VEIL_LOCAL_MODEL": str(model),
            "HOME": os.environ.get("HOME", "/"),
        },
    )
    assert await wait_exit(launcher) == 1
    [line] = launcher.lines
    assert line == (
        "veil: CMake is needed to build llama.cpp once"
        " (Debian/Ubuntu: sudo apt-get install build-essential cmake)"
    )
    assert not (data / "operator.key").exists()
    assert not (data / "logs").exists()


def test_the_answer_cap_leaves_half_the_window_for_the_question() -> None:
    assert window_settings({}) == (2048, 1024)
    assert window_settings({"VEIL_LOCAL_MODEL_CONTEXT": "4096"}) == (4096, 1024)
    assert window_settings({"VEIL_LOCAL_MODEL_CONTEXT": "1024"}) == (1024, 512)
    assert window_settings({"VEIL_MAX_ANSWER_TOKENS": "200"}) == (2048, 200)
    with pytest.raises(LaunchError, match="at least 512 tokens"):
        window_settings({"VEIL_LOCAL_MODEL_CONTEXT": "100"})
    with pytest.raises(LaunchError, match="whole numbers of tokens"):
        window_settings({"VEIL_LOCAL_MODEL_CONTEXT": "2k"})
