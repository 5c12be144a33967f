r"""Usage receipts: the gateway's signed statement of what one request consumed.

Billing relies on them. The signature is Ed25519 by the gateway's receipt key (published in its
key bundle) over ``b"veil/receipt/v1\\x00" + canonical_json(receipt)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from sealed.encoding import canonical_json
from sealed.errors import MalformedMessage, ReceiptInvalid

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

RECEIPT_CONTEXT = b"veil/receipt/v1\x00"


@dataclass(frozen=True)
class UsageReceipt:
    """Tokens one request used, bound to its request id and model.

    ``complete`` is false when the stream ended in an error; the counts are then what was
    generated before it.
    """

    request_id: bytes
    model: str
    prompt_tokens: int
    completion_tokens: int
    complete: bool

    def to_json(self) -> dict[str, Any]:
        """The receipt as a JSON object."""
        return {
            "request_id": self.request_id.hex(),
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, value: object) -> UsageReceipt:
        """Parse a receipt object."""
        if not isinstance(value, dict):
            raise MalformedMessage("receipt is not an object")
        try:
            receipt = cls(
                request_id=bytes.fromhex(str(value["request_id"])),
                model=str(value["model"]),
                prompt_tokens=int(value["prompt_tokens"]),
                completion_tokens=int(value["completion_tokens"]),
                complete=bool(value["complete"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise MalformedMessage("bad receipt") from exc
        if receipt.prompt_tokens < 0 or receipt.completion_tokens < 0:
            raise MalformedMessage("negative token count")
        return receipt

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers."""
        return RECEIPT_CONTEXT + canonical_json(self.to_json())


def sign_receipt(receipt: UsageReceipt, key: ed25519.Ed25519PrivateKey) -> bytes:
    """Sign a receipt with the gateway's receipt key."""
    return key.sign(receipt.signed_bytes())


def verify_receipt(receipt: UsageReceipt, signature: bytes, key: ed25519.Ed25519PublicKey) -> None:
    """Raise ``ReceiptInvalid`` unless ``signature`` is the receipt key's over ``receipt``."""
    try:
        key.verify(signature, receipt.signed_bytes())
    except InvalidSignature as exc:
        raise ReceiptInvalid("usage receipt signature does not verify") from exc
