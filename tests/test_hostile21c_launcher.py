"""The run command under a hostile eye: what it prints must hold no password of a URL.

The gateway takes the model server's Basic credentials from ``VEIL_VLLM_URL``
(``http://user:password@host:port``, docs/operations.md); the run command printed that URL as
it was in its refusals, its progress lines and its summary.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.botstack import TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.launching import install_client_files, launch, serving_settings

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
