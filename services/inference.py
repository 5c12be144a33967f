"""The sealed inference client: the only way the bot reaches a model.

It fetches and verifies each gateway's key bundle against the pinned operator keys, seals every
request to a verified key, spreads requests over the gateways that serve the model, fails over
when a gateway fails before the first byte of the answer, and opens the sealed stream, checking
every chunk and the signed usage receipt. It never retries once text has been yielded.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from sealed.bundle import SignedBundle, verify_bundle
from sealed.errors import (
    ChunkOutOfOrder,
    ChunkTampered,
    MalformedMessage,
    ReceiptInvalid,
    SealedError,
    StreamError,
    StreamSpliced,
    StreamTruncated,
    TrailingData,
)
from sealed.receipt import UsageReceipt, verify_receipt
from sealed.request import new_request_secrets, seal_request
from sealed.stream import ChunkOpener, Delta, Final
from services.errors import (
    BackendError,
    ContextTooLong,
    InferenceError,
    InferenceUnavailable,
    StreamCorrupted,
    UntrustedGateway,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Collection, Sequence

log = structlog.get_logger("veil.inference")

_STREAM_REASONS: dict[type[SealedError], str] = {
    ChunkTampered: "tampered",
    ChunkOutOfOrder: "out_of_order",
    StreamSpliced: "spliced",
    StreamTruncated: "truncated",
    TrailingData: "trailing_data",
}
_FAILOVER_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True)
class Completion:
    """The end of an answer: the usage receipt and whether its signature verified."""

    receipt: UsageReceipt | None
    receipt_valid: bool
    finish_reason: str
    gateway: str


@dataclass(frozen=True)
class GatewayTrust:
    """What ``/privacy`` shows about one gateway."""

    url: str
    verified: bool
    fingerprint: str | None
    suite: str | None
    not_after: int | None
    problem: str | None


@dataclass
class _Gateway:
    url: str
    bundle: SignedBundle | None = None
    fetched_at: float = 0.0
    problem: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Progress:
    streamed: bool = False


class _Failover(Exception):
    """This gateway failed before the first byte: try the next one."""


def fingerprint(bundle: SignedBundle) -> str:
    """A short, human-comparable fingerprint of a bundle's HPKE public key."""
    digest = hashlib.sha256(bundle.bundle.public_key).hexdigest()[:24]
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


