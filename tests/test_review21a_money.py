"""review21a: a webhook replica of older code beside newer code that migrated the journal."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

import structlog

from models.journal import JOURNAL_MIGRATIONS
from tests.botstack import running_stack
from tests.harness import wait_until

if TYPE_CHECKING:
    from pathlib import Path

USER = 9302
STAR = 1_000_000


async def test_a_replica_whose_journal_newer_code_migrated_refuses_payments_and_serves_the_rest(
    tmp_path: Path,
) -> None:
    # A rolling upgrade of webhook replicas: the newer one migrated the shared journal. This
    # older replica journals no payment (503: Telegram sends it again, for the newer one) and
    # does not stop, as a long-polling bot does: the updates that carry no payment are served.
    async with running_stack(tmp_path, webhook=True, answer="Four.") as stack:
        path = stack.veil.desk.journal._journal._path
        with contextlib.closing(sqlite3.connect(path)) as newer:
            newer.execute(f"PRAGMA user_version = {len(JOURNAL_MIGRATIONS) + 1:d}")
            newer.commit()
        with structlog.testing.capture_logs() as logs:
            stack.telegram.pay(USER, payload="order-web", total_amount=50)
            await wait_until(
                lambda: [e["event"] for e in logs].count("webhook.journal_unavailable") > 1
            )
            stack.telegram.send_text(USER, "What is two and two?")
            await stack.final_messages(USER, 1)
        hook = await stack.veil.bot.get_webhook_info()
        assert hook.last_error_message == "Wrong response from the webhook: 503"
        assert [e["event"] for e in logs].count("payments.journal_outdated") == 1
        assert stack.veil.desk.outdated is not None
        assert (await stack.veil.credit.balance(USER)).units < 50 * STAR
        assert [m["text"] for m in stack.telegram.sent_messages(USER)] == ["Four."]
