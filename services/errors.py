"""Veil's errors, one tree under ``VeilError``.

``sealed`` and ``models`` are libraries below this layer with roots of their own
(``SealedError``, ``StorageError``); the services catch those at their boundary and raise one of
these ``from`` them, so callers above (handlers, the bot) deal with this tree alone. A storage
failure is translated in one place, ``storage_failures`` (used as ``ledger_failures()``,
``journal_failures()``), as httpx maps httpcore's errors::

    VeilError
    ├── InferenceError              asking a model failed (``receipt``: the signed usage, if any;
    │   │                           ``retry``: the key its question is kept under for Retry)
    │   ├── InferenceUnavailable    no gateway could take the request
    │   │   ├── InferenceBusy       every gateway that serves the model is at capacity
    │   │   └── GatewayRefused      a gateway refused a relayed request (``status``, ``code``)
    │   ├── UntrustedGateway        no gateway served a bundle that verifies
    │   ├── BackendError            the model server refused or failed (``message`` is its own)
    │   │   └── ContextTooLong      the conversation does not fit the model's window
    │   │       └── QuestionTooLong     the question alone does not (no history left to drop)
    │   ├── ModelStalled            the model stopped sending tokens mid-answer
    │   └── StreamCorrupted         the sealed answer was tampered with, reordered, spliced or cut
    ├── ChatError                   the conversation service refused a request
    │   ├── AnswerInProgress        the user already has an answer streaming
    │   │   └── ErasureInProgress   /forget is erasing the user's data: ask again once it is done
    │   ├── BadRelayRequest         a Mini App's sealed request or its declarations are malformed
    │   └── StoppedBeforeAnswer     a Mini App's answer stopped before its gateway began it
    ├── HistoryUnavailable          the encrypted history could not be read or written
    ├── SettingsUnavailable         the user's settings could not be saved (nothing changed)
    └── BillingError                the money layer refused or failed
        ├── InsufficientCredit      balance and free tokens cannot pay for even a short answer
        ├── OrderRejected           an order cannot be made (``reason`` names why)
        │   ├── UnknownPack         the pack is not (or no longer) sold
        │   ├── NoPlan              no monthly plan is offered
        │   └── TooManyOrders       the user has ``MAX_OPEN_ORDERS`` unpaid orders of the last hour
        ├── RequestIdTaken          a request id from outside (a Mini App's) was held before
        ├── LedgerUnavailable       the ledger could not be read or written
        ├── JournalUnavailable      the payment journal could not be written (do not ack)
        └── TonError                paying in Gram/USDT on TON failed (``services.ton.errors``)
            ├── ToncenterUnavailable    toncenter unreachable, an HTTP error, an unusable answer
            │   ├── ToncenterRateLimited    toncenter answered 429
            │   ├── ToncenterRefused        a 4xx but 408, 421, 425, 429 (the same if asked again)
            │   └── MalformedTransfer       a record in its answer has the wrong shape
            └── PaymentNotAssignable    an admin's assignment names no unmatched payment
                ├── PaymentNotFound         no payment's hash starts so
                ├── PaymentAmbiguous        more than one does
                ├── PaymentNotUnmatched     it is credited already, or dust
                └── PaymentUnpriced         no pack of its asset is sold now: no rate

Messages never contain prompt or answer text, keys or tokens.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from models import StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from models.holds import Charge
    from sealed.bundle import SignedBundle
    from sealed.receipt import SignedReceipt, UsageReceipt


class VeilError(Exception):
    """Root of Veil's own errors."""


