"""Clocks that disagree: a bot's against its gateway's, by seconds and by minutes.

The gateway runs as ``python -m gateway`` with its wall clock shifted by libfaketime (Debian's
``faketime`` package, which ``.ci/run`` installs; ``VEIL_LIBFAKETIME`` names another copy), its
monotonic clock left alone; the bot runs in-process on the real clock. A skew past the allowed
120 s refuses every request; the gateway's operator gets one warning a request naming the
client and the seconds, the asker a refusal whose message says the same, the user a polite
reply. A skew an NTP-kept or VM clock has (seconds) changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from sealed.encoding import b64e
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    Clock,
    ManagedProcess,
    gateway_env,
    new_operator_key,
    post_sealed,
    run_gateway,
    seal_call,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp

USER = 2301


def libfaketime() -> str | None:
    """Debian's libfaketime (package ``faketime``), or the one ``VEIL_LIBFAKETIME`` names."""
    given = os.environ.get("VEIL_LIBFAKETIME")
    if given:
        return given if Path(given).is_file() else None
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    return str(found[0]) if found else None


@contextlib.asynccontextmanager
async def shifted_gateway(
    tmp_path: Path, vllm_url: str, offset: str
) -> AsyncIterator[tuple[str, bytes, ManagedProcess]]:
    """``python -m gateway`` whose wall clock is ``offset`` (libfaketime's ``+300``) off ours."""
    lib = libfaketime()
    if lib is None:
        pytest.skip("libfaketime is missing (Debian: apt-get install faketime, as .ci/run does)")
    key_file, verify_key = await new_operator_key(tmp_path)
    env = gateway_env(vllm_url, key_file) | {
        "LD_PRELOAD": lib,
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # asyncio's timers keep the real pace
    }
    process = await ManagedProcess.start("-m", "gateway", env=env)
    try:
        await process.wait_for_line("gateway.started")
        yield str(process.json_event("gateway.started")["url"]), verify_key, process
    finally:
        await process.stop()


def events(process: ManagedProcess, name: str) -> list[dict[str, object]]:
    """The process's JSON log lines whose event is ``name``."""
    found = []
    for line in process.lines:
        if line.startswith("{"):
            value = json.loads(line)
            if value.get("event") == name:
                found.append(value)
    return found


async def test_a_bot_minutes_ahead_gets_a_polite_reply_and_the_operator_one_line_with_the_skew(
    tmp_path: Path,
) -> None:
    async with (
        FakeVLLM(answer="It is late.", models=("veil-test",)) as vllm,
        shifted_gateway(tmp_path, vllm.url, "-300") as (url, key, gateway),
        running_stack(tmp_path / "bot", gateway_url=url, operator_keys=b64e(key)) as stack,
    ):
        stack.telegram.send_text(USER, "What time is it?")
        (reply,) = await stack.final_messages(USER, within=20)
        await gateway.wait_for_line("gateway.clock_skew")
        await stack.veil.chat.wait_idle(10)
        polite = stack.veil.catalogs.for_language("en")("error_backend")
    assert reply["text"] == polite
    assert not vllm.requests  # the model was never asked
    (line,) = events(gateway, "gateway.clock_skew")
    assert line["level"] == "warning"
    assert (line["client"], line["code"], line["allowed_s"]) == ("test", "stale_request", 120)
    assert 298 <= int(str(line["ahead_s"])) <= 302  # the bot's clock is 300 s ahead
    assert not events(gateway, "gateway.refused")  # not also a generic line


@pytest.mark.parametrize("offset", ["+3", "-3"])
async def test_a_few_seconds_of_skew_either_way_changes_nothing(
    tmp_path: Path, offset: str
) -> None:
    async with (
        FakeVLLM(answer="On time.", models=("veil-test",)) as vllm,
        shifted_gateway(tmp_path, vllm.url, offset) as (url, key, gateway),
        running_stack(tmp_path / "bot", gateway_url=url, operator_keys=b64e(key)) as stack,
    ):
        stack.telegram.send_text(USER, "What time is it?")
        (reply,) = await stack.final_messages(USER, within=20)
    assert reply["text"] == "On time."
    assert not events(gateway, "gateway.clock_skew")


@pytest.mark.parametrize(("ahead", "said"), [(-121, "121 s behind"), (600, "600 s ahead of")])
async def test_the_refusal_names_the_skew_and_the_window_edges_hold(
    http: aiohttp.ClientSession, ahead: int, said: str
) -> None:
    clock = Clock()
    async with (
        FakeVLLM(models=("veil-test",)) as vllm,
        run_gateway(vllm.url, clock=clock) as gateway,
    ):
        now = gateway.gateway.now()
        with capture_logs() as logs:
            for edge in (-120, 120):  # |ts - now| <= 120 is fresh (protocol.md §3, check 9)
                reply = await post_sealed(
                    http, gateway.url, seal_call(gateway, timestamp=now + edge)
                )
                assert reply.status == 200
            call = seal_call(gateway, timestamp=now + ahead)
            async with http.post(
                f"{gateway.url}/v1/sealed/chat/completions", data=call.body, headers=call.headers()
            ) as response:
                status, body = response.status, await response.json()
    assert (status, body["error"]["code"]) == (400, "stale_request")
    assert f"{said} the gateway's clock; at most 120 s is allowed" in body["error"]["message"]
    (warning,) = [entry for entry in logs if entry["event"] == "gateway.clock_skew"]
    assert (warning["ahead_s"], warning["allowed_s"], warning["client"]) == (ahead, 120, "test")
