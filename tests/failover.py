"""Two gateways, each before a fake model server of its own, and the bot's client between them.

The failover and back-off tests (test_inference_client, test_client_pool, the retry-after
tests) all need the same pair: one operator key signs both gateways' bundles, so a client
that pins it trusts either, and each model server answers with its own text, so the answer
says which gateway took the question.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from services.inference import ChatRequest, InferenceClient, TextDelta
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, run_gateway

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    import aiohttp

    from gateway.clients import ClientPolicy
    from tests.harness import Clock, RunningGateway


async def answer_text(client: InferenceClient, messages: list[Any] | None = None) -> str:
    """The text the client streams for ``messages`` (a "hi" from the user unless given)."""
    request = ChatRequest(
        messages or [{"role": "user", "content": "hi"}], model="veil-test", cache_salt="salt"
    )
    return "".join([i.text async for i in client.stream(request) if isinstance(i, TextDelta)])


@dataclass(frozen=True)
class TwoGateways:
    """Both model servers and the gateways before them, all under one operator key.

    ``one`` answers "from the first" behind ``first``; ``two`` "from the second" behind
    ``second``.
    """

    one: FakeVLLM
    two: FakeVLLM
    first: RunningGateway
    second: RunningGateway


@contextlib.asynccontextmanager
async def two_gateways(
    clock: Clock, *, first_clients: Mapping[bytes, ClientPolicy] | None = None
) -> AsyncIterator[TwoGateways]:
    """Run the pair; ``first_clients`` are the bots the first gateway serves (else ours)."""
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeVLLM(answer="from the first") as one,
        FakeVLLM(answer="from the second") as two,
        run_gateway(one.url, operator=operator, clock=clock, clients=first_clients) as first,
        run_gateway(two.url, operator=operator, clock=clock) as second,
    ):
        yield TwoGateways(one, two, first, second)


def first_first(
    urls: list[str], pinned: RunningGateway, http: aiohttp.ClientSession, clock: Clock
) -> InferenceClient:
    """A client of ``urls`` that pins ``pinned``'s operator and always starts with ``urls[0]``."""
    client = InferenceClient(urls, [pinned.verify_key], http, clock=clock, client_key=CLIENT_KEY)
    client._pool.turn = itertools.count(0, len(urls))  # the order under test
    return client
