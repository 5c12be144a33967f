"""Webhook mode: the secret is required and checked; payments are journaled before the 200."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import zlib
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from multidict import CIMultiDict
from pydantic import ValidationError

from bot.__main__ import main
from bot.settings import BotSettings
from bot.webhook import RecentUpdates
from sealed.encoding import b64e
from tests.books import inconsistent_users
from tests.botstack import TOKEN, WEBHOOK_SECRET, Stack, running_stack

if TYPE_CHECKING:
    from pathlib import Path

USER = 9301
STAR = 1_000_000
HEADER = "X-Telegram-Bot-Api-Secret-Token"
BASE: dict[str, Any] = {
    "bot_token": TOKEN,
    "operator_keys": b64e(bytes(32)),
    "webhook_url": "https://bot.example.com/hook",
}


@pytest.mark.parametrize(
    "secret",
    [
        "",  # aiogram would skip the check entirely
        "short-but-valid-chars",  # under 32
        "x" * 257,  # over Telegram's 256
        "has spaces in it but is long enough to pass",
        "ünïcödé-secret-that-is-long-enough-1234567",
        "semi;colons;are;not;allowed;in;the;secret;x",
    ],
)
def test_a_webhook_without_a_strong_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BotSettings(**BASE, webhook_secret=secret)
    message = str(refused.value)
    assert "32 to 256 characters of A-Z, a-z, 0-9, _ and -" in message
    assert "secrets.token_urlsafe(32)" in message  # how to make one


def test_a_webhook_url_without_any_secret_is_refused_and_polling_needs_none() -> None:
    with pytest.raises(ValidationError, match="a webhook needs a secret"):
        BotSettings(**BASE)
    polling = {k: v for k, v in BASE.items() if k != "webhook_url"}
    assert BotSettings(**polling).webhook_secret is None
    assert BotSettings(**polling, webhook_secret="").webhook_secret is None
    good = BotSettings(**BASE, webhook_secret="A" * 31 + "_-9")
    assert good.webhook_secret is not None


def test_the_bot_refuses_to_start_with_a_short_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("VEIL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("VEIL_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("VEIL_OPERATOR_KEYS", b64e(bytes(32)))
    monkeypatch.setenv("VEIL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VEIL_WEBHOOK_URL", "https://bot.example.com/hook")
    monkeypatch.setenv("VEIL_WEBHOOK_SECRET", "tooshort")

    assert main([]) == 2

    line = capsys.readouterr().err.strip()
    assert line.startswith("veil: setting VEIL_WEBHOOK_SECRET is invalid:")
    assert "secrets.token_urlsafe(32)" in line
    assert "tooshort" not in line
    assert not (tmp_path / "veil.db").exists()  # refused before anything was opened


def forged_payment(charge_id: str) -> dict[str, Any]:
    user = {"id": USER, "is_bot": False, "first_name": "Eve"}
    return {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1_750_000_000,
            "chat": {"id": USER, "type": "private", "first_name": "Eve"},
            "from": user,
            "successful_payment": {
                "currency": "XTR",
                "total_amount": 1000,
                "invoice_payload": "forged",
                "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": "",
            },
        },
    }


async def post(stack: Stack, body: object, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(stack.webhook_url, json=body, headers=headers) as reply,
    ):
        return reply.status


async def nothing_booked(stack: Stack) -> None:
    assert (await stack.veil.credit.balance(USER)).units == 0
    assert await stack.veil.desk.journal.pending() == []
    assert await stack.veil.shop.payment("stxFORGED") is None


async def test_forged_and_malformed_posts_get_401_and_change_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path, webhook=True, free_tokens_per_day=0) as stack:
        body = forged_payment("stxFORGED")
        assert await post(stack, body, {}) == 401
        assert await post(stack, body, {HEADER: ""}) == 401
        assert await post(stack, body, {HEADER: "wrong-secret-" + "x" * 30}) == 401
        assert await post(stack, body, {HEADER: WEBHOOK_SECRET + "x"}) == 401
        assert await post(stack, body, {HEADER: "nöt-äscii-" + WEBHOOK_SECRET}) == 401
        assert await post(stack, body, {HEADER: "a b"}) == 401
        # The right secret with a body that is not an update: 400, not 500.
        assert await post(stack, {"hello": "world"}, {HEADER: WEBHOOK_SECRET}) == 400
        assert await post(stack, ["not", "an", "object"], {HEADER: WEBHOOK_SECRET}) == 400
        await asyncio.sleep(0.3)
        await nothing_booked(stack)
        assert stack.telegram.sent_messages(USER) == []
        assert await inconsistent_users(stack.veil.store) == []


async def test_a_real_payment_through_the_webhook_is_credited_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path, webhook=True, free_tokens_per_day=0) as stack:
        charge = stack.telegram.pay(USER, payload="order-web", total_amount=50)
        thanks = await stack.telegram.wait_for(
            "sendMessage", lambda c: str(c.params["text"]).startswith("Thank you")
        )
        assert thanks.params["text"] == "Thank you! 50 ★ added. Balance: 50 ★."
        stack.telegram.pay(USER, payload="order-web", total_amount=50, charge_id=charge)
        await asyncio.sleep(0.5)
        assert (await stack.veil.credit.balance(USER)).units == 50 * STAR
        entry = await stack.veil.desk.journal.get(f"payment:{charge}")
        assert entry is not None
        assert entry.notified_at is not None
        assert len(stack.telegram.sent_messages(USER)) == 1
        assert await inconsistent_users(stack.veil.store) == []


async def test_the_webhook_answers_503_while_the_journal_cannot_be_written(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, webhook=True, free_tokens_per_day=0) as stack:
        await stack.veil.desk.journal._journal.close()
        stack.telegram.pay(USER, payload="order-web", total_amount=50)
        await asyncio.sleep(1.0)
        hook = await stack.veil.bot.get_webhook_info()
        assert hook.last_error_message == "Wrong response from the webhook: 503"
        assert (await stack.veil.credit.balance(USER)).units == 0
        assert stack.telegram.sent_messages(USER) == []
        assert await inconsistent_users(stack.veil.store) == []


async def test_an_update_telegram_delivers_again_is_answered_and_charged_once(
    tmp_path: Path,
) -> None:
    # Telegram never saw the bot's 200 for the first question (the connection broke on the
    # way back), so it delivers the same update, update_id and all, again. The user asked once:
    # one answer, one charge.
    async with running_stack(tmp_path, webhook=True, answer="Four.") as stack:
        stack.telegram.updates.lose_answers = 1
        stack.telegram.send_text(USER, "What is two and two?")
        await stack.final_messages(USER, 1)
        hook = await stack.veil.bot.get_webhook_info()
        assert hook.last_error_message == "Read timeout expired"  # it was delivered twice
        # The next question is the user's second; when its answer is stored, the first (and
        # any second handling of it, which would have started before) is done too.
        stack.telegram.send_text(USER, "And three and three?")
        await stack.stored_turns(USER, 4)
        assert await stack.veil.chat.wait_idle(10)  # stored with its charge, sent meanwhile
        texts = [m["text"] for m in stack.telegram.sent_messages(USER)]
        assert texts == ["Four.", "Four."]  # one answer to each question
        assert [r["messages"][-1]["content"] for r in stack.vllm.requests] == [
            "What is two and two?",
            "And three and three?",
        ]
        balance = await stack.veil.credit.balance(USER)
        assert await inconsistent_users(stack.veil.store) == []
    assert balance.free_tokens_left > 0


def test_the_webhook_forgets_the_oldest_update_ids_past_its_bound() -> None:
    recent = RecentUpdates(size=2)
    assert [recent.take(i) for i in (1, 2, 1, 3)] == [True, True, False, True]
    assert recent.take(1)  # forgotten: 2 and 3 are the latest
    assert not recent.take(3)


def test_the_webhook_forgets_every_update_id_after_a_quiet_day() -> None:
    # After a week without updates Telegram starts its update_ids afresh, at random: the ids of
    # the old sequence must not be taken for redeliveries of the new one.
    now = [0.0]
    recent = RecentUpdates(quiet=86_400, clock=lambda: now[0])
    assert recent.take(500)
    now[0] = 86_000
    assert not recent.take(500)  # a redelivery, within the day
    now[0] = 86_000 + 7 * 86_400
    assert recent.take(500)  # a new sequence that happens to meet the old id


async def test_a_body_nested_past_the_parsers_depth_is_400_not_a_server_error(
    tmp_path: Path,
) -> None:
    deep = "[" * 100_000 + "]" * 100_000  # well within the body limit
    bodies = [deep, '{"update_id": 7, "message": ' + deep + "}"]
    async with running_stack(tmp_path, webhook=True, free_tokens_per_day=0) as stack:
        for body in bodies:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    stack.webhook_url,
                    data=body.encode(),
                    headers={HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"},
                ) as reply,
            ):
                assert reply.status == 400
        await nothing_booked(stack)


async def test_the_webhooks_replies_do_not_name_its_software(tmp_path: Path) -> None:
    async with running_stack(tmp_path, webhook=True) as stack, aiohttp.ClientSession() as http:
        async with http.post(stack.webhook_url, json={}) as refused:
            server = refused.headers.get("Server")
        async with http.get(stack.webhook_url.rsplit("/", 1)[0] + "/elsewhere") as missing:
            missing_server = missing.headers.get("Server")
    assert (refused.status, server) == (401, "Veil")
    assert (missing.status, missing_server) == (404, "Veil")


def question(update_id: int, text: str) -> dict[str, Any]:
    """A text message from ``USER`` in the private chat, as Telegram posts it."""
    user = {"id": USER, "is_bot": False, "first_name": "Eve"}
    chat = {"id": USER, "type": "private", "first_name": "Eve"}
    message = {"message_id": update_id, "date": 1_750_000_000, "chat": chat, "from": user}
    return {"update_id": update_id, "message": {**message, "text": text}}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_update_is_refused_unread(tmp_path: Path, encoding: str) -> None:
    # Telegram never compresses an update. aiohttp inflated such a body before the webhook
    # read it, so a stranger (the secret leaked, or a proxy's) had a kilobyte expanded into
    # the largest body; it was then handled as any update. Now it is refused, 400, unread.
    body = json.dumps(question(41, "Is it compressed?")).encode()
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    headers = {HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"}
    async with (
        running_stack(tmp_path, webhook=True, answer="Plain.") as stack,
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        coded = {**headers, "Content-Encoding": encoding}
        async with http.post(stack.webhook_url, data=packed, headers=coded) as reply:
            refused = (reply.status, await reply.text())
        # The same update sent as is is taken: the refused one was not remembered as seen.
        async with http.post(stack.webhook_url, data=body, headers=headers) as reply:
            taken = reply.status
        await stack.final_messages(USER, 1)
        texts = [m["text"] for m in stack.telegram.sent_messages(USER)]
    assert refused == (400, "Bad Request")
    assert taken == 200
    assert texts == ["Plain."]


@pytest.mark.parametrize(
    "codings", [["identity", "gzip"], ["", "br"], ["identity", "identity, deflate"]]
)
async def test_an_update_naming_a_coding_in_a_second_header_is_refused(
    tmp_path: Path, codings: list[str]
) -> None:
    # Only the first Content-Encoding header was read: "identity" then "gzip" (the one coding
    # "identity, gzip" by RFC 9110 §5.3, which was refused) passed, and the body, declared
    # compressed, was handled as if sent as is.
    body = json.dumps(question(42, "Which coding?")).encode()
    headers = CIMultiDict({HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"})
    for coding in codings:
        headers.add("Content-Encoding", coding)
    async with (
        running_stack(tmp_path, webhook=True, answer="Plain.") as stack,
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        async with http.post(stack.webhook_url, data=body, headers=headers) as reply:
            refused = (reply.status, await reply.text())
        await asyncio.sleep(0.5)  # an update taken would be answered by now
        sent = stack.telegram.sent_messages(USER)
    assert refused == (400, "Bad Request")
    assert sent == []
