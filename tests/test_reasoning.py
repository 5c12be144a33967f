"""Reasoning models: vLLM's thinking travels sealed in its own records, shown but never kept.

Fake vLLM streams the thinking the way vLLM's reasoning parser does (``reasoning_content`` or
``reasoning`` in deltas of their own, before the answer); the real gateway forwards it as
``REASONING`` records, shaped or not; the real client yields it as ``ReasoningDelta``; the bot
shows it in the draft and folds it into the final message (``VEIL_SHOW_REASONING``), and it
never reaches the stored history, the next request's context, the disk, the logs or the wire.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest
import structlog

from bot.formatting import TELEGRAM_LIMIT, Entity, Rendered, utf16_len
from bot.thinking import MAX_FOLDED, quote, with_thought
from gateway.events import ContentDelta, ReasoningDelta, decode_events
from gateway.shaping import Shaping
from services.inference import ChatRequest, Completion, InferenceClient, TextDelta
from services.inference import ReasoningDelta as ThoughtItem
from tests.botstack import running_stack, texts_of
from tests.fakes.relay import RecordingProxy
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.harness import ManualTicker, post_sealed, run_gateway, seal_call, wait_until
from tests.test_bot_privacy import disk_bytes
from tests.test_stream_shaping import address, cancel, on_the_wire

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

    from tests.harness import Clock

USER = 7301
THOUGHT = "The user asks about quillwort-zephyrine-12; recall the facts, then answer briefly."
ANSWER = "It is a **small** plant."
MESSAGES = [{"role": "user", "content": "What is it?"}]


async def collect(client: InferenceClient) -> tuple[str, str, Completion]:
    """The answer, the thinking and the completion of one sealed request."""
    text: list[str] = []
    thought: list[str] = []
    completion = None
    async for item in client.stream(ChatRequest(MESSAGES, model="veil-test", cache_salt="s")):
        if isinstance(item, TextDelta):
            text.append(item.text)
        elif isinstance(item, ThoughtItem):
            assert not text, "the thinking comes before the answer"
            thought.append(item.text)
        else:
            completion = item
    assert completion is not None
    return "".join(text), "".join(thought), completion


# -- the gateway reads vLLM's fields ---------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        ({"reasoning_content": "hm"}, [ReasoningDelta("hm")]),
        ({"reasoning": "hm"}, [ReasoningDelta("hm")]),
        ({"reasoning_content": "hm", "reasoning": "hm"}, [ReasoningDelta("hm")]),
        ({"reasoning_content": None, "content": "Hi"}, [ContentDelta("Hi")]),
        ({"reasoning": "", "content": ""}, []),
        ({"reasoning": 7}, []),
    ],
    ids=["older", "newer", "both", "null", "empty", "not-text"],
)
def test_reasoning_fields_become_reasoning_events(
    delta: dict[str, object], expected: list[object]
) -> None:
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    events, failure = decode_events([json.dumps(chunk).encode()])
    assert failure is None
    assert events == expected


# -- through the gateway, sealed ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning", "both"])
async def test_the_client_gets_the_thinking_apart_from_the_answer(
    client: InferenceClient, vllm: FakeVLLM, field: str
) -> None:
    vllm.answer = ANSWER
    vllm.reasoning = THOUGHT
    vllm.reasoning_field = field
    text, thought, completion = await collect(client)
    assert text == ANSWER
    assert thought == THOUGHT
    assert completion.receipt is not None
    assert completion.receipt.completion_tokens == len(split_tokens(THOUGHT)) + len(
        split_tokens(ANSWER)
    )


async def test_without_usage_the_estimate_counts_the_thinking_too(
    client: InferenceClient, vllm: FakeVLLM
) -> None:
    vllm.answer = ANSWER
    vllm.reasoning = THOUGHT
    vllm.send_usage = False
    _, _, completion = await collect(client)
    assert completion.receipt is not None
    assert completion.receipt.estimated
    assert completion.receipt.completion_tokens == len(split_tokens(THOUGHT)) + len(
        split_tokens(ANSWER)
    )


async def test_a_shaped_stream_sends_waiting_thinking_first_one_record_a_tick(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    shaping = Shaping(ticker=ManualTicker())
    ticker = shaping.ticker
    assert isinstance(ticker, ManualTicker)
    async with (
        FakeVLLM(answer=ANSWER) as fake,
        run_gateway(fake.url, clock=clock, shaping=shaping) as running,
        RecordingProxy(*address(running)) as relay,
    ):
        fake.reasoning = THOUGHT
        fake.stall_after = len(split_tokens(ANSWER))  # all of it, then silence: ticks decide
        call = seal_call(running)
        reading = asyncio.create_task(post_sealed(http, relay.url, call))

        def records() -> int:
            return len(on_the_wire(bytes(relay.downstream)).records)

        await fake.stall_started.wait()
        await wait_until(lambda: records() == 1 and ticker.following == 1)
        ticker.tick()  # the thinking that waits goes out; the answer waits
        await wait_until(lambda: records() == 2)
        ticker.tick()  # now the answer
        await wait_until(lambda: records() == 3)
        assert await cancel(http, running, call.cancel()) == 202
        reply = await reading
        wire = on_the_wire(bytes(relay.downstream))
    assert "".join(reply.reasoning) == THOUGHT
    assert reply.reasoning[0] == split_tokens(THOUGHT)[0]  # the first piece at once, alone
    assert len(reply.reasoning) == 2  # then the rest, in the first tick
    assert reply.text == ANSWER
    assert reply.texts[0] == ANSWER  # the second tick: the whole answer
    # One size for both kinds: it grew for the thinking's rest and the answer kept it.
    assert wire.records[0] <= wire.records[1] == wire.records[2]


async def test_a_shaped_stream_that_ends_while_thinking_waits_closes_with_it(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    shaping = Shaping(ticker=ManualTicker())
    async with (
        FakeVLLM(answer=ANSWER) as fake,
        run_gateway(fake.url, clock=clock, shaping=shaping) as running,
    ):
        fake.reasoning = THOUGHT
        reply = await post_sealed(http, running.url, seal_call(running))
    assert "".join(reply.reasoning) == THOUGHT
    assert reply.text == ANSWER
    assert reply.final is not None
    assert reply.final.finish_reason == "stop"


# -- the bot ---------------------------------------------------------------------------------


def thinking_model(token_delay: float = 0.04) -> FakeVLLM:
    fake = FakeVLLM(answer=ANSWER, token_delay=token_delay)
    fake.reasoning = THOUGHT
    return fake


async def test_the_draft_shows_the_thinking_and_the_answer_keeps_it_folded(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, model_server=thinking_model()) as stack:
        stack.telegram.send_text(USER, "What is quillwort?")
        (message,) = await stack.final_messages(USER)
        history = await stack.stored_turns(USER, 2)
        drafts = stack.telegram.drafts(USER)
    thinking = [text for text in texts_of(drafts) if text.startswith("💭")]
    assert thinking, "the draft showed the thinking"
    assert all(THOUGHT.startswith(text.removeprefix("💭 ")) for text in thinking)
    last = texts_of(drafts)[-1]
    assert last  # then the answer took the draft over
    assert "It is a small plant.".startswith(last)
    quote, *rest = message["entities"]
    assert quote["type"] == "expandable_blockquote"
    utf16 = message["text"].encode("utf-16-le")
    assert utf16[: 2 * quote["length"]].decode("utf-16-le") == "💭 " + THOUGHT
    assert message["text"].endswith("It is a small plant.")
    assert any(e["type"] == "bold" for e in rest)
    assert history == ["What is quillwort?", ANSWER]  # the thinking is never kept


async def test_hidden_thinking_reaches_neither_draft_nor_message(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, model_server=thinking_model(), show_reasoning=False
    ) as stack:
        stack.telegram.send_text(USER, "What is quillwort?")
        (message,) = await stack.final_messages(USER)
        history = await stack.stored_turns(USER, 2)
        drafts = stack.telegram.drafts(USER)
    assert message["text"] == "It is a small plant."
    assert all("quillwort" not in text for text in texts_of(drafts))
    assert history == ["What is quillwort?", ANSWER]


async def test_thinking_is_on_no_disk_log_wire_or_later_context(tmp_path: Path) -> None:
    markers = ("quillwort", "zephyrine")
    async with running_stack(tmp_path, model_server=thinking_model(0.0)) as stack:
        host, port = stack.gateway.url.removeprefix("http://").split(":")
        async with RecordingProxy(host, int(port)) as proxy:
            stack.veil.chat.inference._gateways[0].url = proxy.url
            with structlog.testing.capture_logs() as logs:
                stack.telegram.send_text(USER, "Tell me")
                (message,) = await stack.final_messages(USER)
                await stack.stored_turns(USER, 2)
                stack.telegram.send_text(USER, "And more")
                await stack.final_messages(USER, 2)
        assert "zephyrine" in message["text"]  # the user saw it
        follow_up = json.dumps(stack.vllm.requests[1]["messages"])
        assert all(marker not in follow_up for marker in markers)
        for haystack in (
            proxy.captured,
            disk_bytes(tmp_path),
            json.dumps(logs, default=str).encode(),
        ):
            for marker in markers:
                for encoding in ("utf-8", "utf-16-le"):
                    assert marker.encode(encoding) not in haystack, marker
    assert all(marker.encode() not in disk_bytes(tmp_path) for marker in markers)


# -- how the thinking is folded ----------------------------------------------------------------


def test_long_thinking_keeps_its_end_within_the_limit() -> None:
    thought = "start " + "🌍" * 3000 + " the conclusion"
    rendered = quote(thought, MAX_FOLDED, expandable=True)
    assert utf16_len(rendered.text) <= MAX_FOLDED
    assert rendered.text.startswith("💭 …")
    assert rendered.text.endswith("the conclusion")
    assert rendered.entities == (Entity("expandable_blockquote", 0, utf16_len(rendered.text)),)


def test_the_thinking_joins_the_first_message_and_shifts_its_entities() -> None:
    first = Rendered("It is small.", (Entity("bold", 6, 5),))
    (joined,) = with_thought("short thought", [first])
    head = "💭 short thought\n"
    assert joined.text == head + "It is small."
    assert joined.entities[1] == Entity("bold", 6 + utf16_len(head), 5)


def test_a_full_first_message_gets_the_thinking_as_its_own_message() -> None:
    full = Rendered("x" * (TELEGRAM_LIMIT - 100), ())
    parts = with_thought("a thought", [full])
    assert [p.text for p in parts] == ["💭 a thought", full.text]
    assert with_thought("  ", [full]) == [full]


def test_a_first_message_with_all_its_entities_gets_the_thinking_apart() -> None:
    words = Rendered(
        " ".join("w" for _ in range(100)), tuple(Entity("bold", 2 * n, 1) for n in range(100))
    )
    parts = with_thought("a thought", [words])
    assert [p.text for p in parts] == ["💭 a thought", words.text]  # not a 101st entity
    (joined,) = with_thought("a thought", [Rendered(words.text, words.entities[:99])])
    assert len(joined.entities) == 100
