"""Credits and Stars through the fake Telegram: buy, pre-checkout, pay, refund, subscribe."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import RefundStarPayment
from structlog.testing import capture_logs

from bot.reconcile import star_transactions
from bot.telegram import build_bot
from handlers.callbacks import BuyPack, BuyPlan
from handlers.shop import ALREADY_REFUNDED, NOT_FOUND, telegram_error
from services.shop import MAX_OPEN_ORDERS
from tests.books import inconsistent_users
from tests.botstack import TOKEN, Stack, bot_env, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import estimate_prompt_tokens
from tests.harness import run_python

if TYPE_CHECKING:
    import subprocess
    from collections.abc import AsyncIterator
    from pathlib import Path

import contextlib

USER, OTHER, ADMIN = 9001, 9002, 9999
STAR = 1_000_000


@contextlib.asynccontextmanager
async def paying_stack(tmp_path: Path, **settings: Any) -> AsyncIterator[Stack]:  # noqa: ANN401
    """A stack with small packs, real prices and no free allowance unless asked."""
    options: dict[str, Any] = {
        "star_packs": "50:50000000,250:275000000",
        "prices": "*=1000/2000",
        "free_tokens_per_day": 0,
        "admins": str(ADMIN),
        "max_answer_tokens": 100,
    }
    async with running_stack(tmp_path, answer="Paid answer.", **(options | settings)) as stack:
        yield stack
        assert await inconsistent_users(stack.veil.store) == []


async def buy_pack(stack: Stack, user: int, index: int = 0) -> dict[str, Any]:
    """/buy, press a pack button; return the invoice call's params."""
    before = len(stack.telegram.calls_of("sendInvoice"))
    stack.telegram.send_text(user, "/buy")
    menu = await stack.telegram.wait_for(
        "sendMessage", lambda c: c.params["chat_id"] == user and "reply_markup" in c.params
    )
    button = menu.params["reply_markup"]["inline_keyboard"][index][0]
    message = stack.telegram.sent_messages(user)[-1]
    stack.telegram.press_button(user, button["callback_data"], message_id=message["message_id"])
    await stack.telegram.wait_for("sendInvoice", lambda c: c.params["chat_id"] == user)
    return stack.telegram.calls_of("sendInvoice")[before].params


async def pre_checkout(stack: Stack, user: int, payload: str, amount: int) -> dict[str, Any]:
    before = len(stack.telegram.calls_of("answerPreCheckoutQuery"))
    stack.telegram.pre_checkout(user, payload=payload, total_amount=amount)
    async with asyncio.timeout(10):
        while len(stack.telegram.calls_of("answerPreCheckoutQuery")) <= before:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return stack.telegram.calls_of("answerPreCheckoutQuery")[before].params


async def balance_units(stack: Stack, user: int) -> int:
    return (await stack.veil.credit.balance(user)).units


async def test_buy_precheckout_pay_credits_once(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        assert invoice["currency"] == "XTR"
        assert invoice["prices"] == [{"label": "50 ★ credit", "amount": 50}]
        assert "provider_token" not in invoice
        answer = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert answer["ok"] is True
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        thanks = await stack.telegram.wait_for(
            "sendMessage", lambda c: str(c.params.get("text", "")).startswith("Thank you")
        )
        assert thanks.params["text"] == "Thank you! 50 ★ added. Balance: 50 ★."
        # Telegram delivers the same payment again: nothing changes, no second thank-you.
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50, charge_id=charge)
        await asyncio.sleep(0.5)
        thanks_sent = [
            c for c in stack.telegram.calls_of("sendMessage") if "Thank you" in c.params["text"]
        ]
        assert len(thanks_sent) == 1
        assert await balance_units(stack, USER) == 50 * STAR
        # The paid invoice cannot be paid again through pre-checkout.
        again = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert again["ok"] is False
        assert again["error_message"] == "This invoice is already paid."


