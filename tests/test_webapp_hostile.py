"""The Mini App's relay under a hostile world: pages that stall, a busy gateway, launch data.

Each test plays one hostile party (the page, the network between it and the bot, the
gateway, a third party with someone's launch data) over real HTTP against the bot's own web
server, which relays to a real gateway and the fake vLLM; the ledger is read back at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from handlers.webapp import TIME_LIMIT_MARK
from sealed.receipt import ReceiptStatus
from services.control import ControlClient
from services.prices import format_units
from services.relay import RelayService
from services.relayed import Ticket
from tests.books import inconsistent_users
from tests.botstack import TOKEN
from tests.fakes.relay import SlowReader
from tests.harness import CLIENT_KEY, CLIENT_VERIFY_KEY, client_policy, wait_until
from tests.miniapp import (
    USER_ID,
    bot_address,
    hold_of,
    init_data,
    page,
    raw_post,
    read_stream,
    read_to_break,
    settled,
    webapp_stack,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.miniapp import MiniStack

QUESTION = "Which drawer holds the letters I never sent?"
CHAT = {"model": "veil-test", "messages": [{"role": "user", "content": QUESTION}]}


async def test_a_page_that_stops_reading_mid_answer_is_hung_up_on_and_charged_what_was_made(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A phone whose network went dark mid-answer, or a page that stopped reading: its window
    # stays shut. The bot must not keep relaying into it (the model writing the whole answer,
    # the user charged for all of it, the connection held forever).
    answer = " ".join(["x" * 60_000] * 100)  # 100 deltas of 60 KB: far more than the buffers
    with capture_logs() as logs:
        async with webapp_stack(
            tmp_path, answer=answer, token_delay=0.02, webapp_client_timeout=0.5
        ) as stack:
            headers, body, asked = await page(stack, http).seal(CHAT)
            request = raw_post("/app/api/relay", headers, body)
            async with SlowReader(*bot_address(stack), request) as reader:
                assert reader.status == 200
                async with asyncio.timeout(10):
                    await reader.wait_closed_by_server()  # reset: the unread bytes are dropped
            state = await settled(stack, asked.request_id)
            relay = stack.veil.relay
            assert relay is not None
            assert not relay.busy(USER_ID)
            assert await inconsistent_users(stack.store) == []
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert 0 < state.charge.completion_tokens < 100
    assert stack.vllm.token_times == []  # the model never got to the end of the answer
    settled_event = next(e for e in logs if e["event"] == "relay.settled")
    assert settled_event["cut"] == "page_stalled"
    assert any(e["event"] == "webapp.page_stalled" for e in logs)


async def test_a_body_that_stalls_midway_is_refused_after_the_client_timeout(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path, webapp_client_timeout=0.3) as stack:
        headers, body, asked = await page(stack, http).seal(CHAT)
        request = raw_post("/app/api/relay", headers, body)
        reader, writer = await asyncio.open_connection(*bot_address(stack))
        try:
            writer.write(request[: len(request) - len(body) // 2])  # half the body, then nothing
            await writer.drain()
            async with asyncio.timeout(5):  # the bot answers without the rest of the body
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                payload = await reader.readexactly(length)
        finally:
            writer.close()
        assert head.startswith(b"HTTP/1.1 408")
        assert json.loads(payload)["error"]["code"] == "body_timeout"
        # Nothing was held or asked: the user may ask again at once.
        assert stack.vllm.requests == []
        assert await stack.store.read(lambda db: db.execute("SELECT * FROM holds").fetchall()) == []
        again = await page(stack, http).ask(QUESTION)
        assert again.status == 200
        assert again.request_id != asked.request_id


async def test_a_busy_gateways_retry_after_reaches_the_page_and_nothing_is_charged(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        mini = page(stack, http)
        gateway = stack.gateway.gateway
        # Every stream slot taken: 503 busy, Retry-After 1.
        gateway.max_streams = 0
        async with mini.relay(CHAT) as (response, busy):
            reply = await response.json()
            retry_header = response.headers.get("Retry-After")
        assert (response.status, reply["error"]["code"]) == (502, "gateway_refused")
        assert (reply["error"]["gateway_status"], reply["error"]["gateway_code"]) == (503, "busy")
        assert reply["error"]["retry_after"] == 1
        assert retry_header == "1"
        gateway.max_streams = 64
        # The bot (the gateway's client) used its tokens of the minute: 429 rate_limited, and
        # the seconds until the minute lets it in again.
        gateway.clients = {CLIENT_VERIFY_KEY: client_policy(tokens_per_minute=1)}
        assert (await mini.ask(QUESTION)).status == 200  # uses the minute's tokens up
        async with mini.relay(CHAT) as (response, limited):
            reply = await response.json()
            retry_header = response.headers.get("Retry-After")
        assert (reply["error"]["gateway_status"], reply["error"]["gateway_code"]) == (
            429,
            "rate_limited",
        )
        assert 1 <= reply["error"]["retry_after"] <= 60
        assert retry_header == str(reply["error"]["retry_after"])
        for asked in (busy, limited):
            state = await hold_of(stack.store, asked.request_id)
            assert state is not None
            assert state.charge is not None
            assert (state.charge.outcome, state.charge.units) == ("released", 0)
        assert await inconsistent_users(stack.store) == []


async def test_forget_while_a_private_answer_streams_erases_and_the_answer_is_billed_once(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.03) as stack:
        telegram = stack.telegram
        mini = page(stack, http)
        async with mini.relay(CHAT) as (response, asked):
            first = await response.content.read(100)
            telegram.send_text(USER_ID, "/forget")
            confirm = await message_with(stack, "forget_confirm")
            erase = confirm["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            telegram.press_button(USER_ID, erase, message_id=confirm["message_id"])
            await message_with(stack, "forget_nothing")  # the relay stores nothing of theirs
            asked.raw = first + await response.read()  # the answer goes on to its end
        read_stream(asked)
        state = await settled(stack, asked.request_id)
        assert await inconsistent_users(stack.store) == []
        rows = await stack.store.read(lambda db: db.execute("SELECT user_id FROM users").fetchall())
    assert asked.text == answer
    assert asked.final is not None
    assert asked.final.receipt is not None
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "complete")
    assert state.charge.completion_tokens == asked.final.receipt.receipt.completion_tokens
    assert rows == []  # the relay wrote nothing about the user back after the erasure


async def message_with(stack: MiniStack, key: str, **values: object) -> dict[str, Any]:
    """Wait for the bot's message to the user that says the catalogue's ``key``."""
    text = stack.veil.catalogs.for_language("en")(key, **values)
    async with asyncio.timeout(10):
        while True:
            for message in stack.telegram.sent_messages(USER_ID):
                if message.get("text") == text:
                    return message
            await asyncio.sleep(0.02)


async def test_a_stop_sent_before_the_gateway_took_the_question_stops_it_once_it_does(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Stop pressed while the sealed question is still on its way to the gateway (a slow
    # network, a hold being written): the gateway has no stream to cancel yet. The stop must
    # not be lost, nor wait on that network.
    answer = " ".join(f"word{i}" for i in range(80))
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
        mini = page(stack, http)
        relay = stack.veil.relay
        assert relay is not None
        headers, body, asked = await mini.seal(CHAT)  # (its api/prepare fetched the bundle)

        async def ask_and_read() -> bytes:
            async with http.post(mini.base + "api/relay", data=body, headers=headers) as reply:
                assert reply.status == 200
                return await reply.read()

        stack.to_gateway.open.clear()  # the question waits on its way to the gateway
        asking = asyncio.create_task(ask_and_read())
        await wait_until(lambda: relay.running == 1)
        async with asyncio.timeout(2):  # answered at once, not after the network's delay
            status, reply = await mini.stop(asked)
        assert (status, reply) == (200, {"state": "stopping"})
        stack.to_gateway.open.set()
        asked.raw = await asking
        state = await settled(stack, asked.request_id)
        assert await inconsistent_users(stack.store) == []
    read_stream(asked)
    assert asked.final is not None
    assert asked.final.finish_reason == "stopped"
    assert asked.final.receipt is not None
    assert asked.final.receipt.receipt.status is ReceiptStatus.STOPPED
    assert asked.final.receipt.receipt.completion_tokens < 80
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")


async def test_a_stop_while_the_gateway_never_begins_the_answer_gives_up_on_it_uncharged(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A gateway that stalls before it begins the answer (or a proxy holding the question): the
    # stop has nothing to cancel yet. Stop must not be inert until the bot's read timeout (two
    # minutes): within the stop's grace the bot stops waiting, the page hears that the answer
    # was stopped before it began, and nothing is charged.
    async with webapp_stack(tmp_path, stop_grace=1.0) as stack:
        mini = page(stack, http)
        relay = stack.veil.relay
        assert relay is not None
        headers, body, asked = await mini.seal(CHAT)

        async def ask() -> tuple[int, dict[str, Any]]:
            async with http.post(mini.base + "api/relay", data=body, headers=headers) as reply:
                return reply.status, await reply.json(content_type=None)

        stack.to_gateway.open.clear()  # the question never reaches the gateway
        try:
            with capture_logs() as logs:
                asking = asyncio.create_task(ask())
                await wait_until(lambda: relay.running == 1)
                assert await mini.stop(asked) == (200, {"state": "stopping"})
                status, reply = await asking
        finally:
            await stack.to_gateway.drop()  # what waited on the way never reaches the gateway
            stack.to_gateway.open.set()
        assert (status, reply["error"]["code"]) == (409, "stopped")
        assert "charged" not in reply["error"]  # the gateway had no receipt: nothing charged
        assert [e["event"] for e in logs if e["event"].startswith("relay.stopped")] == [
            "relay.stopped_before_answer"
        ]
        # (the bot asks the gateway for a receipt first, in case it had begun after all)
        state = await settled(stack, asked.request_id)
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)
        await wait_until(lambda: not relay.busy(USER_ID))
        assert await inconsistent_users(stack.store) == []


async def test_a_stop_that_gives_up_on_a_gateway_that_had_begun_charges_its_stopped_receipt(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The question reached the gateway, which began the answer, but its reply is held on the
    # way back (a slow network, a proxy that buffers it). The stop's grace ends and the bot
    # stops waiting; yet the model wrote tokens, and the gateway keeps a signed receipt of
    # them: that receipt is fetched and charged, not dropped with the hold.
    answer = " ".join(f"word{i}" for i in range(400))
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.05, stop_grace=1.0) as stack:
        mini = page(stack, http)
        headers, body, asked = await mini.seal(CHAT)

        async def ask() -> tuple[int, dict[str, Any]]:
            async with http.post(mini.base + "api/relay", data=body, headers=headers) as reply:
                return reply.status, await reply.json(content_type=None)

        stack.to_gateway.hold_replies = b"POST /v1/sealed/chat"
        with capture_logs() as logs:
            try:
                asking = asyncio.create_task(ask())
                async with asyncio.timeout(15):  # the gateway began: its reply is on its way
                    await stack.to_gateway.replies_held.wait()
                assert await mini.stop(asked) == (200, {"state": "stopping"})
                status, reply = await asking
                assert (status, reply["error"]["code"]) == (409, "stopped")
                # Settled before the page hears: it is told what the receipt charged.
                state = await hold_of(stack.store, asked.request_id)
                assert state is not None
            finally:
                stack.to_gateway.replies_released.set()
        assert await inconsistent_users(stack.store) == []
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert 0 < state.charge.completion_tokens < 400
    assert reply["error"]["charged"] == {
        "prompt_tokens": state.charge.prompt_tokens,
        "completion_tokens": state.charge.completion_tokens,
        "status": "stopped",
        "units": format_units(state.charge.units),
    }
    assert any(e["event"] == "inference.receipt_fetched" for e in logs)


async def test_a_stop_that_comes_while_the_hold_is_taken_gives_up_and_sends_nothing(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Stop pressed while the bot is still writing the hold (the database busy with another
    # writer). The stop's grace ends before the question could be sent: it is then not sent at
    # all (no model started for an answer the user already stopped), and nothing is charged.
    answer = " ".join(f"word{i}" for i in range(80))
    grace = 0.5
    async with webapp_stack(
        tmp_path, answer=answer, token_delay=0.05, stop_grace=grace, db_busy_timeout=60.0
    ) as stack:
        mini = page(stack, http)
        relay = stack.veil.relay
        assert relay is not None
        headers, body, asked = await mini.seal(CHAT)

        async def ask() -> tuple[int, bytes]:
            async with http.post(mini.base + "api/relay", data=body, headers=headers) as reply:
                return reply.status, await reply.read()

        writer = sqlite3.connect(stack.veil.settings.database_path, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # another writer holds the database
            asking = asyncio.create_task(ask())
            await wait_until(lambda: relay.running == 1)
            assert await mini.stop(asked) == (200, {"state": "stopping"})
            # (the stop's grace, set as it came, has ended before this sleep does)
            await asyncio.sleep(grace * 2)
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        status, reply = await asking
        assert status == 409  # not an answer to a question stopped before it was sent
        assert json.loads(reply)["error"]["code"] == "stopped"
        assert b"POST /v1/sealed/chat" not in stack.to_gateway.upstream
        state = await hold_of(stack.store, asked.request_id)
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)
        assert not relay.busy(USER_ID)
        assert await inconsistent_users(stack.store) == []


async def test_a_question_after_closing_a_page_that_waited_for_the_gateway_is_answered(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The page was closed while the bot still waited for the gateway to begin the answer (its
    # reply slow on its way back), and the user asked again at once from the page opened anew.
    # The question was refused as "an answer is still being written", with nothing on the screen
    # being written: the bot waited on for a gateway reply that no page would read.
    # The first answer is long, so that the model is still writing it when the bot hangs up;
    # the next question's is short (it was 400 words more at the model's pace, ~20 s of this).
    first_answer = " ".join(f"word{i}" for i in range(400))
    answer = "The top drawer, under the maps."
    again = "And the key to it?"

    def answers(request: dict[str, Any]) -> str:
        return answer if request["messages"][-1]["content"] == again else first_answer

    async with webapp_stack(tmp_path, answer=answers, token_delay=0.05, stop_grace=30.0) as stack:
        mini = page(stack, http)
        relay = stack.veil.relay
        assert relay is not None
        headers, body, first = await mini.seal(CHAT)
        stack.to_gateway.hold_replies = b"POST /v1/sealed/chat"
        try:
            with capture_logs() as logs:
                _, writer = await asyncio.open_connection(*bot_address(stack))
                writer.write(raw_post("/app/api/relay", headers, body))
                await writer.drain()
                async with asyncio.timeout(15):  # the gateway began: its reply is on its way
                    await stack.to_gateway.replies_held.wait()
                stack.to_gateway.hold_replies = None  # (the next question's reply is not held)
                writer.close()  # the page is closed
                await writer.wait_closed()
                second = asyncio.create_task(mini.ask(again))
                await wait_until(
                    lambda: (
                        second.done() or any(e["event"] == "relay.waits_for_settling" for e in logs)
                    )
                )
                stack.to_gateway.replies_released.set()
                asked = await second
        finally:
            stack.to_gateway.replies_released.set()
        assert (asked.status, asked.error) == (200, {})
        assert asked.text == answer
        state = await settled(stack, first.request_id)
        assert state.charge is not None
        assert not relay.busy(USER_ID)
        assert await inconsistent_users(stack.store) == []
    waited = next(e for e in logs if e["event"] == "relay.waits_for_settling")
    assert waited["cut"] == "page_gone"


def signed(fields: dict[str, str]) -> str:
    """Launch data signed with the bot's own token, whatever it says (as only Telegram could)."""
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()
    signature = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": signature}, quote_via=quote)


