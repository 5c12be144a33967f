"""Refusals before a stream starts: one exception, one table from it to HTTP.

Every refusal is a JSON body ``{"error": {"code": ..., "message": ...}}``; the model server is
never called for one. ``Retry-After`` (seconds) comes with the 429s and the 503.

    status  code               when
    400     malformed          bytes, JSON or chat fields that do not parse or break a bound
    400     cannot_open        HPKE authentication fails (altered, or sealed to another key)
    400     stale_request      timestamp outside the allowed clock skew
    400     unknown_model      the model is not one the current key bundle lists
    400     terms_mismatch     not the request id or model its relay declared (Veil-Relay-Terms)
    400     bad_content        a content part the model may not take (images, fetched URLs)
    401     unauthenticated    no valid signature of a pinned client key
    403     bad_proof          a cancel or receipt proof that does not match
    404     unknown_request    cancel or receipt of a request id not held (or expired)
    408     body_timeout       the body did not arrive within ``VEIL_BODY_TIMEOUT``
    409     replayed           request id seen before, within its timestamp + skew
    409     in_progress        a receipt asked for while its stream still runs
    410     unknown_key        sealed to a key id this gateway does not hold (any more)
    413     too_large          body larger than the largest bucket (or a control body > 1 KiB)
    429     rate_limited       the client used its tokens of the rolling minute
    429     client_busy        the client has its most concurrent streams open
    503     busy               the gateway has its most concurrent streams open
    503     no_models          the gateway does not know which models it serves yet

Sealed-protocol errors are mapped here too (``refusal_for``), so each route has one translation
point.
"""

from __future__ import annotations

from typing import Any

from sealed.errors import (
    MalformedMessage,
    OpenFailed,
    ReplayedRequest,
    RequestTooLarge,
    SealedError,
    StaleRequest,
    Unauthenticated,
    UnknownKey,
)

_SEALED: dict[type[SealedError], tuple[int, str]] = {
    Unauthenticated: (401, "unauthenticated"),
    OpenFailed: (400, "cannot_open"),
    MalformedMessage: (400, "malformed"),
    StaleRequest: (400, "stale_request"),
    ReplayedRequest: (409, "replayed"),
    UnknownKey: (410, "unknown_key"),
    RequestTooLarge: (413, "too_large"),
}


class Refusal(Exception):
    """A request the gateway answers with an HTTP error before any stream starts."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        # A refusal only the operator can end is logged as a warning of its own, with figures.
        self.warning: tuple[str, dict[str, str | int]] | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body of the reply."""
        return {"error": {"code": self.code, "message": self.message}}

    def headers(self) -> dict[str, str]:
        """Extra headers of the reply (``Retry-After`` where a retry makes sense)."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class ClockSkew(StaleRequest):
    """A request stamped further from the gateway's clock than the allowed skew.

    ``ahead`` is the request's timestamp less the gateway's clock (negative: behind). Its
    message says by how much, so the asker's operator learns which clock to set, not just
    "stale".
    """

    def __init__(self, ahead: int, allowed: int) -> None:
        side = "ahead of" if ahead > 0 else "behind"
        super().__init__(
            f"the request's timestamp is {abs(ahead)} s {side} the gateway's clock;"
            f" at most {allowed} s is allowed (set both clocks by NTP)"
        )
        self.ahead = ahead
        self.allowed = allowed

    def refusal(self, client: str) -> Refusal:
        """400 ``stale_request``, logged as ``gateway.clock_skew`` naming the client and skew."""
        refusal = refusal_for(self)
        refusal.warning = (
            "gateway.clock_skew",
            {"client": client, "ahead_s": self.ahead, "allowed_s": self.allowed},
        )
        return refusal


def refusal_for(exc: SealedError) -> Refusal:
    """The refusal a sealed-protocol error becomes (400 ``malformed`` for the unlisted)."""
    for kind in type(exc).__mro__:
        if kind in _SEALED:
            status, code = _SEALED[kind]
            return Refusal(status, code, str(exc))
    return Refusal(400, "malformed", str(exc))


def malformed(message: str) -> Refusal:
    """A 400 ``malformed`` refusal."""
    return Refusal(400, "malformed", message)
