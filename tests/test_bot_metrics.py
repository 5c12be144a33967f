"""The bot's ``/metrics`` and ``/health``: what an operator scrapes, through the real bot.

Fake Telegram ← real bot → real gateway → fake vLLM, SQLite in ``tmp_path``; the operations
listener on a free port, scraped over HTTP like Prometheus would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from typing import TYPE_CHECKING

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from bot.metrics import error_label, serving_operations
from services.errors import InsufficientCredit, ModelStalled
from tests.books import grant
from tests.botstack import TOKEN, running_stack
from tests.fakes.hostile import HostileTelegram
from tests.harness import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from models import Database
    from tests.botstack import Stack

USER = 8001
PROMPT = "metrics secret: tangerine-lighthouse-42"
ANSWER = " ".join(f"walrus{i}" for i in range(40))


@contextlib.asynccontextmanager
async def scraping(stack: Stack) -> AsyncIterator[Scraper]:
    """The stack's operations listener on a free port, and a client for it."""
    async with (
        serving_operations(stack.veil.operations, "127.0.0.1", 0) as url,
        aiohttp.ClientSession() as http,
    ):
        yield Scraper(url, http)


class Scraper:
    """Reads ``/metrics`` and ``/health`` as an operator's tools would."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http
        self.text = ""

    async def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``, keyed by name and sorted labels."""
        async with self.http.get(f"{self.url}/metrics") as response:
            assert response.status == 200
            self.text = await response.text()
        found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
        return found

    async def health(self) -> tuple[int, str]:
        """``/health``'s status and text."""
        async with self.http.get(f"{self.url}/health") as response:
            return response.status, await response.text()


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_an_answer_is_counted_timed_and_nothing_private_is_shown(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, answer=ANSWER, token_delay=0.02, free_tokens_per_day=0
    ) as stack:
        assert await grant(stack.veil.store, USER, 1_000_000, "grant", "test:welcome")
        async with scraping(stack) as scraper:
            asked = time.monotonic()
            stack.telegram.send_text(USER, PROMPT)
            await stack.telegram.wait_for("sendMessageDraft")
            during = await scraper.samples()
            await stack.final_messages(USER)
            took = time.monotonic() - asked
            await stack.stored_turns(USER, 2)
            await wait_until(lambda: stack.veil.operations.in_flight.count == 0)
            assert await stack.veil.chat.wait_idle(30)  # its outcome counted (it has returned)
            after = await scraper.samples()
            status, text = await scraper.health()
    assert status == 200
    assert text == "ok\n"
    assert value(during, "veil_bot_answers_in_progress") == 1
    # The update was handled once the answer started: the answer runs detached from it.
    assert value(during, "veil_bot_updates_in_progress") == 0
    assert value(during, "veil_bot_holds_open") == 1
    assert value(during, "veil_bot_held_units") > 0
    assert value(after, "veil_bot_answers_in_progress") == 0
    assert value(after, "veil_bot_holds_open") == 0
    assert value(after, "veil_bot_held_units") == 0
    assert value(after, "veil_bot_answers_total", outcome="complete") == 1
    assert value(after, "veil_bot_charges_total", outcome="settled") == 1
    assert value(after, "veil_bot_first_text_seconds_count") == 1
    assert value(after, "veil_bot_final_message_seconds_count") == 1
    # The first draft showed text long before the answer ended (40 tokens, 20 ms apart).
    assert 0 < value(after, "veil_bot_first_text_seconds_sum") < took / 2
    assert value(after, "veil_bot_ledger", figure="users") == 1
    assert value(after, "veil_bot_ledger", figure="active_today") == 1
    assert value(after, "veil_bot_ledger", figure="tokens_today") > 40
    assert value(after, "veil_bot_ledger", figure="stars_received") == 0
    for secret in ("tangerine", "lighthouse", "walrus"):
        assert secret not in scraper.text
    # The user's id as a number of its own (a label or a value), not digits inside a timing.
    assert re.search(rf"(?<![\d.]){USER}(?![\d.])", scraper.text) is None


