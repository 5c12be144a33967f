"""toncenter as a hostile or flaky peer: pages repeated, out of order, records gone, bad replies.

Each case ends the same way: every payment credited once, none lost, no stranger's booked, and
the operator told in one clear line what toncenter did.
"""

from __future__ import annotations

import contextlib
import copy
from http import HTTPStatus
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from services.ton import reader as reader_module
from services.ton import toncenter as toncenter_module
from services.ton.errors import ToncenterRateLimited, ToncenterUnavailable
from tests.books import inconsistent_users
from tests.fakes.toncenter import hex_hash
from tests.tonstack import ALICE, BOB, WALLET_RAW, TonStack, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from models.ton import TonOrder

GRAM = 1_000_000_000
PACK_UNITS = 250_000_000
TRANSACTIONS = "/api/v3/transactions"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[TonStack]:
    async with ton_stack(tmp_path / "veil.db") as parts:
        yield parts


async def gram_order(stack: TonStack, user: int) -> TonOrder:
    return (await stack.shop.create_order(user, "gram", str(GRAM))).order


async def credited_once(stack: TonStack, users: list[int]) -> None:
    """Each of ``users`` was credited one pack, told once, and the books agree."""
    assert [await stack.balance(user) for user in users] == [PACK_UNITS] * len(users)
    assert sorted(b.payment.user_id or 0 for b in stack.told) == sorted(users)
    assert await inconsistent_users(stack.store) == []


async def test_a_full_page_served_newest_first_moves_the_cursor_past_nothing(
    stack: TonStack,
) -> None:
    # Asked oldest first, an indexer that lists newest first fills a page with the newest
    # records: the cursor went to the oldest of them, and the payments before it, never on
    # any page, were passed over for good.
    users = [1001 + n for n in range(5)]
    orders = [await gram_order(stack, user) for user in users]
    for paid in orders:
        stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    stack.chain.newest_first = True
    watcher = stack.watcher(page_size=2)
    with capture_logs() as logs, contextlib.suppress(ToncenterUnavailable):
        await watcher.poll()
    stack.chain.newest_first = False  # toncenter mended
    await watcher.poll()
    await credited_once(stack, users)
    disorder = [(e["log_level"], e["full"]) for e in logs if e["event"] == "ton.page_out_of_order"]
    assert disorder == [("warning", True)]


async def test_a_page_not_full_served_newest_first_is_booked_whole(stack: TonStack) -> None:
    # Every record from the cursor on is on a page that is not full: nothing can be missing.
    orders = [await gram_order(stack, user) for user in (ALICE, BOB)]
    for paid in orders:
        stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    stack.chain.newest_first = True
    watcher = stack.watcher(page_size=5)
    assert await watcher.poll() == 2
    assert await watcher.poll() == 0
    later = await gram_order(stack, 1003)
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=later.id)
    assert await watcher.poll() == 1
    await credited_once(stack, [ALICE, BOB, 1003])


async def test_the_same_transaction_on_two_pages_is_credited_once(stack: TonStack) -> None:
    orders = [await gram_order(stack, user) for user in (ALICE, BOB)]
    first = stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=orders[0].id)
    stack.chain.transactions.append(copy.deepcopy(first))  # listed twice, on two pages
    stack.chain.transactions.append(copy.deepcopy(first))
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=orders[1].id)
    watcher = stack.watcher(page_size=2)
    assert await watcher.poll() == 2
    assert await watcher.poll() == 0
    await credited_once(stack, [ALICE, BOB])


async def test_a_transaction_gone_on_the_next_read_is_told_and_loses_nothing(
    stack: TonStack,
) -> None:
    # A lite-server behind the one that answered before no longer lists the cursor's own
    # transaction: what came after is still booked, the credit made stays, once, and the
    # operator is told (once, not each pass).
    paid = await gram_order(stack, ALICE)
    gone = stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    watcher = stack.watcher()
    assert await watcher.poll() == 1
    stack.chain.transactions.remove(gone)
    with capture_logs() as logs:
        assert await watcher.poll() == 0
        assert await watcher.poll() == 0
    vanished = [e for e in logs if e["event"] == "ton.cursor_vanished"]
    assert [(e["log_level"], e["asset"]) for e in vanished] == [("warning", "gram")]
    later = await gram_order(stack, BOB)
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=later.id)
    assert await watcher.poll() == 1
    stack.chain.transactions.insert(0, gone)  # back again: nothing booked twice
    assert await watcher.poll() == 0
    await credited_once(stack, [ALICE, BOB])


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            (HTTPStatus.OK, b'{"ok": false, "error": "lite server timeout"}', {}),
            ToncenterUnavailable,
        ),
        ((HTTPStatus.TOO_MANY_REQUESTS, b'{"ok":false,"code":429}', {}), ToncenterRateLimited),
        (
            (HTTPStatus.TOO_MANY_REQUESTS, b'{"ok":false,"code":429}', {"Retry-After": "3600"}),
            ToncenterRateLimited,
        ),
        ((HTTPStatus.OK, b'{"transactions": [{"hash": "q0rJ', {}), ToncenterUnavailable),
    ],
    ids=["ok-false", "429", "429-retry-after", "cut-json"],
)
async def test_a_bad_reply_credits_nothing_loses_nothing_and_the_next_pass_credits_once(
    stack: TonStack,
    monkeypatch: pytest.MonkeyPatch,
    reply: tuple[int, bytes, dict[str, str]],
    error: type[Exception],
) -> None:
    monkeypatch.setattr(reader_module, "RATE_LIMIT_WAIT_S", 0.01)
    monkeypatch.setattr(toncenter_module, "MAX_RETRY_AFTER_S", 0.01)  # the hour's wait, cut
    status, body, headers = reply
    paid = await gram_order(stack, ALICE)
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    # As many as the reader's tries within a pass (a 429 is asked again): the pass fails.
    tries = reader_module.RATE_LIMIT_TRIES if error is ToncenterRateLimited else 1
    stack.chain.answer_next(tries, status=status, body=body, headers=headers, path=TRANSACTIONS)
    watcher = stack.watcher()
    with pytest.raises(error):
        await watcher.poll()
    assert await stack.balance(ALICE) == 0
    assert (await stack.books.cursor("gram")).lt is None
    assert await watcher.poll() == 1
    assert await watcher.poll() == 0
    await credited_once(stack, [ALICE])


@pytest.mark.parametrize(
    "amount", ["+1000000000", " 1000000000", "1e9", "1_000_000_000", "\u0661\u0660"]
)
async def test_an_amount_that_is_no_plain_number_is_never_credited_nor_stepped_over(
    stack: TonStack, amount: str
) -> None:
    # Python's int() takes "+1", " 1", "1_0" and Arabic-Indic digits: none is toncenter's
    # shape. The pass stops there, with the record's hash in the line, and the payment
    # after it waits: never credited on a guess, never passed over.
    odd = stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment="whatever")
    odd["in_msg"]["value"] = amount
    paid = await gram_order(stack, ALICE)
    stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=paid.id)
    with pytest.raises(ToncenterUnavailable, match=hex_hash(odd["hash"])):
        await stack.watcher().poll()
    assert await stack.books.recorded() == []
    odd["in_msg"]["value"] = str(GRAM)  # toncenter mended
    assert await stack.watcher().poll() == 2
    await credited_once(stack, [ALICE])
