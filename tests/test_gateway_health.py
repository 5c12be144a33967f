"""Health, key rotation under a failing model server, and model-server replies of any shape.

Whatever the model server sends, the gateway sees a ``BackendFailure`` (a sealed error record
for the client), never an exception of its own; the rotation task lives through garbage.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import pytest
import structlog
from aiohttp import web

from gateway.server import MODELS_REASK_S, MODELS_WARN_S, rotate_forever
from gateway.vllm import BackendFailure, ContentDelta, Finish, Usage, VLLMClient
from playground.served import Served
from sealed.bundle import verify_bundle
from sealed.receipt import MAX_MODEL_NAME
from sealed.stream import MAX_ERROR_MESSAGE, MAX_FINISH_REASON
from tests.fakes.vllm import FakeVLLM
from tests.harness import Clock, post_sealed, run_gateway, seal_call, serving, wait_until

if TYPE_CHECKING:
    from tests.harness import RunningGateway


async def health(http: aiohttp.ClientSession, running: RunningGateway) -> tuple[int, str]:
    async with http.get(f"{running.url}/health") as response:
        return response.status, (await response.json())["status"]


async def test_health_uses_v1_models_where_the_server_has_no_health_route(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    vllm.has_health = False
    assert await health(http, gateway) == (200, "ok")
    vllm.models_reply = {"data": None}
    assert await health(http, gateway) == (503, "model server unavailable")
    vllm.models_reply = None
    vllm.models_status = 500
    assert await health(http, gateway) == (503, "model server unavailable")


async def test_health_is_503_once_no_valid_key_is_served(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with run_gateway(vllm.url, clock=clock, rotation_seconds=60, grace_seconds=30) as gw:
        assert await health(http, gw) == (200, "ok")
        clock.advance(89)
        assert await health(http, gw) == (200, "ok")
        clock.advance(1)  # the key's not_after: nothing valid is served any more
        assert await health(http, gw) == (503, "no valid key")
        gw.gateway.ring.rotate(gw.gateway.now())
        assert await health(http, gw) == (200, "ok")


@pytest.mark.parametrize("step", [-7200, 7200], ids=["back", "forward"])
async def test_a_wall_clock_step_out_of_the_keys_window_gets_a_new_key_at_once(
    vllm: FakeVLLM, http: aiohttp.ClientSession, clock: Clock, step: int
) -> None:
    # The rotation is timed on the loop's monotonic clock, the key's window on the wall clock:
    # a step of the wall clock out of the window (NTP at boot, a VM restored) left no valid
    # key, /health 503 and the bundle refused by every bot, until the hour's rotation came.
    async with run_gateway(vllm.url, clock=clock, rotation_seconds=3600) as gw:
        task = asyncio.create_task(rotate_forever(gw.gateway, 3600, retry=0.05))
        try:
            assert await health(http, gw) == (200, "ok")
            first_key = gw.gateway.ring.current.keypair.key_id
            with structlog.testing.capture_logs() as logs:
                clock.advance(step)
                await wait_until(lambda: gw.gateway.ring.serving(gw.gateway.now()))
            assert await health(http, gw) == (200, "ok")
            assert gw.gateway.ring.current.keypair.key_id != first_key
            rotated = [e for e in logs if e["event"] == "gateway.key_rotated"]
            assert [e["reason"] for e in rotated] == ["clock"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    "reply",
    [
        {"data": None},
        {"data": "veil-test"},
        {"data": [{"id": 5}]},
        {"data": [{"name": "veil-test"}]},
        [],
        "veil-test",
        None,
    ],
    ids=["null", "string", "int-id", "no-id", "array", "string-body", "default"],
)
async def test_a_model_list_of_any_other_shape_is_a_backend_failure(
    vllm: FakeVLLM, http: aiohttp.ClientSession, reply: object
) -> None:
    client = VLLMClient(vllm.url, None, http)
    vllm.models_reply = reply
    if reply is None:
        assert await client.models() == ("veil-test",)
        return
    with pytest.raises(BackendFailure):
        await client.models()


async def test_the_rotation_task_lives_through_garbage_and_picks_the_models_up_later(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeVLLM() as fake:
        fake.models_reply = {"data": None}
        async with run_gateway(fake.url, clock=clock) as gw:
            ring = gw.gateway.ring
            assert ring.models == ()
            refused = await post_sealed(http, gw.url, seal_call(gw))
            assert (refused.status, refused.code) == (503, "no_models")
            first_key = ring.current.keypair.key_id
            listed = fake.listings
            with structlog.testing.capture_logs() as logs:
                task = asyncio.create_task(rotate_forever(gw.gateway, 0.05, retry=0.05))
                try:
                    await wait_until(lambda: fake.listings >= listed + 3)  # asked, refused
                    assert not task.done()
                    assert ring.current.keypair.key_id != first_key  # rotation went on
                    fake.models_reply = None  # the model server recovers
                    await wait_until(lambda: ring.models == ("veil-test",))
                    reply = await post_sealed(http, gw.url, seal_call(gw))
                    assert reply.text == "Hello from the fake model."
                    assert not task.done()
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            assert "gateway.key_rotated" in {e["event"] for e in logs}


@pytest.mark.parametrize("unreadable", ["/v1/models", "/props"])
async def test_a_reply_in_an_unknown_charset_is_a_backend_failure(
    http: aiohttp.ClientSession, unreadable: str
) -> None:
    # A proxy in front of the model server labelling its JSON "charset=hex": aiohttp decodes
    # with the named codec and raises LookupError, which is no ValueError; it escaped the
    # listing as a bug (health and the rotation task's model refresh) instead of a failure.
    async def reply(request: web.Request) -> web.Response:
        body = b'{"data": [{"id": "m"}], "default_generation_settings": {"n_ctx": 4096}}'
        charset = "hex" if request.path == unreadable else "utf-8"
        return web.Response(body=body, content_type="application/json", charset=charset)

    app = web.Application()
    app.router.add_get("/v1/models", reply)
    app.router.add_get("/props", reply)
    async with serving(app) as url:
        client = VLLMClient(url, None, http)
        if unreadable == "/props":  # llama.cpp's window unknown, the model still served
            assert await client.served() == {"m": None}
            return
        with pytest.raises(BackendFailure) as failed:
            await client.served()
        assert failed.value.message == "model list is not JSON"


# -- streams of any shape --------------------------------------------------------------------------


class RawModelServer(Served):
    """A model server that answers every chat with fixed bytes (for replies FakeVLLM won't send)."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body = body
        self.status = status
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Listen on a free port of 127.0.0.1; the base URL."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site.port}"
        return self.url

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=self.body, status=self.status, content_type="text/event-stream")


