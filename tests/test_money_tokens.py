"""Holds that never undercount, in every language, and no early wall before the free tokens end.

The fake model server here counts prompts as the worst byte-level BPE tokenizer could (one
token a UTF-8 byte) plus Llama 3.1's chat template (5 tokens a message, its begin token, the
dated default system prompt and the generation prompt): the "true count" no hold may be below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

from services.tokens import prompt_tokens
from tests.books import grant, inconsistent_users
from tests.botstack import Stack, running_stack
from tests.fakes.vllm import FakeVLLM

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

USER = 9401
STAR = 1_000_000
PRICE_IN, PRICE_OUT = 20, 60

KAZAKH = (
    "Қазақстанның астанасы қай қала және ол қашан астана болды? Тарихын қысқаша айтып беріңізші."
)
CHINESE = "请用三句话解释一下为什么天空是蓝色的\uff0c以及日落时为什么会变成红色和橙色。"
EMOJI = "🙂🙃😉😊😇🥰😍🤩😘😗☺️😚😙🥲😋😛😜🤪😝🤑🤗🤭🫢🫣🤫🤔 which of these means thinking?"


class ByteLevelVLLM(FakeVLLM):
    """A fake vLLM whose tokenizer is the worst a byte-level BPE model could have.

    Every UTF-8 byte is a token, in a prompt and in an answer alike (the answer's usage counts
    its bytes too). ``per_byte`` > 1 plays a tokenizer nobody foresaw, counting above every
    ceiling.
    """

    def __init__(self, *, per_byte: int = 1, **options: Any) -> None:  # noqa: ANN401
        super().__init__(**options)
        self.per_byte = per_byte

    def text_tokens(self, text: str) -> int:
        """The worst count: every byte a token."""
        return self.per_byte * len(text.encode("utf-8"))

    def prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        """Every content byte a token, and Llama 3.1's template tokens."""
        content = sum(self.text_tokens(str(m["content"])) for m in messages)
        return content + 5 * len(messages) + 1 + 25 + 4


async def holds(stack: Stack) -> list[dict[str, Any]]:
    rows = await stack.veil.store.read(
        lambda db: db.execute(
            "SELECT prompt_tokens, max_completion_tokens, units, outcome, prompt_used,"
            " completion_used, cost, charged FROM holds WHERE user_id = ? ORDER BY created_at",
            [USER],
        ).fetchall()
    )
    keys: tuple[str, ...] = ("prompt", "max_completion", "units", "outcome", "prompt_used")
    keys = (*keys, "completion_used", "cost", "charged")
    return [dict(zip(keys, row, strict=True)) for row in rows]


@pytest.mark.parametrize("prompt", [KAZAKH, CHINESE, EMOJI], ids=["kazakh", "chinese", "emoji"])
async def test_a_prompt_in_any_language_holds_at_least_its_true_count(
    tmp_path: Path, prompt: str
) -> None:
    async with running_stack(
        tmp_path, model_server=ByteLevelVLLM(answer="Жауап."), free_tokens_per_day=0
    ) as stack:
        assert await grant(stack.veil.store, USER, STAR, "grant", "test:welcome")
        stack.telegram.send_text(USER, prompt)
        assert await stack.reply_text(USER) == "Жауап."
        await stack.stored_turns(USER, 2)
        (hold,) = await holds(stack)
        assert await inconsistent_users(stack.veil.store) == []
    true_count = hold["prompt_used"]
    # The old estimate (three characters a token) was far below the true count.
    assert len(prompt) // 3 + 4 < true_count / 1.7
    assert hold["prompt"] >= true_count
    assert hold["outcome"] == "settled"
    assert hold["completion_used"] == len("Жауап.".encode())
    assert (
        hold["charged"]
        == hold["cost"]
        == PRICE_IN * true_count + PRICE_OUT * len("Жауап.".encode())
    )


