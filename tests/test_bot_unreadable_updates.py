"""Updates this aiogram cannot read (a newer Bot API's) are skipped, never a stalled bot.

aiogram reads a poll's batch whole: one update it could not validate failed the whole poll, and
polling asked for the same batch again and again, so no update after it was ever handled, for
anyone. By webhook such an update was refused with 400, which Telegram sends again and again.
The update here is a message forwarded from an origin whose ``type`` this aiogram does not know,
as Telegram adds kinds of origin (and of reaction, of boost source) in newer Bot API versions.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import structlog

from tests.botstack import WEBHOOK_SECRET, running_stack
from tests.test_bot_webhook import HEADER, post

if TYPE_CHECKING:
    from pathlib import Path

ANN = 9501
QUOTE = "a forwarded line about the marmalade-periscope-71"


def forwarded_from_a_newer_origin(update_id: int | None = None) -> dict[str, Any]:
    """A private message forwarded from an origin kind that this aiogram does not know."""
    message = {
        "message_id": 41,
        "date": 1_750_000_000,
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
        "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
        "text": QUOTE,
        "forward_origin": {"type": "story_author", "date": 1_749_999_000},
    }
    update: dict[str, Any] = {"message": message}
    return update if update_id is None else {"update_id": update_id} | update


async def test_a_poll_with_an_update_it_cannot_read_goes_on_past_it(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer="Paris.") as stack:
        with (
            structlog.testing.capture_logs() as logs,
            warnings.catch_warnings(record=True) as warned,
        ):
            warnings.simplefilter("always")
            poisoned = stack.telegram.updates.push(forwarded_from_a_newer_origin())
            stack.telegram.send_text(ANN, "What is the capital of France?")
            (answer,) = await stack.final_messages(ANN, 1, within=15)
    assert answer["text"] == "Paris."
    (skipped,) = [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert (skipped["update_id"], skipped["via"]) == (poisoned["update_id"], "poll")
    assert "forward_origin" in skipped["error"]
    assert QUOTE not in json.dumps(logs, default=str)
    assert not [w for w in warned if "unknown update type" in str(w.message)]


async def test_a_webhook_update_it_cannot_read_is_taken_and_skipped(tmp_path: Path) -> None:
    async with running_stack(tmp_path, webhook=True) as stack:
        with structlog.testing.capture_logs() as logs:
            sent = forwarded_from_a_newer_origin(update_id=7)
            assert await post(stack, sent, {HEADER: WEBHOOK_SECRET}) == 200
    (skipped,) = [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert (skipped["update_id"], skipped["via"]) == (7, "webhook")
    assert QUOTE not in json.dumps(logs, default=str)
    assert stack.telegram.sent_messages(ANN) == []


async def test_a_payment_in_an_update_it_cannot_read_is_still_booked_and_credited(
    tmp_path: Path,
) -> None:
    # Skipped whole, the Stars were paid and never credited: Telegram does not send it again.
    paid = {
        "currency": "XTR",
        "total_amount": 50,
        "invoice_payload": "order-we-never-made",
        "telegram_payment_charge_id": "stxNEWERAPI1",
        "provider_payment_charge_id": "",
    }
    update = forwarded_from_a_newer_origin()
    message = update["message"]
    del message["text"]
    message["successful_payment"] = paid
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        with structlog.testing.capture_logs() as logs:
            stack.telegram.updates.push(update)
            thanks = await stack.telegram.wait_for(
                "sendMessage", lambda c: "Thank you" in str(c.params["text"])
            )
            balance = await stack.veil.credit.balance(ANN)
    assert thanks.params["chat_id"] == ANN
    assert balance.units == 50 * 1_000_000
    (kept,) = [e for e in logs if e["event"] == "telegram.update_unreadable"]
    assert kept["kept"] == "payment"
