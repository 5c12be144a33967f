"""The gateway learns each model's context window from the model server and signs it.

vLLM states ``max_model_len`` per model in ``/v1/models``; llama.cpp's ``llama-server`` states
its served window only in ``/props`` (its model list has the trained window, which is not the
one it serves). The key bundle lists what was learned, and the bot's pool reads it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.vllm import VLLMClient
from sealed.bundle import MAX_WINDOW
from services.inference import InferenceClient
from tests.fakes.llama_server import TRAINED_CONTEXT, FakeLlamaServer
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, run_gateway

if TYPE_CHECKING:
    import aiohttp

    from tests.harness import Clock


async def test_vllm_windows_are_signed_in_the_bundle_and_read_by_the_bot(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeVLLM(models=("small", "large")) as fake:
        fake.models_reply = {
            "object": "list",
            "data": [
                {"id": "small", "object": "model", "max_model_len": 2048},
                {"id": "large", "object": "model", "max_model_len": 32768},
            ],
        }
        async with run_gateway(fake.url, clock=clock) as running:
            signed = running.gateway.ring.bundle()
            assert signed.bundle.windows == {"small": 2048, "large": 32768}
            assert b'"windows":{"large":32768,"small":2048}' in signed.body
            client = InferenceClient(
                [running.url], [running.verify_key], http, clock=clock, client_key=CLIENT_KEY
            )
            await client.refresh()
            assert client.window("small") == 2048
            assert client.window("large") == 32768
            assert client.window("unlisted") is None


async def test_the_fake_vllm_default_window_reaches_the_bundle(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeVLLM(max_model_len=3000) as fake:
        assert await VLLMClient(fake.url, None, http).served() == {"veil-test": 3000}


async def test_llama_server_states_its_served_window_in_props_not_the_trained_one(
    clock: Clock,
) -> None:
    async with (
        FakeLlamaServer(models=("tiny-chat",), max_model_len=2048) as fake,
        run_gateway(fake.url, clock=clock) as running,
    ):
        assert TRAINED_CONTEXT != 2048
        assert running.gateway.ring.bundle().bundle.windows == {"tiny-chat": 2048}


async def test_a_server_stating_no_window_gives_a_bundle_without_the_field(clock: Clock) -> None:
    async with FakeVLLM(models=("plain",)) as fake:
        # llama-cpp-python's server: an id and nothing else, and no /props (404).
        fake.models_reply = {"object": "list", "data": [{"id": "plain", "object": "model"}]}
        async with run_gateway(fake.url, clock=clock) as running:
            signed = running.gateway.ring.bundle()
            assert signed.bundle.models == ("plain",)
            assert signed.bundle.windows == {}
            assert b"windows" not in signed.body


@pytest.mark.parametrize(
    "stated", ["4096", -1, 0, True, 4096.0, MAX_WINDOW + 1, None, [4096]], ids=repr
)
async def test_a_window_out_of_range_is_not_known_and_the_models_still_are(
    http: aiohttp.ClientSession, stated: object
) -> None:
    async with FakeVLLM(models=("odd", "fine")) as fake:
        fake.models_reply = {
            "data": [{"id": "odd", "max_model_len": stated}, {"id": "fine", "max_model_len": 8192}]
        }
        assert await VLLMClient(fake.url, None, http).served() == {"odd": None, "fine": 8192}


async def test_a_changed_window_is_signed_anew_at_the_next_refresh(clock: Clock) -> None:
    async with (
        FakeVLLM(max_model_len=4096) as fake,
        run_gateway(fake.url, clock=clock) as running,
    ):
        first = running.gateway.ring.bundle()
        assert first.bundle.windows == {"veil-test": 4096}
        fake.max_model_len = 2048  # the model server restarted with a smaller window
        assert await running.gateway.refresh_models()
        second = running.gateway.ring.bundle()
        assert second.bundle.windows == {"veil-test": 2048}
        assert second.signature != first.signature
        assert await running.gateway.refresh_models()
        assert running.gateway.ring.bundle() is second  # unchanged: not signed again


async def test_fixed_models_carry_the_windows_the_server_states_for_them(clock: Clock) -> None:
    fixed = ("veil-test", "elsewhere")
    async with (
        FakeVLLM(models=("veil-test", "hidden"), max_model_len=2048) as fake,
        run_gateway(fake.url, clock=clock, models=fixed) as gw,
    ):
        bundle = gw.gateway.ring.bundle().bundle
        assert bundle.models == fixed
        assert bundle.windows == {"veil-test": 2048}  # never one for a model not published
        # The model server goes away: the fixed models stay, and so do their windows.
        fake.models_status = 500
        assert await gw.gateway.refresh_models()
        assert gw.gateway.ring.bundle().bundle.windows == {"veil-test": 2048}


async def test_the_bot_takes_the_smallest_window_its_gateways_state(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeVLLM(max_model_len=4096) as wide,
        FakeVLLM(max_model_len=2048) as narrow,
        run_gateway(wide.url, clock=clock, operator=operator) as first,
        run_gateway(narrow.url, clock=clock, operator=operator) as second,
    ):
        client = InferenceClient(
            [first.url, second.url], [first.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        await client.refresh()
        assert len(client.bundles()) == 2
        assert client.window("veil-test") == 2048  # a request may go to either


async def test_a_gateway_whose_bundle_lists_no_models_yet_leaves_the_prompt_uncapped(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # A gateway that had not yet heard from its model server signs a bundle of no models; the
    # bot sends it any model's requests all the same (its model server may be up by then, with
    # any window). The prompt was held at most the other gateway's window, which this one's
    # model server need not keep to: its usage is charged whatever the hold.
    async with FakeVLLM(max_model_len=2048) as stated, FakeVLLM(max_model_len=8192) as silent:
        silent.models_status = 503
        async with (
            run_gateway(stated.url, clock=clock) as known,
            run_gateway(silent.url, clock=clock) as unknown,
        ):
            assert unknown.gateway.ring.bundle().bundle.models == ()
            client = InferenceClient(
                [known.url, unknown.url],
                [known.verify_key, unknown.verify_key],
                http,
                clock=clock,
                client_key=CLIENT_KEY,
            )
            await client.refresh()
            assert [trust.verified for trust in client.trust()] == [True, True]
            assert client.window("veil-test") == 2048
            assert client.widest_window("veil-test") is None