async def test_launch_data_that_is_not_telegrams_is_refused_never_a_server_error(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    now = str(int(time.time()))
    eve = quote(json.dumps({"id": 666, "first_name": "Eve"}))

    def user(user_id: object) -> str:
        return signed({"user": json.dumps({"id": user_id, "first_name": "A"}), "auth_date": now})

    cases = {
        # From anyone: bytes Telegram never sends (its launch data is URL-encoded ASCII).
        "non-ASCII": init_data() + "\u00ff",
        "non-ASCII hash": init_data().rsplit("=", 1)[0] + "=\u00e9\u00e9",
        # A field given twice: whichever copy a parser takes, Telegram signed only one.
        "user twice, the forged one first": f"user={eve}&" + init_data(),
        "user twice, the forged one last": init_data() + f"&user={eve}",
        "hash twice": init_data() + "&hash=" + "0" * 64,
        # Signed, yet no Telegram user: not a positive id within JSON's exact integers.
        "id 2**70": user(2**70),
        "id 0": user(0),
        "id -5": user(-5),
        "id not a number": user("abc"),
        "user nested too deep": signed({"user": "[" * 1200 + "]" * 1200, "auth_date": now}),
    }
    async with webapp_stack(tmp_path) as stack:
        with capture_logs() as logs:
            for name, data in cases.items():
                mini = page(stack, http, data=data)
                async with http.get(mini.base + "api/account", headers=mini.auth) as response:
                    assert response.status == 401, name
                    reply = await response.json()
                assert reply["error"]["code"] == "unauthorized", name
        # Telegram's own launch data still opens the page.
        status, _ = await page(stack, http).get("api/account")
        assert status == 200
    refused = [e for e in logs if e["event"] == "webapp.refused"]
    assert len(refused) == len(cases)


async def test_a_second_page_of_the_user_asking_while_an_answer_streams_is_told_busy(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Two pages of one user (two devices, or two tabs): one answer at a time per user, as in
    # the chat. The second page's question, sent while the first page's answer streams, is
    # refused as busy, nothing held or asked for it; the first answer goes on whole, and the
    # second page's question is answered once the first is settled.
    answer = " ".join(f"piece{i}" for i in range(40))
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.05) as stack:
        first, second = page(stack, http), page(stack, http)
        async with first.relay(CHAT) as (response, asked):
            assert response.status == 200
            begun = await response.content.readany()  # the answer is streaming
            refused = await second.ask("And the other drawer?")
            asked.raw = begun + await response.read()
        read_stream(asked)
        assert (refused.status, refused.error["code"]) == (409, "busy")
        assert await hold_of(stack.store, refused.request_id) is None
        assert len(stack.vllm.requests) == 1
        assert asked.text == answer
        state = await settled(stack, asked.request_id)
        assert state.charge is not None
        assert state.charge.receipt_status == "complete"
        again = await second.ask("And the other drawer?")
        assert again.status == 200, again.error
        assert await inconsistent_users(stack.store) == []


async def test_a_replayed_sealed_body_is_refused_and_nothing_is_charged_for_it(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Someone resends a sealed body the page sent before, under a request id of their own: the
    # gateway has seen its sealed request id, so the model never runs it again.
    async with webapp_stack(tmp_path, answer="Once only.") as stack:
        mini = page(stack, http)
        headers, body, _ = await mini.seal(CHAT)
        async with http.post(mini.base + "api/relay", data=body, headers=headers) as reply:
            assert reply.status == 200
            await reply.read()
        asked = len(stack.vllm.requests)
        replay = {**headers, "Veil-Request-Id": "ab" * 16}
        async with http.post(mini.base + "api/relay", data=body, headers=replay) as reply:
            refused = await reply.json()
        assert reply.status == 502
        assert refused["error"]["code"] == "gateway_refused"
        assert refused["error"]["gateway_status"] == 409
        assert len(stack.vllm.requests) == asked
        state = await hold_of(stack.store, bytes.fromhex("ab" * 16))
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)
        assert await inconsistent_users(stack.store) == []


# A proxy between the bot and the gateway answers the sealed question with an error body of its
# own that no JSON reading of it survives: nested past the parser's depth (RecursionError, not
# a ValueError), or in a "charset" that Python knows and refuses to decode text with.
PROXY_REFUSALS = [
    pytest.param((502, "application/json", b"[" * 100_000 + b"]" * 100_000), id="nested"),
    pytest.param((502, "application/json; charset=hex", b'{"error": {}}'), id="charset"),
]


@pytest.mark.parametrize("refusal", PROXY_REFUSALS)
async def test_a_proxys_unreadable_refusal_reaches_the_page_as_a_refusal_and_nothing_is_held(
    tmp_path: Path, http: aiohttp.ClientSession, refusal: tuple[int, str, bytes]
) -> None:
    async with webapp_stack(tmp_path, tamper=True) as stack:
        stack.tampering.refusal = ("/v1/sealed/chat/", *refusal)
        with capture_logs() as logs:
            async with page(stack, http).relay(CHAT) as (response, asked):
                reply = await response.json()  # the page's JSON error, never aiohttp's text
                headers = response.headers
        assert response.status == 502
        assert headers["Cache-Control"] == "no-store"
        assert reply["error"]["code"] == "gateway_refused"
        assert (reply["error"]["gateway_status"], reply["error"]["gateway_code"]) == (
            502,
            "unknown",
        )
        state = await hold_of(stack.store, asked.request_id)
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)
        assert await inconsistent_users(stack.store) == []
    assert [e["code"] for e in logs if e["event"] == "relay.refused"] == ["unknown"]
    assert not [e for e in logs if e["log_level"] == "error"]


