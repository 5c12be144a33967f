"""Errors of the sealed protocol.

``sealed`` is a library below the services layer, so it has its own root; the services turn
these into ``VeilError`` subclasses at their boundary. Messages never hold plaintext or keys.

    SealedError
    ├── MalformedMessage        bytes that do not parse as the protocol's framing
    ├── BundleError             a key bundle that must not be trusted
    │   ├── BundleUnsigned
    │   ├── BundleBadSignature
    │   ├── BundleUnpinned      signed by an operator key that is not pinned
    │   ├── BundleExpired       outside its not-before / not-after window
    │   │   └── BundleNotYetValid   before it: a clock (this one or the gateway's) is off
    │   └── BundleKeyMismatch   the key id does not belong to the bundle's public key
    ├── RequestError            a sealed request the gateway refuses
    │   ├── Unauthenticated     no valid client signature, or a cancel/receipt proof that fails
    │   ├── UnknownKey          sealed to a key id this gateway does not hold (or no longer)
    │   ├── OpenFailed          HPKE authentication failed: tampered or wrong key
    │   ├── RequestTooLarge
    │   ├── StaleRequest        timestamp outside the allowed clock skew
    │   └── ReplayedRequest     request id seen before within the skew window
    └── StreamError             a response stream that must not be believed
        ├── ChunkTampered       a chunk fails authentication
        ├── ChunkOutOfOrder     a chunk authenticates, but under another position
        ├── StreamSpliced       a chunk belongs to another response stream
        ├── StreamTruncated     the stream ended before its final chunk
        ├── TrailingData        bytes after the final chunk
        └── ReceiptInvalid      the usage receipt does not verify, or names another request
                                or model
"""

from __future__ import annotations


class SealedError(Exception):
    """Root of the sealed protocol's errors."""


class MalformedMessage(SealedError):
    """Bytes that do not parse as the protocol's framing."""


class BundleError(SealedError):
    """A key bundle that must not be trusted."""


class BundleUnsigned(BundleError):
    """The bundle carries no signature."""


class BundleBadSignature(BundleError):
    """The signature does not verify under the bundle's operator key."""


class BundleUnpinned(BundleError):
    """The bundle is signed by an operator key the client does not pin."""


class BundleExpired(BundleError):
    """The bundle is outside its validity window."""


class BundleNotYetValid(BundleExpired):
    """The bundle's window starts later than the allowed skew: a clock is off, not the bundle.

    A gateway stamps ``not_before`` with its clock when it makes the key, so a fresh bundle
    from the future says this machine's clock is behind the gateway's (or the gateway's
    ahead) by at least ``behind`` seconds; ``allowed`` is the skew this client tolerates.
    """

    def __init__(self, behind: int, allowed: int) -> None:
        super().__init__(
            f"the bundle is valid from {behind} s past this clock's time; at most {allowed} s"
            " is allowed (set both clocks by NTP)"
        )
        self.behind = behind
        self.allowed = allowed


class BundleKeyMismatch(BundleError):
    """The bundle's key id is not derived from its public key."""


class RequestError(SealedError):
    """A sealed request the gateway refuses."""


class Unauthenticated(RequestError):
    """The request carries no valid signature of a pinned client, or a proof that fails."""


class UnknownKey(RequestError):
    """The request is sealed to a key id the gateway does not hold."""


class OpenFailed(RequestError):
    """HPKE authentication failed: the request was altered or sealed to another key."""


class RequestTooLarge(RequestError):
    """The request exceeds the largest padding bucket."""


class StaleRequest(RequestError):
    """The request's timestamp is outside the allowed clock skew."""


class ReplayedRequest(RequestError):
    """The request id was already seen within the replay window."""


class StreamError(SealedError):
    """A response stream that must not be believed."""


class ChunkTampered(StreamError):
    """A chunk fails authentication under every position it could hold."""


class ChunkOutOfOrder(StreamError):
    """A chunk authenticates, but for another position in the stream."""


class StreamSpliced(StreamError):
    """A chunk carries another stream's identifier."""


class StreamTruncated(StreamError):
    """The stream ended before its final chunk."""


class TrailingData(StreamError):
    """Bytes arrived after the final chunk."""


class ReceiptInvalid(StreamError):
    """The usage receipt's signature does not verify, or it names another request or model."""
