"""Stopping and stalls through the real bot: what the user sees and what the ledger charges.

Fake Telegram ← real bot → real gateway → slow fake vLLM, SQLite in ``tmp_path``. A stopped
answer is kept, shown and charged from the gateway's signed ``stopped`` receipt; with no
receipt to be had, from the bot's own count of the text delivered; a stalled model is "stopped
responding", charged what its receipt says.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from gateway.limits import Limits
from models import Store
from services.credit import Credit
from services.prices import Prices
from services.shop import Shop
from services.tokens import prompt_tokens, text_tokens
from tests.books import grant, inconsistent_users
from tests.botstack import Stack, running_stack
from tests.fakes.relay import RecordingProxy
from tests.fakes.vllm import FakeVLLM, split_tokens
from tests.test_journal import ledger_locked

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

USER = 8001
STAR = 1_000_000
PRICE_IN, PRICE_OUT = 20, 60  # the default VEIL_PRICES, µ★ a token
PROMPT = "Tell me everything about quokkas"
ANSWER = " ".join(f"zebra{i}" for i in range(80))
SECRETS = ("quokka", "zebra")
RECORD_ON_THE_WIRE = 4 + 13 + 64 + 16  # the smallest sealed chunk: length, header, record, tag


async def closed_holds(stack: Stack) -> list[dict[str, Any]]:
    """The user's closed holds, oldest first, as the ledger keeps them."""
    rows = await stack.veil.store.read(
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
    assert await grant(stack.veil.store, USER, STAR, "grant", "test:welcome")


async def behind_proxy(stack: Stack) -> RecordingProxy:
    """Put a proxy between the bot and its gateway; closing it puts the gateway out of reach."""
    host, port = stack.gateway.url.removeprefix("http://").split(":")
    proxy = RecordingProxy(host, int(port))
    await proxy.start()
    stack.veil.chat.inference._gateways[0].url = proxy.url
    return proxy


async def assert_books_balance(stack: Stack, hold: dict[str, Any]) -> None:
    balance = await stack.veil.credit.balance(USER)
    assert (balance.units, balance.held) == (STAR - hold["charged"], 0)
    assert await inconsistent_users(stack.veil.store) == []


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
            assert await stack.veil.chat.wait_idle(10)  # its end logged (chat.answered)
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
            assert await stack.veil.chat.wait_idle(10)  # its end logged (chat.answered)
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
        proxy = await behind_proxy(stack)
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
    # Never zero for text the user received: the ceilings of the delivered text and prompt.
    assert hold["completion"] == text_tokens(delivered)
    assert hold["prompt"] == prompt_tokens([{"role": "user", "content": PROMPT}])
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
            partial, reply = await stack.final_messages(USER, 2, within=20)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
        conversation = await stack.veil.store.active_conversation(USER)
        assert await stack.veil.store.history(USER, conversation) == []
    # What arrived before the stall is paid for, so it stays in the chat; the error follows.
    assert partial["text"] == "".join(split_tokens(ANSWER)[:3])
    assert reply["text"] == (
        "⚠️ The answer broke off here: the model stopped responding. Ask again for the whole answer."
    )
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


async def test_stop_at_95_percent_charges_exactly_what_was_delivered(tmp_path: Path) -> None:
    answer = " ".join(f"zebra{i}" for i in range(100))
    async with running_stack(tmp_path, answer=answer, free_tokens_per_day=0) as stack:
        await fund(stack)
        stack.vllm.stall_after = 96  # the model pauses after 96 of its 100 tokens
        stack.telegram.send_text(USER, PROMPT)
        draft = await stack.telegram.wait_for(
            "sendMessageDraft", lambda c: "zebra95" in str(c.params.get("text", ""))
        )
        stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
        (message,) = await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
    assert message["text"] == " ".join(f"zebra{i}" for i in range(96))
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "stopped")
    assert hold["completion"] == 96
    assert hold["charged"] == PRICE_IN * hold["prompt"] + PRICE_OUT * 96


async def test_a_late_stop_press_never_stops_the_next_answer(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.02, free_tokens_per_day=0
    ) as stack:
        await fund(stack)
        stack.telegram.send_text(USER, PROMPT)
        first = await stack.telegram.wait_for("sendMessageDraft")
        await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        stack.telegram.send_text(USER, "And again")
        second = await stack.telegram.wait_for(
            "sendMessageDraft",
            lambda c: c.params["draft_id"] != first.params["draft_id"],
        )
        stack.telegram.stop_generation(USER, int(first.params["draft_id"]))  # the old draft's
        messages = await stack.final_messages(USER, 2, within=20)
        holds = await closed_holds(stack)
        assert await inconsistent_users(stack.veil.store) == []
    assert messages[1]["text"] == ANSWER  # not stopped
    assert [h["receipt_status"] for h in holds] == ["complete", "complete"]
    assert second.params["draft_id"] != first.params["draft_id"]


