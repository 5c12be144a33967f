"""Proving charges: the proof kept with each one, and the audit that checks them all again.

When an answer is settled, ``proof_for`` keeps the receipt's exact signed bytes with the
receipt key they verified under and the operator-signed bundle that published that key.
``Auditor.run`` reads every charge back (``models.usage``) and checks, offline:

- the bundle verifies under a pinned operator key and publishes the receipt key;
- the receipt verifies under that key, names the charge's request id and model, and counts
  exactly the tokens charged;
- the gross cost is the stored prices times the tokens, the charge is that cost less the free
  tokens (prompt first), and the ledger's ``usage:`` and ``free:`` rows and the hold agree;
- an ``estimated`` charge (no receipt could be had) used the hold's prompt and no more answer
  tokens than were held.

A charge that fails any check, an ``unverified`` one (charged without a valid receipt) and a
charge with no proof row at all are problems; charges closed before proofs were kept are
counted apart as legacy.

Credit no payment stands behind (``grant`` rows: no code path writes one, so each was written
by hand) is totalled apart, so none passes unseen. Gram and USDT payments are checked too:
each credited one is its amount at its stored rate (its order's, or for a part that left its
order short, or came after it was paid, what its amount buys as a pack; an admin's
assignment's), the payments that paid an order in full credited all they brought at its rate,
and each has exactly its ledger row (``services.ton.rules.payment_problems``,
``order_problems``;
``models.ton.inconsistent_users``, part of ``models.stats.inconsistent_users``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from models import ledger, orders, stats, ton, usage
from models.usage import ReceiptProof, StoredBundle
from sealed.bundle import BUNDLE_CONTEXT, KeyBundle
from sealed.encoding import parse_json_object
from sealed.errors import MalformedMessage, ReceiptInvalid
from sealed.receipt import SignedReceipt, UsageReceipt
from services.errors import ledger_failures
from services.prices import ModelPrice
from services.ton.rules import order_problems, payment_problems

if TYPE_CHECKING:
    from collections.abc import Collection

    from models import Database, Store
    from models.orders import Payment
    from models.ton import SkippedTransfer, TonOrder, TonPayment, TonTotals
    from models.usage import UnprovenCharge, UsageRecord
    from sealed.bundle import SignedBundle

__all__ = ["AuditReport", "Auditor", "proof_for"]


def proof_for(receipt: SignedReceipt, verified_by: SignedBundle | None) -> ReceiptProof:
    """The proof to keep with a charge: the signed bytes and the bundle whose key verified them.

    ``verified_by`` is the bundle the receipt was verified under (by the inference client or the
    Mini App's relay); a receipt that verified under none is kept without a key (the audit will
    say so).
    """
    if verified_by is None:
        return ReceiptProof(receipt.body, receipt.signature)
    bundle = StoredBundle(verified_by.body, verified_by.signature, verified_by.operator_key)
    return ReceiptProof(receipt.body, receipt.signature, verified_by.bundle.receipt_key, bundle)


@dataclass
class AuditReport:
    """What the audit found: totals, and one line per problem (none when every charge proves)."""

    charges: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    gross: int = 0  # µ★: the usage rows
    charged: int = 0  # µ★: what users paid after free tokens
    legacy: int = 0
    legacy_charged: int = 0
    payments: int = 0
    stars_received: int = 0
    ton: TonTotals | None = None  # Gram and USDT payments
    # USDT transfers set aside: their sender's wallet could not be proven the master's
    ton_unproven: list[SkippedTransfer] = field(default_factory=list)
    # Gram that came with a jetton message (never a payment), kept for a person to look at
    ton_jetton_gram: list[SkippedTransfer] = field(default_factory=list)
    grants: int = 0  # ledger rows of kind grant: credit no payment proves
    granted: int = 0  # µ★ they add
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every charge proved."""
        return not self.problems


