"""``python -m launcher``, where ``scripts/run`` ends: the playground chain and failure reports."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp

from tests.fakes.vllm import FakeVLLM
from tests.harness import ManagedProcess, free_port

if TYPE_CHECKING:
    from pathlib import Path


async def playground_replies(base: str, http: aiohttp.ClientSession) -> list[str]:
    """Wait for the bot's first message in the playground's private chat."""
    async with asyncio.timeout(30):
        while True:
            async with http.get(f"{base}/ui/state") as reply:
                state = await reply.json()
            texts = [str(m["html"]) for m in state["messages"] if not m["outgoing"]]
            if texts:
                return texts
            await asyncio.sleep(0.1)


async def test_without_a_token_the_playground_chat_works(tmp_path: Path) -> None:
    playground = free_port()
    async with FakeVLLM(answer="Hello from the playground chain.") as vllm:
        launcher = await ManagedProcess.start(
            "-m",
            "launcher",
            env={
                "VEIL_VLLM_URL": vllm.url,
                "VEIL_DATA_DIR": str(tmp_path),
                "VEIL_GATEWAY_PORT": str(free_port()),
                "VEIL_PLAYGROUND_PORT": str(playground),
            },
        )
        try:
            await launcher.wait_for_line("press Ctrl-C to stop", within=90)
            assert f"open http://127.0.0.1:{playground}" in launcher.output
            base = f"http://127.0.0.1:{playground}"
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/ui/send", json={"text": "hi there"}) as reply:
                    assert reply.status == 200
                texts = await playground_replies(base, http)
        finally:
            code = await launcher.stop()
    assert texts == ["Hello from the playground chain."]
    assert code == 0
    assert launcher.lines[-1] == "veil: stopping"


async def test_a_part_that_fails_is_reported_and_the_rest_stopped(tmp_path: Path) -> None:
    async with FakeVLLM() as vllm:
        launcher = await ManagedProcess.start(
            "-m",
            "launcher",
            env={
                "VEIL_VLLM_URL": vllm.url,
                "VEIL_DATA_DIR": str(tmp_path),
                "VEIL_GATEWAY_PORT": "not-a-port",
                "VEIL_BOT_TOKEN": "123456:TEST-TOKEN",
            },
        )
        code = await wait_exit(launcher)
    assert code == 1
    assert "the gateway stopped (exit 2)" in launcher.output
    assert "VEIL_GATEWAY_PORT" in launcher.output
    assert "starting the bot" not in launcher.output


async def wait_exit(process: ManagedProcess) -> int:
    """Wait for a process that is expected to end by itself."""
    async with asyncio.timeout(60):
        code = await process.process.wait()
    await process.stop()
    return code


async def test_missing_local_model_file_is_a_clear_error(tmp_path: Path) -> None:
    launcher = await ManagedProcess.start(
        "-m",
        "launcher",
        env={"VEIL_DATA_DIR": str(tmp_path), "VEIL_LOCAL_MODEL": str(tmp_path / "nope.gguf")},
    )
    assert await wait_exit(launcher) == 1
    assert "VEIL_LOCAL_MODEL: no such file" in launcher.output
    assert "creating the operator key" in launcher.output
