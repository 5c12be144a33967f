"""One model's wait is that model's: a model server's Retry-After does not send away the rest.

A gateway may serve several models through one model server (a router before several engines,
each with its own quota). When it refuses one model with a wait (up to 300 s), the bot asks
other gateways for that model until the wait has passed, but keeps asking this gateway for
the others, which it still serves, once its own short back-off has passed.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ed25519

from services.inference import ChatRequest, InferenceClient, TextDelta
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, run_gateway

if TYPE_CHECKING:
    import aiohttp

    from tests.harness import Clock

MODELS = ("veil-a", "veil-b")


async def answer_text(client: InferenceClient, model: str) -> str:
    request = ChatRequest([{"role": "user", "content": "hi"}], model=model, cache_salt="s")
    return "".join([i.text async for i in client.stream(request) if isinstance(i, TextDelta)])


async def test_a_model_servers_wait_for_one_model_leaves_the_gateways_other_models(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # The wait put the whole gateway in back-off: for five minutes every question for the
    # other model went to the second gateway, though the first would have answered it.
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeVLLM(answer="from the first", models=MODELS) as one,
        FakeVLLM(answer="from the second", models=MODELS) as two,
        run_gateway(one.url, operator=operator, clock=clock) as first,
        run_gateway(two.url, operator=operator, clock=clock) as second,
    ):
        one.fail_before_stream = (429, "veil-a is over its quota")
        one.retry_after = "120"
        client = InferenceClient(
            [first.url, second.url], [first.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        client._pool.turn = itertools.count(0, 2)  # always start with the first gateway
        assert await answer_text(client, "veil-a") == "from the second"
        one.fail_before_stream = None
        clock.advance(10)  # past the gateway's own back-off after one failure (2 s)
        assert await answer_text(client, "veil-b") == "from the first"
        assert await answer_text(client, "veil-a") == "from the second"  # its wait holds
        assert [r["model"] for r in one.requests] == ["veil-a", "veil-b"]
        clock.advance(111)
        assert await answer_text(client, "veil-a") == "from the first"
