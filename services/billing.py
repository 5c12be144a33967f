"""Billing: per-token prices, the daily free allowance, and holds settled from usage receipts.

Money is one integer unit, the micro-Star (µ★): 1 Star = 1_000_000 units, so a price per token
is a whole number (``VEIL_PRICES="*=20/60"``: 20 µ★ a prompt token, 60 a completion token).
A balance is the sum of the user's ledger rows (``models.ledger``), never a cached number.

A request's life: ``hold`` reserves its most possible cost (the prompt plus
``max_completion_tokens``, after the free tokens left today, which the hold reserves too) in
one transaction that first checks the balance covers it; ``settle`` gives the hold back
(``release:<id>``) and writes the actual cost from the signed receipt (``usage:<id>``), a
stopped or failed answer's receipt too (its status is kept with the charge); ``estimate``
does the same from the bot's own count when text reached the user but no receipt could be had
(outcome ``estimated``: never zero for delivered text); ``release`` gives it back and charges
nothing (nothing delivered, no receipt). The hold is the most a request can cost: a receipt
counting more tokens than were held for is charged the held amount.

Free allowance: ``free_tokens_per_day`` tokens a user's requests of one UTC day (00:00 UTC to
00:00 UTC, by the hold's time) use before paid credit, prompt tokens first, then completion
tokens. The usage row is always the gross price of every token; a ``free:<id>`` row credits the
price of the free tokens back. So ``balance = SUM(ledger)`` holds and usage rows stay honest.

All writes run on the store's single writer thread, each inside one transaction: the balance
check and the hold row cannot be split by another request, so concurrent holds never overdraw.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

import structlog

from models import StorageError
from models import ledger as storage
from models.ledger import (
    UNITS_PER_STAR,
    Balance,
    BillingStats,
    Charge,
    Hold,
    Kind,
    LedgerEntry,
    utc_day,
)
from services.errors import BillingError, InsufficientCredit, LedgerUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from models import Database, Store
    from models.ledger import Outcome
    from sealed.receipt import ReceiptStatus

__all__ = [
    "CREDIT_KINDS",
    "HISTORY_KINDS",
    "UNITS_PER_STAR",
    "Balance",
    "Billing",
    "BillingStats",
    "Charge",
    "Hold",
    "LedgerEntry",
    "ModelPrice",
    "Prices",
    "format_units",
]

T = TypeVar("T")

log = structlog.get_logger("veil.billing")

DEFAULT_MODEL = "*"
# Kinds ``credit`` may write; hold, release, usage and free rows belong to requests.
CREDIT_KINDS: frozenset[Kind] = frozenset({"purchase", "grant", "refund", "subscription"})
# Kinds ``history`` shows by default: what the user paid for and what they bought.
HISTORY_KINDS: tuple[Kind, ...] = ("purchase", "subscription", "grant", "refund", "usage", "free")
_REQUEST_SOURCE_PREFIXES = ("hold:", "release:", "usage:", "free:")
MAX_REQUEST_ID = 128


def format_units(units: int) -> str:
    """µ★ as Stars for people: ``1_500_000`` → ``"1.5"``, exact, no trailing zeros."""
    stars = Decimal(units).scaleb(-6)
    text = f"{stars:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """µ★ per prompt (``input``) and per completion (``output``) token."""

    input: int
    output: int

    def cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The gross price of these tokens."""
        return self.input * prompt_tokens + self.output * completion_tokens

    def free_cover(self, prompt_tokens: int, completion_tokens: int, free_tokens: int) -> int:
        """The price of the first ``free_tokens`` of these tokens, prompt tokens first."""
        free_prompt = min(prompt_tokens, free_tokens)
        free_completion = min(completion_tokens, free_tokens - free_prompt)
        return self.cost(free_prompt, free_completion)


@dataclass(frozen=True)
class Prices:
    """Prices per model, with ``default`` for models not listed."""

    default: ModelPrice
    models: Mapping[str, ModelPrice] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def parse(cls, text: str) -> Prices:
        """Parse ``model=in/out,model2=in/out,*=in/out`` (µ★ per token; ``*`` is required).

        Raises ``ValueError`` naming the entry that is wrong.
        """
        models: dict[str, ModelPrice] = {}
        default: ModelPrice | None = None
        entries = [part.strip() for part in text.split(",") if part.strip()]
        if not entries:
            raise ValueError("prices are empty; expected model=in/out,...,*=in/out")
        for entry in entries:
            model, sep, price = entry.rpartition("=")
            model = model.strip()
            if not sep or not model:
                raise ValueError(f"price entry {entry!r} is not model=in/out")
            parsed = _parse_price(entry, price)
            if model == DEFAULT_MODEL:
                if default is not None:
                    raise ValueError("the default price '*' is given twice")
                default = parsed
            elif model in models:
                raise ValueError(f"the price of {model!r} is given twice")
            else:
                models[model] = parsed
        if default is None:
            raise ValueError("prices need a default for other models: add *=in/out")
        return cls(default=default, models=MappingProxyType(models))

    def for_model(self, model: str) -> ModelPrice:
        """The model's price, or the default."""
        return self.models.get(model, self.default)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        """The gross price in µ★ of one request's tokens."""
        return self.for_model(model).cost(prompt_tokens, completion_tokens)


