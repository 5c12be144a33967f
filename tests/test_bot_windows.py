"""The bot packs each conversation into the window the gateway's signed bundle states.

``VEIL_CONTEXT_TOKENS`` is only an upper bound now, and the window of a model the bundle
states none for. The same conversation (six exchanges of about 340 tokens by the bot's byte
ceilings, then a seventh question) fits a 4096-token window whole, but not a 2048-token one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.tokens import prompt_tokens
from tests.botstack import running_stack
from tests.fakes.vllm import FakeVLLM

if TYPE_CHECKING:
    from pathlib import Path

USER = 9501
QUESTIONS = [f"Question {n}: " + "tell me about the sea and the wind " * 8 for n in range(7)]
WHOLE = 2 * len(QUESTIONS) - 1  # every turn before the last question, and the question


async def converse(tmp_path: Path, server: FakeVLLM, **settings: Any) -> FakeVLLM:  # noqa: ANN401
    """Ask every question in one conversation; the model server, with the requests it saw."""
    async with running_stack(tmp_path, model_server=server, **settings) as stack:
        for turn, question in enumerate(QUESTIONS):
            stack.telegram.send_text(USER, question)
            await stack.reply_text(USER, turn)
            await stack.stored_turns(USER, 2 * turn + 2)
    return server


def fits(server: FakeVLLM, window: int) -> bool:
    """Every request's prompt, as the model server counted it, and its answer cap fit ``window``.

    Not by the prompts' ceilings: a turn stored with its receipt's count (a question asked
    alone, say) counts by that.
    """
    return all(
        count + request["max_completion_tokens"] <= window
        for count, request in zip(server.prompt_counts, server.requests, strict=True)
    )


def ceiling(request: dict[str, Any]) -> int:
    """The request's prompt ceiling and answer cap."""
    return prompt_tokens(request["messages"]) + int(request["max_completion_tokens"])


async def test_a_2048_token_model_gets_fewer_turns_than_a_4096_token_one(tmp_path: Path) -> None:
    wide_server = await converse(tmp_path / "wide", FakeVLLM(max_model_len=4096))
    narrow_server = await converse(tmp_path / "narrow", FakeVLLM(max_model_len=2048))
    wide, narrow = wide_server.requests, narrow_server.requests
    assert len(wide) == len(narrow) == len(QUESTIONS)  # no 400, no retry
    assert len(wide[-1]["messages"]) == WHOLE  # the whole conversation fits 4096
    assert len(narrow[-1]["messages"]) < WHOLE  # ... but not 2048: older turns left out
    assert narrow[-1]["messages"][-1]["content"] == QUESTIONS[-1]
    assert narrow[-1]["messages"][0]["role"] == "user"
    assert fits(wide_server, 4096)
    assert fits(narrow_server, 2048)
    assert ceiling(wide[-1]) > 2048


async def test_the_setting_is_an_upper_bound_on_the_stated_window(tmp_path: Path) -> None:
    server = await converse(tmp_path, FakeVLLM(max_model_len=32768), context_tokens=2048)
    assert len(server.requests[-1]["messages"]) < WHOLE
    assert fits(server, 2048)


async def test_a_model_without_a_stated_window_uses_the_setting(tmp_path: Path) -> None:
    server = FakeVLLM()
    server.models_reply = {"object": "list", "data": [{"id": "veil-test", "object": "model"}]}
    narrow = await converse(tmp_path / "narrow", server, context_tokens=2048)
    assert len(narrow.requests[-1]["messages"]) < WHOLE
    assert fits(narrow, 2048)
    server = FakeVLLM()
    server.models_reply = {"object": "list", "data": [{"id": "veil-test", "object": "model"}]}
    wide = await converse(tmp_path / "wide", server, context_tokens=4096)
    assert len(wide.requests[-1]["messages"]) == WHOLE


async def test_a_small_window_caps_the_answer_to_what_the_context_leaves(
    tmp_path: Path,
) -> None:
    # A 1024-token window: answers keep at most half of it, even with 1024 asked for.
    server = await converse(tmp_path, FakeVLLM(max_model_len=1024), max_answer_tokens=1024)
    assert fits(server, 1024)
    caps = [request["max_completion_tokens"] for request in server.requests]
    assert all(512 <= cap < 1024 for cap in caps)
    # Each cap is what the context leaves of the window as the bot counts it: at least what the
    # prompt's ceiling leaves (the first question is counted by its receipt from then on).
    leaves = [1024 - prompt_tokens(request["messages"]) for request in server.requests]
    assert caps[0] == leaves[0]
    assert all(cap >= left for cap, left in zip(caps, leaves, strict=True))
    assert caps != leaves
