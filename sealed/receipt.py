r"""Usage receipts: the gateway's signed statement of what one request consumed.

Billing relies on them. The receipt body is canonical JSON, signed with Ed25519 by the gateway's
receipt key (published in its key bundle) over ``b"veil/receipt/v2\\x00" + body``. The exact
signed bytes travel (base64url), as bundles do, so a verifier never re-encodes anything and an
auditor can keep the bytes and check them again later::

    {"receipt": b64url(body), "signature": b64url(64 bytes)}

Every stream ends with one, also a stopped or failed one: ``status`` says which.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from sealed.encoding import (
    b64d,
    b64e,
    canonical_json,
    hex_bytes,
    json_int,
    json_str,
    parse_json_object,
)
from sealed.errors import MalformedMessage, ReceiptInvalid

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

RECEIPT_CONTEXT = b"veil/receipt/v2\x00"
RECEIPT_VERSION = 2
REQUEST_ID_SIZE = 16
CLIENT_ID_SIZE = 8
MAX_MODEL_NAME = 256


class ReceiptStatus(enum.StrEnum):
    """How the stream a receipt belongs to ended."""

    COMPLETE = "complete"  # the model finished (stop, length, …)
    STOPPED = "stopped"  # a cancel, a client hang-up or the gateway's time limit ended it first
    ERROR = "error"  # the model server failed; counts are what was generated before


@dataclass(frozen=True)
class UsageReceipt:
    """Tokens one request used, bound to its request id, model and client.

    ``estimated`` is true when the model server reported no usage: the prompt was then counted
    with its tokenize endpoint or a conservative estimate, and the completion from the deltas.
    ``client`` is the hex id of the client key that signed the request (``client_id``).
    """

    request_id: bytes
    model: str
    prompt_tokens: int
    completion_tokens: int
    status: ReceiptStatus
    estimated: bool = False
    client: str = "0" * (2 * CLIENT_ID_SIZE)

    @property
    def complete(self) -> bool:
        """True when the model finished the answer."""
        return self.status is ReceiptStatus.COMPLETE

    def to_json(self) -> dict[str, Any]:
        """The receipt as a JSON object."""
        return {
            "v": RECEIPT_VERSION,
            "request_id": self.request_id.hex(),
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "status": self.status.value,
            "estimated": self.estimated,
            "client": self.client,
        }

    @classmethod
    def from_bytes(cls, body: bytes) -> UsageReceipt:
        """Parse a receipt body strictly; raise ``MalformedMessage`` on any deviation."""
        value = parse_json_object(body)
        if set(value) != _FIELDS:
            raise MalformedMessage("receipt fields missing or unknown")
        if json_int(value["v"]) != RECEIPT_VERSION:
            raise MalformedMessage("unsupported receipt version")
        estimated = value["estimated"]
        if not isinstance(estimated, bool):
            raise MalformedMessage("receipt estimated flag is not a boolean")
        try:
            status = ReceiptStatus(json_str(value["status"], max_length=16))
        except ValueError as exc:
            raise MalformedMessage("unknown receipt status") from exc
        hex_bytes(value["client"], CLIENT_ID_SIZE)
        return cls(
            request_id=hex_bytes(value["request_id"], REQUEST_ID_SIZE),
            model=json_str(value["model"], max_length=MAX_MODEL_NAME),
            prompt_tokens=json_int(value["prompt_tokens"]),
            completion_tokens=json_int(value["completion_tokens"]),
            status=status,
            estimated=estimated,
            client=str(value["client"]),
        )


_FIELDS = frozenset(UsageReceipt(b"", "", 0, 0, ReceiptStatus.COMPLETE).to_json())


@dataclass(frozen=True)
class SignedReceipt:
    """A receipt with the exact bytes that were signed and the signature over them."""

    receipt: UsageReceipt
    body: bytes
    signature: bytes

    def to_wire(self) -> dict[str, str]:
        """The receipt and signature as they travel in a final record or a receipt reply."""
        return {"receipt": b64e(self.body), "signature": b64e(self.signature)}

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> SignedReceipt:
        """Parse ``{"receipt": b64url, "signature": b64url}`` (the signature is not checked)."""
        body = b64d(json_str(value.get("receipt"), max_length=4096))
        signature = b64d(json_str(value.get("signature"), max_length=128))
        if len(signature) != 64:  # noqa: PLR2004 -- an Ed25519 signature's size
            raise MalformedMessage("receipt signature has the wrong length")
        return cls(UsageReceipt.from_bytes(body), body, signature)

    def verify(
        self, key: ed25519.Ed25519PublicKey, *, request_id: bytes, model: str | None = None
    ) -> None:
        """Raise ``ReceiptInvalid`` unless the receipt key signed it for this request and model."""
        try:
            key.verify(self.signature, RECEIPT_CONTEXT + self.body)
        except InvalidSignature as exc:
            raise ReceiptInvalid("usage receipt signature does not verify") from exc
        if self.receipt.request_id != request_id:
            raise ReceiptInvalid("receipt names another request")
        if model is not None and self.receipt.model != model:
            raise ReceiptInvalid("receipt names another model")


def sign_receipt(receipt: UsageReceipt, key: ed25519.Ed25519PrivateKey) -> SignedReceipt:
    """Encode and sign a receipt with the gateway's receipt key."""
    body = canonical_json(receipt.to_json())
    return SignedReceipt(receipt, body, key.sign(RECEIPT_CONTEXT + body))
