"""An upkeep pass delivers each answer left once, only to a user who still has it, in batches.

Two bot processes over one database file (webhook replicas) and an erasure (``/forget``) that
comes while a pass is delivering: the pass checks its claim on each answer just before sending
it, so an answer erased meanwhile is not sent, and one a replica took after this pass's lease
lapsed is sent by that replica alone.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, cast

from models import MasterKey, Store
from models.outbox import Outbound
from services.chat import ChatService
from services.credit import Credit
from services.prices import Prices

if TYPE_CHECKING:
    from pathlib import Path

    from models.outbox import Undelivered
    from services.questions import Sent

USER = 9231
OTHER = 9232
NOW = 1_800_000_000
TEXT = "the heron waits at the weir"


class Clock:
    """The passes' Unix time, moved on by the test (a send that takes long)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        """The time now."""
        return self.now


async def charged(store: Store, request_id: str, user_id: int = USER) -> None:
    """An answer charged whose final message did not go out: its row, claimed by nobody."""
    credit = Credit(store, Prices.parse("*=20/60"), 10**9)
    hold = await credit.hold(user_id, request_id, "veil-test", 10, 50)
    row = store.undelivered_writer(
        user_id, request_id, Outbound.private(user_id), TEXT, now=NOW, claimed_until=0
    )
    await credit.settle(hold, 10, 5, receipt_valid=True, also=row)
    assert row.stored


def service(store: Store, clock: Clock) -> ChatService:
    """A chat service for delivery passes only (no inference is asked, no credit moved)."""
    return ChatService(store, cast("Any", None), cast("Any", None), clock=clock)


async def test_an_answer_erased_while_a_pass_delivers_is_not_sent(tmp_path: Path) -> None:
    # The pass opened both answers; the user's /forget lands while the first goes out: the
    # second must not reach them after they erased everything.
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        await store.ensure_user(USER, "en")
        await charged(store, "first")
        await charged(store, "second")
        sent: list[str] = []

        async def send(answer: Undelivered) -> Sent:
            sent.append(answer.request_id)
            await store.forget(USER)  # /forget, handled while this send is under way
            return "sent"

        await service(store, Clock(NOW + 10)).deliveries.deliver_undelivered(send)
        assert sent == ["first"]
        left = await store.read(
            lambda db: db.execute("SELECT COUNT(*) FROM undelivered").fetchone()[0]
        )
        assert left == 0
    finally:
        await store.close()


async def test_a_replica_past_a_lapsed_lease_and_this_pass_never_send_one_answer_twice(
    tmp_path: Path,
) -> None:
    # Replica A's pass claims three answers for one lease; the second takes long to go out (a
    # group's pace, flood waits), past that lease: replica B's pass then takes what A has not
    # marked. Each answer must still go out once, by one of them.
    key = MasterKey.generate()
    first = await Store.open(tmp_path / "veil.db", key)
    second = await Store.open(tmp_path / "veil.db", key)
    try:
        await first.ensure_user(USER, "en")
        for request_id in ("a1", "a2", "a3"):
            await charged(first, request_id)
        clock = Clock(NOW + 10)
        replica_a, replica_b = service(first, clock), service(second, clock)
        lease = replica_a.hold_lifetime
        sent: list[tuple[str, str]] = []

        async def by_b(answer: Undelivered) -> Sent:
            sent.append(("B", answer.request_id))
            return "sent"

        async def by_a(answer: Undelivered) -> Sent:
            sent.append(("A", answer.request_id))
            clock.now += 20
            if answer.request_id == "a2":  # A's lease on the batch lapses: B's pass runs
                clock.now += lease - 30  # past the batch's lease, within its own
                await replica_b.deliveries.deliver_undelivered(by_b)
            return "sent"

        await replica_a.deliveries.deliver_undelivered(by_a)
        await replica_a.deliveries.deliver_undelivered(by_a)  # its next pass: nothing of B's again
        ids = sorted(request_id for _, request_id in sent)
        assert ids == ["a1", "a2", "a3"], sent
    finally:
        await second.close()
        await first.close()


async def test_a_pass_holds_a_batch_at_a_time_and_gives_it_back_when_telegram_cannot_take_it(
    tmp_path: Path,
) -> None:
    # Telegram down for an hour at scale: a pass must not open (and hold in memory) every answer
    # left, nor claim them all for one lease; what it claimed goes back for the next pass.
    path = tmp_path / "veil.db"
    store = await Store.open(path, MasterKey.generate())
    try:
        await store.ensure_user(USER, "en")
        await store.ensure_user(OTHER, "en")
        for number in range(250):
            await charged(store, f"r{number}", USER if number % 2 else OTHER)
        claimed: list[int] = []

        async def send(_answer: Undelivered) -> Sent:
            with sqlite3.connect(path) as db:
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM undelivered WHERE claimed_until > 0"
                ).fetchone()
            claimed.append(count)
            return "later"

        chat = service(store, Clock(NOW + 10))
        assert await chat.deliveries.deliver_undelivered(send) == 0
        assert len(claimed) == 1
        assert claimed[0] <= 100  # a batch, not the 250
        with sqlite3.connect(path) as db:
            (still,) = db.execute(
                "SELECT COUNT(*) FROM undelivered WHERE claimed_until > ?", [NOW + 10]
            ).fetchone()
            (rows,) = db.execute("SELECT COUNT(*) FROM undelivered").fetchone()
        assert (still, rows) == (0, 250)  # all given back to the next pass, none lost
    finally:
        await store.close()


