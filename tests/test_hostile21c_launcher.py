"""The run command under a hostile eye: what it prints, and what it leaves running.

The gateway takes the model server's Basic credentials from ``VEIL_VLLM_URL``
(``http://user:password@host:port``, docs/operations.md); the run command printed that URL as
it was in its refusals, its progress lines and its summary. And a stop while llama.cpp
compiled killed CMake alone: the build tool and compilers it had started ran on.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

from launcher.llama import SOURCE_VERSION
from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import free_port
from tests.launching import install_client_files, launch, local_model, serving_settings

if TYPE_CHECKING:
    from pathlib import Path

    from tests.harness import ManagedProcess

PASSWORD = "vllm-pass-0f3a9c"


async def _ended(process: ManagedProcess) -> int:
    try:
        async with asyncio.timeout(60):
            return await process.process.wait()
    finally:
        await process.stop()


async def test_a_model_server_refused_as_remote_is_named_without_its_password(
    tmp_path: Path,
) -> None:
    launcher = await launch(
        env={
            "VEIL_DATA_DIR": str(tmp_path),
            "VEIL_VLLM_URL": f"http://veil:{PASSWORD}@gpu-host:8000",
        }
    )
    assert await _ended(launcher) == 1
    [line] = launcher.lines
    assert line.startswith("veil: VEIL_VLLM_URL=http://gpu-host:8000 is not on this machine")
    assert PASSWORD not in launcher.output


async def test_a_local_model_server_s_password_is_in_no_line_the_run_prints(
    tmp_path: Path,
) -> None:
    install_client_files(tmp_path)
    async with FakeVLLM() as vllm, FakeTelegram(token=TOKEN) as telegram:
        port = vllm.url.rsplit(":", 1)[1]
        model_url = f"http://veil:{PASSWORD}@127.0.0.1:{port}"
        launcher = await launch(
            "--verbose", env=serving_settings(tmp_path, telegram.url, VEIL_VLLM_URL=model_url)
        )
        try:
            await launcher.wait_for_line("press Ctrl-C to stop", within=120)
        finally:
            code = await launcher.stop()
    assert code == 0
    output = launcher.output
    assert f"(model server: http://127.0.0.1:{port})" in output
    assert f"model server  http://127.0.0.1:{port}" in output
    assert PASSWORD not in output
    for log in (tmp_path / "logs").iterdir():
        assert PASSWORD not in log.read_text(), log.name


# CMake as far as the launcher sees it: configuring ends at once; building starts a worker (as
# ``cmake --build`` starts make and make the compilers) that writes its process id and works
# on, and reports progress as make does.
FAKE_CMAKE = """#!/bin/sh
if [ "$1" = "--build" ]; then
    "{python}" -c 'import os, time; open("{pid_file}", "w").write(str(os.getpid()))
time.sleep(600)' &
    echo "[  1%] Building C object ggml.c.o"
    wait
fi
exit 0
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie not reaped yet has ended all the same)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:  # noqa: PTH123 -- one read
            return stat.read().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
    except OSError:
        return False


async def start_compiling(tmp_path: Path) -> tuple[ManagedProcess, int]:
    """Start the run command on a local model, its llama.cpp unpacked but not built.

    Returns the launcher once it says it is compiling, and the build worker's process id
    (``FAKE_CMAKE``'s). Kill the worker yourself if the test fails before it has ended.
    """
    tools = tmp_path / "bin"
    tools.mkdir()
    pid_file = tmp_path / "worker.pid"
    (tools / "cmake").write_text(FAKE_CMAKE.format(python=sys.executable, pid_file=pid_file))
    for name in ("cc", "c++"):  # the compilers' probe for Intel AMX flags: they know them
        (tools / name).write_text("#!/bin/sh\ncat >/dev/null\nexit 0\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    cache = tmp_path / "llama.cpp"
    work = cache / SOURCE_VERSION / "work"
    (work / "source").mkdir(parents=True)
    (work / "source.ok").write_text("source\n")  # unpacked already: nothing is fetched
    model = tmp_path / "tiny-chat.gguf"
    model.write_bytes(b"GGUF")
    launcher = await launch(
        env={
            "PATH": f"{tools}:/usr/bin:/bin",
            "VEIL_DATA_DIR": str(tmp_path / "data"),
            "VEIL_LLAMA_CPP_DIR": str(cache),
            "VEIL_LOCAL_MODEL": str(model),
            "VEIL_LOCAL_MODEL_PORT": str(free_port()),
            "VEIL_GATEWAY_PORT": str(free_port()),
            "VEIL_PLAYGROUND_PORT": str(free_port()),
            "VEIL_BOT_METRICS_PORT": "0",
        }
    )
    await launcher.wait_for_line("compiling llama.cpp", within=60)
    async with asyncio.timeout(60):
        while not pid_file.exists() or not pid_file.read_text():  # noqa: ASYNC110 -- a file
            await asyncio.sleep(0.05)
    return launcher, int(pid_file.read_text())


async def test_a_stop_while_llama_cpp_compiles_leaves_no_build_process_running(
    tmp_path: Path,
) -> None:
    launcher, worker = await start_compiling(tmp_path)
    try:
        assert alive(worker)
        assert await launcher.stop(within=60) == 0  # SIGTERM, as systemd or kill sends it
        async with asyncio.timeout(30):  # given the time a stopping build tool takes
            while alive(worker):  # noqa: ASYNC110 -- another process's end
                await asyncio.sleep(0.05)
    finally:
        if alive(worker):
            os.kill(worker, 9)


async def test_a_local_model_port_another_server_holds_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    # Another model server (a run on other data, or anything else) holds the port the local
    # model server was to take: it answered the launcher's /health, and the gateway and bot
    # were sent to it.
    async with FakeVLLM() as other, FakeTelegram(token=TOKEN) as telegram:
        port = other.url.rsplit(":", 1)[1]
        settings = {**local_model(tmp_path), "VEIL_LOCAL_MODEL_PORT": port}
        launcher = await launch(env=serving_settings(tmp_path / "data", telegram.url, **settings))
        assert await _ended(launcher) == 1
    [line] = launcher.lines
    assert line == (
        f"veil: VEIL_LOCAL_MODEL_PORT: port {port} on 127.0.0.1 is in use (another run of"
        " Veil, or another program): stop it, or set VEIL_LOCAL_MODEL_PORT to a free port"
    )
    assert other.requests == []
    assert not (tmp_path / "data" / "operator.key").exists()
