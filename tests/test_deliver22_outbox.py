"""The rows of answers left to deliver: sealed, written with the charge, bounded, claimed once."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from models import MasterKey, Store
from models.outbox import Outbound
from models.store import Writer
from services.credit import Credit
from services.delivery import DELIVER_WITHIN_S
from services.prices import Prices
from tests.miniapp import page, settled, webapp_stack

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

USER = 9222
NOW = 1_800_000_000
TEXT = "the kestrel hovers over the quarry"


async def charged(
    store: Store, credit: Credit, request_id: str, place: Outbound, *, at: int
) -> Writer[bool]:
    """An answer charged with its row (written ``at``), as ``ChatService`` writes them."""
    hold = await credit.hold(USER, request_id, "veil-test", 10, 50)
    row = store.undelivered_writer(USER, request_id, place, TEXT, now=at, claimed_until=at + 60)
    conversation = await store.active_conversation(USER)
    turns = store.turns_writer(USER, conversation, [("user", "q"), ("assistant", TEXT)])
    await credit.settle(hold, 10, 5, receipt_valid=True, also=Writer.joined(turns, row))
    return row


async def test_a_row_is_sealed_claimed_once_bounded_in_age_and_erased_with_its_user(
    tmp_path: Path,
) -> None:
    path = tmp_path / "veil.db"
    store = await Store.open(path, MasterKey.generate())
    try:
        credit = Credit(store, Prices.parse("*=20/60"), 1000)
        await store.ensure_user(USER, "en")
        old = NOW - int(DELIVER_WITHIN_S) - 1
        await charged(store, credit, "old-1", Outbound.private(USER), at=old)
        place = Outbound.inline("inline-9", header="❓ where")
        row = await charged(store, credit, "new-1", place, at=NOW)
        assert row.stored
        # Nothing readable in the row: the text and the header are sealed.
        with sqlite3.connect(path) as db:
            (body,) = db.execute(
                "SELECT body FROM undelivered WHERE request_id = 'new-1'"
            ).fetchone()
        assert TEXT.encode() not in bytes(body)
        assert b"where" not in bytes(body)
        # Claimed by its writer until NOW + 60: not taken by another process before.
        assert await store.claim_undelivered(NOW + 1, NOW + 100, NOW - 10) == ([], 1)  # old: out
        taken, dropped = await store.claim_undelivered(NOW + 60, NOW + 200, NOW - 10)
        assert dropped == 0
        (answer,) = taken
        assert (answer.request_id, answer.user_id, answer.language) == ("new-1", USER, "en")
        assert (answer.text, answer.place) == (TEXT, place)
        assert answer.place.header == "❓ where"
        assert await store.claim_undelivered(NOW + 61, NOW + 300, NOW - 10) == ([], 0)
        await store.not_delivered("new-1")  # given back: the next pass takes it
        (again,), _ = await store.claim_undelivered(NOW + 62, NOW + 300, NOW - 10)
        assert again.request_id == "new-1"
        await store.forget(USER)
        assert await store.release_undelivered() == 0
        assert await store.claim_undelivered(NOW + 400, NOW + 500, NOW - 10) == ([], 0)
    finally:
        await store.close()


async def test_a_row_is_kept_when_the_turns_beside_it_cannot_be(tmp_path: Path) -> None:
    # The conversation erased while its answer ended: its turns are not stored, but the charge
    # stands, and so does the answer's row (the user is owed the message).
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        credit = Credit(store, Prices.parse("*=20/60"), 1000)
        await store.ensure_user(USER, "en")
        gone = (await store.active_conversation(USER)) + 1
        hold = await credit.hold(USER, "gone-1", "veil-test", 10, 50)
        turns = store.turns_writer(USER, gone, [("user", "q"), ("assistant", TEXT)])
        row = store.undelivered_writer(
            USER, "gone-1", Outbound.private(USER), TEXT, now=NOW, claimed_until=0
        )
        charge = await credit.settle(
            hold, 10, 5, receipt_valid=True, also=Writer.joined(turns, row)
        )
        assert charge.outcome == "settled"
        assert (turns.stored, row.stored) == (None, True)
        (answer,), _ = await store.claim_undelivered(NOW, NOW + 60, NOW - 10)
        assert answer.text == TEXT
        assert await store.delivered("gone-1")
        assert not await store.delivered("gone-1")
    finally:
        await store.close()


async def test_a_mini_app_answer_leaves_nothing_for_the_bot_to_deliver(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The page, not the bot, delivers a Mini App answer (sealed to it): charged, with no row.
    async with webapp_stack(tmp_path, answer="sealed to the page") as stack:
        asked = await page(stack, http).ask("a question the bot cannot read")
        assert asked.status == 200
        state = await settled(stack, asked.request_id)
        assert state.charge is not None
        assert state.charge.outcome == "settled"
        left = await stack.store.read(
            lambda db: db.execute("SELECT COUNT(*) FROM undelivered").fetchone()[0]
        )
        assert left == 0