def sse(*events: str) -> bytes:
    return b"".join(f"data: {event}\n\n".encode() for event in events)


HELLO = '{"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}'


async def events_from(body: bytes, status: int = 200) -> list[object]:
    async with RawModelServer(body, status) as server, aiohttp.ClientSession() as session:
        client = VLLMClient(server.url, None, session)
        return [event async for event in client.stream_chat({"model": "m", "messages": []})]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (sse(HELLO), 200, "closed the stream"),
        (sse('{"choices":"x"}'), 200, "malformed event"),
        (sse('{"choices":[7]}'), 200, "malformed event"),
        (sse(HELLO, '{"choices":[],"usage":{"prompt_tokens":-1}}'), 200, "usage count"),
        (sse('{"choices":[],"usage":{"prompt_tokens":1e400}}'), 200, "usage count"),
        (sse("[" * 100_000 + "]" * 100_000), 200, "malformed event"),
        (sse("{not json"), 200, "malformed event"),
        (b"data: " + b"x" * (5 << 20) + b"\n\n", 200, "oversized event"),
        (b"<html>502 Bad Gateway</html>", 502, "unknown error"),
        (b'{"error": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 500, "unknown error"),
        (b'{"error": {"message": "' + b"e" * (3 << 20) + b'"}}', 500, "unknown error"),
        (b'{"error": {"message": 7}}', 400, "unknown error"),
    ],
    ids=[
        "no-done",
        "choices-string",
        "choice-int",
        "negative-usage",
        "float-usage",
        "deep",
        "not-json",
        "huge-line",
        "html-error",
        "deep-error",
        "huge-error",
        "error-not-text",
    ],
)
async def test_replies_of_any_shape_are_backend_failures(
    body: bytes, status: int, message: str
) -> None:
    with pytest.raises(BackendFailure) as failed:
        await events_from(body, status)
    assert message in failed.value.message
    assert len(failed.value.message) <= MAX_ERROR_MESSAGE