async def test_a_pass_delivers_every_batch_oldest_first_each_once(tmp_path: Path) -> None:
    # Telegram back: more than one batch is left, and one pass sends them all, each once.
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        await store.ensure_user(USER, "en")
        for number in range(230):
            await charged(store, f"r{number:03d}")
        sent: list[str] = []

        async def send(answer: Undelivered) -> Sent:
            sent.append(answer.request_id)
            return "sent"

        assert await service(store, Clock(NOW + 10)).deliveries.deliver_undelivered(send) == 230
        assert sent == [f"r{number:03d}" for number in range(230)]
    finally:
        await store.close()


async def test_a_row_moved_to_another_chat_is_not_delivered_there(tmp_path: Path) -> None:
    # Someone who can write the database file (not read its texts): pointing a private answer's
    # row at their own chat, or a group answer's at another message, must not make the bot open
    # it and send it there. The place is bound to the sealed text as the user and request are.
    path = tmp_path / "veil.db"
    store = await Store.open(path, MasterKey.generate())
    try:
        await store.ensure_user(USER, "en")
        await charged(store, "private-1")
        credit = Credit(store, Prices.parse("*=20/60"), 10**9)
        hold = await credit.hold(USER, "group-1", "veil-test", 10, 50)
        row = store.undelivered_writer(
            USER, "group-1", Outbound.message(-100_777, 41), TEXT, now=NOW, claimed_until=0
        )
        await credit.settle(hold, 10, 5, receipt_valid=True, also=row)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE undelivered SET chat_id = 666 WHERE request_id = 'private-1'")
            db.execute("UPDATE undelivered SET message_id = 42 WHERE request_id = 'group-1'")
        sent: list[Outbound] = []

        async def send(answer: Undelivered) -> Sent:
            sent.append(answer.place)
            return "sent"

        assert await service(store, Clock(NOW + 10)).deliveries.deliver_undelivered(send) == 0
        assert sent == []
        with sqlite3.connect(path) as db:
            (left,) = db.execute("SELECT COUNT(*) FROM undelivered").fetchone()
        assert left == 0  # dropped, as a row that does not open is
    finally:
        await store.close()


async def test_one_chat_under_a_long_flood_wait_does_not_hold_up_everyone_elses_answers(
    tmp_path: Path,
) -> None:
    # Telegram's flood waits are often one chat's: the oldest answer's chat cannot take it for
    # long, the others can. Each pass stopped at that oldest answer and the next began with it
    # again, so nobody else got theirs until that chat's flood ended (a day: all dropped).
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        await store.ensure_user(USER, "en")
        await store.ensure_user(OTHER, "en")
        await charged(store, "flooded", USER)
        await charged(store, "other-1", OTHER)
        await charged(store, "other-2", OTHER)
        clock = Clock(NOW + 10)
        chat = service(store, clock)
        sent: list[str] = []

        async def send(answer: Undelivered) -> Sent:
            if answer.user_id == USER:  # this chat's flood wait outlasts every pass
                return "later"
            sent.append(answer.request_id)
            return "sent"

        for _ in range(3):  # three upkeep passes, a minute apart
            await chat.deliveries.deliver_undelivered(send)
            clock.now += 60
        assert sent == ["other-1", "other-2"]
        (left,), _ = await store.claim_undelivered(int(clock.now), int(clock.now) + 60, NOW)
        assert left.request_id == "flooded"  # still to deliver, once its chat takes it
    finally:
        await store.close()


async def test_a_slow_pass_hands_the_rest_to_the_next_and_lets_the_upkeep_go_on(
    tmp_path: Path,
) -> None:
    # Edits at a group's pace, flood waits: each answer takes long to go out. A pass that sent
    # its whole thousand held the upkeep's other work (stale holds, cut-off notices) for that
    # long; past about a sweep's interval it gives the rest back to the next pass.
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        await store.ensure_user(USER, "en")
        for number in range(5):
            await charged(store, f"slow-{number}")
        clock = Clock(NOW + 10)
        chat = service(store, clock)
        sent: list[str] = []

        async def send(answer: Undelivered) -> Sent:
            sent.append(answer.request_id)
            clock.now += 25
            return "sent"

        assert await chat.deliveries.deliver_undelivered(send) == 3
        assert await chat.deliveries.deliver_undelivered(send) == 2  # the next pass goes on
        assert sent == [f"slow-{number}" for number in range(5)]
    finally:
        await store.close()