async def test_a_redirect_on_the_way_to_the_gateway_is_not_followed(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The bot followed a redirect from whatever answered as the gateway (aiohttp's default):
    # the sealed question, its client signature and the page's receipt proof went to any host
    # a proxy named. A redirect is now a refusal like any other reply that is not the gateway's.
    caught: list[str] = []

    async def catch(request: web.Request) -> web.Response:
        caught.append(request.path)
        return web.Response(status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", catch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    elsewhere = f"http://127.0.0.1:{runner.addresses[0][1]}/elsewhere"
    try:
        async with webapp_stack(tmp_path, tamper=True) as stack:
            stack.tampering.redirect = ("/v1/sealed/", 307, elsewhere)
            async with page(stack, http).relay(CHAT) as (response, asked):
                reply = await response.json()
            state = await hold_of(stack.store, asked.request_id)
            stack.telegram.send_text(USER_ID, "A question for the gateway")
            await wait_until(lambda: bool(stack.telegram.sent_messages(USER_ID)))
            told = stack.telegram.sent_messages(USER_ID)[0]["text"]
    finally:
        await runner.cleanup()
    assert caught == []
    assert (response.status, reply["error"]["code"]) == (502, "gateway_refused")
    assert state is not None
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.units) == ("released", 0)
    assert told.startswith("The model")


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param((502, "text/html", b"<html><h1>502 Bad Gateway</h1></html>"), id="page"),
        *PROXY_REFUSALS,
        # A proxy's own refusal that is no 5xx (a firewall's 403 page), or its page with a 200:
        # not the gateway's refusal of the proof (its JSON error with a code), so not delivered.
        pytest.param((403, "text/html", b"<html><h1>403 Forbidden</h1></html>"), id="403_page"),
        pytest.param((200, "text/html", b"<html><h1>Please wait</h1></html>"), id="200_page"),
    ],
)
async def test_a_stop_the_network_does_not_deliver_still_stops_the_answer_and_is_metered(
    tmp_path: Path, http: aiohttp.ClientSession, refusal: tuple[int, str, bytes]
) -> None:
    # Stop is pressed, and a proxy between the bot and the gateway answers the cancel itself:
    # the gateway never hears it. The stop must not be lost (the model writing on to its end,
    # the user charged for all of it): the bot hangs up instead, as a chat's stop does.
    answer = " ".join(f"word{i}" for i in range(80))
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.05, tamper=True) as stack:
        stack.tampering.refusal = ("/v1/sealed/cancel", *refusal)
        mini = page(stack, http)
        async with mini.relay(CHAT) as (response, asked):
            assert response.status == 200
            await response.content.read(100)  # some text is on its way
            status, reply = await mini.stop(asked)
            assert (status, reply) == (200, {"state": "stopping"})
            await response.read()
        state = await settled(stack, asked.request_id)
        assert await inconsistent_users(stack.store) == []
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert 0 < state.charge.completion_tokens < 80
    assert stack.vllm.token_times == []  # the model never got to the end of the answer


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(("application/json", b"[" * 100_000 + b"]" * 100_000), id="nested"),
        pytest.param(("application/json; charset=hex", b"{}"), id="charset"),
    ],
)
async def test_a_late_receipt_no_json_reading_survives_still_settles_the_answer(
    tmp_path: Path, http: aiohttp.ClientSession, body: tuple[str, bytes]
) -> None:
    # The page hung up mid-answer, and a proxy answers the bot's fetch of the late receipt
    # (200) with a body no JSON reading survives: there is no receipt to be had, and the hold
    # must still be closed (charged, as something was handed on), never left open.
    answer = " ".join(f"word{i}" for i in range(80))
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=answer, token_delay=0.05, tamper=True) as stack:
            stack.tampering.refusal = ("/v1/sealed/receipts/", 200, *body)
            async with page(stack, http).relay(CHAT) as (response, asked):
                assert response.status == 200
                await response.content.read(100)
                response.close()  # the user closed the page mid-answer
            state = await settled(stack, asked.request_id)
            assert await inconsistent_users(stack.store) == []
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("unverified", None)
    assert [e["problem"] for e in logs if e["event"] == "inference.receipt_unavailable"] == [
        "malformed"
    ]
    assert any(e["event"] == "relay.no_receipt" for e in logs)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(("application/json", b"[" * 100_000 + b"]" * 100_000), id="nested"),
        pytest.param(("application/json; charset=hex", b"{}"), id="charset"),
    ],
)
async def test_a_key_bundle_no_json_reading_survives_is_a_gateway_unavailable(
    tmp_path: Path, http: aiohttp.ClientSession, body: tuple[str, bytes]
) -> None:
    # The gateway rotated its key (410 to a question sealed to the old one), and a proxy
    # answers the bot's fetch of the new bundle with a body no JSON reading survives: the page
    # hears the gateway's refusal, as when the bundle cannot be had at all, never a bug.
    async with webapp_stack(tmp_path, tamper=True) as stack:
        mini = page(stack, http)
        assert (await mini.ask(QUESTION)).status == 200
        gateway = stack.gateway.gateway
        gateway.ring.rotate(gateway.now())
        gateway.ring._keys = gateway.ring._keys[:1]  # the old key's window closes at once
        stack.tampering.refusal = ("/v1/keys", 200, *body)
        refused = await mini.ask(QUESTION)
        assert refused.status == 502
        assert (refused.error["code"], refused.error["gateway_status"]) == ("gateway_refused", 410)
        state = await hold_of(stack.store, refused.request_id)
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)
        assert await inconsistent_users(stack.store) == []


