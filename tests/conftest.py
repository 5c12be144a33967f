"""Shared fixtures: a fake vLLM, a real gateway in front of it, and a sealed client."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest
from playwright.async_api import async_playwright

from models import MasterKey
from services.inference import InferenceClient
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, Clock, RunningGateway, run_gateway
from tests.miniapp import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from playwright.async_api import Browser


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
    """Debian's Chromium, headless, for the Mini App's page tests."""
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
