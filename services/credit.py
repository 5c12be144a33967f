"""Credit: balances, the daily free allowance, and holds settled from usage receipts.

Money is one integer unit, the micro-Star (µ★): 1 Star = 1_000_000 units, so a price per token
is a whole number (``VEIL_PRICES="*=20/60"``: 20 µ★ a prompt token, 60 a completion token).
A balance is the sum of the user's ledger rows (``models.ledger``), never a cached number;
prices live in ``services.prices``.

A request's life: ``hold`` reserves its most possible cost: the prompt's token ceiling
(``services.tokens``: it cannot be low) plus as many answer tokens as the user can pay for,
at most ``max_completion_tokens``, after the free tokens left today (which the hold reserves
too). Only when not even ``min_completion_tokens`` (64) fit is the request refused, so the
free allowance and the balance are usable to the last useful answer. ``settle`` gives the
hold back (``release:<id>``) and charges the signed receipt in full (``usage:<id>``), a
stopped or failed answer's receipt too, even above the hold: the excess comes from the free
tokens left and the balance, and past them the balance goes negative (the overdraft, logged
as ``billing.overdraft``); answers are then refused until a top-up covers it. Nothing is
capped silently. ``estimate`` charges the bot's own count when text reached the user but no
receipt could be had (outcome ``estimated``; never more than the hold); ``release`` charges
nothing (nothing delivered, no receipt). Each charge also writes its proof row
(``models.usage``): the receipt's exact signed bytes, the key it verified under and the prices
used, so ``python -m bot audit`` can check it again.

Free allowance: ``free_tokens_per_day`` tokens a user's requests of one UTC day (00:00 UTC to
00:00 UTC, by the hold's time) use before paid credit, prompt tokens first, then completion
tokens. The usage row is always the gross price of every token; a ``free:<id>`` row credits the
price of the free tokens back. So ``balance = SUM(ledger)`` holds and usage rows stay honest.

Every change is one ``Store.write`` (one transaction on the store's single writer thread, the
write lock taken first): the balance check and the hold row cannot be split by another request,
so concurrent holds never overdraw. A storage failure is ``LedgerUnavailable``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from models import holds, ledger, usage
from models.errors import StorageError
from models.holds import AnswerChat, Charge, Hold, Interrupted
from models.ledger import Balance, LedgerEntry, utc_day
from models.stats import Stats, figures
from services.errors import BillingError, InsufficientCredit, RequestIdTaken, ledger_failures
from services.prices import ModelPrice

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from models import Database, Store
    from models.holds import Outcome, ReceiptStatusValue
    from models.ledger import Kind
    from models.store import Writer
    from models.usage import ReceiptProof
    from sealed.receipt import ReceiptStatus
    from services.prices import Prices

__all__ = [
    "HISTORY_KINDS",
    "MIN_ANSWER_TOKENS",
    "Balance",
    "Charge",
    "Credit",
    "Hold",
    "LedgerEntry",
    "Stats",
]

log = structlog.get_logger("veil.billing")

# Kinds ``history`` shows by default: what the user paid for and what they bought.
HISTORY_KINDS: tuple[Kind, ...] = ("purchase", "subscription", "grant", "refund", "usage", "free")
MAX_REQUEST_ID = 128
MIN_ANSWER_TOKENS = 64  # below this an answer is not worth asking for: refuse instead


class Credit:
    """Holds, settles and releases request costs against the ledger; balances and figures."""

    def __init__(
        self,
        store: Store,
        prices: Prices,
        free_tokens_per_day: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if free_tokens_per_day < 0:
            raise ValueError("free_tokens_per_day must not be negative")
        self._store = store
        self.prices = prices
        self.free_tokens_per_day = free_tokens_per_day
        self._clock = clock
        # Holds this process opened and has not closed (whether each has a private chat to
        # tell of a cut): one another replica's sweep recovers meanwhile (its clock stepped past
        # the hold's lifetime) is charged when it settles, unless its user was told it was not.
        self._running: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"Credit(free_tokens_per_day={self.free_tokens_per_day})"

    # -- requests ----------------------------------------------------------------------------

    async def hold(  # noqa: PLR0913 -- one request's figures
        self,
        user_id: int,
        request_id: str,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
        *,
        min_completion_tokens: int = MIN_ANSWER_TOKENS,
        fresh: bool = False,
        chat: AnswerChat | None = None,
    ) -> Hold:
        """Hold the request's most possible cost before the model is asked.

        ``prompt_tokens`` must not undercount (use ``services.tokens``). The answer may have as
        many tokens as the balance and the free tokens left today pay for, at most
        ``max_completion_tokens``: the hold's ``max_completion_tokens`` is that cap, to send to
        the model. Raises ``InsufficientCredit`` (and holds nothing) when not even
        ``min_completion_tokens`` fit. Holding an existing ``request_id`` again returns the
        first hold, or, with ``fresh`` (an id the bot did not make), raises ``RequestIdTaken``.
        ``chat``: the private chat the answer is written in, told if a restart recovers the
        hold (``interrupted``).
        """
        if not request_id or len(request_id) > MAX_REQUEST_ID:
            raise ValueError(f"request_id must be 1 to {MAX_REQUEST_ID} characters")
        if prompt_tokens < 0 or max_completion_tokens < 0 or min_completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        price = self.prices.for_model(model)
        shortest = min(min_completion_tokens, max_completion_tokens)
        now = int(self._clock())

        def write(db: Database) -> Hold:
            existing = holds.get_hold(db, request_id)
            if existing is not None:
                if fresh:
                    raise RequestIdTaken("request id already held")
                if existing.hold.user_id != user_id:
                    raise BillingError("request id already used for another user")
                return existing.hold
            taken = holds.free_tokens_taken(db, user_id, utc_day(now))
            free_left = max(0, self.free_tokens_per_day - taken)
            balance = ledger.balance(db, user_id)
            completion = price.affordable(prompt_tokens, free_left, balance, max_completion_tokens)
            if completion < shortest:
                needed = price.payable(prompt_tokens, shortest, free_left)
                raise InsufficientCredit(needed, balance, free_left)
            free = min(free_left, prompt_tokens + completion)
            hold = Hold(
                request_id=request_id,
                user_id=user_id,
                model=model,
                prompt_tokens=prompt_tokens,
                max_completion_tokens=completion,
                free_tokens=free,
                units=price.payable(prompt_tokens, completion, free),
                created_at=now,
            )
            holds.insert_hold(db, hold, price_in=price.input, price_out=price.output, chat=chat)
            return hold

        with ledger_failures():
            held = await self._store.write(write)
        self._running[held.request_id] = chat is not None
        return held

    async def settle(  # noqa: PLR0913 -- a receipt's figures and its proof
        self,
        hold: Hold,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        receipt_valid: bool,
        status: ReceiptStatus | None = None,
        proof: ReceiptProof | None = None,
        also: Writer[Any] | None = None,
    ) -> Charge:
        """Charge the receipt's tokens in full and give the hold back, in one transaction.

        ``status`` is the receipt's (a stopped or failed answer's receipt is charged from its
        counts like any other) and is kept with the charge; ``proof`` (the receipt's signed
        bytes and the key they verified under) is stored with it for the audit. A charge above
        the hold is taken all the same (logged ``billing.over_hold``, and ``billing.overdraft``
        if it leaves the balance negative). An invalid receipt is charged the held amount (as
        if every held token was used) and logged. Settling (or releasing) a closed hold changes
        nothing and returns how it ended, but for one of this process's that another replica's
        sweep recovered under its running answer: that is charged now (see ``_charge``).
        ``also`` is written in the same transaction, the hold closed now or before (an answer's
        turns: a crash keeps the charge and them, or neither).
        """
        if prompt_tokens < 0 or completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        outcome: Outcome = "settled" if receipt_valid else "unverified"
        charge, new, balance = await self._charge(
            hold,
            outcome,
            (prompt_tokens, completion_tokens),
            status.value if status is not None and receipt_valid else None,
            proof,
            also,
        )
        if not new:
            return charge
        if not receipt_valid:
            log.warning(
                "billing.receipt_invalid",
                request_id=charge.request_id,
                user_id=charge.user_id,
                charged=charge.units,
            )
        elif charge.units > hold.units:
            log.warning(
                "billing.over_hold",
                request_id=charge.request_id,
                user_id=charge.user_id,
                held=hold.units,
                charged=charge.units,
            )
        if balance < 0:
            log.warning(
                "billing.overdraft",
                request_id=charge.request_id,
                user_id=charge.user_id,
                balance=balance,
            )
        return charge

    async def estimate(
        self,
        hold: Hold,
        completion_tokens: int,
        *,
        also: Writer[Any] | None = None,
    ) -> Charge:
        """Charge the bot's own count when text reached the user but no receipt could be had.

        The prompt is the hold's ceiling, the completion ``completion_tokens`` (the ceiling of
        the delivered text) but at most the answer tokens held, which the gateway enforces:
        outcome ``estimated``, never more than the hold. Settling (or releasing) a closed hold
        changes nothing and returns how it ended. ``also``: as ``settle``'s.
        """
        if completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        charge, new, _ = await self._charge(
            hold, "estimated", (hold.prompt_tokens, completion_tokens), None, None, also
        )
        if new:
            log.warning(
                "billing.estimated",
                request_id=charge.request_id,
                user_id=charge.user_id,
                charged=charge.units,
            )
        return charge

    async def _charge(  # noqa: PLR0913, PLR0917 -- one close's figures, as settle's
        self,
        hold: Hold,
        outcome: Outcome,
        tokens: tuple[int, int],
        receipt_status: ReceiptStatusValue | None,
        proof: ReceiptProof | None,
        also: Writer[Any] | None,
    ) -> tuple[Charge, bool, int]:
        """Close the hold with a charge; (the charge, whether it is new, the balance after).

        A hold of this process that another replica's sweep recovered while its answer ran
        (that replica's clock stepped past the hold's lifetime, or runs that far ahead) was
        given back then: the answer is charged now all the same
        (``billing.charged_after_recovery``), once. Not if its user was told already (or is
        being told) that it was cut off and "not charged": that is kept to, and logged
        (``billing.told_not_charged``).
        """
        now = int(self._clock())
        ours = hold.request_id in self._running
        in_chat = self._running.get(hold.request_id, False)  # its user may be told of a cut

        # Which late case the committed transaction met, logged once it stands: the write
        # runs a second time when the history made the first transaction fail.
        met: list[str] = []

        def write(db: Database, history: Writer[Any] | None) -> tuple[Charge, bool, int]:
            met.clear()
            state = _open_state(db, hold)
            if history is not None:
                history(db)
            late = ours and state.charge is not None and state.charge.outcome == "recovered"
            if late and in_chat and not holds.forget_interrupted(db, hold.request_id):
                met.append("billing.told_not_charged")
                late = False
            if state.charge is not None and not late:
                return state.charge, False, ledger.balance(db, hold.user_id)
            held = state.hold
            price = ModelPrice(state.price_in, state.price_out)
            if outcome == "unverified":
                prompt, completion = held.prompt_tokens, held.max_completion_tokens
            elif outcome == "estimated":
                prompt, completion = held.prompt_tokens, min(tokens[1], held.max_completion_tokens)
            else:
                prompt, completion = tokens
            taken = holds.free_tokens_taken(db, held.user_id, utc_day(held.created_at))
            left = max(0, self.free_tokens_per_day - taken)
            free = min(prompt + completion, _free_usable(held, left, outcome, late=late))
            charge = Charge(
                request_id=held.request_id,
                user_id=held.user_id,
                model=held.model,
                outcome=outcome,
                prompt_tokens=prompt,
                completion_tokens=completion,
                free_tokens=free,
                cost=price.cost(prompt, completion),
                units=price.payable(prompt, completion, free),
                receipt_status=receipt_status,
            )
            holds.close_hold(db, charge, held.units, now, released=late)
            if late:
                met.append("billing.charged_after_recovery")
            usage.insert_usage(
                db,
                charge,
                prices=(state.price_in, state.price_out),
                proof=None if outcome == "estimated" else proof,
                created_at=now,
            )
            return charge, True, ledger.balance(db, held.user_id)

        with ledger_failures():
            try:
                closed = await self._store.write(lambda db: write(db, also))
            except StorageError:
                if also is None or (also.stored is None and also.error is None):
                    raise  # failed before the history was written (the lock not had, say)
                also.stored = None  # rolled back with the charge
                # The transaction failed with the history in it: its own failure ended it
                # (SQLite rolls it all back on a full disk), or the COMMIT did (the WAL could
                # not grow by it all). The charge is written again alone, smaller: it stands,
                # and the history is stored on its own or the user told it was not
                # (``ChatService``).
                closed = await self._store.write(lambda db: write(db, None))
        self._running.pop(hold.request_id, None)
        _log_late(met, hold, closed[0])
        return closed

    async def release(self, hold: Hold) -> Charge:
        """Give the whole hold back and charge nothing (no receipt, and nothing delivered).

        Releasing (or settling) a closed hold changes nothing and returns how it ended; one of
        this process's that another replica's sweep recovered under its answer is not told of
        a cut either (its user has been told here how the answer ended).
        """
        now = int(self._clock())
        ours = hold.request_id in self._running

        def write(db: Database) -> Charge:
            state = _open_state(db, hold)
            if state.charge is not None:
                if ours and state.charge.outcome == "recovered":
                    holds.forget_interrupted(db, hold.request_id)
                return state.charge
            charge = _nothing_charged(state.hold, "released")
            holds.close_hold(db, charge, state.hold.units, now)
            return charge

        with ledger_failures():
            released = await self._store.write(write)
        self._running.pop(hold.request_id, None)
        return released

    async def recover(
        self,
        older_than_seconds: float,
        *,
        keep: Collection[str] = frozenset(),
        delivered: Collection[str] = frozenset(),
    ) -> int:
        """Release every hold still open after ``older_than_seconds`` (left by a crash).

        At start-up with 0 (nothing runs yet), and periodically with the longest an answer can
        take, sparing the request ids in ``keep`` (answers still running here). Returns how
        many were released. The users whose answers in private chats these holds were for are
        then ``interrupted``, until claimed to be told (``claim_interrupted``), except those of
        the request ids in ``delivered`` (answers whose users have them; open or not).
        """
        now = int(self._clock())
        cutoff = int(now - older_than_seconds)

        def write(db: Database) -> list[str]:
            stale = [h for h in holds.open_holds(db, cutoff) if h.request_id not in keep]
            for hold in stale:
                holds.close_hold(db, _nothing_charged(hold, "recovered"), hold.units, now)
            for request_id in delivered:
                holds.forget_interrupted(db, request_id)
            return [hold.request_id for hold in stale]

        with ledger_failures():
            recovered = await self._store.write(write)
        for request_id in recovered:  # given up here: not charged if settled
            self._running.pop(request_id, None)
        count = len(recovered)
        if count:
            log.warning("billing.holds_recovered", count=count)
        return count

    # -- balances and figures ----------------------------------------------------------------

    async def balance(self, user_id: int) -> Balance:
        """The user's balance (µ★, the ledger sum), free tokens left today, and units held."""
        day = utc_day(self._clock())

        def read(db: Database) -> Balance:
            taken = holds.free_tokens_taken(db, user_id, day)
            return Balance(
                units=ledger.balance(db, user_id),
                free_tokens_left=max(0, self.free_tokens_per_day - taken),
                held=holds.held(db, user_id),
            )

        with ledger_failures():
            return await self._store.read(read)

    async def history(
        self, user_id: int, limit: int = 10, kinds: tuple[Kind, ...] = HISTORY_KINDS
    ) -> list[LedgerEntry]:
        """The user's newest ledger rows (charges and purchases by default), newest first."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        with ledger_failures():
            return await self._store.read(lambda db: ledger.entries(db, user_id, kinds, limit))

    async def stats(self) -> Stats:
        """Users with ledger rows, active today, tokens used today, Stars received, refunds."""
        day = utc_day(self._clock())
        with ledger_failures():
            return await self._store.read(lambda db: figures(db, day))

    async def interrupted(self) -> list[Interrupted]:
        """Answers in private chats a recovery cut off, whose users are not yet told."""
        with ledger_failures():
            return await self._store.read(holds.interrupted)

    async def claim_interrupted(self, interrupted: Interrupted) -> bool:
        """Forget where the answer was, before its user is told; False: another teller did.

        At most once: a crash between this and the notice leaves that user untold, never told
        twice (by a restart, or by a second bot process telling at the same time).
        """
        request_id = interrupted.request_id
        with ledger_failures():
            return await self._store.write(lambda db: holds.forget_interrupted(db, request_id))

    async def not_told(self, interrupted: Interrupted) -> None:
        """Telegram could not take the notice for now: keep it for the next try."""
        with ledger_failures():
            await self._store.write(lambda db: holds.restore_interrupted(db, interrupted))

    async def open_holds(self) -> list[Hold]:
        """Every hold not yet closed (what the bot's metrics show as held)."""
        with ledger_failures():
            return await self._store.read(lambda db: holds.open_holds(db, _ALL_OF_TIME))


_ALL_OF_TIME = 2**53  # a created_at later than any hold's


def _open_state(db: Database, hold: Hold) -> holds.HoldState:
    state = holds.get_hold(db, hold.request_id)
    if state is None or state.hold.user_id != hold.user_id:
        raise BillingError("no such hold")
    return state


def _free_usable(hold: Hold, left: int, outcome: Outcome, *, late: bool) -> int:
    """The free tokens a charge may use: the hold's, and ``left`` (what no other hold took).

    A hold recovered under its running answer (``late``) gave its own back: it has only what
    no other hold took since (the day's allowance is not counted twice), but a charge without
    a valid receipt no fewer than it held, so that it is never more than the hold.
    """
    if not late:
        return hold.free_tokens + left
    if outcome == "settled":
        return left
    return max(hold.free_tokens, left)


def _nothing_charged(hold: Hold, outcome: Outcome) -> Charge:
    return Charge(
        request_id=hold.request_id,
        user_id=hold.user_id,
        model=hold.model,
        outcome=outcome,
        prompt_tokens=0,
        completion_tokens=0,
        free_tokens=0,
        cost=0,
        units=0,
    )


def _log_late(events: list[str], hold: Hold, charge: Charge) -> None:
    """Log what a close of a hold recovered under its answer met, once it is written."""
    for event in events:
        if event == "billing.charged_after_recovery":
            log.warning(
                event, request_id=hold.request_id, user_id=hold.user_id, charged=charge.units
            )
        else:
            log.warning(event, request_id=hold.request_id, user_id=hold.user_id)
