"""The gateway's state and its admission checks: who may ask, for what, and whether now.

A sealed request is admitted only after every check, in this order: the body read whole
(bounded in size and time), the client's signature, the envelope (key, HPKE, timestamp, request
id not seen, and a relay's ``Veil-Relay-Key`` and ``Veil-Relay-Terms`` when sent, each once),
the chat request (``gateway.chat``), the model, the relay's terms held against it, the
client's limits and the gateway's. Its request id is
remembered only then, so a refused request can be sent again.
Routes live in ``gateway.routes``, the stream in ``gateway.relay``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from gateway.chat import servable_model, upstream_chat
from gateway.limits import STEP_KEPT, ClientLimiter, Limits, ReplayCache
from gateway.metrics import GatewayMetrics
from gateway.receipts import ReceiptStore, StreamControl
from gateway.refusals import ClockSkew, Refusal, refusal_for
from gateway.relay import Admitted, RelayBinding
from gateway.shaping import Shaping
from gateway.vllm import BackendFailure, VLLMClient
from sealed.auth import (
    CLIENT_KEY_HEADER,
    CLIENT_SIGNATURE_HEADER,
    check_client_signature,
    check_proof,
)
from sealed.encoding import b64d
from sealed.errors import (
    MalformedMessage,
    RequestTooLarge,
    SealedError,
    Unauthenticated,
)
from sealed.receipt import MAX_MODEL_NAME
from sealed.relay import RELAY_KEY_HEADER, RELAY_TERMS_HEADER, RelayTerms, body_hash, open_relay_key
from sealed.request import OpenedRequest, RequestHeader, max_request_size, open_request

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from multidict import MultiMapping

    from gateway.clients import ClientPolicy
    from gateway.keys import KeyRing

log = structlog.get_logger("veil.gateway")

# Connections to the model server beyond one per stream: health checks, /tokenize, /v1/models.
UPSTREAM_SPARE = 8
# While no model can be served, /health and /v1/keys ask the model server for its list again
# at most this often (together), and a failure to read it is told once a change or a minute.
MODELS_REASK_S = 5.0
MODELS_WARN_S = 60.0


@dataclass
class Gateway:
    """The state one gateway process holds."""

    ring: KeyRing
    vllm: VLLMClient
    clients: Mapping[bytes, ClientPolicy]
    max_streams: int
    max_skew: int
    clock: Callable[[], float] = time.time
    fixed_models: tuple[str, ...] = ()
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    limits: Limits = field(default_factory=Limits)
    multimodal_models: Collection[str] = frozenset()
    shaping: Shaping = field(default_factory=Shaping)
    replays: ReplayCache = field(init=False, default_factory=ReplayCache)
    limiter: ClientLimiter = field(init=False, default_factory=ClientLimiter)
    receipts: ReceiptStore = field(init=False)
    active: int = 0
    # Paces the model list's asks and warnings, counts kept receipts' time to live and each
    # client's minute of tokens: a step of the wall clock neither drops nor refills them.
    monotonic: Callable[[], float] = time.monotonic
    # The ids last told left out, and whether any model was servable then.
    _left_out: tuple[frozenset[str], bool] = field(init=False, default=(frozenset(), True))
    _asked_at: float | None = field(init=False, default=None)  # the model list's last ask
    # The model list's failure last told (kind, status), when, and how many since went untold.
    _unavailable: tuple[str, int | None] | None = field(init=False, default=None)
    _warned_at: float = field(init=False, default=0.0)
    _suppressed: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.receipts = ReceiptStore(
            ttl=self.limits.receipt_ttl, max_kept=self.limits.max_receipts, clock=self.monotonic
        )

    def now(self) -> int:
        """Current time in whole seconds from the gateway's clock."""
        return int(self.clock())

    @property
    def max_body(self) -> int:
        """The largest sealed body accepted (the last bucket of the served suite)."""
        return max_request_size(self.ring.current.keypair.suite)

    async def refresh_models(self) -> bool:
        """Ask the model server which models it serves and their windows; False if it cannot say.

        A list with no model that can be served (none, or only ids no bundle may carry) is as
        good as no answer: the next look comes after the retry, not the next rotation.

        Fixed models are served whatever it says, with the windows it states for them (none
        while it cannot be asked).
        """
        self._asked_at = self.monotonic()
        try:
            served = await self.vllm.served()
        except BackendFailure as exc:
            if self.fixed_models:
                self.ring.set_models(self.fixed_models, self.ring.windows)
                return True
            self._tell_unavailable(exc)
            return False
        self._unavailable = None  # read: the next failure is a change, told at once
        odd = [model for model in served if not servable_model(model)]
        served = {model: size for model, size in served.items() if servable_model(model)}
        self._leave_out(odd, servable=len(self.fixed_models or served))
        windows = {model: size for model, size in served.items() if size is not None}
        self.ring.set_models(self.fixed_models or tuple(served), windows)
        return bool(self.ring.models)

    async def models_on_demand(self) -> bool:
        """Whether a model can be served, the model server asked again if none can and it may be.

        For ``/health`` and ``/v1/keys``: while the list cannot be read, every probe (compose's
        every few seconds, or a flood from anyone who can reach ``/health``) asked the model
        server again and wrote a warning. The list is asked for at most once in
        ``MODELS_REASK_S``, counted from any ask (the start's, the rotation task's).
        """
        if self.ring.models:
            return True
        asked, now = self._asked_at, self.monotonic()
        if asked is not None and 0 <= now - asked < MODELS_REASK_S:
            return False
        return await self.refresh_models()

    def _tell_unavailable(self, exc: BackendFailure) -> None:
        """Warn that the model list cannot be read: once a change of why, else once a minute.

        A line left out is counted in the next one's ``suppressed``.
        """
        state, now = (exc.kind, exc.status), self.monotonic()
        if state == self._unavailable and 0 <= now - self._warned_at < MODELS_WARN_S:
            self._suppressed += 1
            return
        log.warning(
            "gateway.models_unavailable",
            kind=exc.kind,
            status=exc.status,
            suppressed=self._suppressed,
        )
        self._unavailable, self._warned_at, self._suppressed = state, now, 0

    def _leave_out(self, models: list[str], *, servable: int) -> None:
        """Say once which of the model server's ids cannot be served (until they change).

        A bundle listing one would be malformed to every client, so its other models would be
        lost too; the ids are shown cut short (one may be any length). With ``servable`` 0
        the gateway serves nothing (its bundle lists no model, ``/health`` is 503): an error.
        """
        told = (frozenset(models), servable > 0)
        if told == self._left_out:
            return
        self._left_out = told
        if models:
            tell = log.warning if servable else log.error
            tell(
                "gateway.models_left_out",
                count=len(models),
                servable=servable,
                reason=f"a model id must be 1 to {MAX_MODEL_NAME} printable characters",
                ids=[ascii(model[:40]) for model in models[:3]],
            )

    def pinned(self, headers: Mapping[str, str]) -> tuple[bytes, ClientPolicy]:
        """The pinned client key ``Veil-Client-Key`` names, and its policy; ``Unauthenticated``.

        Looked at before the body is read too (``routes.handle_sealed_chat``): the signature
        needs the whole body, up to a megabyte, which a stranger could otherwise have the
        gateway hold for the body timeout on each of its connections (a gigabyte at the cap).
        """
        try:
            key = b64d(headers.get(CLIENT_KEY_HEADER, ""))
        except MalformedMessage as exc:
            raise Unauthenticated("malformed client key") from exc
        client = self.clients.get(key)
        if client is None:
            raise Unauthenticated("request is not signed by a pinned client key")
        return key, client

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> ClientPolicy:
        """The pinned client whose key signed ``body``; raise ``Unauthenticated`` otherwise."""
        key, client = self.pinned(headers)
        check_client_signature(key, headers.get(CLIENT_SIGNATURE_HEADER), body)
        return client

    def open(self, body: bytes) -> OpenedRequest:
        """Find the key, open the request, check its time and id; raise ``SealedError``."""
        header = RequestHeader.parse(body)
        if len(body) > max_request_size(header.suite):
            raise RequestTooLarge("request exceeds the largest bucket")
        now = self.now()
        # Ids are kept ``STEP_KEPT`` seconds past their window (``admit``), so a step back no
        # longer than that can make none fresh again: such steps pass, keys kept.
        if (back := self.replays.behind(now)) > STEP_KEPT:
            self._stepped_back(now, back)
        opened = open_request(body, self.ring.find(header.suite, header.key_id, now))
        if abs(opened.timestamp - now) > self.max_skew:
            raise ClockSkew(opened.timestamp - now, self.max_skew)
        self.replays.check(opened.request_id, now)
        return opened

    def _stepped_back(self, now: int, seconds: int) -> None:
        """The wall clock went back: replace the keys, so no request sealed before can return.

        Replay ids (and the receipt store's copies, after ``receipt_ttl``) are forgotten once
        their window has passed on the wall clock; a clock stepped back (NTP correcting a fast
        clock, a restored VM) makes such a request fresh again while its id is gone, and one
        captured on the wire could be run again on its client's account. Sealed to a key no
        longer held, it is refused (410); clients fetch the new bundle on a 410 and go on.
        """
        self.ring.renew(now)
        self.replays = ReplayCache()  # its ids are of the keys just dropped
        log.warning(
            "gateway.clock_stepped_back",
            seconds=seconds,
            key_id=self.ring.current.keypair.key_id.hex(),
        )

    def admit(self, headers: MultiMapping[str], body: bytes, received: float) -> Admitted:
        """Run every check on a sealed request and take its slots; raise ``Refusal``."""
        try:
            client = self.authenticate(headers, body)
        except SealedError as exc:
            raise refusal_for(exc) from exc
        try:
            opened = self.open(body)
            relay = self.relay_binding(headers, body)
            terms = relay_terms(headers)
        except ClockSkew as exc:
            raise exc.refusal(client.name) from exc
        except SealedError as exc:
            raise refusal_for(exc) from exc
        if not self.ring.models:
            raise Refusal(
                503, "no_models", "the gateway does not know its models yet", retry_after=5
            )
        ceiling = client.max_completion_tokens
        if terms is not None:  # the relay holds credit for this many: no more is answered
            ceiling = min(ceiling, terms.max_completion_tokens)
        chat = upstream_chat(
            opened.chat, models=self.ring.models, multimodal=self.multimodal_models, ceiling=ceiling
        )
        if terms is not None and (terms.request_id, terms.model) != (
            opened.request_id,
            chat["model"],
        ):
            # The relay bills by the declared id and model, which the receipt would not name:
            # the asker sealed something else than it declared (a cheaper model, say).
            raise Refusal(
                400, "terms_mismatch", "the sealed request is not what its relay declared"
            )
        self.limiter.check(client, self.monotonic())
        if self.active >= self.max_streams:
            raise Refusal(503, "busy", "too many streams; try another gateway", retry_after=1)
        try:
            control = self.receipts.open(opened.request_id, opened.response_key)
        except SealedError as exc:
            raise refusal_for(exc) from exc
        self.replays.add(
            opened.request_id, opened.timestamp + self.max_skew + STEP_KEPT, self.now()
        )
        self.limiter.open(client)
        self.active += 1
        self.metrics.active_streams.set(self.active)
        return Admitted(client, opened, chat, control, received, relay)

    def release(self, admitted: Admitted) -> None:
        """Free the slots of a stream that has ended."""
        self.active -= 1
        self.metrics.active_streams.set(self.active)
        self.limiter.close(admitted.client)
        self.receipts.discard(admitted.opened.request_id)  # a no-op once its final is kept

    def relay_binding(self, headers: MultiMapping[str], body: bytes) -> RelayBinding | None:
        """The relay key a ``Veil-Relay-Key`` header carries for ``body``, if one was sent."""
        text = single_field(headers, RELAY_KEY_HEADER)
        if text is None:
            return None
        now = self.now()
        key = open_relay_key(text, body, lambda suite, key_id: self.ring.find(suite, key_id, now))
        return RelayBinding(key, body_hash(body))

    def find_stream(
        self, request_id: bytes, given_proof: str | None, *, receipt: bool
    ) -> StreamControl:
        """The stream ``request_id`` if held and the proof is right; raise ``Refusal``.

        ``receipt`` picks the receipt-fetch proof, else the cancel proof.
        """
        control = self.receipts.get(request_id)
        if control is None:
            raise Refusal(404, "unknown_request", "no stream with this id is held")
        expected = control.receipt_proof if receipt else control.cancel_proof
        try:
            check_proof(expected, given_proof)
        except Unauthenticated as exc:
            raise Refusal(403, "bad_proof", "the proof does not match") from exc
        return control


