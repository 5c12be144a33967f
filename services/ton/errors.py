"""Errors of the TON payments, part of Veil's tree (drawn in ``services.errors``)."""

from __future__ import annotations

from services.errors import BillingError

__all__ = [
    "GetMethodFailed",
    "MalformedTransfer",
    "PaymentAmbiguous",
    "PaymentNotAssignable",
    "PaymentNotFound",
    "PaymentNotUnmatched",
    "PaymentUnpriced",
    "TonError",
    "ToncenterRateLimited",
    "ToncenterRefused",
    "ToncenterTooLarge",
    "ToncenterUnavailable",
]


class TonError(BillingError):
    """Paying in Gram or USDT on TON failed or was refused."""


class ToncenterUnavailable(TonError):
    """toncenter could not be asked or gave no usable answer (network, HTTP error, bad JSON)."""


class ToncenterRateLimited(ToncenterUnavailable):
    """toncenter answered 429: ask again later, more slowly.

    ``retry_after``: the seconds its ``Retry-After`` asked to wait (capped), None without one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ToncenterRefused(ToncenterUnavailable):
    """toncenter refused the request itself (an HTTP 4xx other than 429): the same if asked again.

    A key it does not know (401, 403), an endpoint it does not serve (404: an indexer without
    a jetton index), parameters it does not take (422); an indexer that ignores ``offset``. A
    5xx, a timeout, a cut connection, a body that is no JSON (a proxy's error page) or a 4xx
    that asks to be sent again (408, 421, 425) may pass: ``ToncenterUnavailable``.
    """


class ToncenterTooLarge(ToncenterUnavailable):
    """toncenter's answer was larger than the client reads (``toncenter.MAX_BODY``).

    A page of records a payer can fill: each may carry a message body of up to 256 KiB (TON's
    message limit), so a page of fewer records fits (``services.ton.reader`` asks again so).
    """


class GetMethodFailed(ToncenterUnavailable):
    """toncenter ran a get-method and the contract threw (an exit code from 2 to 65535).

    Not a failure of toncenter's: asked again, the same contract gives the same answer. A
    negative exit code (the VM's or the liteserver's own) is ``ToncenterUnavailable``.
    """

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"toncenter: the get-method failed (exit code {exit_code})")
        self.exit_code = exit_code


class MalformedTransfer(ToncenterUnavailable):
    """A transaction or jetton transfer in toncenter's answer does not have the expected shape."""


class PaymentNotAssignable(TonError):
    """An admin's assignment names no unmatched payment; ``reason`` is its code."""

    reason = "not_assignable"

    def __init__(self) -> None:
        super().__init__(f"payment not assignable: {self.reason}")


class PaymentNotFound(PaymentNotAssignable):
    """No recorded payment's hash starts with the digits given (or they are not 8 hex digits)."""

    reason = "not_found"


class PaymentAmbiguous(PaymentNotAssignable):
    """More than one recorded payment's hash starts with the digits given."""

    reason = "ambiguous"


class PaymentNotUnmatched(PaymentNotAssignable):
    """The payment is credited already, or dust: only an unmatched one can be assigned."""

    reason = "not_unmatched"


class PaymentUnpriced(PaymentNotAssignable):
    """No pack of the payment's asset is sold now (USDT turned off): it has no rate to take."""

    reason = "unpriced"