async def test_a_stop_while_the_hold_is_written_leaves_nothing_reserved(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer="Short.", free_tokens_per_day=5000, db_busy_timeout=10
    ) as stack:
        stack.telegram.send_text(USER, "first, so the user and conversation exist")
        await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        # The first answer gone from the service: its generation, ending, still held its hold
        # (no longer stoppable), and was the one found below, so the stop was refused.
        assert await stack.veil.chat.wait_idle(10)
        free_before = (await stack.veil.credit.balance(USER)).free_tokens_left
        with ledger_locked(tmp_path / "veil.db"):
            stack.telegram.send_text(USER, PROMPT)
            # The hold's write is waiting for the lock; the answer is stopped meanwhile. (Not
            # by a /cancel: the user's next update waits until the answer has started, its
            # hold written, bot.order; a shutdown's ChatService.close stops it so.)
            async with asyncio.timeout(10):
                while not (g := stack.veil.chat._active.get(USER)) or not g.holds:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert stack.veil.chat.cancel(USER)
            await asyncio.sleep(0.5)
        stopped = await stack.reply_text(USER, 1)
        await asyncio.sleep(0.2)
        balance = await stack.veil.credit.balance(USER)
        holds = await closed_holds(stack)
        assert await inconsistent_users(stack.veil.store) == []
        requests = len(stack.vllm.requests)
    assert stopped == "Stopped."
    assert (balance.held, balance.free_tokens_left) == (0, free_before)
    assert [h["outcome"] for h in holds] == ["settled", "released"]
    assert requests == 1  # the stopped question never reached the model


async def test_a_stop_while_the_final_message_is_sent_changes_nothing(tmp_path: Path) -> None:
    # (tokens a little apart, so that a draft, with its stop button, goes out before the end)
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, free_tokens_per_day=0
    ) as stack:
        await fund(stack)
        # The final message meets flood control: aiogram's retry waits a second.
        stack.telegram.fail_next("sendMessage", status=429, description="Too Many", retry_after=1)
        stack.telegram.send_text(USER, PROMPT)
        await stack.telegram.wait_for("sendMessage", lambda c: c.answered != "ok")
        draft = stack.telegram.calls_of("sendMessageDraft")[-1]
        stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
        stack.telegram.send_text(USER, "/cancel")
        messages = await stack.final_messages(USER, 2)
        history = await stack.stored_turns(USER, 2)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
    # Delivered whole (while it waited, /cancel had nothing left to stop).
    assert sorted(m["text"] for m in messages) == sorted(
        [ANSWER, "Nothing is being written right now."]
    )
    assert history == [PROMPT, ANSWER]
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "complete")


async def test_the_final_message_does_not_wait_for_a_busy_ledger(tmp_path: Path) -> None:
    # The user watched the text arrive: the final message goes out while the charge is
    # written, not after it. With the database's write lock held by another connection (a
    # backup, a long payment), the final message still comes; the charge lands once the lock
    # is given back (the ledger waits up to its busy timeout), the books balanced.
    async with running_stack(
        tmp_path, answer=ANSWER, free_tokens_per_day=0, db_busy_timeout=10
    ) as stack:
        await fund(stack)
        stack.vllm.pauses = {len(split_tokens(ANSWER)) - 1}  # held before its last token
        stack.telegram.send_text(USER, PROMPT)
        async with asyncio.timeout(10):
            while stack.vllm.paused < 1:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.01)
        with ledger_locked(tmp_path / "veil.db") as lock:
            stack.vllm.resume()
            (message,) = await stack.final_messages(USER, 1, within=5)
            (open_holds,) = lock.execute(
                "SELECT COUNT(*) FROM holds WHERE user_id = ? AND outcome IS NULL", [USER]
            ).fetchone()
        history = await stack.stored_turns(USER, 2)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
    assert message["text"] == ANSWER
    assert open_holds == 1  # delivered while the charge waited for the lock
    assert history == [PROMPT, ANSWER]
    assert (hold["outcome"], hold["receipt_status"]) == ("settled", "complete")


async def test_shutdown_mid_answer_still_settles_delivers_and_stores(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, free_tokens_per_day=0
    ) as stack:
        await fund(stack)
        stack.telegram.send_text(USER, PROMPT)
        await stack.telegram.wait_for("sendMessageDraft")
    # The stack stopped (polling, then the bot): the answer was stopped, not dropped.
    (message,) = stack.telegram.sent_messages(USER)
    assert ANSWER.startswith(message["text"])
    assert 0 < len(message["text"]) < len(ANSWER)
    store = await Store.open(tmp_path / "veil.db", stack.veil.store._master_key)
    try:
        conversation = await store.active_conversation(USER)
        turns = [t.text for t in await store.history(USER, conversation)]
        rows = await store.read(
            lambda db: db.execute("SELECT outcome, receipt_status FROM holds").fetchall()
        )
        assert await inconsistent_users(store) == []
    finally:
        await store.close()
    assert turns == [PROMPT, message["text"]]
    assert [tuple(r) for r in rows] == [("settled", "stopped")]


