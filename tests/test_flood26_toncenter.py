"""toncenter's ``Retry-After`` on a 429 is kept to: seconds or an HTTP-date, capped, junk not used.

A rate-limited page was asked again after ``RATE_LIMIT_WAIT_S`` (1.1 s) whatever toncenter said:
told to wait longer, the watcher asked again too soon and was refused again (three tries a
pass, then the pass given up); told to wait a second, it still waited its own. Now the wait
toncenter names (``ToncenterRateLimited.retry_after``) is the wait, at most
``MAX_RETRY_AFTER_S``; without one, or with one that is neither seconds nor a date, it is as
before.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import TYPE_CHECKING

import aiohttp
import pytest
from structlog.testing import capture_logs

from services.ton import reader as reader_module
from services.ton import toncenter as toncenter_module
from services.ton.errors import ToncenterRateLimited
from services.ton.toncenter import MAX_RETRY_AFTER_S, ToncenterClient
from tests.fakes.toncenter import hex_hash
from tests.test_ton_watcher import GRAM, PACK_UNITS, order, sound
from tests.tonstack import BOB, WALLET_RAW, TonStack, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

TRANSACTIONS = "/api/v3/transactions"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[TonStack]:
    """The TON parts over a new fake toncenter and a new database in ``tmp_path``."""
    async with ton_stack(tmp_path / "veil.db") as parts:
        yield parts


def in_seconds(seconds: float) -> str:
    """An HTTP-date ``seconds`` from now (whole seconds, as HTTP dates are)."""
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


async def refusal(
    stack: TonStack, retry_after: str | None, clock: Callable[[], float]
) -> float | None:
    """The ``retry_after`` the client reads from a 429 with this ``Retry-After``."""
    stack.chain.rate_limit_next(1, path=TRANSACTIONS, retry_after=retry_after)
    async with aiohttp.ClientSession() as session:
        client = ToncenterClient(stack.chain.url, session, clock=clock)
        with pytest.raises(ToncenterRateLimited) as refused:
            await client.transactions(WALLET_RAW, await stack.books.cursor("gram"), limit=10)
    return refused.value.retry_after


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("86400", MAX_RETRY_AFTER_S),  # capped
        (None, None),
        ("soon", None),  # junk: not used
        ("-5", None),
        ("1.5", None),  # delay-seconds are whole (RFC 9110 §10.2.3)
        ("٣", None),  # an Arabic-Indic digit: str.isdigit, no delay-seconds
        ("", None),
    ],
)
async def test_a_429s_retry_after_in_seconds_is_read_capped_and_junk_is_not(
    stack: TonStack, header: str | None, expected: float | None
) -> None:
    assert await refusal(stack, header, time.time) == expected


async def test_a_429s_retry_after_as_a_date_is_read_against_toncenters_own_date(
    stack: TonStack,
) -> None:
    # This machine's clock an hour behind toncenter's: the date is 30 s after the answer's
    # ``Date``, not 3630 s after our clock (which the cap would cut to a minute).
    wait = await refusal(stack, in_seconds(30), lambda: time.time() - 3600)
    assert wait is not None
    assert 28 <= wait <= 31  # whole-second dates, read a moment apart
    assert await refusal(stack, in_seconds(-30), time.time) == 0.0  # passed: ask now
    assert await refusal(stack, in_seconds(7200), time.time) == MAX_RETRY_AFTER_S


async def test_the_watcher_waits_as_long_as_toncenter_says_not_its_own_wait(
    stack: TonStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its own wait an hour: before, the page was asked again only after it (the pass hung).
    monkeypatch.setattr(reader_module, "RATE_LIMIT_WAIT_S", 3600.0)
    paid = await order(stack, BOB)
    record = stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    stack.chain.rate_limit_next(2, path=TRANSACTIONS, retry_after="0")
    with capture_logs() as logs:
        async with asyncio.timeout(30):
            assert await stack.watcher().poll() == 1  # the third try served it
    waits = [e["wait_s"] for e in logs if e["event"] == "ton.rate_limited"]
    assert waits == [0.0, 0.0]
    assert [p.hash for p in await stack.books.recorded()] == [hex_hash(record["hash"])]
    assert await stack.balance(BOB) == PACK_UNITS
    await sound(stack)


@pytest.mark.parametrize("header", ["86400", "soon"])
async def test_a_long_or_junk_retry_after_waits_the_cap_or_the_readers_own_wait(
    stack: TonStack, monkeypatch: pytest.MonkeyPatch, header: str
) -> None:
    monkeypatch.setattr(reader_module, "RATE_LIMIT_WAIT_S", 0.02)
    monkeypatch.setattr(toncenter_module, "MAX_RETRY_AFTER_S", 0.05)
    paid = await order(stack, BOB)
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    stack.chain.rate_limit_next(1, path=TRANSACTIONS, retry_after=header)
    with capture_logs() as logs:
        assert await stack.watcher().poll() == 1
    waits = [e["wait_s"] for e in logs if e["event"] == "ton.rate_limited"]
    assert waits == [0.05 if header == "86400" else 0.02]
    assert await stack.balance(BOB) == PACK_UNITS
    await sound(stack)
