"""The outbox's side of the chat service: an answer's final message, delivered whatever happens.

An answer's charge also writes where its final message goes and its text, sealed
(``models.outbox``), deleted once Telegram took the message and its notes: what a crash, or
a Telegram down past the message's tries, kept from its user is delivered by the next start or
upkeep (``deliver_undelivered``), within ``DELIVER_WITHIN_S``. So is a private answer's part
that streamed before a failure, with how it ended (``Finish``: the note under it); each of a
private answer's messages is recorded as Telegram takes it (``took``), so none is sent twice.

``Deliveries`` belongs to one ``services.chat.ChatService``, which reads its clock and its
holds' lifetime through it (read at each use: a test may set the service's clock later).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from common.shielded import finished, written
from models import StorageError, outbox
from models.outbox import Progress
from services.errors import AnswerWithdrawn, history_failures
from services.questions import CountingSink

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from models import Store
    from models.holds import Charge
    from models.outbox import Finish, Outbound, Undelivered
    from models.store import AnswerRow, Writer
    from services.questions import AnswerSink, Sent

log = structlog.get_logger("veil.chat")

# The answers a detached task's followup is still sending notes under (``_delivered_by``).
_FOLLOWING: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "following", default=None
)
# An answer whose final message a crash (or Telegram, down for long) kept from its user is
# delivered at the next start (or the next upkeep) within this long of its charge; an older one
# is dropped: a day later the user has asked again or moved on, and a reply to a question of
# yesterday, arriving out of the blue, would confuse more than it helps (``deliver_undelivered``).
DELIVER_WITHIN_S = 24 * 3600.0
# Batches of answers left (``models.outbox.BATCH`` each) one upkeep pass delivers at most: at
# Telegram's pace, about half a minute's sending, so the pass's other work is not held up for
# long; what is left goes to the next pass (a minute later).
DELIVER_BATCHES = 10
# And for at most this long (seconds; about a sweep's interval): answers that are slow to go
# out (a group's pace, flood waits) hold the upkeep's other work up no longer than that.
DELIVER_PASS_S = 60.0


@dataclass
class Deliveries:
    """Each answer's final message and its row: written with the charge, marked as it goes out.

    ``clock`` and ``lifetime`` (the longest a hold, and so a row's claim, lasts) are the chat
    service's, read at each use; ``within``: how old an answer is still delivered.
    """

    store: Store
    clock: Callable[[], float]
    lifetime: Callable[[], float]
    within: float = DELIVER_WITHIN_S
    # Answers whose own final messages are going out now: no delivery pass here sends them.
    _delivering: set[str] = field(default_factory=set, init=False)

    @contextlib.contextmanager
    def following(self) -> Iterator[None]:
        """Run a detached answer and its followup: rows whose notes it sends stay its own.

        Set in the detached task's context (and so in the answer's task made in it): the rows
        ``_delivered_by`` leaves to the followup go back to the passes when the task ends.
        """
        following: set[str] = set()
        _FOLLOWING.set(following)
        try:
            yield
        finally:
            self._delivering -= following

    def row_for(
        self,
        user_id: int,
        place: Outbound | None,
        request_id: str,
        text: str,
        finish: Finish,
    ) -> AnswerRow | None:
        """The answer's row to deliver it again from (``models.outbox``); None: none to keep."""
        if not text or place is None:
            return None
        now = int(self.clock())
        return self.store.undelivered_writer(
            user_id,
            request_id,
            place,
            text,
            now=now,
            claimed_until=now + int(self.lifetime()),
            finish=finish,
        )

    async def deliver(  # noqa: PLR0913 -- the message, its row and the charge written with it
        self,
        sink: AnswerSink,
        text: str,
        request_id: str,
        *,
        place: Outbound | None,
        row: AnswerRow | None,
        settling: asyncio.Future[Charge],
        left: Callable[[], None] | None = None,
        notes: int = 0,
    ) -> None:
        """Send the final message (``text``; none: stop showing progress) as its charge is written.

        Each message Telegram takes is recorded in the answer's row (``_recording``); at the
        end the row is marked (``sent``). The charge is written (``settling`` done) by the
        time this returns, whatever cancels the caller meanwhile; a cancellation arriving
        while that end is written goes on once it is (the caller stays cancelled). ``left`` is
        called where the message did not go out now but its row was written with the charge:
        the outbox sends it. ``notes``: the notes that go under it (``Finish.notes``), which the
        caller's followup sends once this returns: its row stays until Telegram took the last
        (``_recording``), so a bot killed before that sends them at its next start, and no
        pass here sends them beside the followup (``_delivered_by``).
        """
        sent = False
        self._delivering.add(request_id)
        if text and isinstance(sink, CountingSink):
            sink.recording(self._recording(request_id, row, settling, notes))

        async def ended() -> None:
            await finished(settling)
            taken = sink.progress if isinstance(sink, CountingSink) else Progress()
            await self.sent(place, row, request_id, sent=sent, taken=taken, notes=notes)
            if not sent and text and row is not None and row.stored:
                if isinstance(sink, CountingSink):
                    sink.kept()
                if left is not None:
                    left()

        try:
            if not text:
                await sink.abort()
            else:
                await sink.complete(text)
                sent = True
        finally:
            try:
                ending = asyncio.ensure_future(ended())
                await written(ending)  # a cancellation meanwhile goes on once it is done
                ending.result()
            finally:
                noting = sent and place is not None and not place.edited  # its notes to go
                self._delivered_by(request_id, notes=notes if noting else 0)

    async def unnoted(self, place: Outbound | None, row: AnswerRow | None, request_id: str) -> None:
        """A private answer that went out, its followup telling a failure: its row goes now.

        The row waited for the notes under the answer (``sent``), but the followup says its
        history was not stored instead of sending them; a pass sent them minutes after that
        apology, among them a Continue that asks nothing (the exchange it goes on from is not
        stored).
        """
        if row is not None and row.stored and place is not None and not place.edited:
            await self.delivered(request_id)

    def _delivered_by(self, request_id: str, *, notes: int) -> None:
        """Let a delivery pass have the answer's row: now, or (``notes`` to go) once they went.

        Its notes go out after ``deliver``, from its followup, in the task that runs both
        (``detach``): a pass that took the row meanwhile (its claim run out under flood waits)
        sent the note the followup was sending, and the user saw it twice. The row is left to
        that task until it ends (``_FOLLOWING``); notes it could not send then go out from the
        row once its claim does.
        """
        following = _FOLLOWING.get()
        if notes and following is not None:
            following.add(request_id)
        else:
            self._delivering.discard(request_id)

    def _recording(
        self,
        request_id: str,
        row: AnswerRow | None,
        settling: asyncio.Future[Charge],
        notes: int = 0,
    ) -> Callable[[Progress], Awaitable[None]]:
        """What records each message of the answer Telegram took in its row (one UPDATE each).

        The row is written with the charge, beside the first message: a count waits for it.
        A count that cannot be written is logged: a restart may send that message twice.
        Cancelled meanwhile (the loop torn down at a stop past its deadline), the count of the
        message Telegram took is still written, then the cancellation goes on: no more of the
        answer goes out from a process that is stopping; its row sends the rest at the next
        start. Taken before its row is written (the charge waiting for the database), the count
        is written with the row (``AnswerRow.taken``): a stop whose store closes behind the
        charge, before the count can follow it, does not send that message again. The notes
        under it (``notes`` of them, its followup's) are counted the same way, and the last one
        taken deletes the row: the answer is delivered whole only then.
        """

        async def record(progress: Progress) -> None:
            if row is not None:
                row.taken = progress  # in the row, if the charge has not written it yet
            try:
                await written(settling)
            except asyncio.CancelledError:
                await self._count(request_id, row, progress)
                raise
            if notes and progress.notes >= notes and row is not None and row.stored:
                await self.delivered(request_id)  # its last note taken: delivered whole
                return
            await self._count(request_id, row, progress)

        return record

    async def _count(self, request_id: str, row: Writer[bool] | None, progress: Progress) -> None:
        """Record ``progress`` in the answer's row, where its charge wrote one."""
        if row is not None and row.stored:
            # Its row gone (another process delivered it past its claim): the user, who
            # watched it stream, still gets the rest of this one.
            with contextlib.suppress(AnswerWithdrawn):
                await self.took(request_id, progress)

    async def sent(  # noqa: PLR0913 -- where it went, its row, and what of it was taken
        self,
        place: Outbound | None,
        outbound: Writer[bool] | None,
        request_id: str,
        *,
        sent: bool,
        taken: Progress | None = None,
        notes: int = 0,
    ) -> None:
        """The final message went out (or not): its row (if written) marked, or left to retry.

        An edited answer's final edit may still be under way (a flood wait): whoever waits for
        it says whether it was shown (``delivered``). ``taken``: the messages of an answer
        not sent whole that Telegram took, which the retry leaves out. A private answer with
        ``notes`` to go under it keeps its row (claimed) until the last is taken
        (``_recording``); notes its followup could not send go out from the row once its claim
        ends (the next delivery pass past it, or the next start).
        """
        if outbound is None or not outbound.stored:
            return
        if not sent:
            await self.delivered(request_id, shown=False, taken=taken)
        elif place is not None and not place.edited:
            if taken is not None and taken.notes < notes:
                return  # its notes go out now, each counted; the last deletes the row
            await self.delivered(request_id)

    async def delivered(
        self, request_id: str, *, shown: bool = True, taken: Progress | None = None
    ) -> None:
        """Mark an answer's final message delivered; ``shown`` False: not, try it again later.

        Marked once Telegram took it. A crash between the two sends it again at the next start:
        a private answer then shows twice, which is better than never (an edit shows once). A
        mark that cannot be written is logged: the answer may be delivered again. Not shown,
        ``taken`` says which of its messages Telegram took: only the rest are tried again.
        """
        try:
            if shown:
                await self.store.delivered(request_id)
            else:
                await self.store.not_delivered(request_id, taken)
        except StorageError as exc:
            log.warning("chat.delivery_unmarked", request_id=request_id, error=type(exc).__name__)

    async def took(self, request_id: str, progress: Progress) -> None:
        """Record the messages of an answer Telegram took so far (its row's ``Progress``).

        Told each message as it is taken, live or sent again (``CountingSink.recording``): a
        bot killed between two of them resends from the first not taken. A count that cannot
        be written is logged: that message may be sent twice. A row gone meanwhile (erased by
        ``forget``, or delivered by another process) raises ``AnswerWithdrawn``: an answer
        sent again stops there, nothing of an erased answer goes out after the erasure.
        """
        try:
            kept = await self.store.write(lambda db: outbox.took(db, request_id, progress))
        except StorageError as exc:
            log.warning("chat.progress_unrecorded", request_id=request_id, error=type(exc).__name__)
            return
        if not kept:
            raise AnswerWithdrawn("the answer's row is gone")

    async def release_undelivered(self) -> int:
        """Let this process deliver every answer left undelivered (no other one runs)."""
        with history_failures("cannot release the answers to deliver"):
            return await self.store.release_undelivered()

    async def deliver_undelivered(
        self, send: Callable[[Undelivered], Awaitable[Sent | Progress]]
    ) -> int:
        """Deliver the answers charged whose final message never went out; how many were sent.

        A batch at a time (``models.outbox.BATCH``), oldest first, at most ``DELIVER_BATCHES``
        of them and ``DELIVER_PASS_S`` a pass (the upkeep's other work waits for it; the next
        pass goes on). Each
        answer's claim is renewed just before it goes to ``send`` (not sent if it was lost: its
        user erased it meanwhile, or another process took it once this pass's lease had ended),
        then it is marked delivered, whether Telegram took it or refused it for good (the chat or
        message gone, the bot blocked); at the first Telegram cannot take now, that one and the
        rest are given back to the next pass, that one to be tried after the others (a flood
        wait is often one chat's). One whose own messages, or the notes under them, are still
        going out here (past its row's claim) is left to that, claimed anew. Of a long private
        answer not taken whole, the messages Telegram took are recorded with it (``send`` gives
        a ``Progress``): the next pass sends the rest only; one whose row is gone as its
        messages go out (erased: ``AnswerWithdrawn``) sends no more of them. Answers older than
        ``within`` are dropped unsent (``DELIVER_WITHIN_S``).
        """
        sent = 0
        began = self.clock()
        for _ in range(DELIVER_BATCHES):
            now = int(self.clock())
            claimed = now + int(self.lifetime())
            with history_failures("cannot read the answers to deliver"):
                taken, dropped = await self.store.claim_undelivered(
                    now, claimed, now - int(self.within)
                )
            if dropped:
                log.warning("chat.undelivered_dropped", count=dropped)
            if not taken and not dropped:
                break
            for index, answer in enumerate(taken):
                if self.clock() - began >= DELIVER_PASS_S:  # the rest to the next pass
                    untried = [(0, left.request_id, claimed) for left in taken[index:]]
                    with history_failures("cannot give the answers to deliver back"):
                        await self.store.give_back_undelivered(untried)
                    return sent
                renewed = int(self.clock()) + int(self.lifetime())
                with history_failures("cannot read the answers to deliver"):
                    if not await self.store.confirm_undelivered(
                        answer.request_id, claimed, renewed
                    ):
                        continue  # erased since, or another process's now
                if answer.request_id in self._delivering:
                    # Still going out (a many-message answer's flood waits may outlast its
                    # claim): kept, claimed anew, until its own end marks it.
                    continue
                try:
                    outcome = await send(answer)
                except AnswerWithdrawn:  # erased (or delivered elsewhere) as it went out
                    log.info(
                        "chat.redelivery_withdrawn",
                        user_id=answer.user_id,
                        request_id=answer.request_id,
                    )
                    continue
                progress = outcome if isinstance(outcome, Progress) else None
                log.info(
                    "chat.redelivered",
                    user_id=answer.user_id,
                    request_id=answer.request_id,
                    surface=answer.place.surface,
                    outcome="later" if progress is not None else outcome,
                    parts=None if progress is None else progress.rich + progress.parts,
                )
                if progress is not None or outcome == "later":  # after the others (``claim``)
                    back = [(int(self.clock()), answer.request_id, renewed)]
                    back += [(0, left.request_id, claimed) for left in taken[index + 1 :]]
                    mark = None if progress is None else (answer.request_id, renewed, progress)
                    with history_failures("cannot give the answers to deliver back"):
                        await self.store.give_back_undelivered(back, mark)
                    return sent
                await self.delivered(answer.request_id)
                sent += outcome == "sent"
        return sent
