"""The fake vLLM server speaks vLLM 0.32's wire format, so clients tested against it hold up.

Copyright 2026 the Veil authors. Licensed under the Apache License 2.0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.fakes.llama_server import FakeLlamaServer
from tests.fakes.vllm import MESSAGE_TOKENS, FakeVLLM, estimate_prompt_tokens, split_tokens

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ANSWER = "Hello  there,\nthis is Veil. "
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fake() -> AsyncIterator[FakeVLLM]:
    async with FakeVLLM(answer=ANSWER) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def chat_body(content: str = "Hi!", **extra: object) -> dict[str, Any]:
    return {"model": "veil-test", "messages": [{"role": "user", "content": content}], **extra}


def parse_sse(raw: str) -> list[Any]:
    """Split an SSE body into decoded events; "[DONE]" stays a string."""
    assert raw.endswith("\n\n")
    events: list[Any] = []
    for block in raw.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def stream(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[aiohttp.ClientResponse, list[Any]]:
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        return response, parse_sse(await response.text())


async def read_lines(response: aiohttp.ClientResponse, lines: list[bytes]) -> None:
    """Collect lines as they arrive, so a test still has them when the stream breaks."""
    async for line in response.content:
        lines.append(line)


def contents(events: list[Any]) -> list[str]:
    return [
        e["choices"][0]["delta"]["content"]
        for e in events
        if isinstance(e, dict) and e.get("choices") and "role" not in e["choices"][0]["delta"]
    ]


async def test_stream_sends_vllm_032_event_sequence(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    response, events = await stream(session, fake.url, body)

    assert response.status == 200
    assert response.content_type == "text/event-stream"
    role, *deltas, finish, usage, done = events
    assert role["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
            "token_ids": None,
        }
    ]
    assert [d["choices"][0]["delta"]["content"] for d in deltas] == split_tokens(ANSWER)
    assert "".join(d["choices"][0]["delta"]["content"] for d in deltas) == ANSWER
    assert all(d["choices"][0]["finish_reason"] is None for d in deltas)
    assert finish["choices"][0]["delta"] == {"content": ""}
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    prompt = estimate_prompt_tokens(body["messages"])
    assert prompt == len(split_tokens("Hi!")) + 4
    assert usage["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": len(deltas),
        "total_tokens": prompt + len(deltas),
    }
    assert done == "[DONE]"
    chunks = [role, *deltas, finish, usage]
    assert {c["id"] for c in chunks} == {role["id"]}
    assert role["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == "veil-test" and c["system_fingerprint"] is None for c in chunks)


async def test_older_vllm_puts_finish_on_last_content_chunk(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeVLLM(answer="one two three", finish_on_extra_chunk=False) as fake:
        _, events = await stream(session, fake.url, chat_body(stream=True))

    role, *deltas, done = events
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert contents(deltas) == ["one", " two", " three"]
    assert [d["choices"][0]["finish_reason"] for d in deltas] == [None, None, "stop"]
    assert done == "[DONE]"


async def test_max_completion_tokens_truncates_with_length(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.answer = "a b c d e f g h"
    body = chat_body(stream=True, max_completion_tokens=3, stream_options={"include_usage": True})
    _, events = await stream(session, fake.url, body)

    assert contents(events) == ["a", " b", " c", ""]
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert events[-2]["usage"]["completion_tokens"] == 3


async def test_answer_callable_sees_the_request(session: aiohttp.ClientSession) -> None:
    def echo(body: dict[str, Any]) -> str:
        return f"You said: {body['messages'][-1]['content']}"

    async with FakeVLLM(answer=echo) as fake:
        _, events = await stream(session, fake.url, chat_body("ping pong", stream=True))

    assert "".join(contents(events)) == "You said: ping pong"


async def test_a_text_counts_the_same_written_and_read_back(
    session: aiohttp.ClientSession,
) -> None:
    # The prompt was counted a token each four characters and the answer a token a word, so an
    # answer of long words read back in the next prompt counted twice what its usage said; a
    # real model server counts a text the same whether it wrote it or reads it.
    written = "Photosynthesis notwithstanding, antidisestablishmentarianism perseveres."
    async with FakeVLLM(answer=written) as fake:
        body = chat_body(stream=True, stream_options={"include_usage": True})
        _, events = await stream(session, fake.url, body)
        completion = events[-2]["usage"]["completion_tokens"]
        asked = {"model": "veil-test", "messages": [{"role": "assistant", "content": written}]}
        async with session.post(f"{fake.url}/tokenize", json=asked) as response:
            read_back = (await response.json())["count"]
        next_prompt = chat_body(stream=True, max_completion_tokens=fake.max_model_len - 13)
        next_prompt["messages"] = [*asked["messages"], {"role": "user", "content": "Go"}]
        async with session.post(f"{fake.url}/v1/chat/completions", json=next_prompt) as reply:
            fits = reply.status

    assert "".join(contents(events)) == written
    assert completion == 4
    assert read_back == completion + MESSAGE_TOKENS
    assert fits == 200  # 4 + 4 + 1 + 4 prompt tokens and the rest of the window: exactly full


async def test_non_streaming_reply_is_one_completion(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    async with session.post(f"{fake.url}/v1/chat/completions", json=chat_body()) as response:
        reply = await response.json()

    assert response.status == 200
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["choices"][0]["message"]["content"] == ANSWER
    assert reply["choices"][0]["finish_reason"] == "stop"
    tokens = len(split_tokens(ANSWER))
    prompt = len(split_tokens("Hi!")) + 4
    assert reply["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": tokens,
        "total_tokens": prompt + tokens,
    }


async def test_unknown_model_is_vllm_not_found(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    body = {**chat_body(stream=True), "model": "gpt-5"}
    async with session.post(f"{fake.url}/v1/chat/completions", json=body) as response:
        assert response.status == 404
        assert await response.json() == {
            "error": {
                "message": "The model `gpt-5` does not exist.",
                "type": "NotFoundError",
                "param": "model",
                "code": 404,
            }
        }


async def test_context_too_long_is_400_with_vllm_wording(session: aiohttp.ClientSession) -> None:
    async with FakeVLLM(max_model_len=100) as fake:
        body = chat_body(" ".join(["x"] * 100), stream=True, max_completion_tokens=10)
        async with session.post(f"{fake.url}/v1/chat/completions", json=body) as response:
            error = (await response.json())["error"]

    assert response.status == 400
    assert error["type"] == "BadRequestError"
    assert error["code"] == 400
    assert error["message"] == (
        "This model's maximum context length is 100 tokens. However, your request has 104 input"
        " tokens. Please reduce the length of the input messages."
    )


async def test_default_completion_budget_counts_toward_the_context(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeVLLM(max_model_len=300) as fake:
        url = f"{fake.url}/v1/chat/completions"
        async with session.post(url, json=chat_body(" ".join(["x"] * 50))) as response:
            message = (await response.json())["error"]["message"]

    assert response.status == 400
    assert message == (
        "'max_tokens' or 'max_completion_tokens' is too large: 256. This model's maximum context"
        " length is 300 tokens and your request has 54 input tokens (256 > 300 - 54)."
    )


async def test_max_completion_tokens_above_window_is_400(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    body = chat_body(stream=True, max_completion_tokens=5000)
    async with session.post(f"{fake.url}/v1/chat/completions", json=body) as response:
        error = (await response.json())["error"]

    assert response.status == 400
    assert error["param"] == "max_completion_tokens"
    assert error["type"] == "BadRequestError"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "veil-test", "messages": []}, "messages"),
        ({"model": "veil-test", "messages": [{"role": "user"}]}, "messages"),
        ({**chat_body(), "stream_options": {"include_usage": True}}, "stream_options"),
        ({**chat_body(), "max_completion_tokens": "ten"}, "max_completion_tokens"),
    ],
)
async def test_malformed_request_is_400(
    fake: FakeVLLM, session: aiohttp.ClientSession, body: dict[str, Any], param: str
) -> None:
    async with session.post(f"{fake.url}/v1/chat/completions", json=body) as response:
        error = (await response.json())["error"]

    assert response.status == 400
    assert error["param"] == param


async def test_api_key_guards_v1_but_not_health(session: aiohttp.ClientSession) -> None:
    async with FakeVLLM(api_key="sk-fake", models=("a", "b")) as fake:
        async with session.post(f"{fake.url}/v1/chat/completions", json=chat_body()) as denied:
            denied_body = await denied.json()
        wrong = {"Authorization": "Bearer sk-wrong"}
        async with session.get(f"{fake.url}/v1/models", headers=wrong) as models_denied:
            assert models_denied.status == 401
        async with session.get(f"{fake.url}/health") as health:
            assert health.status == 200
        good = {"Authorization": "Bearer sk-fake"}
        async with session.get(f"{fake.url}/v1/models", headers=good) as models:
            listing = await models.json()
        body = {**chat_body(), "model": "b"}
        async with session.post(
            f"{fake.url}/v1/chat/completions", json=body, headers=good
        ) as accepted:
            assert accepted.status == 200

    assert denied.status == 401
    assert denied_body["error"]["code"] == 401
    assert denied_body["error"]["param"] is None
    assert listing["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in listing["data"]] == [
        ("a", "model", "vllm"),
        ("b", "model", "vllm"),
    ]
    assert listing["data"][0]["max_model_len"] == 4096
    assert fake.request_headers[-1]["authorization"] == "Bearer sk-fake"


async def test_error_mid_stream_is_an_sse_error_then_done(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.error_mid_stream_after = 2
    body = chat_body(stream=True, stream_options={"include_usage": True})
    response, events = await stream(session, fake.url, body)

    assert response.status == 200
    role, first, second, error, done = events
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert contents([first, second]) == split_tokens(ANSWER)[:2]
    assert error == {
        "error": {
            "message": "Internal server error",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }
    assert done == "[DONE]"


async def test_dropped_stream_surfaces_as_payload_error(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.drop_after = 1
    lines: list[bytes] = []
    url = f"{fake.url}/v1/chat/completions"
    async with session.post(url, json=chat_body(stream=True)) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_lines(response, lines)

    received = [json.loads(line.removeprefix(b"data: ")) for line in lines if line.strip()]
    assert contents(received) == split_tokens(ANSWER)[:1]
    assert b"data: [DONE]\n" not in lines

    fake.drop_after = None
    _, events = await stream(session, fake.url, chat_body(stream=True))
    assert "".join(contents(events)) == ANSWER


@pytest.mark.parametrize(
    ("flat", "expected"),
    [
        (
            False,
            {
                "error": {
                    "message": "busy",
                    "type": "ServiceUnavailableError",
                    "param": None,
                    "code": 503,
                }
            },
        ),
        (
            True,
            {
                "object": "error",
                "message": "busy",
                "type": "ServiceUnavailableError",
                "param": None,
                "code": 503,
            },
        ),
    ],
)
async def test_fail_before_stream_replies_json_error(
    fake: FakeVLLM, session: aiohttp.ClientSession, *, flat: bool, expected: dict[str, Any]
) -> None:
    fake.fail_before_stream = (503, "busy")
    fake.flat_error = flat
    url = f"{fake.url}/v1/chat/completions"
    async with session.post(url, json=chat_body(stream=True)) as response:
        assert response.status == 503
        assert response.content_type == "application/json"
        assert await response.json() == expected


async def test_health_follows_the_switch(fake: FakeVLLM, session: aiohttp.ClientSession) -> None:
    statuses = []
    for healthy in (True, False, True):
        fake.healthy = healthy
        async with session.get(f"{fake.url}/health") as response:
            statuses.append(response.status)
            assert await response.read() == b""

    assert statuses == [200, 503, 200]


async def test_requests_are_recorded_with_extra_keys(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    body = chat_body(
        stream=True,
        stream_options={"include_usage": True},
        cache_salt="salt-for-user-42",
        temperature=0.3,
    )
    await stream(session, fake.url, body)
    await stream(session, fake.url, {**body, "cache_salt": "salt-for-user-7"})

    assert fake.requests == [body, {**body, "cache_salt": "salt-for-user-7"}]
    assert fake.request_headers[0]["content-type"] == "application/json"


async def test_token_delay_streams_deltas_as_they_are_made(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.answer = "a b c d"
    fake.token_delay = 0.1
    url = f"{fake.url}/v1/chat/completions"
    finished_streams_at_each_delta = []
    async with session.post(url, json=chat_body(stream=True)) as response:
        async for line in response.content:
            if b'"content":"' in line and b'"role"' not in line:
                finished_streams_at_each_delta.append(len(fake.token_times))

    assert len(finished_streams_at_each_delta) == 5  # four tokens and the finish chunk
    assert finished_streams_at_each_delta[0] == 0  # the first arrived while the rest was made
    assert len(fake.token_times) == 1


async def test_entry_point_runs_as_a_process_until_sigterm(
    session: aiohttp.ClientSession,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.vllm",
        "--port",
        "0",
        "--answer",
        "from a process",
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ").strip()
        async with session.get(f"{url}/health") as health:
            assert health.status == 200
        _, events = await stream(session, url, chat_body(stream=True))
        assert "".join(contents(events)) == "from a process"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(process.wait(), timeout=10)

    assert returncode == 0


async def read_deltas(response: aiohttp.ClientResponse, count: int) -> list[str]:
    """Read whole SSE events until `count` content deltas are in; return them."""
    events: list[Any] = []
    while len(contents(events)) < count:
        event = await response.content.readuntil(b"\n\n")
        assert event.endswith(b"\n\n"), "the stream ended early"
        events.append(json.loads(event.removeprefix(b"data: ")))
    return contents(events)


async def test_stall_holds_the_stream_open_until_the_client_hangs_up(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.stall_after = 2
    url = f"{fake.url}/v1/chat/completions"
    async with session.post(url, json=chat_body(stream=True)) as response:
        assert await read_deltas(response, 2) == split_tokens(ANSWER)[:2]
        await asyncio.wait_for(fake.stall_started.wait(), timeout=5)
        with pytest.raises(TimeoutError):  # nothing more comes: no delta, no finish, no [DONE]
            await asyncio.wait_for(response.content.readline(), timeout=0.2)
        assert not response.content.at_eof()
        assert (fake.stalled_streams, fake.stalled_closed) == (1, 0)
        assert not fake.stall_released.is_set()
        response.close()  # the client gives up, as a gateway's read timeout would

        await asyncio.wait_for(fake.stall_released.wait(), timeout=5)

    assert (fake.stalled_streams, fake.stalled_closed) == (1, 1)
    assert len(fake.requests) == 1


async def test_stall_on_a_non_streamed_call_sends_no_reply(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.stall_after = 0
    call = asyncio.create_task(session.post(f"{fake.url}/v1/chat/completions", json=chat_body()))
    await asyncio.wait_for(fake.stall_started.wait(), timeout=5)
    assert not call.done()
    call.cancel()  # the client gives up before any reply
    with pytest.raises(asyncio.CancelledError):
        await call

    await asyncio.wait_for(fake.stall_released.wait(), timeout=5)
    assert (fake.stalled_streams, fake.stalled_closed) == (1, 1)


async def test_close_cuts_a_stalled_stream_instead_of_hanging(
    session: aiohttp.ClientSession,
) -> None:
    fake = FakeVLLM(answer=ANSWER)
    await fake.start()
    fake.stall_after = 1
    lines: list[bytes] = []
    url = f"{fake.url}/v1/chat/completions"
    async with session.post(url, json=chat_body(stream=True)) as response:
        await read_deltas(response, 1)
        await asyncio.wait_for(fake.stall_started.wait(), timeout=5)

        await asyncio.wait_for(fake.close(), timeout=5)

        with pytest.raises(aiohttp.ClientPayloadError):
            await read_lines(response, lines)

    assert b"data: [DONE]\n" not in lines
    assert (fake.stalled_streams, fake.stalled_closed) == (1, 0)  # closed by the fake, not us


async def test_without_usage_the_stream_and_reply_omit_it(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.send_usage = False
    body = chat_body(stream=True, stream_options={"include_usage": True})
    _, events = await stream(session, fake.url, body)
    async with session.post(f"{fake.url}/v1/chat/completions", json=chat_body()) as response:
        reply = await response.json()

    *chunks, done = events
    assert done == "[DONE]"
    assert all("usage" not in chunk and chunk["choices"] for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(contents(events)) == ANSWER
    assert "usage" not in reply
    assert reply["choices"][0]["message"]["content"] == ANSWER


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (chat_body("x" * 40), estimate_prompt_tokens([{"role": "user", "content": "x" * 40}])),
        ({"model": "veil-test", "prompt": " ".join(["y"] * 41)}, 41 + 1),
        ({"prompt": ""}, 1),
    ],
)
async def test_tokenize_counts_like_vllm(
    fake: FakeVLLM, session: aiohttp.ClientSession, body: dict[str, Any], count: int
) -> None:
    async with session.post(f"{fake.url}/tokenize", json=body) as response:
        reply = await response.json()

    assert response.status == 200
    assert reply == {
        "count": count,
        "max_model_len": 4096,
        "tokens": [0] * count,
        "token_strs": None,
    }
    assert fake.tokenize_requests == [body]
    assert fake.requests == []  # counting is not a chat call


async def test_tokenize_chat_count_matches_the_chat_prompt_tokens(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    body = chat_body("How long is this prompt, really?")
    async with session.post(f"{fake.url}/tokenize", json=body) as response:
        counted = (await response.json())["count"]
    async with session.post(f"{fake.url}/v1/chat/completions", json=body) as response:
        used = (await response.json())["usage"]["prompt_tokens"]

    assert counted == used


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "veil-test"}, 400, "prompt"),
        ({"model": "veil-test", "prompt": 7}, 400, "prompt"),
        ({"model": "veil-test", "messages": []}, 400, "messages"),
        ({"model": "gpt-5", "prompt": "hi"}, 404, "model"),
    ],
)
async def test_tokenize_rejects_bad_bodies(
    fake: FakeVLLM,
    session: aiohttp.ClientSession,
    body: dict[str, Any],
    status: int,
    param: str,
) -> None:
    async with session.post(f"{fake.url}/tokenize", json=body) as response:
        error = (await response.json())["error"]

    assert response.status == status
    assert (error["code"], error["param"]) == (status, param)
    assert fake.tokenize_requests == [body]


async def test_tokenize_unavailable_is_fastapis_404_and_still_recorded(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.tokenize_available = False
    body = {"model": "veil-test", "prompt": "count me"}
    async with session.post(f"{fake.url}/tokenize", json=body) as response:
        raw = await response.read()

    assert response.status == 404
    assert response.content_type == "application/json"
    assert raw == b'{"detail":"Not Found"}'
    assert fake.tokenize_requests == [body]


async def test_without_health_route_health_is_404(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.has_health = False
    async with session.get(f"{fake.url}/health") as response:
        raw = await response.read()

    assert response.status == 404
    assert raw == b'{"detail":"Not Found"}'


@pytest.mark.parametrize(
    "garbage",
    [{"data": None}, [], {"data": [{"no_id": 1}]}, {"object": "list"}, "models", 0],
)
async def test_models_reply_serves_garbage_exactly(
    fake: FakeVLLM, session: aiohttp.ClientSession, garbage: object
) -> None:
    fake.models_reply = garbage
    async with session.get(f"{fake.url}/v1/models") as response:
        raw = await response.read()

    assert response.status == 200
    assert json.loads(raw) == garbage


async def test_models_status_answers_an_error(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    fake.models_status = 503
    async with session.get(f"{fake.url}/v1/models") as response:
        error = (await response.json())["error"]
    fake.models_reply = {"detail": "warming up"}
    async with session.get(f"{fake.url}/v1/models") as response:
        custom = await response.json()
        custom_status = response.status
    fake.models_reply, fake.models_status = None, 200
    async with session.get(f"{fake.url}/v1/models") as response:
        listing = await response.json()

    assert response.status == 200
    assert (error["code"], error["type"]) == (503, "ServiceUnavailableError")
    assert (custom_status, custom) == (503, {"detail": "warming up"})
    assert [m["id"] for m in listing["data"]] == ["veil-test"]


@pytest.mark.parametrize(
    ("limits", "kept"),
    [
        ({"max_tokens": 3}, 3),
        ({"max_completion_tokens": 2, "max_tokens": 5}, 2),
        ({"max_completion_tokens": None, "max_tokens": 4}, 4),
        ({"max_tokens": None}, 8),
    ],
)
async def test_max_tokens_is_honoured_unless_max_completion_tokens_is_set(
    fake: FakeVLLM, session: aiohttp.ClientSession, limits: dict[str, Any], kept: int
) -> None:
    fake.answer = "a b c d e f g h"
    body = chat_body(stream=True, stream_options={"include_usage": True}, **limits)
    _, events = await stream(session, fake.url, body)
    async with session.post(f"{fake.url}/v1/chat/completions", json=chat_body(**limits)) as r:
        reply = await r.json()

    assert "".join(contents(events)) == "".join(split_tokens(fake.answer)[:kept])
    assert events[-3]["choices"][0]["finish_reason"] == ("length" if kept < 8 else "stop")
    assert events[-2]["usage"]["completion_tokens"] == kept
    assert reply["usage"]["completion_tokens"] == kept
    assert reply["choices"][0]["finish_reason"] == ("length" if kept < 8 else "stop")


async def test_max_tokens_above_window_is_400_naming_max_tokens(
    fake: FakeVLLM, session: aiohttp.ClientSession
) -> None:
    body = chat_body(stream=True, max_tokens=5000)
    async with session.post(f"{fake.url}/v1/chat/completions", json=body) as response:
        error = (await response.json())["error"]

    assert response.status == 400
    assert error["param"] == "max_tokens"
    assert error["message"] == "max_tokens must be at most 4096, got 5000."


async def test_the_llama_fake_stops_its_answer_where_the_window_is_full(
    session: aiohttp.ClientSession,
) -> None:
    # llama-server (server-context.cpp, process_token) sends each token, then stops once the
    # prompt and the tokens before it reach the window less one: a prompt one token short of
    # the window still gets one. The fake kept one more token free and answered nothing there.
    window = 64
    async with FakeLlamaServer(answer="a b c d e f g h", max_model_len=window) as server:
        content = " ".join(["w"] * (window - 1 - MESSAGE_TOKENS))
        messages = [{"role": "user", "content": content}]
        while server.prompt_tokens(messages) > window - 1:
            content = content[2:]
            messages = [{"role": "user", "content": content}]
        assert server.prompt_tokens(messages) == window - 1
        for prompt_left, answered in ((content, 1), (" ".join(content.split()[3:]), 4)):
            body = chat_body(
                prompt_left, stream=True, max_tokens=100, stream_options={"include_usage": True}
            )
            _, events = await stream(session, server.url, body)
            usage = events[-2]["usage"]
            assert (usage["completion_tokens"], usage["total_tokens"]) == (answered, window)
