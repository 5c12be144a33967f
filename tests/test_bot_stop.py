"""Stopping and stalls through the real bot: what the user sees and what the ledger charges.

Fake Telegram ← real bot → real gateway → slow fake vLLM, SQLite in ``tmp_path``. A stopped
answer is kept, shown and charged from the gateway's signed ``stopped`` receipt; with no
receipt to be had, from the bot's own count of the text delivered; a stalled model is "stopped
responding", charged what its receipt says.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from gateway.limits import Limits
from services.chat import estimate_tokens
from tests.botstack import Stack, running_stack
from tests.fakes.relay import RecordingProxy
from tests.fakes.vllm import split_tokens

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

USER = 8001
STAR = 1_000_000
PRICE_IN, PRICE_OUT = 20, 60  # the default VEIL_PRICES, µ★ a token
PROMPT = "Tell me everything about quokkas"
ANSWER = " ".join(f"zebra{i}" for i in range(80))
SECRETS = ("quokka", "zebra")


async def closed_holds(stack: Stack) -> list[dict[str, Any]]:
    """The user's closed holds, oldest first, as the ledger keeps them."""
    rows = await stack.veil.store.run(
        lambda db: db.execute(
            "SELECT outcome, receipt_status, prompt_used, completion_used, cost, charged"
            " FROM holds WHERE user_id = ? AND outcome IS NOT NULL ORDER BY created_at",
            [USER],
        ).fetchall()
    )
    keys = ("outcome", "receipt_status", "prompt", "completion", "cost", "charged")
    return [dict(zip(keys, row, strict=True)) for row in rows]


async def fund(stack: Stack) -> None:
    """Give the user one Star of credit (the stack's free allowance is turned off)."""
    assert await stack.veil.billing.credit(USER, STAR, "grant", "test:welcome")


async def assert_books_balance(stack: Stack, hold: dict[str, Any]) -> None:
    balance = await stack.veil.billing.balance(USER)
    assert (balance.units, balance.held) == (STAR - hold["charged"], 0)
    assert await stack.veil.billing.check_invariant() == []


def assert_no_text_in(logs: list[MutableMapping[str, Any]]) -> None:
    rendered = json.dumps(logs, default=str).lower()
    assert "chat.answered" in rendered  # the logs were captured
    for secret in SECRETS:
        assert secret not in rendered


async def test_stop_button_charges_what_was_delivered_from_a_stopped_receipt(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, free_tokens_per_day=0
    ) as stack:
        await fund(stack)
        with capture_logs() as logs:
            stack.telegram.send_text(USER, PROMPT)
            draft = await stack.telegram.wait_for("sendMessageDraft")
            stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
            (message,) = await stack.final_messages(USER)
            history = await stack.stored_turns(USER, 2)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
    delivered = message["text"]
    assert ANSWER.startswith(delivered)
    assert history == [PROMPT, delivered]
    assert hold["outcome"] == "settled"
    assert hold["receipt_status"] == "stopped"
    # Charged from the signed receipt: every token delivered, none that was not.
    assert 0 < hold["completion"] == len(split_tokens(delivered)) < len(split_tokens(ANSWER))
    assert hold["prompt"] > 0
    assert (
        hold["charged"]
        == hold["cost"]
        == PRICE_IN * hold["prompt"] + PRICE_OUT * hold["completion"]
    )
    events = [entry["event"] for entry in logs]
    assert "inference.cancel_sent" in events
    assert_no_text_in(logs)


async def test_cancel_command_charges_what_was_delivered_from_a_stopped_receipt(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, free_tokens_per_day=0
    ) as stack:
        await fund(stack)
        with capture_logs() as logs:
            stack.telegram.send_text(USER, PROMPT)
            await stack.telegram.wait_for("sendMessageDraft")
            stack.telegram.send_text(USER, "/cancel")
            (message,) = await stack.final_messages(USER)
            history = await stack.stored_turns(USER, 2)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
    delivered = message["text"]
    assert 0 < len(delivered) < len(ANSWER)
    assert history == [PROMPT, delivered]
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "stopped")
    assert 0 < hold["completion"] == len(split_tokens(delivered)) < len(split_tokens(ANSWER))
    assert hold["charged"] > 0
    assert_no_text_in(logs)


async def test_stop_with_no_receipt_to_be_had_charges_the_bots_own_count(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, free_tokens_per_day=0
    ) as stack:
        await fund(stack)
        host, port = stack.gateway.url.removeprefix("http://").split(":")
        proxy = RecordingProxy(host, int(port))
        await proxy.start()
        stack.veil.chat.inference._gateways[0].url = proxy.url
        stack.telegram.send_text(USER, PROMPT)
        draft = await stack.telegram.wait_for("sendMessageDraft")
        await proxy.close()  # the gateway is out of reach: no cancel, no receipt
        stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
        (message,) = await stack.final_messages(USER, within=20)
        history = await stack.stored_turns(USER, 2)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
    delivered = message["text"]
    assert delivered
    assert ANSWER.startswith(delivered)
    assert history == [PROMPT, delivered]
    assert (hold["outcome"], hold["receipt_status"]) == ("estimated", None)
    # Never zero for text the user received: the delivered text plus the prompt estimate.
    assert hold["completion"] == estimate_tokens(delivered)
    assert hold["prompt"] == estimate_tokens(PROMPT)
    assert hold["charged"] == PRICE_IN * hold["prompt"] + PRICE_OUT * hold["completion"] > 0


async def test_a_stalled_model_stopped_responding_and_is_charged_its_receipt(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path,
        answer=ANSWER,
        free_tokens_per_day=0,
        gateway_limits=Limits(backend_idle_timeout=0.5),
    ) as stack:
        await fund(stack)
        stack.vllm.stall_after = 3
        with capture_logs() as logs:
            stack.telegram.send_text(USER, PROMPT)
            (reply,) = await stack.final_messages(USER, within=20)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
        conversation = await stack.veil.store.active_conversation(USER)
        assert await stack.veil.store.history(USER, conversation) == []
    assert reply["text"] == "The model stopped responding. Please try again in a moment."
    assert "tamper" not in reply["text"]
    assert reply["reply_markup"]["inline_keyboard"][0][0]["text"] == "Retry"
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "error")
    assert hold["completion"] == 3  # what the receipt counts, nothing more
    assert hold["charged"] == PRICE_IN * hold["prompt"] + PRICE_OUT * 3
    assert "inference.model_stalled" in [entry["event"] for entry in logs]
    rendered = json.dumps(logs, default=str).lower()
    for secret in SECRETS:
        assert secret not in rendered


async def test_a_full_gateway_pool_tells_the_user_the_service_is_busy(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, gateway_streams=1, gateway_wait=0.3
    ) as stack:
        stack.telegram.send_text(USER, PROMPT)
        await stack.telegram.wait_for("sendMessageDraft")
        stack.telegram.send_text(USER + 1, "Me too, please")
        busy = await stack.reply_text(USER + 1, within=20)
        first = await stack.reply_text(USER, within=30)
        requests = len(stack.vllm.requests)
    assert busy == "All model servers are busy right now. Please try again in a minute."
    assert first == ANSWER
    assert requests == 1  # the second request never reached a gateway