async def test_a_count_above_every_ceiling_is_charged_in_full_into_an_overdraft(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, model_server=ByteLevelVLLM(answer="Ok.", per_byte=3), free_tokens_per_day=0
    ) as stack:
        # Enough for the hold (prompt ceiling and 64 answer tokens), not for 3 tokens a byte.
        room = prompt_tokens([{"role": "user", "content": KAZAKH}]) * PRICE_IN + 70 * PRICE_OUT
        assert await grant(stack.veil.store, USER, room, "grant", "test:welcome")
        with capture_logs() as logs:
            stack.telegram.send_text(USER, KAZAKH)
            assert await stack.reply_text(USER) == "Ok."
            await stack.stored_turns(USER, 2)
        (hold,) = await holds(stack)
        balance = await stack.veil.credit.balance(USER)
        stack.telegram.send_text(USER, "Again?")
        refusal = await stack.reply_text(USER, 1)
        assert await inconsistent_users(stack.veil.store) == []
    charged = PRICE_IN * hold["prompt_used"] + PRICE_OUT * hold["completion_used"]
    assert hold["charged"] == charged > hold["units"]
    assert balance.units == room - hold["charged"] < 0
    events = [entry["event"] for entry in logs]
    assert "billing.over_hold" in events
    assert "billing.overdraft" in events
    assert refusal.startswith("Not enough credit for an answer")
    assert f"your balance is -{(hold['charged'] - room) / STAR:f}".rstrip("0") in refusal


async def test_the_free_allowance_is_usable_to_the_last_useful_answer(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path,
        model_server=ByteLevelVLLM(answer="Ok."),
        free_tokens_per_day=1200,
        max_answer_tokens=1024,
    ) as stack:
        answers = 0
        for number in range(40):
            stack.telegram.send_text(USER, f"Question number {number}?")
            reply = await stack.reply_text(USER, number)
            if reply != "Ok.":
                break
            answers += 1
            await stack.stored_turns(USER, 2 * answers)
        refusal = reply
        free_left = (await stack.veil.credit.balance(USER)).free_tokens_left
        stack.telegram.send_text(USER, "/balance")
        balance = await stack.reply_text(USER, answers + 1)
        closed = await holds(stack)
        sent = [request["max_completion_tokens"] for request in stack.vllm.requests]
        assert await inconsistent_users(stack.veil.store) == []
    # Holding prompt + 1024 answer tokens would have allowed one answer; now they run on
    # until not even 64 answer tokens fit, each capped to what the free tokens still pay for.
    assert answers >= 5
    assert sent[0] == 1024
    assert sent[-1] < 1024
    assert all(h["outcome"] == "settled" and h["charged"] == 0 for h in closed)
    assert 0 < free_left < closed[-1]["prompt"] + 64 + 40
    # The refusal and /balance name the same free tokens and balance.
    assert f"beyond your {free_left} free tokens left today" in refusal
    assert "your balance is 0 ★" in refusal
    assert f"Free today: {free_left} tokens left" in balance
    assert balance.startswith("Balance: 0 ★")


async def test_a_kazakh_conversation_is_trimmed_to_the_window_before_it_is_sent(
    tmp_path: Path,
) -> None:
    window, answer_room = 1024, 200
    server = ByteLevelVLLM(answer="Иә, түсіндім. " * 4, max_model_len=window)
    async with running_stack(
        tmp_path, model_server=server, context_tokens=window, max_answer_tokens=answer_room
    ) as stack:
        with capture_logs() as logs:
            for turn in range(6):
                stack.telegram.send_text(USER, f"{turn}. {KAZAKH}")
                assert (await stack.reply_text(USER, turn)).startswith("Иә")
                await stack.stored_turns(USER, 2 * turn + 2)
        assert await inconsistent_users(stack.veil.store) == []
    # Every request fit the window by the worst count, the first time: no 400, no retry.
    assert len(server.requests) == 6
    assert all(
        count + request["max_completion_tokens"] <= window
        for count, request in zip(server.prompt_counts, server.requests, strict=True)
    )
    assert "chat.context_trimmed" not in [entry["event"] for entry in logs]
    # Old turns were left out (by the old estimate all six would have been sent).
    assert len(server.requests[-1]["messages"]) < 11
    assert sum(len(m["content"]) // 3 + 4 for m in server.requests[-1]["messages"]) < window
