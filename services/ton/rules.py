"""How the TON books judge a transfer, credit it and check it: the rules, without the I/O.

What happens to a new transfer (``judge``):

- below the asset's dust minimum: recorded ``dust``, never credited;
- its comment names an order of the same asset that is not paid in full yet: ``credited``
  with what actually arrived at the order's rate (``underpaid`` or ``overpaid`` when it is not
  the exact rest; ``late`` after the order expired — credited all the same);
- no comment, a comment that names no order (or one for the other asset, or two orders), or
  an order already paid in full: recorded ``unmatched`` for the admins, who can ``assign`` it
  to a user (at the rate of the order it named, or of the one of two it most likely paid,
  ``assigned_order``, else at the cheapest pack's).

Every credit is one ledger row written by ``credit``; ``payment_problems`` is what the audit
finds wrong with a credited one. The functions take the ``Database`` of a store call and run
inside its transaction.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from models import ledger
from models import ton as storage
from models.ledger import LedgerEntry
from models.ton import LEDGER_PREFIX, TonOrder, TonPayment
from services.errors import BillingError
from services.ton.shop import comment_order_ids, format_amount

if TYPE_CHECKING:
    from collections.abc import Mapping

    from models import Database
    from models.ton import Asset
    from services.ton.chain import Transfer

__all__ = ["assigned_order", "credit", "judge", "payment_problems"]


def judge(db: Database, transfer: Transfer, dust: Mapping[Asset, int], now: int) -> TonPayment:
    """The payment a new transfer is recorded as: ``dust``, ``credited`` or ``unmatched``."""
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
        return replace(payment, reason=order)
    payment = replace(payment, order_id=order.id, user_id=order.user_id)
    if order.asset != transfer.asset:
        return replace(payment, reason="wrong_asset")
    before = storage.received(db, order.id)
    if before >= order.amount:
        return replace(payment, reason="already_paid")
    total = before + transfer.amount
    reason = None
    if total < order.amount:
        reason = "underpaid"
    elif total > order.amount:
        reason = "overpaid"
    return replace(
        payment,
        status="credited",
        reason=reason,
        late=transfer.utime > order.expires_at,
        units=transfer.amount * order.units // order.amount,
        rate_amount=order.amount,
        rate_units=order.units,
        credited_at=now,
    )


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

    Its µ★ must be its amount at its stored rate, and a payment matched by its comment must
    have been credited at its order's rate, to that order's user.
    """
    found: list[str] = []
    if payment.rate_amount is None or payment.rate_units is None:
        return ["credited without a stored rate"]
    expected = payment.amount * payment.rate_units // payment.rate_amount
    if payment.units != expected:
        found.append(f"credited {payment.units} µ★, its amount at its rate is {expected}")
    if payment.assigned_by is None:
        if order is None:
            found.append("credited by comment, but its order is missing")
        elif (order.amount, order.units, order.user_id, order.asset) != (
            payment.rate_amount,
            payment.rate_units,
            payment.user_id,
            payment.asset,
        ):
            found.append("its rate, user or asset is not its order's")
    return found