async def test_telegram_429s_and_errors_are_counted_by_method(tmp_path: Path) -> None:
    async with (
        running_stack(tmp_path, answer=ANSWER, token_delay=0.02) as stack,
        scraping(stack) as scraper,
    ):
        stack.telegram.fail_next(
            "sendMessageDraft", status=429, description="Too Many Requests", retry_after=1
        )
        stack.telegram.fail_next("sendChatAction", status=400, description="Bad Request: x")
        stack.telegram.send_text(USER, PROMPT)
        await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        assert await stack.veil.chat.wait_idle(30)  # its outcome counted (it has returned)
        samples = await scraper.samples()
    assert value(samples, "veil_bot_telegram_rate_limited_total", method="sendMessageDraft") == 1
    bad_request = {"method": "sendChatAction", "error": "telegram_bad_request"}
    assert value(samples, "veil_bot_telegram_errors_total", **bad_request) == 1
    assert value(samples, "veil_bot_telegram_rate_limited_total", method="sendMessage") == 0
    # The answer still got through, and its first visible text was still timed once.
    assert value(samples, "veil_bot_answers_total", outcome="complete") == 1
    assert value(samples, "veil_bot_first_text_seconds_count") == 1


async def test_stopped_and_failed_answers_are_counted_by_outcome(tmp_path: Path) -> None:
    async with (
        running_stack(tmp_path, answer=ANSWER, token_delay=0.05) as stack,
        scraping(stack) as scraper,
    ):
        stack.telegram.send_text(USER, PROMPT)
        await stack.telegram.wait_for("sendMessageDraft")
        stack.telegram.send_text(USER, "/cancel")
        await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        stack.vllm.fail_before_stream = (500, "the model server broke")
        stack.telegram.send_text(USER, "And again?")
        await stack.final_messages(USER, 2)
        await wait_until(lambda: stack.veil.operations.in_flight.count == 0)
        assert await stack.veil.chat.wait_idle(30)  # each outcome counted (they have returned)
        samples = await scraper.samples()
    assert value(samples, "veil_bot_answers_total", outcome="stopped") == 1
    assert value(samples, "veil_bot_answers_total", outcome="backend_error") == 1
    assert value(samples, "veil_bot_answers_total", outcome="complete") == 0
    assert value(samples, "veil_bot_charges_total", outcome="settled") == 1


async def test_a_question_refused_while_an_answer_streams_is_counted(tmp_path: Path) -> None:
    # operations.md lists answer_in_progress among the outcomes; a private chat's question
    # refused as busy was told to the user but never counted: the refusal comes from starting
    # the answer, before the metered stream.
    async with (
        running_stack(tmp_path, answer=ANSWER, token_delay=0.05) as stack,
        scraping(stack) as scraper,
    ):
        stack.telegram.send_text(USER, PROMPT)
        await stack.telegram.wait_for("sendMessageDraft")
        stack.telegram.send_text(USER, "And this one too?")
        await stack.final_messages(USER, 2)  # the refusal, then the answer
        await stack.stored_turns(USER, 2)
        await wait_until(lambda: stack.veil.operations.in_flight.count == 0)
        # The turns are stored before the metered answer returns and counts its outcome.
        assert await stack.veil.chat.wait_idle(30)
        samples = await scraper.samples()
    assert value(samples, "veil_bot_answers_total", outcome="answer_in_progress") == 1
    assert value(samples, "veil_bot_answers_total", outcome="complete") == 1


def test_error_labels_are_class_names_in_snake_case() -> None:
    assert error_label(ModelStalled("x")) == "model_stalled"
    assert error_label(InsufficientCredit(needed=1, balance=0, free_tokens_left=0)) == (
        "insufficient_credit"
    )


async def test_health_is_503_when_updates_stop_or_the_database_does_not_answer(
    tmp_path: Path,
) -> None:
    async with (
        running_stack(tmp_path) as stack,
        scraping(stack) as scraper,
    ):
        assert await scraper.health() == (200, "ok\n")
        await stack.veil.dispatcher.stop_polling()
        assert await scraper.health() == (503, "the dispatcher is not taking updates\n")
        stack.veil.operations.taking_updates = True  # as if polling went on
        # The database's one writer thread busy for longer than the health check waits.
        busy = asyncio.ensure_future(stack.veil.store.write(lambda _db: _sleep(3.0)))
        assert await scraper.health() == (503, "the database does not answer\n")
        await busy
        assert await scraper.health() == (200, "ok\n")