async def test_the_upkeep_loop_sweeps_stale_holds_and_expired_orders_while_running(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, free_tokens_per_day=0, sweep_every=0.05) as stack:
        await fund(stack)
        veil = stack.veil
        past = time.time() - veil.chat.hold_lifetime - 60
        ago = Credit(veil.store, Prices.parse("*=20/60"), 0, clock=lambda: past)
        orphan = await ago.hold(USER, "a" * 32, "veil-test", 10, 100)  # a crash's leftover
        days_ago = time.time() - 2 * 86_400  # expired more than a day ago
        stale = await Shop(veil.store, veil.shop.packs, clock=lambda: days_ago).create_order(
            USER, veil.shop.packs[0].id
        )
        async with asyncio.timeout(10):
            while (await veil.credit.balance(USER)).held:  # noqa: ASYNC110 -- polls the ledger
                await asyncio.sleep(0.02)
            while await veil.shop.order(stale.id) is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert (await veil.credit.release(orphan)).outcome == "recovered"
        assert await inconsistent_users(veil.store) == []


async def test_text_already_shown_is_delivered_even_when_the_ledger_cannot_settle(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.02, free_tokens_per_day=0, db_busy_timeout=0.2
    ) as stack:
        await fund(stack)
        with capture_logs() as logs:
            stack.telegram.send_text(USER, PROMPT)
            await stack.telegram.wait_for("sendMessageDraft")
            with ledger_locked(tmp_path / "veil.db"):
                messages = await stack.final_messages(USER, 2, within=20)
        balance = await stack.veil.credit.balance(USER)
        # Left to the sweep, which releases it (unbilled) once it is older than any answer.
        assert await stack.veil.credit.recover(0) == 1
        assert await inconsistent_users(stack.veil.store) == []
    assert messages[0]["text"] == ANSWER
    assert messages[1]["text"].startswith("Your history could not be read or saved.")
    assert balance.held > 0
    assert "chat.settle_failed" in [entry["event"] for entry in logs]


async def test_a_blank_answer_cut_off_with_no_receipt_costs_nothing(tmp_path: Path) -> None:
    # The model wrote only blanks, then the gateway went out of reach (no receipt): the bot
    # charged its estimate of the blanks, and "completed" the answer with them, for a user
    # who saw nothing (rule 4 of docs/money.md: no text reached the user, nothing is charged).
    server = FakeVLLM(answer=" \n\n ")
    server.stall_after = 1  # the blank delta, then silence
    async with running_stack(tmp_path, model_server=server, free_tokens_per_day=0) as stack:
        await fund(stack)
        proxy = await behind_proxy(stack)
        stack.telegram.send_text(USER, PROMPT)
        await asyncio.wait_for(server.stall_started.wait(), 10)
        async with asyncio.timeout(10):  # the blank delta's record is through the proxy
            while len(proxy.downstream.partition(b"\r\n\r\n")[2]) < RECORD_ON_THE_WIRE:  # noqa: ASYNC110 -- bytes, no event
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # and read by the bot
        await proxy.close()
        (told,) = await stack.final_messages(USER, within=20)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
        conversation = await stack.veil.store.active_conversation(USER)
        stored = await stack.veil.store.history(USER, conversation)
    assert told["text"] == "The answer did not arrive intact, so I discarded it. Please try again."
    assert (hold["outcome"], hold["charged"]) == ("released", 0)
    assert stored == []


async def test_an_answer_cut_off_by_the_network_keeps_its_part_and_says_it_broke_off(
    tmp_path: Path,
) -> None:
    # The gateway out of reach mid-answer: the part that arrived went out as the answer, and
    # then "The answer did not arrive intact, so I discarded it" (it had not been discarded).
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.05, free_tokens_per_day=0
    ) as stack:
        await fund(stack)
        proxy = await behind_proxy(stack)
        stack.telegram.send_text(USER, PROMPT)
        await stack.telegram.wait_for("sendMessageDraft")
        await proxy.close()
        part, note = await stack.final_messages(USER, 2, within=20)
        (hold,) = await closed_holds(stack)
        await assert_books_balance(stack, hold)
    assert part["text"]
    assert ANSWER.startswith(part["text"])
    assert note["text"] == (
        "⚠️ The answer broke off here: the connection to the model was lost."
        " Ask again for the whole answer."
    )
    (button,) = note["reply_markup"]["inline_keyboard"][0]
    assert button["text"] == "Retry"
    assert (hold["outcome"], hold["completion"]) == ("estimated", text_tokens(part["text"]))