async def test_a_stop_after_the_launch_data_aged_past_its_limit_still_stops_the_answer(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The page was opened a while ago; an answer began while its launch data was fresh enough,
    # and Stop is pressed once it is not. New questions are refused (reopen the page), but the
    # stop of the answer already running must not be: it would run on, charged in full.
    answer = " ".join(f"word{i}" for i in range(400))
    opened = time.time() - 55
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.05, webapp_max_age=60) as stack:
        mini = page(stack, http, data=init_data(auth_date=opened))
        async with mini.relay(CHAT) as (response, asked):
            assert response.status == 200
            await response.content.read(100)
            await wait_until(lambda: time.time() - opened > 62, within=30)
            status, _ = await mini.get("api/account")
            assert status == 401  # stale for anything else
            status, reply = await mini.stop(asked)
            assert (status, reply) == (200, {"state": "stopping"})
            await response.read()
        state = await settled(stack, asked.request_id)
    assert state.charge is not None
    assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    assert state.charge.completion_tokens < 400


async def test_a_stop_whose_stream_stalls_past_its_grace_is_not_told_as_the_time_limit(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The gateway took the stop, but the rest of its stream stalled on the way back. The bot
    # hung up once the stop's grace ended, and took that for its own limit for one answer: it
    # logged the cut as ``time_limit`` and ended the page's stream with the time-limit mark.
    answer = " ".join(f"word{i}" for i in range(400))
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.05, stop_grace=1.0) as stack:
        mini = page(stack, http)
        stack.to_gateway.stall_replies = b"POST /v1/sealed/chat"
        with capture_logs() as logs:
            try:
                async with mini.relay(CHAT) as (response, asked):
                    assert response.status == 200
                    async with asyncio.timeout(15):
                        await stack.to_gateway.replies_held.wait()
                    assert await mini.stop(asked) == (200, {"state": "stopping"})
                    raw = await read_to_break(response)
            finally:
                stack.to_gateway.replies_released.set()
            state = await settled(stack, asked.request_id)
        assert not raw.endswith(TIME_LIMIT_MARK)
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
    cut = next(e["cut"] for e in logs if e["event"] == "relay.settled")
    assert cut == "stop_grace"


