"""One relayed request's records: what the page declares, what it is offered, its answer.

``services.relay`` is the service that makes and uses them; this module has the records and
the one rule about the sealed bytes themselves (``prompt_ceiling``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sealed.encoding import REQUEST_BUCKETS
from sealed.errors import MalformedMessage
from sealed.request import HEADER_SIZE, RequestHeader, max_request_size
from services.errors import BadRelayRequest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine

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
    the page's proof (base64url) for fetching the late receipt. ``retry_after``: the page
    reads a model server's wait in an error record (it sent ``Veil-Accept: retry_after``), so
    the gateway is asked for it; a page that does not (one opened before an upgrade, which
    reads the record's fields strictly) is never sent the field.
    """

    gateway: int
    request_id: bytes
    model: str
    max_completion_tokens: int
    receipt_proof: str
    retry_after: bool = False


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
    _graced: bool = False  # a stop's grace, not the time limit, is when the stream ends
    _whole: bool = False  # the final chunk has been handed on (the answer is whole)
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

    # -- the relay's side (``services.relay`` alone calls these) ---------------------------

    def asked_on(self, page: asyncio.BaseTransport | None) -> None:
        """Remember the connection the page asked on (``page_gone`` watches it)."""
        self._page = page

    def run(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` (relaying, or settling an answer given up on) as the answer's task."""
        self._task = asyncio.create_task(work, name="veil-relay")
        return self._task

    @property
    def started(self) -> bool:
        """Whether a task of the relay's runs the answer (and ends it)."""
        return self._task is not None

    async def cancel(self) -> None:
        """Cancel the answer's task, if any, and wait for it to end."""
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def posting(self, posting: asyncio.Future[aiohttp.ClientResponse]) -> None:
        """The request to the gateway is on its way (``give_up`` may cancel it)."""
        self._posting = posting

    @property
    def sent(self) -> bool:
        """Whether the question was sent to the gateway."""
        return self._posting is not None

    @property
    def given_up(self) -> bool:
        """Whether a stop's grace ended before the request was sent: none is to be sent."""
        return self._given_up

    def replied(self, response: aiohttp.ClientResponse) -> None:
        """The gateway replied: its stream is the one to hang up on."""
        self._response = response

    @property
    def has_reply(self) -> bool:
        """Whether the gateway has replied (a stop can be sent to its stream)."""
        return self._response is not None

    def keep_stop(self, proof: str) -> None:
        """Keep a stop that came before the gateway replied, to send once it has."""
        self._stop_proof = proof

    @property
    def stop_proof(self) -> str | None:
        """The proof of a stop that came before the gateway replied, if one did."""
        return self._stop_proof

    def bounded_by(self, scope: asyncio.Timeout) -> None:
        """The time limit the stream runs under (``limit`` may bring it closer)."""
        self._scope = scope

    def stream_ended(self) -> None:
        """The gateway's stream is over (whole or cut): no grace to set, nothing to cut."""
        self._scope = None
        self._stream_over = True

    def end_chunks(self) -> None:
        """End the iteration of the chunks (once the answer is settled)."""
        self._queue.put_nowait(None)

    def mark_settled(self) -> None:
        """The answer is settled: a question waiting for it (``wait_settled``) goes on."""
        self._settled.set()

    async def wait_settled(self) -> None:
        """Wait until the answer is settled."""
        await self._settled.wait()

    def give_up(self) -> None:
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

    def page_gone(self) -> bool:
        """Whether the connection the page asked on has closed."""
        return self._page is not None and self._page.is_closing()

    def hand_on(self, data: bytes, chunks: int, *, final: bool) -> None:
        """Queue ``chunks`` whole chunks for the page; ``final``: the final chunk is among them."""
        self.forwarded += chunks
        self._whole = self._whole or final
        self._queue.put_nowait(data)

    def limit(self, seconds: float) -> None:
        """End the stream within ``seconds`` from now (a stop's grace); nothing once it ended."""
        if self._scope is not None:
            grace = asyncio.get_running_loop().time() + seconds
            deadline = self._scope.when()
            if deadline is None or grace < deadline:
                self._scope.reschedule(grace)
                self._graced = True

    @property
    def timed_out(self) -> str:
        """Why the stream's time ran out: ``stop_grace`` (a stop's), else ``time_limit``.

        The bot's limit for one answer is the page's to be told (``TIME_LIMIT_MARK``); a stop
        whose stream did not end within its grace is a stop, not that limit.
        """
        return "stop_grace" if self._graced else "time_limit"

    @property
    def whole(self) -> bool:
        """Whether the final chunk was handed on: the page has the whole answer, and its receipt."""
        return self._whole

    @property
    def cut_at_time_limit(self) -> bool:
        """Whether the page is to be told its answer was cut at the bot's time limit.

        Not when the final chunk was handed on before it: the page has the whole answer (the
        limit cut only what follows it, the relay receipt), and nothing may follow it there.
        """
        return self.reason == "time_limit" and not self._whole