async def test_precheckout_refuses_wrong_amount_foreign_and_unknown_orders(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        wrong = await pre_checkout(stack, USER, invoice["payload"], 49)
        foreign = await pre_checkout(stack, OTHER, invoice["payload"], 50)
        unknown = await pre_checkout(stack, USER, "no-such-order", 50)
        assert (wrong["ok"], foreign["ok"], unknown["ok"]) == (False, False, False)
        assert wrong["error_message"].startswith("The amount does not match")
        assert foreign["error_message"].startswith("This invoice belongs to someone else")
        assert unknown["error_message"].startswith("This invoice is not known")
        assert await balance_units(stack, USER) == 0


async def test_precheckout_refuses_an_expired_order(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        stack.veil.shop._clock = lambda: 10**10  # far past the order's expiry
        expired = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert expired["ok"] is False
        assert expired["error_message"] == "This invoice has expired. Please open /buy again."


async def test_no_credit_gets_buy_buttons_and_no_model_call(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        stack.telegram.send_text(USER, "Answer me for free")
        (note,) = await stack.final_messages(USER)
        assert note["text"].startswith("Not enough credit for an answer")
        buttons = [row[0]["text"] for row in note["reply_markup"]["inline_keyboard"]]
        assert buttons[0] == "50 ⭐ → 50 ★ credit"
        assert stack.vllm.requests == []
        assert await balance_units(stack, USER) == 0


async def test_paid_answer_is_charged_from_the_signed_receipt(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.send_text(USER, "Now answer")
        await stack.telegram.wait_for("sendMessage", lambda c: c.params["text"] == "Paid answer.")
        await asyncio.sleep(0.2)
        usage = stack.vllm.requests[-1]
        assert usage["max_completion_tokens"] == 100
        prompt_tokens = estimate_prompt_tokens(usage["messages"])
        expected = prompt_tokens * 1000 + 2 * 2000  # fake vLLM: 2 answer tokens
        assert await balance_units(stack, USER) == 50 * STAR - expected
        stack.telegram.send_text(USER, "/balance")
        balance = await stack.telegram.wait_for(
            "sendMessage", lambda c: str(c.params["text"]).startswith("Balance:")
        )
        assert "answer · -" in balance.params["text"]
        assert "purchase · +50 ★" in balance.params["text"]


async def test_admin_refund_and_refunded_payment_take_credit_back(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.send_text(USER, f"/refund {charge}")  # not an admin: ignored
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        done = await stack.telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN)
        assert done.params["text"] == f"Refunded 50 ⭐ to user {USER}; 50 ★ of credit taken back."
        assert stack.telegram.calls_of("refundStarPayment")[0].params["user_id"] == USER
        assert len(stack.telegram.calls_of("refundStarPayment")) == 1
        assert await balance_units(stack, USER) == 0
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        again = await stack.final_messages(ADMIN, 2)
        assert again[1]["text"] == "That payment was already refunded."
        stack.telegram.send_text(ADMIN, "/refund nope")
        assert (await stack.final_messages(ADMIN, 3))[2]["text"] == (
            "No payment with that charge id."
        )
        # Telegram also reports the refund: nothing is taken twice.
        stack.telegram.refunded(USER, payload=invoice["payload"], total_amount=50, charge_id=charge)
        await asyncio.sleep(0.4)
        assert await balance_units(stack, USER) == 0


async def test_refunded_payment_after_spending_leaves_a_negative_balance(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.send_text(USER, "Spend some")
        await stack.telegram.wait_for("sendMessage", lambda c: c.params["text"] == "Paid answer.")
        await stack.stored_turns(USER, 2)
        stack.telegram.refunded(USER, payload=invoice["payload"], total_amount=50, charge_id=charge)
        notice = await stack.telegram.wait_for(
            "sendMessage", lambda c: "refunded" in str(c.params["text"])
        )
        assert await balance_units(stack, USER) < 0
        assert "Balance: -" in notice.params["text"]
        stack.telegram.send_text(USER, "One more?")
        note = await stack.telegram.wait_for(
            "sendMessage", lambda c: str(c.params["text"]).startswith("Not enough credit")
        )
        assert note.params["chat_id"] == USER
        assert len(stack.vllm.requests) == 1


async def test_monthly_plan_first_payment_and_renewal(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, plan_stars=300, plan_units=400 * STAR) as stack:
        stack.telegram.send_text(USER, "/buy")
        menu = await stack.telegram.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
        plan_button = menu.params["reply_markup"]["inline_keyboard"][-1][0]
        assert plan_button["text"] == "Monthly plan: 300 ⭐ / 30 days → 400 ★"
        stack.telegram.press_button(
            USER,
            plan_button["callback_data"],
            message_id=stack.telegram.sent_messages(USER)[0]["message_id"],
        )
        link = await stack.telegram.wait_for("createInvoiceLink")
        assert link.params["subscription_period"] == 2592000
        payload = link.params["payload"]
        assert (await pre_checkout(stack, USER, payload, 300))["ok"] is True
        stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        assert await balance_units(stack, USER) == 400 * STAR
        renewal = stack.telegram.pay(USER, payload=payload, total_amount=300, is_recurring=True)
        stack.telegram.pay(
            USER, payload=payload, total_amount=300, is_recurring=True, charge_id=renewal
        )
        await asyncio.sleep(0.5)
        assert await balance_units(stack, USER) == 800 * STAR
        stack.telegram.send_text(USER, "/balance")
        balance = await stack.telegram.wait_for(
            "sendMessage", lambda c: str(c.params["text"]).startswith("Balance:")
        )
        assert "Monthly plan active until" in balance.params["text"]


async def test_paysupport_terms_and_admin_stats(tmp_path: Path) -> None:
    async with paying_stack(tmp_path, terms_text="Custom terms.") as stack:
        stack.telegram.send_text(USER, "/paysupport")
        assert (await stack.reply_text(USER)).startswith("Questions about a payment?")
        stack.telegram.send_text(USER, "/terms")
        assert await stack.reply_text(USER, 1) == "Custom terms."
        invoice = await buy_pack(stack, USER)
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        # In a group the admin's figures would be everyone's to read: ignored there.
        group = -1_004_000_111
        stack.telegram.send_text(ADMIN, "/stats", chat_id=group)
        stack.telegram.send_text(ADMIN, f"/refund {invoice['payload']}", chat_id=group)
        stack.telegram.send_text(ADMIN, "/stats")
        stats = await stack.reply_text(ADMIN)
        assert "Stars received: 50 ⭐" in stats
        assert "Users: 1" in stats
        assert stack.telegram.sent_messages(group) == []


async def test_a_user_pressing_buy_past_the_open_order_cap_is_told_politely(
    tmp_path: Path,
) -> None:
    # Every press of a pack's button stored one more order, without a bound.
    async with paying_stack(tmp_path) as stack:
        for _ in range(MAX_OPEN_ORDERS):
            await stack.veil.shop.create_order(USER, "50")
        invoices = len(stack.telegram.calls_of("sendInvoice"))
        stack.telegram.send_text(USER, "/buy")
        menu = await stack.telegram.wait_for(
            "sendMessage", lambda c: c.params["chat_id"] == USER and "reply_markup" in c.params
        )
        button = menu.params["reply_markup"]["inline_keyboard"][0][0]
        message = stack.telegram.sent_messages(USER)[-1]
        stack.telegram.press_button(USER, button["callback_data"], message_id=message["message_id"])
        refusal = await stack.telegram.wait_for(
            "sendMessage", lambda c: c.params["chat_id"] == USER and "invoices" in c.params["text"]
        )
        assert len(stack.telegram.calls_of("sendInvoice")) == invoices  # no invoice, no order
    assert refusal.params["text"] == (
        "You have many unpaid invoices from the last hour already. Please pay one of them"
        " (each still works), or try again in an hour."
    )


async def test_odd_payment_is_credited_and_flagged_for_the_admin(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        stack.telegram.pay(USER, payload="order-we-never-made", total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        flagged = await stack.telegram.wait_for(
            "sendMessage", lambda c: c.params["chat_id"] == ADMIN
        )
        assert flagged.params["text"].startswith("Payment flagged (unknown_order)")
        assert await balance_units(stack, USER) == 50 * STAR


async def finished(stack: Stack, charge: str, within: float) -> None:
    """Wait until the payment ``charge``'s journal entry is finished (its user, admins told)."""
    async with asyncio.timeout(within):
        while True:
            entry = await stack.veil.desk.journal.get(f"payment:{charge}")
            if entry is not None and entry.notified_at is not None:
                return
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("mode", ["page", "cut"])  # a proxy's page; the connection cut short
async def test_a_flagged_notice_telegram_cannot_take_now_reaches_the_admin_later(
    tmp_path: Path, mode: str
) -> None:
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendMessage", mode, when=lambda params: params.get("chat_id") == ADMIN)
    async with paying_stack(tmp_path, telegram_server=telegram) as stack:
        charge = stack.telegram.pay(USER, payload="order-we-never-made", total_amount=50)
        await finished(stack, charge, within=15)
        to_admin = [c for c in telegram.calls_of("sendMessage") if c.params["chat_id"] == ADMIN]
        thanks = [m.get("text", "") for m in stack.telegram.sent_messages(USER)]
        assert await balance_units(stack, USER) == 50 * STAR
    assert telegram.misbehaved == [("sendMessage", mode)]  # the notice the network lost...
    assert [c.answered for c in to_admin] == ["ok"]  # ...then the one that arrived, once
    assert str(to_admin[0].params["text"]).startswith("Payment flagged (unknown_order)")
    assert thanks == ["Thank you! 50 ★ added. Balance: 50 ★."]  # the user is thanked once


async def test_an_admin_who_blocked_the_bot_is_not_asked_again(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        stack.telegram.state.blocked_users.add(ADMIN)
        with capture_logs() as logs:
            charge = stack.telegram.pay(USER, payload="order-we-never-made", total_amount=50)
            await finished(stack, charge, within=10)
            assert await stack.veil.desk.process_pending()
        to_admin = [
            c for c in stack.telegram.calls_of("sendMessage") if c.params["chat_id"] == ADMIN
        ]
        assert len(to_admin) == 1
        assert [e["event"] for e in logs if e["event"].startswith("payments.notify")] == [
            "payments.notify_refused"
        ]
        assert await balance_units(stack, USER) == 50 * STAR


@pytest.mark.timeout(300)  # four `python -m bot reconcile` processes, each run to its end
async def test_reconcile_finds_an_injected_mismatch(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        env = bot_env(stack.telegram.url, stack.gateway.url, stack.gateway.verify_key, tmp_path)
        env |= {"VEIL_STAR_PACKS": "50:50000000,250:275000000"}

        def reconcile(*options: str) -> subprocess.CompletedProcess[str]:
            return run_python("-m", "bot", "reconcile", *options, env=env)

        agree = await asyncio.to_thread(reconcile)
        assert agree.returncode == 0, agree.stderr
        assert "agree on 1 transaction" in agree.stdout
        # A payment Telegram knows about but the bot never recorded (say, a lost update).
        stack.telegram.payments.record_payment(
            {"id": OTHER, "is_bot": False, "first_name": "Bo"},
            "stxLOST",
            {"invoice_payload": "x", "total_amount": 250, "currency": "XTR"},
        )
        differ = await asyncio.to_thread(reconcile)
        assert differ.returncode == 1
        assert "stxLOST" in differ.stdout
        assert await balance_units(stack, OTHER) == 0
        # --fix credits it (flagged: its order is unknown), says so, and only once.
        fixed = await asyncio.to_thread(reconcile, "--fix")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert fixed.stdout.splitlines() == [
            (
                f"credited payment stxLOST: 250 Stars from user {OTHER}, 250000000 µ★"
                " (flagged: unknown_order)"
            ),
            "ledger and Telegram agree on 2 transaction(s)",
        ]
        again = await asyncio.to_thread(reconcile, "--fix")
        assert again.stdout.splitlines() == ["ledger and Telegram agree on 2 transaction(s)"]
        assert await balance_units(stack, OTHER) == 250 * STAR


async def test_buttons_for_what_is_not_sold_get_their_own_reply_and_no_invoice(
    tmp_path: Path,
) -> None:
    # An old chat still shows a 1000-Star pack and the plan; neither is sold any more.
    async with paying_stack(tmp_path, plan_stars=0) as stack:
        stack.telegram.press_button(USER, BuyPack(pack_id="1000").pack(), message_id=1)
        stack.telegram.press_button(USER, BuyPlan().pack(), message_id=1)
        replies = [m["text"] for m in await stack.final_messages(USER, 2)]
        # Each press answered by its handler first; the errors router's later try is refused.
        answered = [c.answered for c in stack.telegram.calls_of("answerCallbackQuery")]
    texts = stack.veil.catalogs.for_language("en")
    assert sorted(replies) == sorted([texts("order_rejected"), texts("order_no_plan")])
    assert texts("order_no_plan") != texts("precheckout_unknown_order")
    assert stack.telegram.calls_of("sendInvoice") == []
    assert stack.telegram.calls_of("createInvoiceLink") == []
    assert answered.count("ok") == 2


@pytest.mark.parametrize(
    ("description", "name"),
    [
        ("Bad Request: CHARGE_ALREADY_REFUNDED", ALREADY_REFUNDED),
        ("Bad Request: CHARGE_NOT_FOUND", NOT_FOUND),
        ("Bad Request: CHARGE_NOT_FOUND_OR_SOMETHING", "CHARGE_NOT_FOUND_OR_SOMETHING"),
    ],
)
def test_telegrams_refund_refusals_are_told_apart_by_their_whole_name(
    description: str, name: str
) -> None:
    method = RefundStarPayment(user_id=USER, telegram_payment_charge_id="c")
    assert telegram_error(TelegramBadRequest(method=method, message=description)) == name


@pytest.mark.parametrize(
    ("status", "description", "retry_after"),
    [
        (429, "Too Many Requests: retry after 61", 61),  # longer than the bot waits
        (502, "Bad Gateway", None),  # twice: the bot retries a 5xx once
    ],
)
async def test_a_thank_you_telegram_cannot_take_now_is_sent_later(
    tmp_path: Path, status: int, description: str, retry_after: int | None
) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        stack.telegram.fail_next(
            "sendMessage",
            status=status,
            description=description,
            retry_after=retry_after,
            count=2,
        )
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        thanks = await stack.telegram.wait_for(
            "sendMessage",
            lambda c: c.answered == "ok" and str(c.params["text"]).startswith("Thank you"),
            timeout=20,
        )
        assert thanks.params["text"] == "Thank you! 50 ★ added. Balance: 50 ★."
        await finished(stack, charge, within=10)
        assert await balance_units(stack, USER) == 50 * STAR


async def test_a_thank_you_telegram_took_with_a_reply_that_does_not_validate_goes_once(
    tmp_path: Path,
) -> None:
    # The Bot API's "ok" with a Message that does not validate: the thank-you went out. Taken
    # for one Telegram could not take, it was sent again on the desk's next pass before the
    # entry was finished (and on every pass, were the mismatch for good).
    telegram = HostileTelegram(token=TOKEN)
    thanking: Any = lambda params: str(params.get("text", "")).startswith("Thank you")  # noqa: E731
    telegram.misbehave("sendMessage", "malformed", when=thanking)
    async with paying_stack(tmp_path, telegram_server=telegram) as stack:
        invoice = await buy_pack(stack, USER)
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await finished(stack, charge, within=10)
        texts = [m.get("text", "") for m in stack.telegram.sent_messages(USER)]
        assert await balance_units(stack, USER) == 50 * STAR
    assert telegram.misbehaved == [("sendMessage", "malformed")]
    assert [text for text in texts if text.startswith("Thank you")] == [
        "Thank you! 50 ★ added. Balance: 50 ★."
    ]


async def test_a_pre_checkout_the_ledger_cannot_judge_is_refused_politely_at_once(
    tmp_path: Path,
) -> None:
    # Unanswered, Telegram would make the user wait its 10 s and show its own error.
    async with running_stack(tmp_path, star_packs="50:50000000") as stack:
        invoice = await buy_pack(stack, USER)
        await stack.veil.store.close()  # the database cannot be read: a failed disk, say
        answer = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert answer["ok"] is False
        assert answer["error_message"] == (
            "Payments cannot be checked just now, so nothing was charged."
            " Please try again in a minute."
        )


async def test_a_refund_telegram_cannot_take_now_tells_the_admin_to_try_again(
    tmp_path: Path,
) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.fail_next(
            "refundStarPayment",
            status=429,
            description="Too Many Requests: retry after 90",
            retry_after=90,
        )
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        busy = await stack.telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN)
        assert busy.params["text"] == (
            "Telegram could not take the refund just now. Please send the same /refund again"
            " in a minute (a refund already made is recognised and not taken twice)."
        )
        assert await balance_units(stack, USER) == 50 * STAR
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        done = (await stack.final_messages(ADMIN, 2))[1]
        assert done["text"] == f"Refunded 50 ⭐ to user {USER}; 50 ★ of credit taken back."
        assert await balance_units(stack, USER) == 0


async def test_a_charge_telegram_does_not_know_is_told_in_telegrams_words(tmp_path: Path) -> None:
    # The ledger has the payment, Telegram answers CHARGE_NOT_FOUND (a playground started
    # afresh, another bot's database): the admin was told "No payment with that charge id.",
    # as for a mistyped id, though the ledger named the payment a moment before.
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.fail_next(
            "refundStarPayment", status=400, description="Bad Request: CHARGE_NOT_FOUND"
        )
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        told = await stack.telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN)
        assert told.params["text"] == "Telegram refused the refund: Bad Request: CHARGE_NOT_FOUND"
        assert await balance_units(stack, USER) == 50 * STAR


async def test_a_refund_booked_before_is_told_as_done_when_telegram_no_longer_knows_it(
    tmp_path: Path,
) -> None:
    # The refund was made and its credit taken back; then Telegram answers CHARGE_NOT_FOUND
    # (a playground started afresh): the admin was told "Telegram refused the refund", as if
    # the payment had never been refunded, though the ledger had taken its credit back.
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        charge = stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        await stack.telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN)
        stack.telegram.fail_next(
            "refundStarPayment", status=400, description="Bad Request: CHARGE_NOT_FOUND"
        )
        stack.telegram.send_text(ADMIN, f"/refund {charge}")
        again = await stack.final_messages(ADMIN, 2)
        assert again[1]["text"] == "That payment was already refunded."
        assert len(stack.telegram.calls_of("refundStarPayment")) == 2  # Telegram was asked
        assert await balance_units(stack, USER) == 0


async def test_a_payment_of_an_amount_no_database_holds_neither_jams_the_bot_nor_credits(
    tmp_path: Path,
) -> None:
    # 2**63 Stars fits no SQLite integer: journaling it failed, so the batch was never
    # acknowledged and fetched again forever, every update behind it (anyone's) stuck.
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        stack.telegram.pay(OTHER, payload="bogus", total_amount=2**63)
        # 2**62 Stars is journaled, but its credit at the pack rate fits no ledger row.
        stack.telegram.pay(OTHER, payload="bogus", total_amount=2**62)
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        thanks = await stack.telegram.wait_for(
            "sendMessage", lambda c: "Thank you" in c.params["text"], timeout=10
        )
        assert thanks.params["chat_id"] == USER
        assert await balance_units(stack, USER) == 50 * STAR
        pending = await stack.telegram.wait_for(
            "sendMessage", lambda c: c.params["chat_id"] == OTHER, timeout=10
        )
        assert str(pending.params["text"]).startswith("Payment received, thank you.")
        assert await balance_units(stack, OTHER) == 0


async def test_reconcile_counts_only_invoice_payments_and_their_refunds() -> None:
    # Stars moved in from a business account, or spent by the bot on a gift, are Star
    # transactions with a user too: counted, they were credited by --fix as purchases and
    # listed as refunds the ledger lacked.
    async with FakeTelegram(token=TOKEN) as telegram:
        charge = telegram.pay(USER, payload="order-r", total_amount=50)
        telegram.refunded(USER, payload="order-r", total_amount=50, charge_id=charge)
        user = {"id": OTHER, "is_bot": False, "first_name": "Bo"}
        telegram.payments.record_transfer(user, 500, "business_account_transfer", outgoing=False)
        telegram.payments.record_transfer(user, 500, "paid_media_payment", outgoing=False)
        telegram.payments.record_transfer(user, 25, "gift_purchase", outgoing=True)
        bot = build_bot(TOKEN, telegram.url)
        try:
            listed = await star_transactions(bot)
        finally:
            await bot.session.close()
    assert [(tx.id, tx.amount, tx.is_refund, tx.user_id) for tx in listed] == [
        (charge, 50, False, USER),
        (charge, 50, True, USER),
    ]
