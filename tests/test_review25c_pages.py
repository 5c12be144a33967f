"""A proxy that lists the newest records and sorts each page: a full page that looks in order.

Asked oldest first from the cursor, a proxy (or indexer) that asks toncenter for the newest
records and puts each page back in lt order gives a full page that passes the order check but
starts far past the cursor: the payments between were on no page. The cursor's own transaction
is missing from it, which was only logged (``ton.cursor_vanished``) and the page booked: the
cursor went past those payments for good. A full page read from the cursor that does not hold
the cursor's own transaction now stops the pass, the cursor kept; a page that is not full
holds every record from the cursor on and is booked as before.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from services.ton.errors import ToncenterUnavailable
from tests.books import inconsistent_users
from tests.tonstack import WALLET_RAW, TonStack, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

GRAM = 1_000_000_000
PACK_UNITS = 250_000_000
USERS = [2001 + n for n in range(5)]
USDT = 1_000_000
USDT_UNITS = 70_000_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[TonStack]:
    async with ton_stack(tmp_path / "veil.db") as parts:
        yield parts


async def pay(stack: TonStack, user: int) -> None:
    order = (await stack.shop.create_order(user, "gram", str(GRAM))).order
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=order.id)


async def test_a_full_page_of_the_newest_records_sorted_moves_the_cursor_past_nothing(
    stack: TonStack,
) -> None:
    watcher = stack.watcher(page_size=2)
    await pay(stack, USERS[0])
    assert await watcher.poll() == 1
    for user in USERS[1:]:
        await pay(stack, user)
    stack.chain.newest_first = stack.chain.sort_pages = True
    with capture_logs() as logs, contextlib.suppress(ToncenterUnavailable):
        await watcher.poll()
    cursor = await stack.books.cursor("gram")
    stack.chain.newest_first = stack.chain.sort_pages = False  # the proxy taken out
    while await watcher.poll():
        pass
    assert [await stack.balance(user) for user in USERS] == [PACK_UNITS] * len(USERS)
    assert sorted(b.payment.user_id or 0 for b in stack.told) == USERS
    assert await inconsistent_users(stack.store) == []
    # The hostile page moved nothing and the operator was told why.
    assert cursor.lt == int(stack.chain.transactions[0]["lt"])
    vanished = [(e["log_level"], e["full"]) for e in logs if e["event"] == "ton.cursor_vanished"]
    assert vanished == [("warning", True)]


async def test_a_proxy_that_keeps_sorting_full_pages_holds_the_stream_and_says_so_each_pass(
    stack: TonStack,
) -> None:
    # Stuck while it lasts (nothing can be booked in order), told at each failed pass (the
    # watcher's backoff spaces them out), and every payment credited once it is mended.
    watcher = stack.watcher(page_size=2)
    await pay(stack, USERS[0])
    assert await watcher.poll() == 1
    for user in USERS[1:]:
        await pay(stack, user)
    stack.chain.newest_first = stack.chain.sort_pages = True
    with capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(ToncenterUnavailable, match="cursor's transaction"):
                await watcher.poll()
    assert [e["full"] for e in logs if e["event"] == "ton.cursor_vanished"] == [True] * 3
    assert [await stack.balance(user) for user in USERS[1:]] == [0] * 4
    stack.chain.newest_first = stack.chain.sort_pages = False
    while await watcher.poll():
        pass
    assert [await stack.balance(user) for user in USERS] == [PACK_UNITS] * len(USERS)


@pytest.mark.parametrize("sort_pages", [False, True], ids=["newest-first", "newest-sorted"])
async def test_usdt_read_again_behind_the_cursor_in_hostile_order_books_each_once(
    stack: TonStack, *, sort_pages: bool
) -> None:
    # The read behind the cursor has no order check: it pages by ``offset`` and books what it
    # has not seen, wherever on the page. Listed newest first (or its pages sorted after),
    # the window's pages still hold every record once: all credited, none twice.
    orders = [(await stack.shop.create_order(u, "usdt", str(USDT))).order for u in USERS]
    stack.chain.add_jetton_transfer(WALLET_RAW, amount=USDT)  # a stranger's: the cursor
    watcher = stack.watcher(page_size=2)
    assert await watcher.poll() == 1
    for paid in orders:  # five indexed late, below the cursor: three pages of the window
        stack.chain.add_jetton_transfer(WALLET_RAW, amount=USDT, comment=paid.id, late=True)
    stack.chain.newest_first, stack.chain.sort_pages = True, sort_pages
    assert await watcher.poll() == len(USERS)
    assert await watcher.poll() == 0
    assert [await stack.balance(user) for user in USERS] == [USDT_UNITS] * len(USERS)
    assert sorted(b.payment.user_id or 0 for b in stack.told) == USERS
    assert await inconsistent_users(stack.store) == []