class InferenceClient:
    """Streams answers from a pool of sealed gateways."""

    def __init__(  # noqa: PLR0913 -- settings of one client
        self,
        gateways: Sequence[str],
        operator_keys: Collection[bytes],
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        skew: int = 120,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
    ) -> None:
        if not gateways:
            raise ValueError("at least one gateway is required")
        self._gateways = [_Gateway(url.rstrip("/")) for url in gateways]
        self._pinned = frozenset(operator_keys)
        self._session = session
        self._clock = clock
        self._skew = skew
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._turn = itertools.count()

    # -- bundles -----------------------------------------------------------------------------

    def _stale(self, gateway: _Gateway) -> bool:
        if gateway.bundle is None:
            return True
        now = self._clock()
        bundle = gateway.bundle.bundle
        lifetime = max(1, bundle.not_after - bundle.not_before)
        refresh_every = max(5.0, min(300.0, lifetime / 8))
        return now - gateway.fetched_at >= refresh_every or now >= bundle.not_after - 30

    async def _refresh(self, gateway: _Gateway, *, force: bool = False) -> None:
        async with gateway.lock:
            if not force and not self._stale(gateway):
                return
            try:
                async with self._session.get(
                    f"{gateway.url}/v1/keys", timeout=aiohttp.ClientTimeout(total=10)
                ) as response:
                    if response.status != 200:  # noqa: PLR2004 -- HTTP OK
                        raise _Failover(f"key bundle HTTP {response.status}")
                    wire = await response.json()
                if not isinstance(wire, dict):
                    raise MalformedMessage("bundle reply is not an object")
                gateway.bundle = verify_bundle(
                    wire, self._pinned, now=int(self._clock()), skew=self._skew
                )
                gateway.fetched_at = self._clock()
                gateway.problem = None
            except SealedError as exc:
                gateway.bundle = None
                gateway.problem = type(exc).__name__
                log.warning(
                    "inference.bundle_rejected", gateway=gateway.url, problem=gateway.problem
                )
            except (aiohttp.ClientError, TimeoutError, ValueError, _Failover) as exc:
                if gateway.bundle is not None and self._clock() < gateway.bundle.bundle.not_after:
                    return  # keep the still-valid bundle; the gateway may come back
                gateway.bundle = None
                gateway.problem = "unreachable"
                log.warning(
                    "inference.bundle_unavailable", gateway=gateway.url, error=type(exc).__name__
                )

    async def refresh(self, *, force: bool = False) -> None:
        """Fetch and verify the bundles of all gateways that need it (concurrently)."""
        await asyncio.gather(*(self._refresh(g, force=force) for g in self._gateways))

    def models(self) -> tuple[str, ...]:
        """The models served by gateways with a verified bundle, in first-seen order."""
        seen: dict[str, None] = {}
        for gateway in self._gateways:
            if gateway.bundle is not None:
                seen.update(dict.fromkeys(gateway.bundle.bundle.models))
        return tuple(seen)

    def trust(self) -> list[GatewayTrust]:
        """The verification state of every gateway, for the user to see."""
        result = []
        for gateway in self._gateways:
            signed = gateway.bundle
            result.append(
                GatewayTrust(
                    url=gateway.url,
                    verified=signed is not None,
                    fingerprint=fingerprint(signed) if signed else None,
                    suite=signed.bundle.suite.label if signed else None,
                    not_after=signed.bundle.not_after if signed else None,
                    problem=gateway.problem,
                )
            )
        return result

    # -- streaming ---------------------------------------------------------------------------

    def _candidates(self, model: str) -> list[_Gateway]:
        now = self._clock()
        serving = [
            g
            for g in self._gateways
            if g.bundle is not None
            and (not g.bundle.bundle.models or model in g.bundle.bundle.models)
        ]
        if not serving:
            return []
        start = next(self._turn) % len(serving)
        rotated = serving[start:] + serving[:start]
        # Healthy gateways first; those in back-off are still tried as a last resort.
        return sorted(rotated, key=lambda g: g.retry_at > now)

    async def stream(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        cache_salt: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """Yield the answer's text deltas, then one ``Completion``.

        Raises ``InferenceError`` subclasses; once a delta has been yielded, no other gateway
        is tried.
        """
        await self.refresh()
        candidates = self._candidates(model)
        if not candidates:
            if not any(g.bundle for g in self._gateways):
                problems = sorted({g.problem or "unknown" for g in self._gateways})
                if "unreachable" in problems and len(problems) == 1:
                    raise InferenceUnavailable("no gateway is reachable")
                raise UntrustedGateway(
                    "no gateway served a bundle that verifies: " + ", ".join(problems)
                )
            raise InferenceUnavailable("no gateway serves this model")
        chat: dict[str, Any] = {"model": model, "messages": messages, "cache_salt": cache_salt}
        if max_tokens is not None:
            chat["max_completion_tokens"] = max_tokens
        if temperature is not None:
            chat["temperature"] = temperature
        last_problem = "no gateway answered"
        for gateway in candidates:
            try:
                async for item in self._stream_from(gateway, chat):
                    yield item
            except _Failover as exc:
                last_problem = str(exc)
                gateway.failures += 1
                gateway.retry_at = self._clock() + min(30, 2**gateway.failures)
                log.warning("inference.failover", gateway=gateway.url, reason=last_problem)
                continue
            gateway.failures = 0
            gateway.retry_at = 0.0
            return
        raise InferenceUnavailable(last_problem)

    async def _stream_from(
        self, gateway: _Gateway, chat: dict[str, Any], *, retried: bool = False
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        signed = gateway.bundle
        if signed is None:
            raise _Failover("no verified bundle")
        request_id, response_key = new_request_secrets()
        body = seal_request(
            signed.bundle,
            chat,
            request_id=request_id,
            response_key=response_key,
            timestamp=int(self._clock()),
        )
        progress = _Progress()
        try:
            async with self._session.post(
                f"{gateway.url}/v1/sealed/chat/completions",
                data=body,
                headers={"Content-Type": "application/vnd.veil.sealed-request"},
                timeout=self._timeout,
            ) as response:
                if response.status == 410 and not retried:  # noqa: PLR2004 -- key rotated out
                    await self._refresh(gateway, force=True)
                    async for item in self._stream_from(gateway, chat, retried=True):
                        yield item
                    return
                await _raise_for_refusal(response)
                opener = ChunkOpener(response_key)
                async for data in response.content.iter_any():
                    for record in opener.feed(data):
                        if isinstance(record, Delta):
                            progress.streamed = True
                            yield TextDelta(record.text)
                        else:
                            yield self._finish(record, signed, request_id, progress, gateway)
                opener.close()
        except (StreamError, MalformedMessage) as exc:
            raise StreamCorrupted(_STREAM_REASONS.get(type(exc), "malformed")) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            if progress.streamed or isinstance(exc, aiohttp.ClientPayloadError):
                raise StreamCorrupted("truncated") from exc
            raise _Failover(type(exc).__name__) from exc

    def _finish(
        self,
        record: Final,
        signed: SignedBundle,
        request_id: bytes,
        progress: _Progress,
        gateway: _Gateway,
    ) -> Completion:
        receipt, valid = self._check_receipt(record, signed, request_id)
        if not record.is_error:
            return Completion(receipt, valid, record.finish_reason or "stop", gateway.url)
        message = record.error_message or "unknown error"
        if record.error_kind == "unavailable" and not progress.streamed:
            raise _Failover("model server unavailable")
        error_class = ContextTooLong if record.error_kind == "context_length" else BackendError
        raise error_class(message, status=record.error_status, receipt=receipt if valid else None)

    def _check_receipt(
        self, record: Final, signed: SignedBundle, request_id: bytes
    ) -> tuple[UsageReceipt | None, bool]:
        receipt = record.receipt
        if receipt is None or record.signature is None:
            log.warning("inference.receipt_missing")
            return None, False
        try:
            if receipt.request_id != request_id:
                raise ReceiptInvalid("receipt names another request")
            verify_receipt(receipt, record.signature, signed.bundle.receipt_verify_key())
        except (ReceiptInvalid, MalformedMessage):
            log.warning("inference.receipt_invalid", request_id=request_id.hex())
            return receipt, False
        return receipt, True


async def _raise_for_refusal(response: aiohttp.ClientResponse) -> None:
    """Turn a gateway's refusal into a failover (its fault) or an error (ours)."""
    if response.status == 200:  # noqa: PLR2004 -- HTTP OK
        return
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code")) if isinstance(error, dict) else "unknown"
    problem = f"HTTP {response.status} {code}"
    if response.status in _FAILOVER_STATUSES or response.status == 410:  # noqa: PLR2004
        raise _Failover(problem)
    raise InferenceError(f"gateway refused the request: {problem}")


__all__ = [
    "Completion",
    "GatewayTrust",
    "InferenceClient",
    "InferenceError",
    "TextDelta",
    "fingerprint",
]
