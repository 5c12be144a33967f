"""The bot's side of the Mini App: initData, the page, holds, relaying unread, receipts, stop.

The page is played in Python (``tests.miniapp.PythonPage``) over real HTTP to the bot's own
web server, which relays through a recording proxy to a real gateway and the fake vLLM.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
from typing import TYPE_CHECKING

import pytest
from aiohttp import ClientPayloadError
from pydantic import ValidationError
from structlog.testing import capture_logs

from bot.settings import BotSettings
from bot.webapp import WEBAPP_DIR, bundle_sha256
from handlers.webapp import page_headers
from models.ledger import balance as ledger_balance
from sealed.auth import receipt_proof
from sealed.encoding import b64e
from sealed.errors import StreamTruncated
from sealed.receipt import ReceiptStatus
from services.audit import Auditor
from tests.books import grant
from tests.fakes.relay import SegmentingRelay
from tests.fakes.vllm import split_tokens
from tests.harness import wait_until
from tests.miniapp import (
    USER_ID,
    Asked,
    PythonPage,
    hold_of,
    init_data,
    page,
    read_stream,
    read_to_break,
    settled,
    webapp_stack,
)

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path

    import aiohttp

    from tests.fakes.relay import RecordingProxy
    from tests.miniapp import MiniStack

QUESTION = "What is my secret plan for the weekend?"
ANSWER = "Your plan involves purple giraffes and a quiet lake."
THINKING = "The user asks about their weekend; recall the giraffe plan."
CHAT = {"model": "veil-test", "messages": [{"role": "user", "content": QUESTION}]}


def assert_unread(stack: MiniStack, *texts: str, logs: list[MutableMapping[str, object]]) -> None:
    """No wire on either side of the bot, its logs, files or calls to Telegram hold ``texts``."""
    dumped = json.dumps(logs, default=str)
    stored = stack.stored_bytes()
    told = json.dumps([call.params for call in stack.telegram.calls], ensure_ascii=False)
    for text in texts:
        for piece in (text, text[:12], text[-12:]):
            raw = piece.encode()
            assert raw not in stack.to_bot.captured, piece
            assert raw not in stack.to_gateway.captured, piece
            assert raw not in stored, piece
            assert piece not in dumped, piece
            assert piece not in told, piece


async def test_a_sealed_question_is_relayed_unread_and_settled_from_the_relay_receipt(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=ANSWER) as stack:
            mini = page(stack, http)
            status, account = await mini.get("api/account")
            assert status == 200
            assert account["models"] == ["veil-test"]
            assert account["free_tokens_left"] == 1_000_000
            asked = await mini.ask(QUESTION)
            assert asked.status == 200
            assert asked.text == ANSWER
            assert asked.final is not None
            assert asked.final.receipt is not None
            # The hold was settled from the signed receipt the bot could not read in-stream.
            state = await hold_of(stack.store, asked.request_id)
            assert state is not None
            assert state.charge is not None
            assert state.charge.outcome == "settled"
            assert state.charge.receipt_status == "complete"
            usage = asked.final.receipt.receipt
            assert (state.charge.prompt_tokens, state.charge.completion_tokens) == (
                usage.prompt_tokens,
                usage.completion_tokens,
            )
            # Its prompt ceiling was the sealed plaintext's size, 1 KiB for a short question.
            assert state.hold.prompt_tokens == 1024
            report = await Auditor(stack.store, [stack.gateway.verify_key]).run()
            assert report.ok, report.problems
            assert report.charges == 1
            # The model got the question, and the cache salt the page chose, not the bot's.
            assert stack.vllm.requests[0]["messages"][-1]["content"] == QUESTION
            assert stack.veil.relay is not None
            assert not stack.veil.relay.busy(USER_ID)
    assert_unread(stack, QUESTION, ANSWER, logs=logs)
    events = [entry["event"] for entry in logs]
    assert "relay.settled" in events
    assert "relay.no_receipt" not in events
    assert "webapp.serving" in events


async def test_a_reasoning_models_thinking_is_relayed_apart_unread_and_billed(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=ANSWER) as stack:
            stack.vllm.reasoning = THINKING
            asked = await page(stack, http).ask(QUESTION)
            assert asked.status == 200
            # The REASONING records reach the page whole, apart from the answer.
            assert "".join(asked.thinking) == THINKING
            assert asked.text == ANSWER
            assert asked.final is not None
            assert asked.final.receipt is not None
            state = await settled(stack, asked.request_id)
            assert state.charge is not None
            assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "complete")
            # The receipt counts the thinking's tokens too, and the bill is the receipt's.
            usage = asked.final.receipt.receipt
            assert state.charge.completion_tokens == usage.completion_tokens
            assert usage.completion_tokens == len(split_tokens(THINKING)) + len(
                split_tokens(ANSWER)
            )
    assert_unread(stack, QUESTION, ANSWER, THINKING, logs=logs)


async def test_forged_stale_and_missing_init_data_are_refused_politely(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        cases = {
            init_data(token="123456:ANOTHER-BOTS-TOKEN"): "unauthorized",
            init_data().replace("first_name%22%3A%22Ann", "first_name%22%3A%22Eve"): "unauthorized",
            init_data(auth_date=time.time() - 3601): "stale",
            init_data(auth_date=time.time() + 3600): "bot_clock",
            "": "unauthorized",
        }
        with capture_logs() as logs:
            for data, code in cases.items():
                mini = page(stack, http, data=data)
                status, body = await mini.get("api/account")
                assert (status, body["error"]["code"]) == (401, code), data
                assert "Telegram" in body["error"]["message"] or "again" in body["error"]["message"]
                status, body = await mini.post("api/prepare", {"model": "veil-test", "size": 1024})
                assert status == 401
        async with http.post(stack.base + "api/relay", data=b"VEIL") as response:
            assert response.status == 401
        assert not stack.vllm.requests
    # Launch data dated an hour ahead: the bot's clock is behind Telegram's, and every launch
    # would be refused so; the operator is told by how much, the page that the bot's clock is
    # off (``bot_clock``: reopening the page cannot help).
    ahead = [e for e in logs if e["event"] == "webapp.launch_ahead"]
    assert [(e["log_level"], e["path"]) for e in ahead] == [
        ("warning", "/app/api/account"),
        ("warning", "/app/api/prepare"),
    ]
    assert all(3590 <= e["ahead_s"] <= 3600 for e in ahead)
    refused = [e["reason"] for e in logs if e["event"] == "webapp.refused"]
    assert refused.count("stale") == 2  # the one an hour too old, twice


async def test_the_page_is_served_with_its_pins_and_the_committed_script(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        async with http.get(stack.base) as response:
            assert response.status == 200
            html = await response.text()
            csp = response.headers["Content-Security-Policy"]
        async with http.get(stack.base + "veil.js") as response:
            script = await response.read()
    bundle = (WEBAPP_DIR / "veil.js").read_bytes()
    assert script == bundle
    assert b64e(stack.gateway.verify_key) in html  # the operator key the page pins
    assert bundle_sha256() == hashlib.sha256(bundle).hexdigest() in html
    assert 'integrity="sha384-' in html
    assert "__VEIL" not in html
    assert "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert "frame-ancestors 'self' https://web.telegram.org" in csp
    # No inline style but the page's own <style> block, pinned by its hash.
    assert "'unsafe-inline'" not in csp
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    pinned = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{pinned}';" in csp


async def test_stop_is_forwarded_with_the_pages_proof_and_metered(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
        mini = page(stack, http)
        async with mini.relay(CHAT) as (response, asked):
            assert response.status == 200
            first = await response.content.read(100)  # some text is on its way
            # A proof the page did not make is not forwarded as a stop.
            status, body = await mini.stop(asked, proof=b"\x00" * 32)
            assert (status, body["error"]["code"]) == (404, "not_running")
            status, body = await mini.stop(asked)
            assert (status, body) == (200, {"state": "stopping"})
            asked.raw = first + await response.read()
        # The page's stream ends once the bot has settled: the charge is there already.
        state = await hold_of(stack.store, asked.request_id)
    read_stream(asked)
    assert asked.final is not None
    assert asked.final.finish_reason == "stopped"
    assert asked.final.receipt is not None
    receipt = asked.final.receipt.receipt
    assert receipt.status is ReceiptStatus.STOPPED
    assert 0 < receipt.completion_tokens < 60
    assert state is not None
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert state.charge.completion_tokens == receipt.completion_tokens


async def test_a_page_that_hangs_up_is_settled_from_the_late_receipt(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    answer = " ".join(f"word{i}" for i in range(80))
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
            mini = page(stack, http)
            async with mini.relay(CHAT) as (response, asked):
                assert response.status == 200
                await response.content.read(100)
                response.close()  # the user closed the page mid-answer
            state = await settled(stack, asked.request_id)
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert 0 < state.charge.completion_tokens < 80
    settled_event = next(e for e in logs if e["event"] == "relay.settled")
    assert settled_event["cut"] == "page_gone"
    assert any(e["event"] == "inference.receipt_fetched" for e in logs)


async def test_a_question_from_a_reopened_page_waits_for_the_answer_it_left_to_be_settled(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The user reopened the page mid-answer and asked at once. The answer the closed page left is
    # written to no one any more: it is hung up on and being settled (its late receipt on the
    # way). The new question waits for that, rather than being refused as "an answer is still
    # being written" with nothing on the screen being written.
    answer = " ".join(f"word{i}" for i in range(80))
    # (a stop's grace long enough for the late receipt's fetch, however loaded the machine)
    async with webapp_stack(
        tmp_path, answer=answer, token_delay=0.05, tamper=True, stop_grace=30.0
    ) as stack:
        release = asyncio.Event()
        stack.tampering.stall = ("/v1/sealed/receipts/", release)
        mini = page(stack, http)
        with capture_logs() as logs:
            async with mini.relay(CHAT) as (response, first):
                assert response.status == 200
                await response.content.read(100)
                response.close()  # the page reopened: its connection closed mid-answer
            async with asyncio.timeout(15):
                await stack.tampering.stalled.wait()  # settling: its late receipt on the way
            second = asyncio.create_task(mini.ask(QUESTION))
            await wait_until(
                lambda: second.done() or any(e["event"] == "relay.waits_for_settling" for e in logs)
            )
            release.set()
            asked = await second
        assert asked.error == {}
        assert asked.status == 200
        assert asked.text == answer
        state = await settled(stack, first.request_id)
        assert state.charge is not None
        assert state.charge.receipt_status == "stopped"


async def test_a_question_waiting_for_a_left_answer_is_not_started_once_shutdown_began(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A question from a reopened page waits for the answer its old page left to be settled.
    # Shutdown begins meanwhile (the relay takes no new answers): once that answer is settled,
    # the waiting question is told the bot is unavailable, not started (it would be held and
    # sent to a gateway after shutdown stopped waiting for new answers).
    answer = " ".join(f"word{i}" for i in range(80))
    async with webapp_stack(
        tmp_path, answer=answer, token_delay=0.05, tamper=True, stop_grace=30.0
    ) as stack:
        relay = stack.veil.relay
        assert relay is not None
        release = asyncio.Event()
        stack.tampering.stall = ("/v1/sealed/receipts/", release)
        mini = page(stack, http)
        with capture_logs() as logs:
            async with mini.relay(CHAT) as (response, _first):
                assert response.status == 200
                await response.content.read(100)
                response.close()  # the page reopened: its connection closed mid-answer
            async with asyncio.timeout(15):
                await stack.tampering.stalled.wait()  # settling: its late receipt on the way
            second = asyncio.create_task(mini.ask(QUESTION))
            await wait_until(
                lambda: second.done() or any(e["event"] == "relay.waits_for_settling" for e in logs)
            )
            relay.stop_taking()  # shutdown begins
            release.set()
            asked = await second
        assert (asked.status, asked.error.get("code")) == (503, "unavailable")
        assert await hold_of(stack.store, asked.request_id) is None  # nothing held or sent
        assert not relay.busy(USER_ID)


async def test_a_stop_that_comes_while_an_ended_answer_is_settled_is_answered_not_a_fault(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The answer's stream has ended (cut on the way; the late receipt still on its way to the
    # bot) when the page's stop comes: a stop resent once the question was taken, or pressed
    # as the answer ended. The gateway says the stream is finished, and so does the bot: no
    # server error for the page to tell the user about, and the answer is settled once.
    answer = " ".join(f"word{i}" for i in range(80))
    async with webapp_stack(
        tmp_path, answer=answer, token_delay=0.05, tamper=True, stop_grace=30.0
    ) as stack:
        release = asyncio.Event()
        stack.tampering.stall = ("/v1/sealed/receipts/", release)
        mini = page(stack, http)
        async with mini.relay(CHAT) as (response, asked):
            assert response.status == 200
            first = await response.content.read(100)
            cut_connections(stack.to_gateway)  # the network between bot and gateway fails
            async with asyncio.timeout(15):
                await stack.tampering.stalled.wait()  # settling: its late receipt on the way
            try:
                stopped = await mini.stop(asked)
            finally:
                release.set()
            asked.raw = first + await read_to_break(response)
        state = await settled(stack, asked.request_id)
    assert stopped == (200, {"state": "finished"})
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert 0 < state.charge.completion_tokens < 80


async def test_a_tampered_relay_receipt_falls_back_to_the_late_receipt(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER, tamper=True) as stack:

        def flip_last_byte(body: bytes) -> bytes:
            if body.startswith(b"{"):  # a receipt fetch: left alone
                return body
            return body[:-1] + bytes([body[-1] ^ 1])  # the stream: the relay receipt's tag

        stack.tampering.rewrite_response = flip_last_byte
        with capture_logs() as logs:
            asked = await page(stack, http).ask(QUESTION)
        assert asked.text == ANSWER  # the page's own stream is intact
        state = await hold_of(stack.store, asked.request_id)
    assert state is not None
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "complete")
    events = [e["event"] for e in logs]
    assert "relay.relay_receipt_invalid" in events
    assert "inference.receipt_fetched" in events


async def test_a_stop_undelivered_after_the_stream_ended_does_not_call_the_answer_cut(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The answer's stream has ended whole; the bot is settling it (its relay receipt spoiled on
    # the way, the late receipt being fetched) when the page's stop comes, and a proxy refuses
    # the cancel. The answer was not cut: the operator's line must not say it was.
    async with webapp_stack(tmp_path, answer=ANSWER, tamper=True, stop_grace=30.0) as stack:
        release = asyncio.Event()
        stack.tampering.stall = ("/v1/sealed/receipts/", release)
        stack.tampering.refusal = ("/v1/sealed/cancel", 502, "text/html", b"<h1>Bad gateway</h1>")

        def flip_last_byte(body: bytes) -> bytes:
            if body.startswith(b"{"):  # a receipt fetch: left alone
                return body
            return body[:-1] + bytes([body[-1] ^ 1])  # the stream: the relay receipt's tag

        stack.tampering.rewrite_response = flip_last_byte
        mini = page(stack, http)
        with capture_logs() as logs:
            async with mini.relay(CHAT) as (response, asked):
                assert response.status == 200
                async with asyncio.timeout(15):
                    await stack.tampering.stalled.wait()  # settling: its late receipt on the way
                try:
                    assert await mini.stop(asked) == (200, {"state": "stopping"})
                finally:
                    release.set()
                asked.raw = await response.read()
            state = await settled(stack, asked.request_id)
    read_stream(asked)
    assert asked.text == ANSWER
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "complete")
    assert any(e["event"] == "relay.stop_hung_up" for e in logs)
    settled_event = next(e for e in logs if e["event"] == "relay.settled")
    assert settled_event["cut"] is None


async def test_a_model_named_beyond_latin_1_is_relayed_under_its_own_name(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A header holds Latin-1 at most: the page sends the model's name percent-encoded, and the
    # bot bills and checks the receipt under the name itself.
    model = "Модель-café-7B"
    async with webapp_stack(tmp_path, answer=ANSWER, models=(model,)) as stack:
        asked = await page(stack, http).ask(QUESTION, model=model)
        assert (asked.status, asked.error) == (200, {})
        assert asked.text == ANSWER
        state = await hold_of(stack.store, asked.request_id)
    assert state is not None
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "complete")


async def test_credit_is_checked_before_sealing_and_nothing_is_held_when_short(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path, free_tokens_per_day=0) as stack:
        mini = page(stack, http)
        status, body = await mini.post("api/prepare", {"model": "veil-test", "size": 1024})
        assert (status, body["error"]["code"]) == (402, "insufficient_credit")
        assert body["error"]["balance"] == "0"
        await grant(stack.store, USER_ID, 200_000, "grant", "test-grant")
        status, offer = await mini.post("api/prepare", {"model": "veil-test", "size": 1024})
        assert status == 200
        # 200 000 µ★ pays the 1 KiB prompt ceiling (1024 x 20) and 2 992 answer tokens at 60,
        # of which VEIL_MAX_ANSWER_TOKENS (1024) are offered.
        assert offer["max_completion_tokens"] == 1024
        await grant(stack.store, USER_ID, -160_000, "grant", "test-take")
        status, offer = await mini.post("api/prepare", {"model": "veil-test", "size": 1024})
        assert (status, offer["max_completion_tokens"]) == (200, (40_000 - 1024 * 20) // 60)
        # Declaring more answer tokens than the balance pays for: refused, nothing held.
        asked = await mini.ask(QUESTION, max_tokens=1024)
        assert (asked.status, asked.error["code"]) == (402, "insufficient_credit")
        assert await hold_of(stack.store, asked.request_id) is None
        assert not stack.vllm.requests
        balance = await stack.store.read(lambda db: ledger_balance(db, USER_ID))
        assert balance == 40_000
        # What was offered goes through, and is paid for from the receipt.
        answered = await mini.ask(QUESTION)
        assert answered.status == 200
        balance = await stack.store.read(lambda db: ledger_balance(db, USER_ID))
        assert balance < 40_000


async def test_a_long_paste_is_held_at_most_the_window_the_gateway_bills(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A 12 KB paste seals into the 16 KiB bucket, and the whole bucket was held as its prompt
    # (16,384 tokens): a user whose credit pays for the model's 4,096-token window and an answer
    # was refused "not enough credit", for tokens no gateway would ever bill.
    async with webapp_stack(tmp_path, max_model_len=4096, free_tokens_per_day=0) as stack:
        await grant(stack.store, USER_ID, 150_000, "grant", "test-grant")
        mini = page(stack, http)
        status, offer = await mini.post("api/prepare", {"model": "veil-test", "size": 16_384})
        # The window (4,096 x 20) held for the prompt leaves 68,080 for 1,134 answer tokens.
        assert (status, offer["max_completion_tokens"]) == (200, 1024)
        asked = await mini.ask("x" * 12_000)  # one word to the fake: within the window
        assert asked.status == 200
        state = await settled(stack, asked.request_id)
    assert asked.text == "Hello from the fake model."
    assert state.hold.prompt_tokens == 4096
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "complete")


async def test_bad_declarations_and_reused_request_ids_are_refused_before_the_gateway(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        mini = page(stack, http)
        first = await mini.ask(QUESTION)
        assert first.status == 200
        asked_before = len(stack.vllm.requests)
        base_headers = {
            **mini.auth,
            "Veil-Gateway": "1",
            "Veil-Request-Id": first.request_id.hex(),
            "Veil-Model": "veil-test",
            "Veil-Max-Tokens": "64",
            "Veil-Proof": b64e(receipt_proof(first.response_key, first.request_id)),
        }
        body = b"VEIL\x02\x01" + bytes(8) + bytes(32 + 1024 + 16)
        cases = [
            ({"Veil-Gateway": "9"}, body, 400, "bad_request"),
            ({"Veil-Max-Tokens": "99999"}, body, 400, "bad_request"),
            ({"Veil-Model": "another-model"}, body, 400, "bad_request"),
            # Percent-encoded as the page sends it: what decodes to no served model is refused.
            ({"Veil-Model": "veil-test%0A"}, body, 400, "bad_request"),
            ({"Veil-Model": "veil-test%FF"}, body, 400, "bad_request"),
            ({"Veil-Model": "%"}, body, 400, "bad_request"),
            ({"Veil-Model": "%00"}, body, 400, "bad_request"),
            ({"Veil-Proof": "short"}, body, 400, "bad_request"),
            ({"Veil-Request-Id": "zz"}, body, 400, "bad_request"),
            ({"Veil-Request-Id": "ab" * 16}, body[:-1], 400, "bad_request"),  # not a bucket
            ({"Veil-Request-Id": "ab" * 16}, b"HTTP" + body[4:], 400, "bad_request"),
            ({}, body, 409, "request_id_taken"),  # the first answer's id: held before
        ]
        for change, data, status, code in cases:
            async with http.post(
                mini.base + "api/relay", data=io.BytesIO(data), headers={**base_headers, **change}
            ) as response:
                reply = await response.json()
                assert (response.status, reply["error"]["code"]) == (status, code), change
        assert len(stack.vllm.requests) == asked_before
        status, body_json = await mini.post("api/prepare", {"model": "veil-test", "size": 1000})
        assert (status, body_json["error"]["code"]) == (400, "bad_request")


async def test_a_gateway_refusal_releases_the_hold_and_tells_the_page(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        mini = page(stack, http)
        assert (await mini.ask(QUESTION)).status == 200  # the bot has the bundle now
        # Sealed to a key the gateway no longer holds: 410 from the gateway, 502 to the page.
        stack.gateway.gateway.ring.rotate(stack.gateway.gateway.now())
        ring = stack.gateway.gateway.ring
        ring._keys = ring._keys[:1]  # the old key's window closes at once
        async with mini.relay(CHAT) as (response, asked):
            reply = await response.json()
        assert response.status == 502
        assert reply["error"]["gateway_status"] == 410
        assert reply["error"]["gateway_code"] == "unknown_key"
        state = await hold_of(stack.store, asked.request_id)
        assert state is not None
        assert state.charge is not None
        assert state.charge.outcome == "released"
        assert state.charge.units == 0
        # Re-preparing gives the new bundle, and the question goes through.
        again = await mini.ask(QUESTION)
        assert again.text == ANSWER


async def test_an_empty_answer_costs_nothing_as_in_the_chat(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The model finished without a token: in the chat that costs nothing (the user is told and
    # may ask again); the page's answer was charged its prompt from the receipt all the same.
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer="") as stack:
            asked = await page(stack, http).ask(QUESTION)
            assert asked.status == 200
            assert asked.text == ""
            assert asked.final is not None
            assert asked.final.receipt is not None
            usage = asked.final.receipt.receipt
            assert (usage.status, usage.completion_tokens) == ("complete", 0)
            state = await hold_of(stack.store, asked.request_id)
            assert state is not None
            assert state.charge is not None
            assert (state.charge.outcome, state.charge.units) == ("released", 0)
            report = await Auditor(stack.store, [stack.gateway.verify_key]).run()
            assert report.ok, report.problems
    assert "relay.empty_answer" in [entry["event"] for entry in logs]


async def test_one_answer_at_a_time_per_user(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER, token_delay=0.05) as stack:
        mini = page(stack, http)
        async with mini.relay(CHAT) as (response, _):
            assert response.status == 200
            second = await mini.ask(QUESTION)
            assert (second.status, second.error["code"]) == (409, "busy")
            await response.read()
        third = await mini.ask(QUESTION)
        assert third.status == 200


async def test_a_sealed_body_split_into_delayed_segments_is_read_whole(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        host, port = stack.base.removeprefix("http://").split("/")[0].split(":")
        async with SegmentingRelay(host, int(port), segment=100, delay=0.01) as slow:
            mini = PythonPage(http, slow.url + "/app/", stack.gateway.verify_key)
            asked = await mini.ask(QUESTION)
            assert slow.segments > 10  # the 1 KiB sealed body came in many pieces
        assert asked.status == 200
        assert asked.text == ANSWER


def cut_connections(proxy: RecordingProxy) -> None:
    """Cut the connections the proxy carries now (it keeps accepting new ones)."""
    for pipe in list(proxy._pipes):
        pipe.cancel()


async def test_a_gateway_cut_mid_stream_is_settled_from_the_late_receipt(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    answer = " ".join(f"word{i}" for i in range(80))
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
            mini = page(stack, http)
            async with mini.relay(CHAT) as (response, asked):
                first = await response.content.read(100)
                cut_connections(stack.to_gateway)  # the network between bot and gateway fails
                asked.raw = first + await read_to_break(response)
            state = await settled(stack, asked.request_id)
    with pytest.raises(StreamTruncated):  # the page sees the cut: no final record came
        read_stream(asked)
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert 0 < state.charge.completion_tokens < 80
    assert any(e["event"] == "inference.receipt_fetched" for e in logs)


async def test_with_no_receipt_at_all_the_hold_is_charged_once_chunks_were_handed_on(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    answer = " ".join(f"word{i}" for i in range(80))
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
            # A page that sends a wrong receipt proof leaves the bot no way to the late receipt.
            mini = page(stack, http)
            async with mini.relay(CHAT, receipt_proof=bytes(32)) as (response, asked):
                await response.content.read(100)
                cut_connections(stack.to_gateway)
                await read_to_break(response)
            state = await settled(stack, asked.request_id)
    assert state.charge is not None
    assert state.charge.outcome == "unverified"  # the most it could have cost: the hold
    assert state.charge.prompt_tokens == state.hold.prompt_tokens
    assert state.charge.completion_tokens == state.hold.max_completion_tokens
    events = [e["event"] for e in logs]
    assert "relay.no_receipt" in events
    assert "inference.receipt_unavailable" in events


async def test_an_unreachable_gateway_releases_the_hold(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        mini = page(stack, http)
        assert (await mini.ask(QUESTION)).status == 200  # the bundle is known
        await stack.to_gateway.close()  # nothing listens between the bot and the gateway now
        asked = await mini.ask(QUESTION)
        assert (asked.status, asked.error["code"]) == (502, "gateway_refused")
        assert (asked.error["gateway_status"], asked.error["gateway_code"]) == (502, "unreachable")
        state = await hold_of(stack.store, asked.request_id)
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)


async def test_shutdown_settles_the_answers_still_relayed(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    answer = " ".join(f"word{i}" for i in range(200))
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
            mini = page(stack, http)
            async with mini.relay(CHAT) as (response, asked):
                await response.content.read(100)
                relay = stack.veil.relay
                assert relay is not None
                await relay.close()  # what the bot does on its way out
                assert not relay.busy(USER_ID)
                state = await hold_of(stack.store, asked.request_id)
    assert state is not None
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    settled_event = next(e for e in logs if e["event"] == "relay.settled")
    assert settled_event["cut"] == "shutdown"


async def test_shutdown_waits_for_an_answer_still_being_sent_to_the_gateway(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    answer = " ".join(f"word{i}" for i in range(200))
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
            mini = page(stack, http)
            assert (await mini.ask(QUESTION)).status == 200  # the bundle is known
            relay = stack.veil.relay
            assert relay is not None
            stack.to_gateway.open.clear()  # the request to the gateway is held in the network

            async def ask_and_read() -> Asked:
                async with mini.relay(CHAT) as (response, asked):
                    # Cut short by the shutdown: the page's stream breaks (never ended whole,
                    # which the page would take for the bot's time limit past its own clock).
                    with pytest.raises(ClientPayloadError):
                        await response.read()
                return asked

            asking = asyncio.create_task(ask_and_read())
            await wait_until(lambda: relay.running == 1)
            closing = asyncio.create_task(relay.close())  # shutdown, before the gateway answered
            await asyncio.sleep(0.2)
            assert not closing.done()  # it waits for the answer being sent, not only started ones
            stack.to_gateway.open.set()
            await closing
            assert not relay.busy(USER_ID)
            asked = await asking
            state = await hold_of(stack.store, asked.request_id)
    assert state is not None
    assert state.charge is not None  # settled before close returned, not at the next start
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert state.charge.completion_tokens < 200  # hung up at once, not relayed whole
    settled_event = next(
        e
        for e in logs
        if e["event"] == "relay.settled" and e["request_id"] == asked.request_id.hex()
    )
    assert settled_event["cut"] == "shutdown"


def test_only_the_origins_the_operator_lists_may_frame_the_page_besides_telegram() -> None:
    def settings(framers: str) -> BotSettings:
        return BotSettings(
            bot_token="1:x", operator_keys=b64e(bytes(32)), webapp_frame_ancestors=framers
        )

    listed = settings("https://play.example:8443 http://127.0.0.1:8080/")
    assert listed.webapp_frame_ancestors == "https://play.example:8443 http://127.0.0.1:8080"
    for bad in (
        "http://play.example",  # plain HTTP elsewhere than this machine
        "https://play.example/path",
        "https://play.example?x=1",
        "javascript:alert(1)",
        "https://*.example",
        "'self'",
    ):
        with pytest.raises(ValidationError, match="not an origin"):
            settings(bad)
    html = b"<style>p { color: red; }</style>"
    policy = page_headers(html, listed.webapp_frame_ancestors.split())["Content-Security-Policy"]
    assert policy.endswith(
        "frame-ancestors 'self' https://web.telegram.org https://*.telegram.org"
        " https://play.example:8443 http://127.0.0.1:8080"
    )
    alone = page_headers(html)["Content-Security-Policy"]
    assert alone.endswith("frame-ancestors 'self' https://web.telegram.org https://*.telegram.org")
    assert "style-src 'sha256-" in alone
    assert "style-src 'none';" in page_headers(b"<p>no style</p>")["Content-Security-Policy"]


async def test_half_an_emoji_in_a_sealed_question_reaches_the_model_as_a_replacement_character(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The page's canonical JSON escapes a lone half of a surrogate pair as "\ud83d" (a JS
    # string may hold one: an emoji cut in two). The gateway read it into a Python string and
    # sent it on as it was; a model server's tokenizer (Rust, UTF-8 only) cannot take it.
    # Telegram's JSON is read so in the bot (U+FFFD, bot.telegram.loads_repaired); a sealed
    # request is read so where it is opened, once, for every sender.
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        asked = await page(stack, http).ask("What is \ud83d here?")
        questions = [m["content"] for r in stack.vllm.requests for m in r["messages"]]
    assert (asked.status, asked.text) == (200, ANSWER)
    assert questions == ["What is \ufffd here?"]
