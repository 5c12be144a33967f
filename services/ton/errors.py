"""Errors of the TON payments, part of Veil's tree (drawn in ``services.errors``)."""

from __future__ import annotations

from services.errors import BillingError

__all__ = [
    "MalformedTransfer",
    "PaymentNotAssignable",
    "TonError",
    "ToncenterRateLimited",
    "ToncenterUnavailable",
]


class TonError(BillingError):
    """Paying in Gram or USDT on TON failed or was refused."""


class ToncenterUnavailable(TonError):
    """toncenter could not be asked or gave no usable answer (network, HTTP error, bad JSON)."""


class ToncenterRateLimited(ToncenterUnavailable):
    """toncenter answered 429: ask again later, more slowly."""


class MalformedTransfer(ToncenterUnavailable):
    """A transaction or jetton transfer in toncenter's answer does not have the expected shape."""


class PaymentNotAssignable(TonError):
    """An admin's assignment names no unmatched payment (``reason``: not_found, ambiguous...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"payment not assignable: {reason}")
        self.reason = reason