def relay_terms(headers: MultiMapping[str]) -> RelayTerms | None:
    """What a relay declared it bills for (``Veil-Relay-Terms``), if it said; ``SealedError``."""
    text = single_field(headers, RELAY_TERMS_HEADER)
    return None if text is None else RelayTerms.parse(text)


def single_field(headers: MultiMapping[str], name: str) -> str | None:
    """The one value of header ``name``, None when absent; ``MalformedMessage`` when repeated.

    A relay's headers name one thing each. Sent twice, the gateway read the first (aiohttp's
    ``get``) while a proxy or another gateway on the way may read the last, or join the two
    with a comma (Node's HTTP server does so for a field it does not know): two relays of the
    same bytes were held to different terms, whichever the reader picked.
    """
    values = headers.getall(name, [])
    if len(values) > 1:
        raise MalformedMessage(f"{name} is sent more than once")
    return values[0] if values else None


async def rotate_forever(gateway: Gateway, interval: float, *, retry: float = 10.0) -> None:
    """Rotate the HPKE key every ``interval`` seconds and keep the model list fresh.

    A refresh that fails, or an iteration that raises, is logged and tried again after
    ``retry`` seconds; nothing ends the task but cancellation. The interval is counted on the
    loop's monotonic clock, but a key's window is on the wall clock: one stepped (NTP at boot,
    a restored VM) out of the current key's window left the gateway with no valid key (its
    ``/health`` 503, its bundle refused) until the interval was up, an hour by default. It is
    looked at every ``retry`` seconds, and such a key is replaced at once (``reason=clock``).
    """
    loop = asyncio.get_running_loop()
    rotate_at = loop.time() + interval
    failed = not gateway.ring.models
    while True:
        await asyncio.sleep(max(0.0, min(rotate_at, loop.time() + retry) - loop.time()))
        try:
            due = loop.time() >= rotate_at
            stepped = not gateway.ring.serving(gateway.now())
            if due or stepped:
                gateway.ring.rotate(gateway.now())
                rotate_at = loop.time() + interval
                log.info(
                    "gateway.key_rotated",
                    key_id=gateway.ring.current.keypair.key_id.hex(),
                    reason="interval" if due else "clock",
                )
            if due or stepped or failed:
                failed = not await gateway.refresh_models()
        except Exception as exc:  # noqa: BLE001 -- the supervisor's edge: log, retry, live on
            log.warning("gateway.maintenance_failed", error=type(exc).__name__)
            failed = True
            rotate_at = max(rotate_at, loop.time() + retry)
