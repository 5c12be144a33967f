"""The bot's side of a gateway whose clock is wrong, and of its own clock behind a gateway's.

1. One of two gateways has a clock 5 minutes slow: its ``stale_request`` was no failover, so
   every other question failed although the other gateway would have answered it. It is now
   one (the gateway took nothing: the model never ran, nothing is charged), and the operator
   is told the skew once a gateway, not once a question; with one gateway the user still gets
   the polite error.
2. A bot 5 minutes behind a freshly started gateway refused its bundle as ``BundleExpired``
   (it is not yet valid) and never named the skew: now ``BundleNotYetValid`` with the seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from structlog.testing import capture_logs

from sealed.bundle import sign_bundle, verify_bundle
from sealed.encoding import b64e
from sealed.errors import BundleExpired, BundleNotYetValid
from sealed.suites import KeyPair, Suite
from services.errors import InferenceError, InferenceUnavailable
from services.inference import InferenceClient
from tests.botstack import running_stack
from tests.failover import answer_text
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, Clock, gateway_process, new_operator_key, run_gateway
from tests.test_clock23_skew import libfaketime
from tests.test_sealed_protocol import NOW, make_bundle

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

    import aiohttp

USER = 2399
ANSWER = "Sealed hello, world."


class Offset(Clock):
    """A clock ``seconds`` off another (a gateway's slow clock, set right by ``seconds = 0``)."""

    def __init__(self, base: Clock, seconds: float) -> None:
        super().__init__(base())
        self.base = base
        self.seconds = seconds

    def __call__(self) -> float:
        """The base clock's time, off by ``seconds``."""
        return self.base() + self.seconds


def shifted(seconds: str) -> dict[str, str]:
    """The environment that shifts a ``python -m gateway``'s wall clock (libfaketime's ``-300``)."""
    lib = libfaketime()
    if lib is None:
        pytest.skip("libfaketime is missing (Debian: apt-get install faketime, as .ci/run does)")
    return {"LD_PRELOAD": lib, "FAKETIME": seconds, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    """The captured log entries whose event is ``name``."""
    return [entry for entry in logs if entry["event"] == name]


async def test_a_gateway_with_a_wrong_clock_is_failed_over(tmp_path: Path) -> None:
    slow = shifted("-300")
    key_file, key = await new_operator_key(tmp_path)
    async with (
        FakeVLLM(answer="Answered.", models=("veil-test",)) as vllm,
        gateway_process(vllm.url, key_file, slow) as wrong,
        gateway_process(vllm.url, key_file) as right,
        running_stack(
            tmp_path / "bot",
            gateway_url=wrong.url,
            extra_gateways=[right.url],
            operator_keys=b64e(key),
        ) as stack,
    ):
        for i in range(3):
            stack.telegram.send_text(USER, f"Question {i}")
            await stack.final_messages(USER, count=i + 1, within=20)
        texts = [m["text"] for m in stack.telegram.sent_messages(USER)]
    assert texts == ["Answered."] * 3
    assert len(vllm.requests) == 3  # only the right gateway asked its model


async def test_the_skew_is_told_once_a_gateway_and_its_end_once(
    vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    slow = Offset(clock, -300)
    async with (
        run_gateway(vllm.url, clock=slow) as wrong,
        run_gateway(vllm.url, clock=clock) as right,
    ):
        client = InferenceClient(
            [wrong.url, right.url],
            [wrong.verify_key, right.verify_key],
            http,
            clock=clock,
            client_key=CLIENT_KEY,
        )
        with capture_logs() as logs:
            for _ in range(4):  # the wrong gateway is first for questions 1 and 3
                assert await answer_text(client) == ANSWER
                clock.advance(60)  # past its back-off
            told = events(logs, "inference.clock_skew")
            failovers = events(logs, "inference.failover")
            slow.seconds = 0  # its clock is set
            assert await answer_text(client) == ANSWER  # the wrong one's turn: it answers
    assert len(vllm.requests) == 5
    assert [(e["gateway"], e["reason"]) for e in failovers] == [(1, "HTTP 400 stale_request")] * 2
    assert [(e["log_level"], e["gateway"], e["ahead_s"], e["allowed_s"]) for e in told] == [
        ("warning", 1, 300, 120)
    ]
    assert [e["gateway"] for e in events(logs, "inference.clock_skew_over")] == [1]


async def test_with_one_gateway_a_wrong_clock_is_the_polite_error(
    vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    async with run_gateway(vllm.url, clock=Offset(clock, -300)) as wrong:
        client = InferenceClient(
            [wrong.url], [wrong.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        with capture_logs() as logs:
            for _ in range(3):
                with pytest.raises(InferenceError) as raised:
                    await answer_text(client)
                # The model could not answer (error_backend), not "not reachable: try again in
                # a moment" (error_unavailable): a wait sets no clock.
                assert not isinstance(raised.value, InferenceUnavailable)
                assert "stale_request" in str(raised.value)
    assert vllm.requests == []
    assert len(events(logs, "inference.clock_skew")) == 1


async def test_a_bot_behind_names_the_skew_not_an_expired_bundle(tmp_path: Path) -> None:
    fast = shifted("+300")
    key_file, key = await new_operator_key(tmp_path)
    async with (
        FakeVLLM(answer="Answered.", models=("veil-test",)) as vllm,
        gateway_process(vllm.url, key_file, fast) as ahead,
    ):
        with capture_logs() as logs:
            async with running_stack(
                tmp_path / "bot", gateway_url=ahead.url, operator_keys=b64e(key)
            ) as stack:
                stack.telegram.send_text(USER, "Question")
                await stack.final_messages(USER, within=20)
    rejected = events(logs, "inference.bundle_rejected")
    assert rejected
    for entry in rejected:
        assert entry["problem"] == "BundleNotYetValid"
        # This bot is 300 s behind, less the time since the gateway made its key (its
        # not_before): seconds on a loaded machine (-297 was seen), never a minute.
        assert -302 <= int(str(entry["ahead_s"])) <= -240
        assert entry["allowed_s"] == 120


def test_a_bundle_from_the_future_is_not_yet_valid_within_the_skew_valid() -> None:
    operator = ed25519.Ed25519PrivateKey.generate()
    pinned = [operator.public_key().public_bytes_raw()]
    keypair = KeyPair.generate(Suite.X25519)

    def wire(**window: int) -> dict[str, str]:
        return sign_bundle(make_bundle(keypair, **window), operator).to_wire()

    # docs/protocol.md §2: valid in [not_before - skew, not_after + skew).
    verify_bundle(wire(not_before=NOW + 120), pinned, now=NOW, skew=120)
    with pytest.raises(BundleNotYetValid) as early:
        verify_bundle(wire(not_before=NOW + 121), pinned, now=NOW, skew=120)
    assert (early.value.behind, early.value.allowed) == (121, 120)
    assert "121 s" in str(early.value)
    with pytest.raises(BundleExpired) as late:
        verify_bundle(wire(not_after=NOW - 120), pinned, now=NOW, skew=120)
    assert not isinstance(late.value, BundleNotYetValid)
