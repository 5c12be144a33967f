"""What one gateway allows: timeouts and caps, per-client streams and tokens, the replay window.

Every structure here does amortised O(1) work per request: the token window and the replay
cache drop expired entries from their old end, each entry once.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.refusals import Refusal
from sealed.errors import ReplayedRequest

if TYPE_CHECKING:
    from gateway.clients import ClientPolicy

TOKEN_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Limits:
    """The gateway's timeouts (seconds) and caps; the ``VEIL_*`` settings of the same names."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1024
    client_idle_timeout: float = 30.0
    max_stream_seconds: float = 600.0
    backend_idle_timeout: float = 60.0
    receipt_ttl: float = 900.0
    max_receipts: int = 100_000


class TokenWindow:
    """Tokens used in the last minute: (time, tokens) in time order and their running sum."""

    def __init__(self, seconds: float = TOKEN_WINDOW_SECONDS) -> None:
        self._seconds = seconds
        self._entries: deque[tuple[float, int]] = deque()
        self._total = 0

    def used(self, now: float) -> int:
        """Tokens charged within the window ending at ``now``."""
        while self._entries and self._entries[0][0] <= now - self._seconds:
            self._total -= self._entries.popleft()[1]
        return self._total

    def charge(self, now: float, tokens: int) -> None:
        """Count ``tokens`` used at ``now`` (a clock going backwards counts as ``now``)."""
        if tokens > 0:
            if self._entries and now < self._entries[-1][0]:
                now = self._entries[-1][0]
            self._entries.append((now, tokens))
            self._total += tokens

    def seconds_until_below(self, now: float, limit: int) -> int:
        """Whole seconds until the tokens in the window fall below ``limit`` (at least 1)."""
        total = self.used(now)
        for at, tokens in self._entries:
            total -= tokens
            if total < limit:
                return max(1, math.ceil(at + self._seconds - now))
        return max(1, math.ceil(self._seconds))


class ClientLimiter:
    """Concurrent streams and tokens per rolling minute, for each pinned client.

    Its ``now`` is the gateway's monotonic clock: on the wall clock a step back held a client
    out for as long as the step, and a step forward gave it a fresh minute at once.
    """

    def __init__(self) -> None:
        self._streams: dict[str, int] = {}
        self._windows: dict[str, TokenWindow] = {}

    def streams(self, client: ClientPolicy) -> int:
        """Streams the client has open now."""
        return self._streams.get(client.name, 0)

    def check(self, client: ClientPolicy, now: float) -> None:
        """Raise ``Refusal`` (429) if the client may not start a stream now."""
        if client.tokens_per_minute:
            window = self._windows.setdefault(client.name, TokenWindow())
            if window.used(now) >= client.tokens_per_minute:
                raise Refusal(
                    429,
                    "rate_limited",
                    "this client used its tokens for the minute",
                    retry_after=window.seconds_until_below(now, client.tokens_per_minute),
                )
        if self.streams(client) >= client.max_streams:
            raise Refusal(
                429, "client_busy", "this client has its most streams open", retry_after=1
            )

    def open(self, client: ClientPolicy) -> None:
        """Count one more stream of ``client``."""
        self._streams[client.name] = self.streams(client) + 1

    def close(self, client: ClientPolicy) -> None:
        """Count a stream of ``client`` that has ended."""
        left = self.streams(client) - 1
        if left > 0:
            self._streams[client.name] = left
        else:
            self._streams.pop(client.name, None)

    def charge(self, client: ClientPolicy, now: float, tokens: int) -> None:
        """Count the tokens a finished stream's receipt states against the client's minute."""
        if client.tokens_per_minute:
            self._windows.setdefault(client.name, TokenWindow()).charge(now, tokens)


# Seconds a replay id is kept past its request's window. A wall clock stepped back no further
# than this makes no request whose id was let go fresh again, so such a step (a jittery NTP
# source stepping a few seconds back and forth) needs no new keys (``Gateway.open``); memory
# grows by this over the window (``max_skew`` + 1 s) an id was kept before.
STEP_KEPT = 10


class ReplayCache:
    """Request ids of accepted requests, each kept until its timestamp + the allowed skew.

    A request is fresh while ``|ts - now| <= skew``, so its id must be refused again up to and
    including ``now == ts + skew``; from ``ts + skew + 1`` on it is stale anyway. Ids sit in
    buckets by that last second; a sweep drops whole buckets, each id once.
    """

    def __init__(self) -> None:
        self._expiry: dict[bytes, int] = {}
        self._buckets: dict[int, list[bytes]] = {}
        self._swept = -1  # every bucket below this second is gone

    def __len__(self) -> int:
        return len(self._expiry)

    def check(self, request_id: bytes, now: int) -> None:
        """Raise ``ReplayedRequest`` if ``request_id`` was accepted and is still in its window."""
        self._sweep(now)
        if request_id in self._expiry:
            raise ReplayedRequest("request id already seen")

    def behind(self, now: int) -> int:
        """Seconds ``now`` lies before the last second swept: > 0 once the clock went back.

        An id swept by then had a window that ended before that second; only a clock stepped
        back can make such a request fresh again. The gateway keeps each id ``STEP_KEPT``
        seconds past its window, so none can come back while this is at most that.
        """
        return max(0, self._swept - now)

    def add(self, request_id: bytes, last_second: int, now: int) -> None:
        """Remember ``request_id`` until ``last_second`` has passed."""
        self._sweep(now)
        self._expiry[request_id] = last_second
        self._buckets.setdefault(last_second, []).append(request_id)

    def _sweep(self, now: int) -> None:
        if now <= self._swept:
            return
        if self._swept < 0 or now - self._swept > len(self._buckets):
            due = [second for second in self._buckets if second < now]
        else:
            due = list(range(self._swept, now))
        for second in due:
            for request_id in self._buckets.pop(second, ()):
                if self._expiry.get(request_id) == second:
                    del self._expiry[request_id]
        self._swept = now
