"""One relayed request's records: what the page declares, what it is offered, its answer.

``services.relay`` is the service that makes and uses them; this module has the records and
the one rule about the sealed bytes themselves (``prompt_ceiling``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sealed.encoding import REQUEST_BUCKETS
from sealed.errors import MalformedMessage
from sealed.request import HEADER_SIZE, RequestHeader, max_request_size
from services.errors import BadRelayRequest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp

    from models.holds import Charge
    from sealed.bundle import SignedBundle
    from services.credit import Balance
    from services.gateways import Gateway

_AEAD_TAG = 16


@dataclass(frozen=True)
class Ticket:
    """What the page declares about a request it sealed; the receipt must agree.

    ``gateway`` is the gateway's 1-based position (as ``prepare`` named it), ``receipt_proof``
    the page's proof (base64url) for fetching the late receipt.
    """

    gateway: int
    request_id: bytes
    model: str
    max_completion_tokens: int
    receipt_proof: str


@dataclass(frozen=True)
class GatewayOffer:
    """A gateway the page may seal to: its position and its bundle as the gateway served it."""

    index: int
    bundle: dict[str, str]


@dataclass(frozen=True)
class Offer:
    """Where to seal one question and how many answer tokens the user can pay for."""

    gateways: list[GatewayOffer]
    max_completion_tokens: int


@dataclass(frozen=True)
class Account:
    """What the page shows: the balance, and the models it may ask."""

    balance: Balance
    models: tuple[str, ...]
    default_model: str | None


def prompt_ceiling(body: bytes) -> int:
    """The most prompt tokens a sealed request can hold: its padded plaintext's size.

    Raises ``BadRelayRequest`` for bytes that are not a sealed request of a known suite, or
    whose size is not a padding bucket.
    """
    try:
        header = RequestHeader.parse(body)
    except MalformedMessage as exc:
        raise BadRelayRequest("not a sealed request") from exc
    plaintext = len(body) - HEADER_SIZE - header.suite.hpke_enc_length - _AEAD_TAG
    if len(body) > max_request_size(header.suite) or plaintext not in REQUEST_BUCKETS:
        raise BadRelayRequest("the sealed request is not padded to a bucket")
    return plaintext


@dataclass
class RelayedAnswer:
    """One answer being relayed: iterate it for the chunks to hand on, as they come.

    The iteration ends once the answer is settled (``charge``); ``abandon`` says the page has
    gone (the relay hangs up on the gateway and settles from the late receipt).
    """

    user_id: int
    ticket: Ticket
    gateway: Gateway
    signed: SignedBundle
    digest: bytes
    relay_key: bytes
    charge: Charge | None = None
    forwarded: int = 0  # chunks handed on
    reason: str = ""  # why the gateway's stream was cut short, if it was
    broken: bool = False  # the gateway's stream broke (or failed its checks) of itself
    _queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    _response: aiohttp.ClientResponse | None = None
    _scope: asyncio.Timeout | None = None
    _task: asyncio.Task[None] | None = None
    _stop_proof: str | None = None  # a stop that came before the gateway took the request
    _posting: asyncio.Future[aiohttp.ClientResponse] | None = None  # the request to the gateway
    _given_up: bool = False  # a stop's grace ended before the request was sent: send none
    _stream_over: bool = False  # the gateway's stream has ended (whole or cut)
    _page: asyncio.BaseTransport | None = None  # the connection the page asked on
    _settled: asyncio.Event = field(default_factory=asyncio.Event)  # set once it is settled

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (data := await self._queue.get()) is not None:
            yield data

    def abandon(self, reason: str = "page_gone") -> None:
        """Stop relaying: hang up on the gateway (it stops the model and keeps the receipt).

        Once the stream has ended there is nothing to cut: ``reason`` then stays as it was.
        """
        if not self.reason and not self._stream_over:
            self.reason = reason
        if self._response is not None:
            self._response.close()

    def _give_up(self) -> None:
        """Stop waiting for a gateway that has not begun the answer (a stop is pending).

        A request not sent yet (its hold still being taken) is then not sent at all.
        """
        if self._response is not None or (self._posting is not None and self._posting.done()):
            return
        self.reason = self.reason or "stopped_before_answer"
        if self._posting is None:
            self._given_up = True
        else:
            self._posting.cancel()

    def _page_gone(self) -> bool:
        """Whether the connection the page asked on has closed."""
        return self._page is not None and self._page.is_closing()

    def _hand_on(self, data: bytes, chunks: int) -> None:
        self.forwarded += chunks
        self._queue.put_nowait(data)

    def _limit(self, seconds: float) -> None:
        """End the stream within ``seconds`` from now (a stop's grace); nothing once it ended."""
        if self._scope is not None:
            loop = asyncio.get_running_loop()
            deadline = self._scope.when()
            self._scope.reschedule(min(deadline or float("inf"), loop.time() + seconds))
