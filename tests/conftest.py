"""Shared fixtures: a fake vLLM, a real gateway in front of it, and a sealed client."""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

import bot  # noqa: F401 -- before aiogram: its models built on first use, as in the bot
from models import MasterKey
from services.inference import InferenceClient
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, Clock, RunningGateway, run_gateway
from tests.miniapp import chromium

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Generator

    from playwright.async_api import Browser


# The test files that take longest, longest first: the 30 of 300 whose tests' wall seconds
# summed most in a full run (VEIL_TEST_RUSAGE, 2026-12-02, loaded machine: 1,381 s down to
# 95 s). A worker runs a file whole (``--dist loadfile``), so one of these begun last is the
# run's tail: they go out first (``--no-loadscope-reorder`` keeps this order; xdist's own
# ordered the files by their number of tests, and left long files of few tests, such as a
# process stack's restart tests, to the end). The rest follow, the most tests first.
LONGEST_FILES = (
    "tests/test_webapp_browser.py",
    "tests/test_bot_operator.py",
    "tests/test_operator_edges.py",
    "tests/test_gateway_process.py",
    "tests/test_bot_shutdown.py",
    "tests/test_bench.py",
    "tests/test_deliver23_resend.py",
    "tests/test_bot_process.py",
    "tests/test_deliver22_restart.py",
    "tests/test_journal.py",
    "tests/test_compose.py",
    "tests/test_compose_operator.py",
    "tests/test_launcher.py",
    "tests/test_sealed_third_party.py",
    "tests/test_review21d_keygen.py",
    "tests/test_bot_backup.py",
    "tests/test_launcher_operator.py",
    "tests/uvloop/test_listener_edges_on_uvloop.py",
    "tests/test_payment_refund_races.py",
    "tests/test_bot_crash.py",
    "tests/test_bot_payments.py",
    "tests/test_listener_edges.py",
    "tests/test_webapp_hostile.py",
    "tests/test_deliver24_notes.py",
    "tests/test_ops22_read_keys.py",
    "tests/test_review24e_stop.py",
    "tests/test_gateway_restart.py",
    "tests/test_outbox25_kill.py",
    "tests/test_keyfile_durable.py",
    "tests/test_bot_rich_replies.py",
    "tests/test_playground.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the files longest first, each file's tests as they were."""
    rank = {name: place for place, name in enumerate(LONGEST_FILES)}
    counts = Counter(_file_of(item) for item in items)
    items.sort(key=lambda item: (rank.get(_file_of(item), len(rank)), -counts[_file_of(item)]))


def _file_of(item: pytest.Item) -> str:
    return item.nodeid.partition("::")[0]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "veil.db"


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def vllm() -> AsyncIterator[FakeVLLM]:
    async with FakeVLLM(answer="Sealed hello, world.") as fake:
        yield fake


@pytest.fixture
async def gateway(vllm: FakeVLLM, clock: Clock) -> AsyncIterator[RunningGateway]:
    # One clock for both: a test's ``clock.advance`` is time passing (a step of the wall clock
    # alone is a test of its own, with a gateway of two clocks).
    async with run_gateway(vllm.url, clock=clock, monotonic=clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(gateway: RunningGateway, http: aiohttp.ClientSession, clock: Clock) -> InferenceClient:
    return InferenceClient(
        [gateway.url], [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for the Mini App's page tests: one a test."""
    async with chromium() as launched:
        yield launched


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """With ``VEIL_TEST_RUSAGE=path``, append each test's wall and CPU seconds to ``path``.

    CPU is this worker's user and system time plus that of the processes it started and
    waited for (the bots and gateways), the figure that survives a loaded machine.
    """
    path = os.environ.get("VEIL_TEST_RUSAGE")
    if not path:
        return (yield)
    started, own, children = (
        time.monotonic(),
        _cpu(resource.RUSAGE_SELF),
        _cpu(resource.RUSAGE_CHILDREN),
    )
    try:
        return (yield)
    finally:
        line = "\t".join(
            [
                item.nodeid,
                f"{time.monotonic() - started:.3f}",
                f"{_cpu(resource.RUSAGE_SELF) - own:.3f}",
                f"{_cpu(resource.RUSAGE_CHILDREN) - children:.3f}",
            ]
        )
        with Path(path).open("a") as out:
            out.write(line + "\n")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
