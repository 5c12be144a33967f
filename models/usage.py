"""Usage proofs: what each charge was made from, kept where nothing can change it.

Every charged request (its id is the sealed request id the gateway signed) gets one
``usage_receipts`` row in the transaction that closes its hold: the receipt's exact signed
bytes, the signature and the Ed25519 key it verified under, the operator-signed bundle that
published that key (stored once in ``bundles``), the prices used and what was charged. Both
tables refuse UPDATE and DELETE (triggers), like the ledger, so ``python -m bot audit`` can
check every charge again, offline, years later.

The functions take the ``Database`` of a store call and run inside its transaction; they
return frozen records, never row dicts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.migrations import applied_at

if TYPE_CHECKING:
    from sqlite_utils import Database

    from models.holds import Charge

PROOFS_MIGRATION = "m0004_usage_proofs"


@dataclass(frozen=True, slots=True)
class StoredBundle:
    """An operator-signed key bundle as it was served: exact bytes, signature, operator key.

    ``id`` is the SHA-256 of the bundle bytes (hex), so a bundle is stored once however many
    receipts its key signed.
    """

    body: bytes
    signature: bytes
    operator_key: bytes

    @property
    def id(self) -> str:
        """The bundle's id: SHA-256 of its signed bytes, hex."""
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True, slots=True)
class ReceiptProof:
    """What proves a charge: the receipt's exact signed bytes and what it verified under.

    ``receipt_key`` is the Ed25519 public key the signature verified under and ``bundle`` the
    bundle that published it; both are None for a receipt that did not verify (the charge is
    then ``unverified`` and the bytes are kept for the record).
    """

    body: bytes
    signature: bytes
    receipt_key: bytes | None = None
    bundle: StoredBundle | None = None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One charge as the audit reads it: the proof row, its hold and its two ledger rows.

    ``usage_amount`` and ``free_amount`` are the ``usage:`` and ``free:`` ledger rows (None when
    missing); ``hold_*`` are the hold's own columns, which must agree with the proof row.
    """

    request_id: str
    user_id: int
    model: str
    outcome: str
    receipt: bytes | None
    signature: bytes | None
    receipt_key: bytes | None
    bundle: StoredBundle | None
    price_in: int
    price_out: int
    prompt_tokens: int
    completion_tokens: int
    free_tokens: int
    cost: int
    charged: int
    created_at: int
    usage_amount: int | None
    free_amount: int | None
    hold_prompt_tokens: int | None
    hold_max_completion_tokens: int | None
    hold_units: int | None
    hold_outcome: str | None
    hold_used: tuple[
        int | None, int | None, int | None, int | None
    ]  # prompt, completion, cost, charged


@dataclass(frozen=True, slots=True)
class UnprovenCharge:
    """A charged hold with no proof row: ``legacy`` when it closed before proofs were kept."""

    request_id: str
    user_id: int
    charged: int
    closed_at: int
    legacy: bool


def insert_usage(
    db: Database,
    charge: Charge,
    *,
    prices: tuple[int, int],
    proof: ReceiptProof | None,
    created_at: int,
) -> None:
    """Record a charge's proof row (and its bundle, once), in the write that closes its hold."""
    bundle_id = None
    if proof is not None and proof.bundle is not None:
        bundle_id = proof.bundle.id
        db.execute(
            "INSERT INTO bundles (id, body, signature, operator_key, first_seen)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            [
                bundle_id,
                proof.bundle.body,
                proof.bundle.signature,
                proof.bundle.operator_key,
                created_at,
            ],
        )
    db.execute(
        "INSERT INTO usage_receipts (request_id, user_id, model, outcome, receipt, signature,"
        " receipt_key, bundle_id, price_in, price_out, prompt_tokens, completion_tokens,"
        " free_tokens, cost, charged, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            charge.request_id,
            charge.user_id,
            charge.model,
            charge.outcome,
            None if proof is None else proof.body,
            None if proof is None else proof.signature,
            None if proof is None else proof.receipt_key,
            bundle_id,
            prices[0],
            prices[1],
            charge.prompt_tokens,
            charge.completion_tokens,
            charge.free_tokens,
            charge.cost,
            charge.units,
            created_at,
        ],
    )


_RECORD_QUERY = """
SELECT r.request_id, r.user_id, r.model, r.outcome, r.receipt, r.signature, r.receipt_key,
       b.body, b.signature, b.operator_key,
       r.price_in, r.price_out, r.prompt_tokens, r.completion_tokens, r.free_tokens, r.cost,
       r.charged, r.created_at,
       u.amount, f.amount,
       h.prompt_tokens, h.max_completion_tokens, h.units, h.outcome,
       h.prompt_used, h.completion_used, h.cost, h.charged
FROM usage_receipts r
LEFT JOIN bundles b ON b.id = r.bundle_id
LEFT JOIN ledger u ON u.source = 'usage:' || r.request_id AND u.kind = 'usage'
LEFT JOIN ledger f ON f.source = 'free:' || r.request_id AND f.kind = 'free'
LEFT JOIN holds h ON h.request_id = r.request_id
ORDER BY r.created_at, r.request_id
"""


def usage_records(db: Database) -> list[UsageRecord]:
    """Every proof row with its hold and ledger rows, oldest first."""
    return [_record(row) for row in db.execute(_RECORD_QUERY).fetchall()]


def unproven_charges(db: Database) -> list[UnprovenCharge]:
    """Charged holds without a proof row; ``legacy`` when closed before proofs were kept."""
    since = applied_at(db, PROOFS_MIGRATION)
    rows = db.execute(
        "SELECT h.request_id, h.user_id, h.charged, h.closed_at FROM holds h"
        " LEFT JOIN usage_receipts r ON r.request_id = h.request_id"
        " WHERE h.outcome IN ('settled', 'unverified', 'estimated') AND r.request_id IS NULL"
        " ORDER BY h.closed_at, h.request_id"
    ).fetchall()
    return [
        UnprovenCharge(
            request_id=str(row[0]),
            user_id=int(row[1]),
            charged=int(row[2]),
            closed_at=int(row[3]),
            legacy=since is not None and int(row[3]) <= since,
        )
        for row in rows
    ]


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _optional_bytes(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]


def _record(row: Any) -> UsageRecord:  # noqa: ANN401 -- a sqlite3 row is untyped
    bundle = None
    if row[7] is not None:
        bundle = StoredBundle(
            body=bytes(row[7]), signature=bytes(row[8]), operator_key=bytes(row[9])
        )
    return UsageRecord(
        request_id=str(row[0]),
        user_id=int(row[1]),
        model=str(row[2]),
        outcome=str(row[3]),
        receipt=_optional_bytes(row[4]),
        signature=_optional_bytes(row[5]),
        receipt_key=_optional_bytes(row[6]),
        bundle=bundle,
        price_in=int(row[10]),
        price_out=int(row[11]),
        prompt_tokens=int(row[12]),
        completion_tokens=int(row[13]),
        free_tokens=int(row[14]),
        cost=int(row[15]),
        charged=int(row[16]),
        created_at=int(row[17]),
        usage_amount=_optional_int(row[18]),
        free_amount=_optional_int(row[19]),
        hold_prompt_tokens=_optional_int(row[20]),
        hold_max_completion_tokens=_optional_int(row[21]),
        hold_units=_optional_int(row[22]),
        hold_outcome=None if row[23] is None else str(row[23]),
        hold_used=(
            _optional_int(row[24]),
            _optional_int(row[25]),
            _optional_int(row[26]),
            _optional_int(row[27]),
        ),
    )
