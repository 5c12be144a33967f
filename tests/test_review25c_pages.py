"""A proxy that lists the newest records and sorts each page: a full page that looks in order.

Asked oldest first from the cursor, a proxy (or indexer) that asks toncenter for the newest
records and puts each page back in lt order gives a full page that passes the order check but
starts far past the cursor: the payments between were on no page. The cursor's own transaction
is missing from it, which ton25 only logged (``ton.cursor_vanished``) before booking the page:
the cursor went past those payments for good. Such a page now makes the watcher ask toncenter
whether it lists anything from the cursor up to the page's first record: it does, so the pass
stops, the cursor kept (``ton.page_out_of_order``, ``full=true``). A cursor really gone lists
nothing there: told once, the stream goes on. The USDT read behind the cursor, which has no
order check, is tried in the same hostile orders.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from services.ton.errors import ToncenterUnavailable
from tests.books import inconsistent_users
from tests.fakes.toncenter import hex_hash
from tests.tonstack import WALLET_RAW, TonStack, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from services.ton.watcher import TonWatcher

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


async def first_booked(stack: TonStack) -> TonWatcher:
    """A watcher of two-record pages that booked the first user's payment: its cursor."""
    watcher = stack.watcher(page_size=2)
    await pay(stack, USERS[0])
    assert await watcher.poll() == 1
    return watcher


async def others_paid(stack: TonStack) -> None:
    """Every user but the first pays, after the cursor."""
    for user in USERS[1:]:
        await pay(stack, user)


async def behind_a_sorting_proxy(stack: TonStack) -> TonWatcher:
    """The first payment booked, the others made, and the proxy put in: the watcher."""
    watcher = await first_booked(stack)
    await others_paid(stack)
    stack.chain.newest_first = stack.chain.sort_pages = True
    return watcher


async def read_in_order(stack: TonStack, watcher: TonWatcher) -> None:
    """The proxy taken out: the watcher polls until it has nothing more to book."""
    stack.chain.newest_first = stack.chain.sort_pages = False
    while await watcher.poll():
        pass


async def test_a_full_page_of_the_newest_records_sorted_moves_the_cursor_past_nothing(
    stack: TonStack,
) -> None:
    watcher = await behind_a_sorting_proxy(stack)
    with capture_logs() as logs, contextlib.suppress(ToncenterUnavailable):
        await watcher.poll()
    cursor = await stack.books.cursor("gram")
    await read_in_order(stack, watcher)
    assert [await stack.balance(user) for user in USERS] == [PACK_UNITS] * len(USERS)
    assert sorted(b.payment.user_id or 0 for b in stack.told) == USERS
    assert await inconsistent_users(stack.store) == []
    # The hostile page moved nothing and the operator was told why.
    assert cursor.lt == int(stack.chain.transactions[0]["lt"])
    disorder = [(e["log_level"], e["full"]) for e in logs if e["event"] == "ton.page_out_of_order"]
    assert disorder == [("warning", True)]
    assert [e for e in logs if e["event"] == "ton.cursor_vanished"] == []


async def test_a_proxy_that_keeps_sorting_full_pages_holds_the_stream_and_says_so_each_pass(
    stack: TonStack,
) -> None:
    # Stuck while it lasts (nothing can be booked in order), told at each failed pass (the
    # watcher's backoff spaces them out), and every payment credited once it is mended.
    watcher = await behind_a_sorting_proxy(stack)
    with capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(ToncenterUnavailable, match="records it did not give"):
                await watcher.poll()
    assert [e["full"] for e in logs if e["event"] == "ton.page_out_of_order"] == [True] * 3
    assert [await stack.balance(user) for user in USERS[1:]] == [0] * 4
    await read_in_order(stack, watcher)
    assert [await stack.balance(user) for user in USERS] == [PACK_UNITS] * len(USERS)


async def test_a_cursor_gone_before_a_full_page_is_told_once_and_holds_nothing_back(
    stack: TonStack,
) -> None:
    # Gone for good (nothing listed from its lt up to the page's first): not a page that
    # skipped records, so the stream goes on, and the operator is told once.
    watcher = await first_booked(stack)
    gone = stack.chain.transactions.pop(0)
    await others_paid(stack)
    with capture_logs() as logs:
        assert await watcher.poll() == len(USERS) - 1
        assert await watcher.poll() == 0
    vanished = [(e["log_level"], e["tx"]) for e in logs if e["event"] == "ton.cursor_vanished"]
    assert vanished == [("warning", hex_hash(gone["hash"]))]
    assert [e for e in logs if e["event"] == "ton.page_out_of_order"] == []
    assert [await stack.balance(user) for user in USERS] == [PACK_UNITS] * len(USERS)
    assert await inconsistent_users(stack.store) == []


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