async def test_well_formed_events_pass_and_long_fields_are_cut() -> None:
    long_reason = "r" * 500
    body = sse(
        HELLO,
        '{"choices":[{"delta":{},"finish_reason":"' + long_reason + '"}]}',
        '{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":1}}',
        "[DONE]",
    )
    assert await events_from(body) == [
        ContentDelta("hi"),
        Finish("r" * MAX_FINISH_REASON),
        Usage(4, 1),
    ]
    error = sse('{"error":{"message":"' + "m" * 5000 + '","code":503}}')
    with pytest.raises(BackendFailure) as failed:
        await events_from(error)
    assert (failed.value.status, len(failed.value.message)) == (503, MAX_ERROR_MESSAGE)


async def test_a_user_and_password_in_the_url_reach_every_request_as_basic_auth() -> None:
    seen: list[tuple[str, str | None]] = []

    async def listing(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization")))
        return web.json_response({"data": [{"id": "m", "max_model_len": 2048}]})

    async def health(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization")))
        return web.Response()

    app = web.Application()
    app.router.add_get("/v1/models", listing)
    app.router.add_get("/health", health)
    async with serving(app) as url, aiohttp.ClientSession() as session:
        client = VLLMClient(url.replace("http://", "http://veil:s3cret@"), None, session)
        assert await client.served() == {"m": 2048}
        assert await client.healthy()
    basic = aiohttp.encode_basic_auth("veil", "s3cret")
    assert seen == [("/v1/models", basic), ("/health", basic)]


async def test_a_model_id_no_bundle_may_carry_is_left_out_and_the_rest_are_served(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    """An id past ``MAX_MODEL_NAME``, empty, or with control characters is left out, once said.

    A bundle listing such an id is malformed to every bot (``verify_bundle``), so one odd name
    in the model server's list made all of its models unusable.
    """
    odd = ["x" * (MAX_MODEL_NAME + 1), "", "bad\nname"]
    async with FakeVLLM(models=("veil-test", *odd)) as fake:
        with structlog.testing.capture_logs() as logs:
            async with run_gateway(fake.url, clock=clock) as running:
                async with http.get(f"{running.url}/v1/keys") as response:
                    wire = await response.json()
                bundle = verify_bundle(wire, [running.verify_key], now=int(clock())).bundle
                assert bundle.models == ("veil-test",)
                assert (await post_sealed(http, running.url, seal_call(running))).text
                await running.gateway.refresh_models()  # the next look: told no more
    skipped = [line for line in logs if line["event"] == "gateway.models_left_out"]
    assert len(skipped) == 1
    assert skipped[0]["count"] == len(odd)
    assert skipped[0]["log_level"] == "warning"
    assert "x" * 100 not in str(skipped[0])


async def test_a_model_list_of_odd_ids_alone_is_looked_at_again_after_the_retry(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    """With nothing servable listed, the next look is the retry's, not the next rotation's."""
    async with (
        FakeVLLM(models=("x" * (MAX_MODEL_NAME + 1),)) as fake,
        run_gateway(fake.url, clock=clock) as running,
    ):
        assert running.gateway.ring.models == ()
        listed = fake.listings
        task = asyncio.create_task(rotate_forever(running.gateway, 3600, retry=0.05))
        try:
            await wait_until(lambda: fake.listings > listed)  # the task has looked once
            fake.models = ("veil-test",)  # then the model server's own list comes right
            await wait_until(lambda: running.gateway.ring.models == ("veil-test",))
            assert (await post_sealed(http, running.url, seal_call(running))).text
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_model_server_listing_only_odd_ids_is_told_by_health_and_the_log(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    """Nothing servable listed: /health 503 naming it, and an error line saying so.

    The bundle then lists no model, which bots read as "not heard from its model server
    yet", and every request gets 503 no_models; /health stayed 200 and the only line was a
    warning about the odd ids, not that the gateway serves nothing.
    """
    ticks = Clock(0.0)  # the gateway's monotonic clock, moved by hand
    with structlog.testing.capture_logs() as logs:
        async with (
            FakeVLLM(models=("x" * (MAX_MODEL_NAME + 1), "")) as fake,
            run_gateway(fake.url, clock=clock, monotonic=ticks) as running,
        ):
            assert await health(http, running) == (503, "no servable model")
            fake.models = ("veil-test",)  # the model server's own list comes right
            ticks.advance(MODELS_REASK_S)  # the next look, at the pace of a look a few seconds
            assert await health(http, running) == (200, "ok")
    (told,) = [line for line in logs if line["event"] == "gateway.models_left_out"]
    assert told["log_level"] == "error"
    assert told["servable"] == 0


async def test_probes_while_the_model_list_cannot_be_read_ask_for_it_at_a_bounded_pace(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    """Every /health probe (and /v1/keys) asked the model server again, with a warning each."""
    ticks = Clock(0.0)  # the gateway's monotonic clock, moved by hand
    with structlog.testing.capture_logs() as logs:
        async with FakeVLLM() as fake:
            fake.models_reply = {"data": None}  # the list cannot be read
            async with run_gateway(fake.url, clock=clock, monotonic=ticks) as running:
                asked = fake.listings  # the start's ask
                for _ in range(10):
                    assert await health(http, running) == (503, "no servable model")
                    async with http.get(f"{running.url}/v1/keys") as response:
                        assert response.status == 200
                assert fake.listings == asked
                ticks.advance(MODELS_REASK_S)
                assert await health(http, running) == (503, "no servable model")
                assert await health(http, running) == (503, "no servable model")
                assert fake.listings == asked + 1
                ticks.advance(MODELS_WARN_S)
                assert await health(http, running) == (503, "no servable model")
                fake.models_reply = None  # the model server recovers
                ticks.advance(MODELS_REASK_S)
                assert await health(http, running) == (200, "ok")
                assert fake.listings == asked + 3
    warned = [line for line in logs if line["event"] == "gateway.models_unavailable"]
    assert [line["suppressed"] for line in warned] == [0, 1]  # the minute's, one left out


async def test_a_model_server_redirecting_elsewhere_is_not_followed_with_the_prompt() -> None:
    # aiohttp follows redirects by default: a model server (or a proxy in front of it) that
    # answered /tokenize with a 307 had the gateway post the plaintext prompt to whatever host
    # it named (hostile21c). The Bot API and toncenter clients never followed; neither does this.
    elsewhere: list[str] = []

    async def caught(request: web.Request) -> web.Response:
        elsewhere.append(f"{request.method} {request.path} {await request.text()}")
        return web.json_response({"count": 3, "data": [{"id": "m"}]})

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", caught)
    async with serving(other) as away:

        async def moved(request: web.Request) -> web.Response:
            await request.read()
            raise web.HTTPTemporaryRedirect(f"{away}{request.path}")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", moved)
        async with serving(app) as url, aiohttp.ClientSession() as session:
            client = VLLMClient(url, None, session)
            prompt = [{"role": "user", "content": "the-secret-question-71"}]
            assert await client.count_prompt_tokens("m", prompt) is None
            assert not await client.healthy()
            with pytest.raises(BackendFailure):
                await client.served()
    assert elsewhere == []
