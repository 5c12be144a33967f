"""How the TON books judge a transfer, credit it and check it: the rules, without the I/O.

What happens to a new transfer (``judge``):

- below the asset's dust minimum: recorded ``dust``, never credited;
- its comment names an order of the same asset: ``credited`` with what actually arrived
  (``late`` after the order expired — credited all the same). A part that leaves the order
  short (``underpaid``), or one that comes after it was paid in full (``already_paid``: paid
  twice, or topped up), at the rate that part buys as a pack (``_pack_rate``: the best of the
  packs sold it pays for, else the smallest pack's; never above the order's): a larger pack's
  rate is for its price. The payment that pays it in full (``overpaid`` past it) at the
  order's rate for all the order's payments brought to it, less what the parts credited: the
  pack's credit exactly, and any more at its rate;
- its comment names an order of the other asset (``wrong_asset``): ``credited`` to the order's
  user at what it buys as a pack of its own asset (``_bought``), paying no part of the order;
  kept ``unmatched`` while none of its asset is sold (no rate);
- those beside the order's own (``BESIDE``: a part, one after it was paid, one in the other
  asset) under a tenth of the asset's cheapest pack are credited without a message
  (``quiet_below``): anyone who read an order's id on the chain could otherwise send its user a
  message for each payment of dust;
- no comment (or a body too large to hold one, not read: ``body_too_large``), a comment that
  names no order (or two orders): recorded ``unmatched`` for the admins, who can ``assign`` it
  to a user (at the rate of the order it named, or of the one of two it most likely paid,
  ``assigned_order``, else at the cheapest pack's).

Every credit is one ledger row written by ``credit``; ``payment_problems`` is what the audit
finds wrong with a credited one. The functions take the ``Database`` of a store call and run
inside its transaction.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING

from models import ledger
from models import ton as storage
from models.ledger import LedgerEntry
from models.ton import LEDGER_PREFIX, TonOrder, TonPayment
from services.errors import BillingError
from services.ton.shop import comment_order_ids, format_amount

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from models import Database
    from models.ton import Asset
    from services.ton.chain import Transfer

__all__ = [
    "BESIDE",
    "assigned_order",
    "credit",
    "judge",
    "order_problems",
    "payment_problems",
    "quiet_below",
]

# The payments beside an order's own, credited at a rate of their own (``_pack_rate``,
# ``_bought``): a part that left it short, one after it was paid, one in the other asset.
BESIDE = frozenset({"underpaid", "already_paid", "wrong_asset"})
# A payment beside its order's own under this share of the asset's cheapest pack is credited
# without a message (``quiet_below``).
QUIET_SHARE = 10


def judge(
    db: Database,
    transfer: Transfer,
    dust: Mapping[Asset, int],
    now: int,
    packs: Sequence[tuple[int, int]] = (),
) -> TonPayment:
    """The payment a new transfer is recorded as: ``dust``, ``credited`` or ``unmatched``.

    ``packs``: (amount, µ★) of each of the asset's packs sold now, cheapest first, for the rate
    of a payment that pays a part of its order, or more after it was paid (none: the order's).
    """
    payment = TonPayment(
        hash=transfer.hash,
        asset=transfer.asset,
        lt=transfer.lt,
        utime=transfer.utime,
        sender=transfer.sender,
        amount=transfer.amount,
        comment=transfer.comment,
        order_id=None,
        status="unmatched",
        reason=None,
        late=False,
        user_id=None,
        units=0,
        created_at=now,
    )
    if transfer.amount < dust.get(transfer.asset, 0):
        return replace(payment, status="dust", reason="dust")
    order, named = _named_order(db, transfer.comment)
    payment = replace(payment, named=named)
    if isinstance(order, str):
        # A body too large to hold a comment was not read: it named no order we know of.
        return replace(payment, reason="body_too_large" if transfer.unread else order)
    payment = replace(payment, order_id=order.id, user_id=order.user_id)
    if order.asset != transfer.asset:
        # Its payer meant it for the order: it buys what it buys in its own asset, as a pack
        # (none of that asset sold now: no rate, the admins' to price). The order is not paid
        # by it (``received`` counts its own asset only).
        bought = _bought(transfer.amount, packs)
        if bought is None:
            return replace(payment, reason="wrong_asset")
        reason: str | None = "wrong_asset"
        rate = bought
        units = transfer.amount * rate[1] // rate[0]
    else:
        before = storage.received(db, order.id)
        total = before + transfer.amount
        rate = (order.amount, order.units)
        if total < order.amount or before >= order.amount:
            reason = "underpaid" if total < order.amount else "already_paid"
            rate = _pack_rate(order, transfer.amount, packs)
            units = transfer.amount * rate[1] // rate[0]
        else:
            reason = "overpaid" if total > order.amount else None
            units = total * order.units // order.amount - storage.credited_units(db, order.id)
    return replace(
        payment,
        status="credited",
        reason=reason,
        late=transfer.utime > order.expires_at,
        units=units,
        rate_amount=rate[0],
        rate_units=rate[1],
        credited_at=now,
        # A payment beside the order's own (a part, one after it, one in the other asset)
        # is credited quietly below the floor: anyone who read the order's id on the chain
        # could otherwise send its user a message for each dust payment (review30).
        notified=reason in BESIDE and transfer.amount < quiet_below(packs),
    )


def quiet_below(packs: Sequence[tuple[int, int]]) -> int:
    """The amount under which a payment beside its order's own is credited without a message.

    ``packs``: (amount, µ★) of the payment's asset's packs sold now, cheapest first. A tenth
    of the cheapest's price: a message then costs its sender that much, all of it credited to
    the user it goes to (who is told the floor with each such payment told). None of the asset
    sold now: the dust minimum is the only floor (0 here).
    """
    return packs[0][0] // QUIET_SHARE if packs else 0


def _pack_rate(order: TonOrder, amount: int, packs: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The rate ``amount`` buys as a pack: the best of those it pays for, else the smallest's.

    Never above ``order``'s (a smaller pack may sell a little dearer, set by hand so). A part
    of a larger pack paid and left there buys what a pack of its price would, no more.
    """
    rate = (order.amount, order.units)
    best = _bought(amount, packs) or rate
    return best if _below(best, rate) else rate


def _bought(amount: int, packs: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """The best rate of the packs ``amount`` pays for, else the smallest's; None without packs."""
    fits = [pack for pack in packs if pack[0] <= amount] or list(packs[:1])
    return max(fits, key=lambda pack: Fraction(pack[1], pack[0]), default=None)


def _below(rate: tuple[int, int], other: tuple[int, int]) -> bool:
    """Whether (amount, µ★) ``rate`` buys less a unit than ``other``."""
    return rate[1] * other[0] < other[1] * rate[0]


def _named_order(db: Database, comment: str | None) -> tuple[TonOrder | str, tuple[str, ...]]:
    """The one order a payer's comment names, else why none; and the ids of all it names.

    Words naming two orders or more name none: whichever the payer meant, another may be
    another user's, and the admins decide (``two_orders``). The ids are kept with the payment
    (its comment is cut, and they may come after the cut) and shown in ``/stats``.
    """
    named = comment_order_ids(comment or "")
    if not named:
        return "no_comment", ()
    orders = (storage.get_order(db, order_id) for order_id in named)
    found = {order.id: order for order in orders if order is not None}
    ids = tuple(found)
    if not found:
        return "unknown_comment", ids
    if len(found) > 1:
        return "two_orders", ids
    (order,) = found.values()
    return order, ids


def assigned_order(db: Database, payment: TonPayment, user_id: int) -> TonOrder | None:
    """The order whose rate an admin's assignment of ``payment`` to ``user_id`` credits at.

    A payment matched to one order: that order, when it is of the payment's asset. One whose
    comment named two orders or more (``two_orders``): of the named orders still stored and of
    its asset, ``user_id``'s own if any, the one whose price is nearest what arrived (the pack
    the payer most likely paid for; the first named on a tie). None: no order sets the rate.
    """
    if payment.order_id is not None:
        order = storage.get_order(db, payment.order_id)
        return order if order is not None and order.asset == payment.asset else None
    if payment.reason != "two_orders":
        return None
    orders = [storage.get_order(db, order_id) for order_id in payment.named]
    named = [o for o in orders if o is not None and o.asset == payment.asset]
    candidates = [o for o in named if o.user_id == user_id] or named
    return min(candidates, key=lambda o: abs(o.amount - payment.amount), default=None)


def credit(db: Database, payment: TonPayment, now: int) -> None:
    """The one place a TON payment reaches the ledger: a purchase row, ``ton:<hash>``."""
    if payment.user_id is None:  # pragma: no cover -- callers credit only named users
        raise BillingError("a credit needs a user")
    entry = LedgerEntry(
        payment.user_id,
        "purchase",
        payment.units,
        LEDGER_PREFIX + payment.hash,
        now,
        note=format_amount(payment.asset, payment.amount),
    )
    if not ledger.record(db, entry):
        raise BillingError("the transaction hash is already a ledger source")


def payment_problems(payment: TonPayment, order: TonOrder | None) -> list[str]:
    """What the audit finds wrong with one credited payment (empty when it adds up).

    Its µ★ must be its amount at its stored rate; a payment matched by its comment must have
    been credited to its order's user, in its asset, at no more than its order's rate (a part
    of it, or one after it was paid, at what it buys as a pack), and the one that paid the
    order in full at that rate (its µ★: ``order_problems``, with the order's other payments).
    One in the other asset than its order's must say so (``wrong_asset``): its rate is what it
    bought as a pack of its own asset then, which no order's rate bounds.
    """
    if payment.rate_amount is None or payment.rate_units is None:
        return ["credited without a stored rate"]
    rate = (payment.rate_amount, payment.rate_units)
    found: list[str] = []
    expected = payment.amount * rate[1] // rate[0]
    if payment.units != expected and (payment.assigned_by is not None or _part(payment, order)):
        found.append(f"credited {payment.units} µ★, its amount at its rate is {expected}")
    if payment.assigned_by is None:
        other = order is not None and order.asset != payment.asset
        if order is None:
            found.append("credited by comment, but its order is missing")
        elif order.user_id != payment.user_id or other != (payment.reason == "wrong_asset"):
            found.append("its user or asset is not its order's")
        elif other:  # at what it buys in its own asset: the order's rate counts another
            pass
        elif _below((order.amount, order.units), rate):
            found.append("credited above its order's rate")
        elif not _part(payment, order) and rate != (order.amount, order.units):
            found.append("it paid its order in full at another rate than its order's")
    return found


def order_problems(order: TonOrder, payments: Sequence[TonPayment]) -> list[str]:
    """What the audit finds wrong with what an order's payments credited together.

    ``payments``: those credited by its comment. Paid in full, those up to the one that paid
    it credited all they brought at the order's rate (the parts that left it short at a lower
    one, the payment that paid it the rest); or, as booked before the parts were (review29a),
    each its own amount at the order's rate. Those after it (``already_paid``), and those in
    the other asset (``wrong_asset``), are each checked alone.
    """
    payments = [
        payment
        for payment in payments
        if payment.reason != "already_paid" and payment.asset == order.asset
    ]
    arrived = sum(payment.amount for payment in payments)
    if arrived < order.amount:
        return []  # each a part: its amount at its rate (``payment_problems``)
    credited = sum(payment.units for payment in payments)
    expected = arrived * order.units // order.amount
    each = all(p.units == p.amount * order.units // order.amount for p in payments)
    if credited == expected or each:
        return []
    return [f"its payments credited {credited} µ★, all they brought at its rate is {expected}"]


def _part(payment: TonPayment, order: TonOrder | None) -> bool:
    """Whether a payment was credited at a rate of its own (``_pack_rate``), not by its order.

    One that left its order short when it came, came after it was paid in full, or was in the
    other asset (``BESIDE``).
    """
    return order is None or payment.reason in BESIDE