class InferenceError(VeilError):
    """Asking a model failed.

    ``signed_receipt`` is the gateway's signed usage receipt when one was had and verified for
    this request (billing charges from it), ``verified_by`` the bundle whose key verified it;
    ``receipt`` is its content. ``retry``: the key ``ChatService`` kept the question under for
    a Retry button (private chats; None where Retry would not help or cannot be pressed).
    """

    signed_receipt: SignedReceipt | None = None
    verified_by: SignedBundle | None = None
    retry: str | None = None  # the key its question is kept under for a Retry button, if it is

    def __init__(
        self,
        message: str,
        *,
        receipt: SignedReceipt | None = None,
        verified_by: SignedBundle | None = None,
    ) -> None:
        super().__init__(message)
        self.signed_receipt = receipt
        self.verified_by = verified_by

    @property
    def receipt(self) -> UsageReceipt | None:
        """The verified receipt's content, or None."""
        return self.signed_receipt.receipt if self.signed_receipt is not None else None


class InferenceUnavailable(InferenceError):
    """No gateway could take the request (down, busy, or not serving the model)."""


class InferenceBusy(InferenceUnavailable):
    """Every gateway that serves the model is at capacity (or our pool to it is full)."""


class GatewayRefused(InferenceUnavailable):
    """A gateway refused a request the bot relayed: its HTTP ``status`` and ``error.code``.

    ``retry_after`` is its ``Retry-After`` seconds, if any. Status 502 with code
    ``unreachable`` means no answer came at all.
    """

    def __init__(self, status: int, code: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"gateway refused the request: HTTP {status} {code}")
        self.status = status
        self.code = code
        self.retry_after = retry_after


class UntrustedGateway(InferenceError):
    """No gateway served a key bundle that verifies against the pinned operator keys."""


class BackendError(InferenceError):
    """The model server refused or failed; ``message`` is its own wording.

    That wording may quote the prompt (vLLM's validation errors do), so logs never show it.
    """

    log_message = False  # common.logs: its message is the model server's, not ours

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        receipt: SignedReceipt | None = None,
        verified_by: SignedBundle | None = None,
    ) -> None:
        super().__init__(
            f"model server error ({status}): {message}", receipt=receipt, verified_by=verified_by
        )
        self.message = message
        self.status = status


class ContextTooLong(BackendError):
    """The conversation does not fit the model's context window."""


class QuestionTooLong(ContextTooLong):
    """The question alone does not fit the model's window: no history is left to drop."""


class ModelStalled(InferenceError):
    """The model stopped sending tokens: the gateway said so, or the bot waited too long.

    ``detected_by`` is ``gateway`` (a sealed ``stalled`` error record) or ``client`` (no
    byte within the bot's read timeout). Not a sign of tampering.
    """

    def __init__(
        self,
        detected_by: str,
        *,
        receipt: SignedReceipt | None = None,
        verified_by: SignedBundle | None = None,
    ) -> None:
        super().__init__(
            f"the model stopped responding ({detected_by})",
            receipt=receipt,
            verified_by=verified_by,
        )
        self.detected_by = detected_by


class StreamCorrupted(InferenceError):
    """The sealed answer failed a check; ``reason`` names which (tampered, truncated, …)."""

    def __init__(
        self,
        reason: str,
        *,
        receipt: SignedReceipt | None = None,
        verified_by: SignedBundle | None = None,
    ) -> None:
        super().__init__(
            f"sealed stream rejected: {reason}", receipt=receipt, verified_by=verified_by
        )
        self.reason = reason


class ChatError(VeilError):
    """The conversation service refused a request."""


class AnswerInProgress(ChatError):
    """The user already has an answer streaming."""


class ErasureInProgress(AnswerInProgress):
    """``/forget`` is erasing the user's data; a question is refused until it is done.

    A kind of ``AnswerInProgress``, so whatever gives back a refused question's Retry prompt
    or Continue button does so for it too; only the user's text differs (``/cancel`` has
    nothing to stop).
    """


class AnswerWithdrawn(ChatError):
    """An answer being sent again lost its row between two of its messages: the rest stays.

    Its user erased everything (``forget``) meanwhile, or another process took the row once
    this one's claim had ended and delivered it. Raised by ``Deliveries.took`` as Telegram
    takes a message, so neither the next message nor the note under the answer goes out;
    ``deliver_undelivered`` takes it as the end of that answer's delivery. Never told a user.
    """


