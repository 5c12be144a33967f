"""A toncenter (or a proxy before it) whose ``Date`` is days in the past: the first read.

A stream's first read starts earlier by the bot's lead on toncenter's clock, learnt from the
``Date`` of its answers. A ``Date`` three days old (a caching proxy's, a broken clock's) was
taken for a bot three days fast: the first read went back three days, and a stranger's
payment of two days before the deployment was booked (an ``unmatched`` payment for the
admins; ``reconcile`` listed it too). A lead past ``MAX_AHEAD_S`` is not a clock any more: it
is not used (``ton.clock_date_ignored``), and the first read starts at ``since``.
"""

from __future__ import annotations

import contextlib
import time
from email.utils import formatdate
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from structlog.testing import capture_logs

from bot.ton import TonParts, reconcile_ton
from services.ton.reader import ChainReader
from services.ton.toncenter import ToncenterClient
from services.ton.watcher import TonWatcher
from tests.books import inconsistent_users
from tests.fakes.toncenter import hex_hash
from tests.test_ton_watcher import GRAM, PACK_UNITS, order
from tests.tonstack import BOB, WALLET, WALLET_RAW, ton_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

DAY = 86_400


@contextlib.asynccontextmanager
async def dated_proxy(upstream: str, behind_s: int) -> AsyncIterator[str]:
    """A proxy before ``upstream`` whose answers are dated ``behind_s`` in the past; its URL."""
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            async with session.get(upstream + request.path_qs) as answer:
                body = await answer.read()
                return web.Response(
                    status=answer.status,
                    body=body,
                    content_type=answer.content_type,
                    headers={"Date": formatdate(time.time() - behind_s, usegmt=True)},
                )

        app = web.Application()
        app.router.add_get("/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


async def test_a_date_days_old_does_not_start_the_first_read_days_back(tmp_path: Path) -> None:
    async with ton_stack(tmp_path / "veil.db") as stack:
        stranger = stack.chain.add_transaction(
            WALLET_RAW, value=GRAM, comment="hi", now=int(time.time()) - 2 * DAY
        )
        gram = await order(stack, BOB)
        paid = stack.chain.add_transaction(WALLET_RAW, value=GRAM, comment=gram.id)
        async with (
            dated_proxy(stack.chain.url, 3 * DAY) as url,
            aiohttp.ClientSession() as session,
        ):
            reader = ChainReader(ToncenterClient(url, session), WALLET)
            with capture_logs() as logs:
                assert await TonWatcher(stack.books, reader, stack.notify).poll() == 1
                parts = TonParts(stack.shop, stack.books, reader)
                counted, differences, _ = await reconcile_ton(parts)
        recorded = [payment.hash for payment in await stack.books.recorded()]
        balance = await stack.balance(BOB)
        assert await inconsistent_users(stack.store) == []
    assert recorded == [hex_hash(paid["hash"])]
    assert hex_hash(stranger["hash"]) not in recorded
    assert balance == PACK_UNITS
    assert (counted, differences) == (1, [])
    asked = [int(r.params["start_utime"]) for r in stack.chain.calls("/api/v3/transactions")]
    assert min(asked) >= time.time() - 3600  # from ``since``: ten minutes before the order
    assert not [e for e in logs if e["event"] == "ton.clock_ahead"]
    ignored = [e for e in logs if e["event"] == "ton.clock_date_ignored"]
    assert len(ignored) == 1
    assert ignored[0]["ahead_s"] >= 3 * DAY - 60