async def test_an_answer_whose_end_is_slow_past_the_time_limit_reaches_the_page_whole(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The answer's final chunk came before the bot's limit for one answer, but what follows it
    # on the wire (the relay receipt, the stream's end) was slow on the way. The bot cut the
    # stream at the limit and wrote its time-limit mark after the final chunk: the page found
    # bytes after the answer (TrailingData) and discarded the whole of it, charged for.
    async with webapp_stack(tmp_path, tamper=True, max_answer_seconds=3.0) as stack:
        stack.tampering.hold_after_final = asyncio.Event()
        try:
            with capture_logs() as logs:
                asked = await page(stack, http).ask(QUESTION)  # opened as the page does
        finally:
            stack.tampering.hold_after_final.set()
        assert stack.tampering.held_after_final.is_set()
        assert not asked.raw.endswith(TIME_LIMIT_MARK)
        assert asked.text == "Hello from the fake model."
        assert asked.final is not None
        state = await settled(stack, asked.request_id)
        assert state.charge is not None
        assert state.charge.outcome == "settled"
    cut = next(e["cut"] for e in logs if e["event"] == "relay.settled")
    assert cut == "time_limit"  # (the bot did cut the stream: what came after the final chunk)


async def test_a_gateway_stream_that_breaks_after_its_final_chunk_reaches_the_page_whole(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The gateway's stream broke after the answer's final chunk had been handed on (what
    # follows it, the relay receipt and the stream's end, lost on the way). The bot broke the
    # page's stream too, as for a stream broken mid-answer: the page, holding the whole answer
    # and its receipt, was told it was cut on the way, and its question given back.
    async with webapp_stack(tmp_path, tamper=True) as stack:
        stack.tampering.hold_after_final = asyncio.Event()
        stack.tampering.break_after_final = True
        stack.tampering.hold_after_final.set()  # (it breaks at once)
        asked = await page(stack, http).ask(QUESTION)  # opened as the page does
        assert stack.tampering.held_after_final.is_set()
        assert asked.text == "Hello from the fake model."
        assert asked.final is not None
        state = await settled(stack, asked.request_id)
        assert state.charge is not None
        assert state.charge.outcome == "settled"


async def test_a_gateway_stream_stalled_past_the_read_timeout_is_not_told_as_the_time_limit(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The gateway's stream stalled on its way back for longer than the relay's read timeout
    # (120 s), well within the bot's limit for one answer. aiohttp's read timeout is a
    # TimeoutError too, and the relay took it for that limit: it ended the page's stream with
    # the time-limit mark, and the page said the answer took longer than the bot allows.
    async with webapp_stack(tmp_path) as stack:
        veil = stack.veil
        headers, body, asked = await page(stack, http).seal(CHAT)
        ticket = Ticket(
            int(headers["Veil-Gateway"]),
            asked.request_id,
            "veil-test",
            int(headers["Veil-Max-Tokens"]),
            headers["Veil-Proof"],
        )
        stack.to_gateway.stall_replies = b"POST /v1/sealed/chat"
        async with aiohttp.ClientSession() as streams, aiohttp.ClientSession() as control:
            relay = RelayService(
                veil.chat.inference.pool,
                veil.credit,
                streams,
                ControlClient(control),
                client_key=CLIENT_KEY,
                max_answer_seconds=600.0,
                read_timeout=0.5,  # (the relay's own, as the bot's is 120 s)
            )
            try:
                answer = await relay.relay(USER_ID, ticket, body)
                async for _ in answer:  # to its end, settled
                    pass
            finally:
                stack.to_gateway.replies_released.set()
        assert answer.broken  # the page's stream breaks: told as cut on the way
        assert not answer.cut_at_time_limit
        assert answer.charge is not None
