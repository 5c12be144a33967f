"""Stars and inline answers under a hostile world: flood waits, answers asked at once.

A pre-checkout query lives about ten seconds, as an inline query does: an approval sent after
that is refused by Telegram, and the payment fails on the user's screen however long the bot
waited. Two results chosen at once by a user whose credit pays for one answer must not both
be answered, nor leave a hold behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_inline import FAST_EDITS, final_edit
from tests.test_bot_payments import (
    ADMIN,
    STAR,
    USER,
    buy_pack,
    finished,
    paying_stack,
    pre_checkout,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sqlite_utils import Database

    from tests.botstack import Stack


UNANSWERED = {"stars.checkout_unanswered", "handler_failed"}


async def test_a_pre_checkout_flood_wait_past_the_query_s_life_is_not_waited_out(
    tmp_path: Path,
) -> None:
    # A flood wait of 11 s on the approval: the bot slept it out and sent the approval again,
    # to a query Telegram had let go of (the payment already failed on the user's screen).
    # It should give up at once (a refusal would meet the same flood): one call, logged.
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        stack.telegram.fail_next(
            "answerPreCheckoutQuery",
            status=429,
            description="Too Many Requests: retry after 11",
            retry_after=11,
        )
        calls = stack.telegram.calls_of
        with structlog.testing.capture_logs() as logs:
            stack.telegram.pre_checkout(USER, payload=invoice["payload"], total_amount=50)
            await wait_until(
                lambda: (
                    len(calls("answerPreCheckoutQuery")) > 1
                    or any(e["event"] in UNANSWERED for e in logs)
                )
            )
        (flooded,) = calls("answerPreCheckoutQuery")  # not approved again 11 s late
        assert flooded.answered != "ok"
        assert [e["event"] for e in logs if e["event"] in UNANSWERED] == [
            "stars.checkout_unanswered"
        ]
        assert (await stack.veil.credit.balance(USER)).units == 0


async def test_a_pre_checkout_query_delivered_again_is_no_bug_and_no_second_refusal(
    tmp_path: Path,
) -> None:
    # Telegram refused the second answer to a query answered already: the errors router logged
    # a bug's traceback (handler_failed) for Telegram's refusal, and sent yet another answer,
    # a refusal of the approved checkout, refused in turn.
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        with structlog.testing.capture_logs() as logs:
            stack.telegram.pre_checkout(USER, payload=invoice["payload"], total_amount=50)
            first = await stack.telegram.wait_for("answerPreCheckoutQuery")
            query = {
                "id": first.params["pre_checkout_query_id"],
                "from": {"id": USER, "is_bot": False, "first_name": "Ann", "language_code": "en"},
                "currency": "XTR",
                "total_amount": 50,
                "invoice_payload": invoice["payload"],
            }
            stack.telegram.updates.push({"pre_checkout_query": query})
            await wait_until(lambda: any(e["event"] in UNANSWERED for e in logs))
        approved, again = stack.telegram.calls_of("answerPreCheckoutQuery")[:2]
        assert (approved.answered, approved.params["ok"]) == ("ok", True)
        assert again.answered != "ok"
    assert [e["event"] for e in logs if e["event"] in UNANSWERED] == ["stars.checkout_unanswered"]
    assert len(stack.telegram.calls_of("answerPreCheckoutQuery")) == 2


def grant(units: int) -> Callable[[Database], None]:
    def write(db: Database) -> None:
        db.execute(
            "INSERT INTO ledger (user_id, kind, amount, source, created_at, note)"
            " VALUES (?, 'grant', ?, 'grant:h21', 0, '')",
            [USER, units],
        )

    return write


async def test_two_results_chosen_at_once_on_credit_for_one_answer_charge_one(
    tmp_path: Path,
) -> None:
    # Credit for one answer's hold, not two; both results sent before either answer began.
    async with running_stack(
        tmp_path,
        answer="word " * 40,
        token_delay=0.02,
        star_packs="50:50000000",
        prices="*=1000/2000",
        free_tokens_per_day=0,
        max_answer_tokens=100,
        **FAST_EDITS,
    ) as stack:
        texts = stack.veil.catalogs.for_language("en")
        await stack.veil.store.write(grant(400_000))
        stack.telegram.state.new_inline_query(USER, "first question")
        stack.telegram.state.new_inline_query(USER, "second question")
        stack.telegram.choose_inline_result(
            USER, "ra", "first question", inline_message_id="inline-ra"
        )
        stack.telegram.choose_inline_result(
            USER, "rb", "second question", inline_message_id="inline-rb"
        )
        first = await final_edit(stack, "inline-ra")
        second = await final_edit(stack, "inline-rb")
        assert first["text"].endswith("word")
        assert second["text"] == texts("short_busy")
        assert len(stack.vllm.requests) == 1
        await wait_until(lambda: stack.veil.chat.running == 0)
        balance = await stack.veil.credit.balance(USER)
        assert balance.held == 0
        assert 0 < balance.units < 400_000  # one answer charged, from the one credit


async def test_a_payment_that_does_not_match_its_order_leaves_the_order_payable(
    tmp_path: Path,
) -> None:
    # A successful_payment naming the user's order in another currency (credited nothing) or
    # of another amount (credited at the pack rate) marked the order paid: the user's real
    # payment of that invoice was then refused at pre-checkout as "already paid".
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50, currency="USD")
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=1)
        await wait_until(lambda: len(admin_notices(stack)) == 2)
        assert [text.split(":")[0] for text in admin_notices(stack)] == [
            "Payment flagged (wrong_currency)",
            "Payment flagged (wrong_amount)",
        ]
        assert (await stack.veil.credit.balance(USER)).units == 1 * STAR
        answer = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert answer["ok"] is True
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await finished(stack, charge, within=10)  # its user (and admins, were it flagged) told
        thanks = stack.telegram.sent_messages(USER)[-1]["text"]
        assert thanks == "Thank you! 50 ★ added. Balance: 51 ★."
        assert len(admin_notices(stack)) == 2  # in order: not flagged
        again = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert again["error_message"] == "This invoice is already paid."


def admin_notices(stack: Stack) -> list[str]:
    return [
        str(call.params["text"])
        for call in stack.telegram.calls_of("sendMessage")
        if call.params["chat_id"] == ADMIN
    ]
