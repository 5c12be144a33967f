"""``python -m gateway`` as a real process: keygen, settings errors, serving, stopping."""

from __future__ import annotations

import base64
import stat
import subprocess
import sys
from typing import TYPE_CHECKING

from services.inference import InferenceClient, TextDelta
from tests.fakes.vllm import FakeVLLM
from tests.harness import REPO, ManagedProcess, child_environment

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

PROMPT = "process-level secret prompt: periwinkle-otter"
ANSWER = "process-level secret answer: saffron-lantern"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- our own interpreter and module
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**child_environment(), **(env or {})},
        timeout=30,
        check=False,
    )


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
    bad_port = run(env={"VEIL_OPERATOR_KEY_FILE": str(tmp_path / "k"), "VEIL_GATEWAY_PORT": "x"})
    assert bad_port.returncode == 2
    (line,) = bad_port.stderr.strip().splitlines()
    assert "VEIL_GATEWAY_PORT" in line
    no_file = run(env={"VEIL_OPERATOR_KEY_FILE": str(tmp_path / "absent.key")})
    assert no_file.returncode == 2
    (line,) = no_file.stderr.strip().splitlines()
    assert "VEIL_OPERATOR_KEY_FILE" in line
    key_file = tmp_path / "open.key"
    assert run("keygen", "--out", str(key_file)).returncode == 0
    key_file.chmod(0o644)
    too_open = run(env={"VEIL_OPERATOR_KEY_FILE": str(key_file)})
    assert too_open.returncode == 2
    assert "0600" in too_open.stderr


async def test_gateway_process_serves_sealed_answers_and_stops(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    key_file = tmp_path / "operator.key"
    verify_key = run("keygen", "--out", str(key_file)).stdout.strip()
    async with FakeVLLM(answer=ANSWER, api_key="k-123") as fake:
        gateway = await ManagedProcess.start(
            "-m",
            "gateway",
            env={
                "VEIL_OPERATOR_KEY_FILE": str(key_file),
                "VEIL_VLLM_URL": fake.url,
                "VEIL_VLLM_API_KEY": "k-123",
                "VEIL_GATEWAY_PORT": "0",
            },
        )
        try:
            await gateway.wait_for_line("gateway.started")
            started = gateway.json_event("gateway.started")
            assert started["models"] == ["veil-test"]
            client = InferenceClient(
                [str(started["url"])],
                [base64.urlsafe_b64decode(verify_key + "=")],
                http,
            )
            parts = [
                item.text
                async for item in client.stream(
                    [{"role": "user", "content": PROMPT}], model="veil-test", cache_salt="s"
                )
                if isinstance(item, TextDelta)
            ]
            assert "".join(parts) == ANSWER
            await gateway.wait_for_line("gateway.relayed")
        finally:
            code = await gateway.stop()
    assert code == 0
    assert "gateway.stopped" in gateway.output
    for secret in ("periwinkle", "saffron", "k-123"):
        assert secret not in gateway.output