class BadRelayRequest(ChatError):
    """A Mini App's request cannot be relayed: its sealed bytes or what it declares are malformed.

    ``reason`` says which, for the page (never any content: the bot cannot read it).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"bad relay request: {reason}")
        self.reason = reason


class StoppedBeforeAnswer(ChatError):
    """A Mini App's answer was stopped while its gateway had not begun it.

    ``charge``: how its hold was settled; ``settled`` from the gateway's ``stopped`` receipt
    when the gateway had begun the answer after all (its reply slow on the way back), else
    ``released`` (nothing charged). ``settling``: it was still being settled (the gateway slow
    to tell) when the page was answered; ``charge`` is then None.
    """

    charge: Charge | None = None
    settling: bool = False


class HistoryUnavailable(VeilError):
    """The encrypted history could not be read or written (database or key failure)."""


class SettingsUnavailable(VeilError):
    """The user's settings could not be saved (database failure): they stay as they were."""


class BillingError(VeilError):
    """The money layer refused or failed."""


class InsufficientCredit(BillingError):
    """The balance and free tokens cannot pay for even a short answer; nothing was held.

    ``needed`` is what the prompt and the shortest useful answer cost after the free tokens
    left today (``free_tokens_left``), ``balance`` the ledger sum; both in µ★ (1 Star =
    1_000_000), the same figures ``/balance`` shows.
    """

    def __init__(self, needed: int, balance: int, free_tokens_left: int = 0) -> None:
        super().__init__(
            f"insufficient credit: needs {needed} units, balance {balance},"
            f" {free_tokens_left} free tokens left"
        )
        self.needed = needed
        self.balance = balance
        self.free_tokens_left = free_tokens_left


class OrderRejected(BillingError):
    """An order cannot be made; ``reason`` is its code (each subclass has its own text)."""

    reason = "rejected"

    def __init__(self) -> None:
        super().__init__(f"order rejected: {self.reason}")


class UnknownPack(OrderRejected):
    """The pack asked for is not (or no longer) sold: an old button, or edited data."""

    reason = "unknown_pack"


class NoPlan(OrderRejected):
    """The monthly plan was asked for, but none is offered."""

    reason = "no_plan"


class TooManyOrders(OrderRejected):
    """The user has as many unpaid, unexpired orders as one may (``services.shop``).

    Each press of a pack's button stores an order; without a bound, a user (or a script)
    pressing it thousands of times fills the database with rows kept for days.
    """

    reason = "too_many_orders"


class RequestIdTaken(BillingError):
    """A request id made outside the bot (a Mini App's) already has a hold: it is not fresh."""


class LedgerUnavailable(BillingError):
    """The ledger could not be read or written (a database failure)."""


class JournalUnavailable(BillingError):
    """The payment journal could not be written: the update must not be acknowledged."""


@contextlib.contextmanager
def storage_failures(error: type[VeilError], message: str) -> Iterator[None]:
    """Raise ``error(message)`` from a ``StorageError`` the block raises; let all else through.

    The one place the services turn the storage layer's failures into this tree.
    """
    try:
        yield
    except StorageError as exc:
        raise error(message) from exc


def ledger_failures() -> contextlib.AbstractContextManager[None]:
    """A storage failure inside the block is ``LedgerUnavailable``."""
    return storage_failures(LedgerUnavailable, "the ledger cannot be used right now")


def history_failures(doing: str) -> contextlib.AbstractContextManager[None]:
    """A storage failure inside the block is ``HistoryUnavailable`` (``doing`` says what)."""
    return storage_failures(HistoryUnavailable, doing)


def settings_failures() -> contextlib.AbstractContextManager[None]:
    """A storage failure inside the block is ``SettingsUnavailable``: the choice was not saved."""
    return storage_failures(SettingsUnavailable, "cannot save the user's settings")


def journal_failures() -> contextlib.AbstractContextManager[None]:
    """A storage failure inside the block is ``JournalUnavailable`` (do not acknowledge)."""
    return storage_failures(JournalUnavailable, "the payment journal cannot be used right now")