class Auditor:
    """Re-verifies every charge in the database against the pinned operator keys."""

    def __init__(self, store: Store, operator_keys: Collection[bytes]) -> None:
        self._store = store
        self._operator_keys = frozenset(operator_keys)

    async def run(self) -> AuditReport:
        """Check every charge; the report lists totals and problems."""
        with ledger_failures():
            books = await self._store.read(_read)
        report = AuditReport()
        for record in books.records:
            report.charges += 1
            report.by_outcome[record.outcome] = report.by_outcome.get(record.outcome, 0) + 1
            report.prompt_tokens += record.prompt_tokens
            report.completion_tokens += record.completion_tokens
            report.gross += record.cost
            report.charged += record.charged
            report.problems.extend(
                f"charge {record.request_id} (user {record.user_id}): {problem}"
                for problem in self.problems(record)
            )
        for charge in books.unproven:
            if charge.legacy:
                report.legacy += 1
                report.legacy_charged += charge.charged
            else:
                report.problems.append(
                    f"charge {charge.request_id} (user {charge.user_id}): no proof row"
                )
        report.problems.extend(
            f"user {user}: holds, payments and ledger rows disagree" for user in books.inconsistent
        )
        report.payments = len(books.payments)
        report.stars_received = sum(payment.stars for payment in books.payments)
        by_order: dict[str, tuple[TonOrder, list[TonPayment]]] = {}
        for payment, order in books.ton_payments:
            report.problems.extend(
                f"ton payment {payment.hash} (user {payment.user_id}): {problem}"
                for problem in payment_problems(payment, order)
            )
            if order is not None and payment.assigned_by is None:
                by_order.setdefault(order.id, (order, []))[1].append(payment)
        for order, paid in by_order.values():
            report.problems.extend(
                f"ton order {order.id} (user {order.user_id}): {problem}"
                for problem in order_problems(order, paid)
            )
        report.ton = books.ton_totals
        report.ton_unproven = books.ton_unproven
        report.ton_jetton_gram = books.ton_jetton_gram
        report.grants, report.granted = books.grants
        return report

    def problems(self, record: UsageRecord) -> list[str]:
        """Every check one charge fails (empty when it proves)."""
        found = _arithmetic_problems(record)
        if record.outcome == "estimated":
            if record.receipt is not None:
                found.append("an estimated charge has a receipt")
            if record.prompt_tokens != record.hold_prompt_tokens or record.completion_tokens > (
                record.hold_max_completion_tokens or 0
            ):
                found.append("the estimate exceeds what was held")
            return found
        if record.outcome == "unverified":
            found.append("charged without a valid receipt")
            return found
        found.extend(self._receipt_problems(record))
        return found

    def _receipt_problems(self, record: UsageRecord) -> list[str]:
        if record.receipt is None or record.signature is None:
            return ["no receipt stored"]
        if record.receipt_key is None:
            return ["no receipt key stored"]
        found = self._bundle_problems(record.bundle, record.receipt_key)
        try:
            receipt = UsageReceipt.from_bytes(record.receipt)
            signed = SignedReceipt(receipt, record.receipt, record.signature)
            signed.verify(
                ed25519.Ed25519PublicKey.from_public_bytes(record.receipt_key),
                request_id=bytes.fromhex(record.request_id),
                model=record.model,
            )
        except (MalformedMessage, ReceiptInvalid, ValueError) as exc:
            return [*found, f"the receipt does not verify ({exc})"]
        if (receipt.prompt_tokens, receipt.completion_tokens) != (
            record.prompt_tokens,
            record.completion_tokens,
        ):
            found.append(
                f"the receipt counts {receipt.prompt_tokens}+{receipt.completion_tokens} tokens,"
                f" the charge {record.prompt_tokens}+{record.completion_tokens}"
            )
        return found

    def _bundle_problems(self, stored: StoredBundle | None, receipt_key: bytes) -> list[str]:
        if stored is None:
            return ["no bundle binds the receipt key to the operator"]
        if stored.operator_key not in self._operator_keys:
            return ["the bundle is signed by an operator key that is not pinned"]
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(stored.operator_key).verify(
                stored.signature, BUNDLE_CONTEXT + stored.body
            )
            bundle = KeyBundle.from_json(parse_json_object(stored.body))
        except (InvalidSignature, MalformedMessage, ValueError):
            return ["the bundle's signature does not verify"]
        if bundle.receipt_key != receipt_key:
            return ["the bundle does not publish the receipt key"]
        return []


def _arithmetic_problems(record: UsageRecord) -> list[str]:
    """Prices times tokens, free tokens, ledger rows and the hold: do they all agree?"""
    found: list[str] = []
    price = ModelPrice(record.price_in, record.price_out)
    cost = price.cost(record.prompt_tokens, record.completion_tokens)
    if record.cost != cost:
        found.append(f"cost {record.cost} is not {cost} at the stored prices")
    free = min(record.free_tokens, record.prompt_tokens + record.completion_tokens)
    payable = price.payable(record.prompt_tokens, record.completion_tokens, free)
    if record.charged != payable:
        found.append(f"charged {record.charged}, the tokens after free ones cost {payable}")
    if record.usage_amount != -record.cost:
        found.append(f"the usage row is {record.usage_amount}, not {-record.cost}")
    if (record.free_amount or 0) != record.cost - record.charged:
        found.append(f"the free row is {record.free_amount}, not {record.cost - record.charged}")
    used = (record.prompt_tokens, record.completion_tokens, record.cost, record.charged)
    if record.hold_outcome != record.outcome or record.hold_used != used:
        found.append("the hold does not agree with the charge")
    return found


@dataclass(frozen=True)
class _Books:
    """Everything the audit reads, in one snapshot."""

    records: list[UsageRecord]
    unproven: list[UnprovenCharge]
    inconsistent: list[int]  # holds, payments (Stars, Gram, USDT) and ledger rows disagree
    payments: list[Payment]
    ton_payments: list[tuple[TonPayment, TonOrder | None]]
    ton_totals: TonTotals
    ton_unproven: list[SkippedTransfer]
    ton_jetton_gram: list[SkippedTransfer]
    grants: tuple[int, int]


def _read(db: Database) -> _Books:
    return _Books(
        records=usage.usage_records(db),
        unproven=usage.unproven_charges(db),
        inconsistent=stats.inconsistent_users(db),
        payments=orders.all_payments(db),
        ton_payments=ton.credited_with_orders(db),
        ton_totals=ton.totals(db),
        ton_unproven=ton.unproven(db),
        ton_jetton_gram=ton.jetton_gram(db),
        grants=ledger.grants(db),
    )