def _sleep(seconds: float) -> None:
    """Hold the store's writer thread."""
    time.sleep(seconds)


async def test_a_proxy_page_in_place_of_telegram_s_reply_is_counted(tmp_path: Path) -> None:
    # A reply that is not the Bot API's (a proxy's page: ClientDecodeError, no TelegramAPIError)
    # went uncounted: the operator's dashboard showed no Telegram errors while drafts failed.
    telegram = HostileTelegram(token=TOKEN)
    telegram.misbehave("sendChatAction", "page")
    async with (
        running_stack(tmp_path, answer=ANSWER, telegram_server=telegram) as stack,
        scraping(stack) as scraper,
    ):
        stack.telegram.send_text(USER, PROMPT)
        await stack.final_messages(USER)
        await stack.stored_turns(USER, 2)
        samples = await scraper.samples()
    assert telegram.misbehaved == [("sendChatAction", "page")]
    unreadable = {"method": "sendChatAction", "error": "unreadable_reply"}
    assert value(samples, "veil_bot_telegram_errors_total", **unreadable) == 1


async def test_health_is_503_while_another_process_holds_the_write_lock_and_200_once_it_lets_go(
    tmp_path: Path,
) -> None:
    # /health only read, and reads go on in WAL mode while another process holds the write
    # lock (a stuck `reconcile --fix`, a tool left in a transaction): it said ok while every
    # answer failed to be written. Now the write that failed makes it 503, and taking the
    # lock again (with no question asked meanwhile) makes it 200.
    async with (
        running_stack(tmp_path, db_busy_timeout=0.2) as stack,
        scraping(stack) as scraper,
    ):
        other = sqlite3.connect(stack.veil.store.path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # the write lock, held
            assert await scraper.health() == (200, "ok\n")  # no write has failed yet
            with capture_logs() as logs:
                stack.telegram.send_text(USER, "hello")
                await stack.final_messages(USER, 1)
            assert ("database", "SQLITE_BUSY") in {
                (e.get("database"), e.get("code")) for e in logs if e["event"] == "storage.failed"
            }
            locked = (
                503,
                "the database does not take writes: another process holds its lock (SQLITE_BUSY)\n",
            )
            assert await scraper.health() == locked
            assert await scraper.health() == locked  # still held: still 503
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await scraper.health() == (200, "ok\n")
        stack.telegram.send_text(USER, "and now?")
        assert len(await stack.stored_turns(USER, 2)) == 2


async def test_health_is_503_while_writes_fail_for_a_full_disk_and_200_a_while_after(
    tmp_path: Path,
) -> None:
    # A full disk left reads working, and /health said ok while answers failed to be stored.
    async with (
        running_stack(tmp_path, answer="a fine answer " * 40) as stack,
        scraping(stack) as scraper,
    ):
        store = stack.veil.store
        stack.telegram.send_text(USER, "hello")
        await stack.stored_turns(USER, 2)
        assert await scraper.health() == (200, "ok\n")
        await store.write(_page_cap(None))  # the disk is full: no page more than it has now
        stack.telegram.send_text(USER, "a long question " * 300)
        await stack.final_messages(USER, 3)
        await stack.veil.chat.wait_idle(10)  # its charge settled after it (a write that fits)
        full = (
            503,
            "the database does not take writes: a write failed within 60 s (SQLITE_FULL)\n",
        )
        assert await scraper.health() == full  # writes that fit, since, do not hide it
        await store.write(_page_cap(2**31 - 1))  # space again
        stack.veil.operations.write_failure_window = 0.5  # not a minute: this test's patience
        await asyncio.sleep(0.6)
        assert await scraper.health() == (200, "ok\n")
        stack.telegram.send_text(USER, "and now?")
        await stack.stored_turns(USER, 4)
        assert await scraper.health() == (200, "ok\n")


def _page_cap(pages: int | None) -> Callable[[Database], None]:
    """Cap the database file at ``pages`` pages (None: the pages it has now), as a full disk."""

    def cap(db: Database) -> None:
        limit = pages if pages is not None else int(db.execute("PRAGMA page_count").fetchone()[0])
        db.execute(f"PRAGMA max_page_count = {limit:d}").fetchall()

    return cap