def _parse_price(entry: str, price: str) -> ModelPrice:
    prompt, sep, completion = price.partition("/")
    try:
        if not sep:
            raise ValueError
        parsed = ModelPrice(int(prompt.strip()), int(completion.strip()))
    except ValueError:
        raise ValueError(
            f"price entry {entry!r}: expected whole µ★ per token as in/out, like 20/60"
        ) from None
    if parsed.input < 0 or parsed.output < 0:
        raise ValueError(f"price entry {entry!r}: a price cannot be negative")
    return parsed


class Billing:
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

    def __repr__(self) -> str:
        return f"Billing(free_tokens_per_day={self.free_tokens_per_day})"

    # -- requests ----------------------------------------------------------------------------

    async def hold(
        self,
        user_id: int,
        request_id: str,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
    ) -> Hold:
        """Hold the request's most possible cost before the model is asked.

        ``prompt_tokens`` must not undercount (the hold is the most the request can cost).
        Raises ``InsufficientCredit`` (and holds nothing) if the balance cannot cover it.
        Holding an existing ``request_id`` again returns the first hold.
        """
        if not request_id or len(request_id) > MAX_REQUEST_ID:
            raise ValueError(f"request_id must be 1 to {MAX_REQUEST_ID} characters")
        if prompt_tokens < 0 or max_completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        price = self.prices.for_model(model)
        now = int(self._clock())

        def write(db: Database) -> Hold:
            with db.atomic():
                existing = storage.get_hold(db, request_id)
                if existing is not None:
                    if existing.hold.user_id != user_id:
                        raise BillingError("request id already used for another user")
                    return existing.hold
                taken = storage.free_tokens_taken(db, user_id, utc_day(now))
                free = min(
                    max(0, self.free_tokens_per_day - taken), prompt_tokens + max_completion_tokens
                )
                needed = price.cost(prompt_tokens, max_completion_tokens) - price.free_cover(
                    prompt_tokens, max_completion_tokens, free
                )
                balance = storage.balance(db, user_id)
                if balance < needed:
                    raise InsufficientCredit(needed, balance)
                hold = Hold(
                    request_id=request_id,
                    user_id=user_id,
                    model=model,
                    prompt_tokens=prompt_tokens,
                    max_completion_tokens=max_completion_tokens,
                    free_tokens=free,
                    units=needed,
                    created_at=now,
                )
                storage.insert_hold(db, hold, price_in=price.input, price_out=price.output)
                return hold

        return await self._run(write)

    async def settle(
        self,
        hold: Hold,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        receipt_valid: bool,
        status: ReceiptStatus | None = None,
    ) -> Charge:
        """Charge the receipt's tokens and give back the rest of the hold, in one transaction.

        ``status`` is the receipt's (a stopped or failed answer's receipt is charged from its
        counts like any other) and is kept with the charge. An invalid receipt is charged the
        held amount (as if every held token was used) and logged. Settling (or releasing) a
        closed hold changes nothing and returns how it ended.
        """
        if prompt_tokens < 0 or completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        outcome: Outcome = "settled" if receipt_valid else "unverified"
        charge, new, wanted = await self._charge(
            hold,
            outcome,
            (prompt_tokens, completion_tokens),
            status.value if status is not None and receipt_valid else None,
        )
        if new and not receipt_valid:
            log.warning(
                "billing.receipt_invalid",
                request_id=charge.request_id,
                user_id=charge.user_id,
                charged=charge.units,
            )
        elif new and wanted > charge.units:
            log.warning(
                "billing.settle_capped",
                request_id=charge.request_id,
                user_id=charge.user_id,
                held=charge.units,
                wanted=wanted,
            )
        return charge

    async def estimate(self, hold: Hold, completion_tokens: int) -> Charge:
        """Charge the bot's own count when text reached the user but no receipt could be had.

        The prompt is the hold's estimate, the completion ``completion_tokens`` (the caller's
        estimate of the delivered text); outcome ``estimated``, capped at the hold like any
        charge. Settling (or releasing) a closed hold changes nothing and returns how it ended.
        """
        if completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        charge, new, _ = await self._charge(
            hold, "estimated", (hold.prompt_tokens, completion_tokens), None
        )
        if new:
            log.warning(
                "billing.estimated",
                request_id=charge.request_id,
                user_id=charge.user_id,
                charged=charge.units,
            )
        return charge

    async def _charge(
        self,
        hold: Hold,
        outcome: Outcome,
        tokens: tuple[int, int],
        receipt_status: storage.ReceiptStatusValue | None,
    ) -> tuple[Charge, bool, int]:
        """Close the hold with a charge; (the charge, whether it is new, the uncapped units)."""
        now = int(self._clock())

        def write(db: Database) -> tuple[Charge, bool, int]:
            with db.atomic():
                state = _open_state(db, hold)
                if state.charge is not None:
                    return state.charge, False, state.charge.units
                held = state.hold
                price = ModelPrice(state.price_in, state.price_out)
                if outcome == "unverified":
                    prompt, completion = held.prompt_tokens, held.max_completion_tokens
                else:
                    prompt, completion = tokens
                free = min(prompt + completion, held.free_tokens)
                cost = price.cost(prompt, completion)
                wanted = cost - price.free_cover(prompt, completion, free)
                units = min(wanted, held.units)  # the hold is the most a request can cost
                charge = Charge(
                    request_id=held.request_id,
                    user_id=held.user_id,
                    model=held.model,
                    outcome=outcome,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    free_tokens=free,
                    cost=cost - wanted + units,
                    units=units,
                    receipt_status=receipt_status,
                )
                storage.close_hold(db, charge, held.units, now)
                return charge, True, wanted

        return await self._run(write)

    async def release(self, hold: Hold) -> Charge:
        """Give the whole hold back and charge nothing (no receipt, and nothing delivered).

        Releasing (or settling) a closed hold changes nothing and returns how it ended.
        """
        now = int(self._clock())

        def write(db: Database) -> Charge:
            with db.atomic():
                state = _open_state(db, hold)
                if state.charge is not None:
                    return state.charge
                charge = _nothing_charged(state.hold, "released")
                storage.close_hold(db, charge, state.hold.units, now)
                return charge

        return await self._run(write)

    async def recover(self, older_than_seconds: float) -> int:
        """Release every hold still open after ``older_than_seconds`` (left by a crash).

        Run at start-up, before requests are served. Returns how many were released.
        """
        now = int(self._clock())
        cutoff = int(now - older_than_seconds)

        def write(db: Database) -> int:
            with db.atomic():
                holds = storage.open_holds(db, cutoff)
                for hold in holds:
                    storage.close_hold(db, _nothing_charged(hold, "recovered"), hold.units, now)
                return len(holds)

        count = await self._run(write)
        if count:
            log.warning("billing.holds_recovered", count=count)
        return count

    # -- balances and credits ----------------------------------------------------------------

    async def balance(self, user_id: int) -> Balance:
        """The user's balance (µ★, the ledger sum), free tokens left today, and units held."""
        day = utc_day(self._clock())

        def read(db: Database) -> Balance:
            with db.atomic():
                taken = storage.free_tokens_taken(db, user_id, day)
                return Balance(
                    units=storage.balance(db, user_id),
                    free_tokens_left=max(0, self.free_tokens_per_day - taken),
                    held=storage.held(db, user_id),
                )

        return await self._run(read)

    async def history(
        self, user_id: int, limit: int = 10, kinds: tuple[Kind, ...] = HISTORY_KINDS
    ) -> list[LedgerEntry]:
        """The user's newest ledger rows (charges and purchases by default), newest first."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        return await self._run(lambda db: storage.entries(db, user_id, kinds, limit))

    async def credit(
        self, user_id: int, units: int, kind: Kind, source: str, note: str | None = None
    ) -> bool:
        """Write one credit (or, negative, a debit) with a unique ``source`` key.

        Returns False, writing nothing, if ``source`` was already recorded. ``kind`` is one of
        ``CREDIT_KINDS``; request rows (hold, release, usage, free) are written by the
        request methods only.
        """
        if kind not in CREDIT_KINDS:
            raise ValueError(f"credit kind must be one of {sorted(CREDIT_KINDS)}")
        if not source or source.startswith(_REQUEST_SOURCE_PREFIXES):
            raise ValueError("source must be non-empty and not a request's key")
        now = int(self._clock())

        def write(db: Database) -> bool:
            with db.atomic():
                return storage.add_entry(
                    db, user_id, kind, units, source=source, created_at=now, note=note
                )

        return await self._run(write)

    # -- checks and figures ------------------------------------------------------------------

    async def check_invariant(self) -> list[int]:
        """Users whose holds, payments and ledger rows disagree (empty when all is well).

        Checks that every hold has one hold row and, once closed, exactly one release row;
        that usage and free rows exist only for settled holds and match their outcome; that
        every payment has its credit row and every refund its refund row. Balances need no
        check: they are always the ledger sum.
        """
        return await self._run(storage.inconsistent_users)

    async def stats(self) -> BillingStats:
        """Users with ledger rows, active today, tokens used today, Stars received, refunds."""
        day = utc_day(self._clock())
        return await self._run(lambda db: storage.stats(db, day))

    async def _run(self, fn: Callable[[Database], T]) -> T:
        try:
            return await self._store.run(fn)
        except (sqlite3.Error, StorageError) as exc:
            raise LedgerUnavailable("the ledger cannot be used right now") from exc


def _open_state(db: Database, hold: Hold) -> storage.HoldState:
    state = storage.get_hold(db, hold.request_id)
    if state is None or state.hold.user_id != hold.user_id:
        raise BillingError("no such hold")
    return state


def _nothing_charged(hold: Hold, outcome: storage.Outcome) -> Charge:
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
