"""Veil's errors, one tree under ``VeilError``.

``sealed`` and ``models`` are libraries below this layer with roots of their own
(``SealedError``, ``StorageError``); the services catch those at their boundary and raise one of
these ``from`` them, so callers above (handlers, the bot) deal with this tree alone::

    VeilError
    ├── InferenceError              asking a model failed
    │   ├── InferenceUnavailable    no gateway could take the request
    │   ├── UntrustedGateway        no gateway served a bundle that verifies
    │   ├── BackendError            the model server refused or failed (``message`` is its own)
    │   │   └── ContextTooLong      the conversation does not fit the model's window
    │   └── StreamCorrupted         the sealed answer was tampered with, reordered, spliced or cut
    ├── ChatError                   the conversation service refused a request
    │   └── AnswerInProgress        the user already has an answer streaming
    ├── HistoryUnavailable          the encrypted history could not be read or written
    └── BillingError                the money layer refused or failed
        ├── InsufficientCredit      the balance cannot cover a request's most possible cost
        ├── OrderRejected           an order cannot be made (``reason``: unknown_pack, no_plan)
        └── LedgerUnavailable       the ledger could not be read or written

Messages never contain prompt or answer text, keys or tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sealed.receipt import UsageReceipt


class VeilError(Exception):
    """Root of Veil's own errors."""


class InferenceError(VeilError):
    """Asking a model failed; ``receipt`` holds the signed usage when the gateway sent one."""

    receipt: UsageReceipt | None = None


class InferenceUnavailable(InferenceError):
    """No gateway could take the request (down, busy, or not serving the model)."""


class UntrustedGateway(InferenceError):
    """No gateway served a key bundle that verifies against the pinned operator keys."""


class BackendError(InferenceError):
    """The model server refused or failed; ``message`` is its own wording."""

    def __init__(
        self, message: str, *, status: int | None = None, receipt: UsageReceipt | None = None
    ) -> None:
        super().__init__(f"model server error ({status}): {message}")
        self.message = message
        self.status = status
        self.receipt = receipt


class ContextTooLong(BackendError):
    """The conversation does not fit the model's context window."""


class StreamCorrupted(InferenceError):
    """The sealed answer failed a check; ``reason`` names which (tampered, truncated, …)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"sealed stream rejected: {reason}")
        self.reason = reason


class ChatError(VeilError):
    """The conversation service refused a request."""


class AnswerInProgress(ChatError):
    """The user already has an answer streaming."""


class HistoryUnavailable(VeilError):
    """The encrypted history could not be read or written (database or key failure)."""


class BillingError(VeilError):
    """The money layer refused or failed."""


class InsufficientCredit(BillingError):
    """The balance cannot cover a request's most possible cost; nothing was held.

    ``needed`` and ``balance`` are in µ★ (1 Star = 1_000_000).
    """

    def __init__(self, needed: int, balance: int) -> None:
        super().__init__(f"insufficient credit: needs {needed} units, balance {balance}")
        self.needed = needed
        self.balance = balance


class OrderRejected(BillingError):
    """An order cannot be made; ``reason`` is a code the bot turns into a text."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"order rejected: {reason}")
        self.reason = reason


class LedgerUnavailable(BillingError):
    """The ledger could not be read or written (a database failure)."""
