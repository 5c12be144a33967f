"""A ``Retry-After`` or ``Date`` whose numbers overflow is junk, not a crash of the pass.

``email.utils.parsedate_to_datetime`` raises ``OverflowError`` (not ``ValueError``) for a date
whose day or hour does not fit a C long. Only ``TypeError`` and ``ValueError`` were taken as
"not a date": a 429 from a hostile proxy (or a broken one) with such a header escaped the
client as ``OverflowError``, no ``ToncenterUnavailable``, so the reader's per-sender fallbacks
did not apply, the whole pass failed, and the watcher logged it as a bug with its traceback,
pass after pass. The same ``Date`` on a served page did so for every page.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from services.ton import reader as reader_module
from tests.test_flood26_toncenter import TRANSACTIONS, refusal
from tests.test_ton_watcher import GRAM, PACK_UNITS, order, sound
from tests.tonstack import BOB, WALLET_RAW, TonStack, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

HUGE_HOUR = "Wed, 02 Dec 2026 99999999999999999999:00:00 GMT"
HUGE_DAY = "99999999999999999999 Dec 2026 00:00:00 GMT"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[TonStack]:
    """The TON parts over a new fake toncenter and a new database in ``tmp_path``."""
    async with ton_stack(tmp_path / "veil.db") as parts:
        yield parts


@pytest.mark.parametrize("header", [HUGE_HOUR, HUGE_DAY])
async def test_a_retry_after_date_that_overflows_is_junk(stack: TonStack, header: str) -> None:
    assert await refusal(stack, header, time.time) is None


async def test_a_date_that_overflows_beside_a_retry_after_date_is_not_used(
    stack: TonStack,
) -> None:
    stack.chain.date = HUGE_HOUR  # read against this machine's clock instead
    wait = await refusal(stack, "Wed, 01 Jan 2020 00:00:00 GMT", time.time)
    assert wait == 0.0  # long passed


@pytest.mark.parametrize("where", ["retry_after", "date"])
async def test_the_watcher_books_through_overflowing_headers(
    stack: TonStack, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setattr(reader_module, "RATE_LIMIT_WAIT_S", 0.02)
    paid = await order(stack, BOB)
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    if where == "date":
        stack.chain.date = HUGE_DAY  # on every answer, the pages served too
    else:
        stack.chain.rate_limit_next(1, path=TRANSACTIONS, retry_after=HUGE_HOUR)
    with capture_logs() as logs:
        assert await stack.watcher().poll() == 1
    assert [e for e in logs if e["log_level"] in {"error", "critical"}] == []
    assert await stack.balance(BOB) == PACK_UNITS
    await sound(stack)
