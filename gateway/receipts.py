"""Streams in flight and the final records of finished ones, for cancel and receipt fetches.

Every stream ends with a final record holding a signed receipt, also when it was cancelled or
its client vanished. The store keeps that record's payload bytes (an error's message left
out: the fetch travels in clear, ``gateway.settlement``) for ``receipt_ttl`` seconds after the
stream ended (at most ``max_kept`` of them, oldest dropped first), so the asker can fetch it with
a proof derived from the response key. It holds the two proofs, never the response key itself.
Every entry has the same lifetime, so insertion order is expiry order and expiry pops from the
front: amortised O(1).

The lifetime is counted on the monotonic clock: it is one process's own time, and an NTP step of
the wall clock (an hour forward) would otherwise drop every kept receipt at once, and a bot whose
stream was cut could no longer fetch the one it is owed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

from sealed.auth import cancel_proof, receipt_proof
from sealed.errors import ReplayedRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class StreamControl:
    """One stream: what may stop it while it runs, its final record once it has ended."""

    __slots__ = ("_scope", "cancel_proof", "expires_at", "final", "receipt_proof", "stop_reason")

    def __init__(self, response_key: bytes, request_id: bytes) -> None:
        self.cancel_proof = cancel_proof(response_key, request_id)
        self.receipt_proof = receipt_proof(response_key, request_id)
        self.stop_reason: str | None = None
        self.final: bytes | None = None
        self.expires_at = 0.0
        self._scope: asyncio.Timeout | None = None

    @property
    def finished(self) -> bool:
        """True once the final record exists."""
        return self.final is not None

    def bind(self, scope: asyncio.Timeout | None) -> None:
        """Let ``stop`` end the relay's part inside ``scope`` (None once it has left it)."""
        self._scope = scope
        if scope is not None and self.stop_reason is not None:
            self._expire_scope()

    def stop(self, reason: str) -> None:
        """Ask the relay to stop the model and end the stream (``stopped``, ``client_gone``, …)."""
        if self.stop_reason is None and not self.finished:
            self.stop_reason = reason
            self._expire_scope()

    def _expire_scope(self) -> None:
        scope = self._scope
        if scope is not None and not scope.expired():
            scope.reschedule(asyncio.get_running_loop().time())


class ReceiptStore:
    """Streams by request id: in flight, then finished and kept for ``ttl`` seconds.

    ``clock`` is a monotonic clock (the gateway's ``monotonic``).
    """

    def __init__(self, *, ttl: float, max_kept: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._max_kept = max_kept
        self._live: dict[bytes, StreamControl] = {}
        self._kept: OrderedDict[bytes, StreamControl] = OrderedDict()

    @property
    def kept(self) -> int:
        """Finished streams whose final record is held now."""
        return len(self._kept)

    def open(self, request_id: bytes, response_key: bytes) -> StreamControl:
        """Register a stream that is about to start; ``ReplayedRequest`` if the id is held."""
        if request_id in self._live or request_id in self._kept:
            raise ReplayedRequest("request id already seen")
        control = StreamControl(response_key, request_id)
        self._live[request_id] = control
        return control

    def finish(self, request_id: bytes, final: bytes) -> None:
        """Keep the final record's payload bytes of a stream that has ended."""
        now = self._clock()
        control = self._live.pop(request_id)
        control.final = final
        control.expires_at = now + self._ttl
        self._expire(now)
        self._kept[request_id] = control
        while len(self._kept) > self._max_kept:
            self._kept.popitem(last=False)

    def discard(self, request_id: bytes) -> None:
        """Forget a stream that never produced a final record."""
        self._live.pop(request_id, None)

    def get(self, request_id: bytes) -> StreamControl | None:
        """The stream, running or kept, or None if unknown or expired."""
        self._expire(self._clock())
        return self._live.get(request_id) or self._kept.get(request_id)

    def running(self) -> Iterator[StreamControl]:
        """Streams in flight now."""
        return iter(list(self._live.values()))

    def _expire(self, now: float) -> None:
        while self._kept:
            request_id, control = next(iter(self._kept.items()))
            if control.expires_at > now:
                return
            del self._kept[request_id]
