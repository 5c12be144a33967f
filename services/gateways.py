"""The gateways the bot may ask: their verified key bundles, their health, and what users see.

``GatewayPool`` fetches each gateway's key bundle, verifies it against the pinned operator keys,
refreshes it before it expires, and orders the gateways for a request (round robin, those in
back-off last). Gateways are named by their 1-based position in ``VEIL_GATEWAYS`` in what users
see (``GatewayTrust``): their URLs are the operator's business, never the user's.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import structlog

from sealed.bundle import SignedBundle, verify_bundle
from sealed.errors import BundleNotYetValid, MalformedMessage, SealedError
from sealed.stream import MAX_RETRY_AFTER

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

log = structlog.get_logger("veil.inference")

UNREACHABLE = "unreachable"
_REFUSAL_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")
# How a gateway's ``stale_request`` names the skew (docs/protocol.md §3, check 9).
_SKEW_SAID = re.compile(r"(\d{1,9}) s (ahead of|behind) the gateway's clock; at most (\d{1,9}) s")
# Seconds a skew named again may differ by and still be the same skew (the request's time is
# whole seconds, and it travels): more is a clock stepped again, told again.
_SKEW_JITTER = 5
# Bytes of a gateway's JSON reply read at most: it comes in clear from whatever answers (a
# proxy, the network), so one endlessly long is cut off unread. A refusal, a cancel's state or
# a receipt is a few hundred bytes; a key bundle a few KiB (its models and their windows).
REFUSAL_MOST = 64 * 1024
BUNDLE_MOST = 1024 * 1024
_MAX_BACKOFF = 30.0
_BUNDLE_TIMEOUT = 10.0
# How long a gateway whose bundle could not be fetched is left before the next try (doubling
# per failure from the first, up to the last), while another gateway can answer.
_FETCH_BACKOFF = (5.0, 60.0)
# The most doublings a back-off takes from its failures in a row: past the ceilings long before,
# and a float's range ends at 2 ** 1024 (a gateway taken down but left listed fails for days).
_MAX_DOUBLINGS = 32


def refusal_code(reply: object) -> str:
    """A gateway's refusal's ``error.code`` (``gateway.refusals``), or ``unknown``.

    A refusal comes in clear from whatever answers (a proxy's page, a broken or hostile
    gateway), and its code is logged and passed on: only a code's shape (lower-case letters,
    digits, ``_``) is taken, never other text.
    """
    error = reply.get("error") if isinstance(reply, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and _REFUSAL_CODE.fullmatch(code) else "unknown"


def named_skew(reply: object) -> tuple[int, int] | None:
    """The skew a ``stale_request`` refusal's message names: (ahead, allowed) seconds, or None.

    ``ahead`` is the request's time less the gateway's clock (negative: behind). Like the
    code, the message comes in clear from whatever answers: only its numbers are taken.
    """
    error = reply.get("error") if isinstance(reply, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    said = _SKEW_SAID.search(message[:300]) if isinstance(message, str) else None
    if said is None:
        return None
    ahead = int(said[1])
    return (ahead if said[2] == "ahead of" else -ahead), int(said[3])


def skew_figures(skew: tuple[int, int] | None) -> dict[str, int]:
    """A named skew as the log lines that tell it give it: ``ahead_s`` and ``allowed_s``."""
    return {} if skew is None else {"ahead_s": skew[0], "allowed_s": skew[1]}


async def json_reply(response: aiohttp.ClientResponse, most: int) -> object:
    """A gateway's JSON reply, read up to ``most`` bytes; None for an empty body.

    A longer body is no gateway's, and reading all of one that never ends would fill the
    memory: its connection is dropped and ``ValueError`` raised, as for a body that is no JSON
    (``RecursionError``: nested past the parser's depth; ``LookupError``: a charset that is no
    text encoding, ``charset=hex``).
    """
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > most:
            response.close()
            raise ValueError(f"reply longer than {most} bytes")
    return json.loads(body.decode(response.charset or "utf-8")) if body.strip() else None


async def refusal_reply(response: aiohttp.ClientResponse) -> object:
    """A refusal's JSON body (what ``refusal_code`` and ``named_skew`` read), or None.

    Read up to ``REFUSAL_MOST`` bytes (``json_reply``). None also for a body too long, no
    JSON, or cut off: a refusal all the same.
    """
    try:
        return await json_reply(response, REFUSAL_MOST)
    except (ValueError, RecursionError, LookupError, aiohttp.ClientError):
        return None


@dataclass(frozen=True)
class GatewayTrust:
    """What ``/privacy`` shows about one gateway: its position, never its URL."""

    index: int
    verified: bool
    fingerprint: str | None
    suite: str | None
    not_after: int | None
    problem: str | None


@dataclass
class Gateway:
    """One gateway's state: its verified bundle, failures, and streams the bot has open to it.

    ``index`` is its 1-based position in the configured list (how logs and users name it).
    """

    index: int
    url: str
    bundle: SignedBundle | None = None
    fetched_at: float = 0.0
    problem: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    # A model server's wait for one model (its Retry-After): that model is asked elsewhere first
    # until then, the gateway's other models are not (``GatewayPool.failed``).
    model_retry_at: dict[str, float] = field(default_factory=dict)
    # A gateway out of reach when its bundle was last fetched: not fetched again before
    # ``fetch_at`` while another can answer (``GatewayPool.refresh``).
    fetch_failures: int = 0
    fetch_at: float = 0.0
    in_flight: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The gateway refused a request's time as too far from its clock (``GatewayPool.skewed``),
    # and by how many seconds this bot's clock is ahead of its own, where it said.
    skewed: bool = False
    skew: int | None = None


class _BundleUnavailable(Exception):
    """The gateway did not serve a bundle (HTTP status other than 200)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"key bundle HTTP {status}")
        self.status = status


def fingerprint(bundle: SignedBundle) -> str:
    """A short, human-comparable fingerprint of a bundle's HPKE public key."""
    digest = hashlib.sha256(bundle.bundle.public_key).hexdigest()[:24]
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


class GatewayPool:
    """The configured gateways with their verified bundles."""

    def __init__(
        self,
        urls: Sequence[str],
        operator_keys: Collection[bytes],
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float],
        skew: int,
    ) -> None:
        if not urls:
            raise ValueError("at least one gateway is required")
        self.gateways = [Gateway(i, url.rstrip("/")) for i, url in enumerate(urls, start=1)]
        self._pinned = frozenset(operator_keys)
        self._session = session
        self._clock = clock
        self._skew = skew
        self.turn = itertools.count()

    def _stale(self, gateway: Gateway) -> bool:
        if gateway.bundle is None:
            return True
        now = self._clock()
        bundle = gateway.bundle.bundle
        lifetime = max(1, bundle.not_after - bundle.not_before)
        refresh_every = max(5.0, min(300.0, lifetime / 8))
        return now - gateway.fetched_at >= refresh_every or now >= bundle.not_after - 30

    async def refresh_one(
        self, gateway: Gateway, *, force: bool = False, refused: bytes | None = None
    ) -> None:
        """Fetch and verify one gateway's bundle if it is stale (or ``force``).

        ``refused``: the key id of a request the gateway refused as sealed to a key it does
        not hold (410). Its bundle is fetched, stale or not, only while the bot still offers
        that key: rotated out, the gateway has a new one. A request sealed to any other key (a
        page's, to a key no gateway ever held, or to one the bot has replaced since: questions
        refused at once, the first of which had it fetched) tells nothing new: each had the bot
        fetch it again.
        """
        async with gateway.lock:
            if not force and refused is None and not self._stale(gateway):
                return
            if refused is not None and (
                gateway.bundle is None or gateway.bundle.bundle.key_id != refused
            ):
                return  # the bot offers another key already (a fetch since): nothing to learn
            try:
                async with self._session.get(
                    f"{gateway.url}/v1/keys",
                    timeout=aiohttp.ClientTimeout(total=_BUNDLE_TIMEOUT),
                    allow_redirects=False,  # a redirect's target is no gateway we were given
                ) as response:
                    if response.status != 200:  # noqa: PLR2004 -- HTTP OK
                        raise _BundleUnavailable(response.status)
                    wire = await json_reply(response, BUNDLE_MOST)
                if not isinstance(wire, dict):
                    raise MalformedMessage("bundle reply is not an object")
                gateway.bundle = verify_bundle(
                    wire, self._pinned, now=int(self._clock()), skew=self._skew
                )
                gateway.fetched_at = self._clock()
                gateway.problem = None
                gateway.fetch_failures = 0
            except SealedError as exc:
                gateway.bundle = None
                gateway.problem = type(exc).__name__
                # A bundle from the future is a clock off by that much: the operator is told
                # how far, signed as the gateway tells of a request's (``gateway.clock_skew``)
                # and ``inference.clock_skew``: this clock less the gateway's.
                skew = (
                    {"ahead_s": -exc.behind, "allowed_s": exc.allowed}
                    if isinstance(exc, BundleNotYetValid)
                    else {}
                )
                log.warning(
                    "inference.bundle_rejected",
                    gateway=gateway.index,
                    problem=gateway.problem,
                    **skew,
                )
            # (a reply nested past the JSON parser's depth, or in ``charset=hex``, is no bundle)
            except (
                aiohttp.ClientError,
                TimeoutError,
                ValueError,
                RecursionError,
                LookupError,
                _BundleUnavailable,
            ) as exc:
                if gateway.bundle is not None and self._clock() < gateway.bundle.bundle.not_after:
                    return  # keep the still-valid bundle; the gateway may come back
                gateway.bundle = None
                gateway.problem = UNREACHABLE
                gateway.fetch_at = self._clock() + _doubled(*_FETCH_BACKOFF, gateway.fetch_failures)
                gateway.fetch_failures += 1
                # An HTTP status says something answers there: no gateway, or not this path
                # (an address naming the model server, a proxy's 404 or 502).
                status = exc.status if isinstance(exc, _BundleUnavailable) else None
                log.warning(
                    "inference.bundle_unavailable",
                    gateway=gateway.index,  # never its URL: it may hold a password
                    error=type(exc).__name__,
                    **({} if status is None else {"status": status}),
                )

    async def refresh(self, *, force: bool = False) -> None:
        """Fetch and verify the bundles of all gateways that need it (concurrently).

        A gateway that was out of reach is left until its back-off has passed while another
        can answer (a verified bundle, not in back-off): a dead one would otherwise hold every
        question (and the user's next update) for its connection's timeout, each time. One
        whose answers fail keeps its still-valid bundle, so it does not count: the other is
        asked again at once, not at the end of its back-off. ``force`` fetches every one.
        """
        now = self._clock()
        others = any(g.bundle is not None and g.retry_at <= now for g in self.gateways)
        due = [
            g
            for g in self.gateways
            if force or not (others and g.bundle is None and now < g.fetch_at)
        ]
        await asyncio.gather(*(self.refresh_one(g, force=force) for g in due))

    def models(self) -> tuple[str, ...]:
        """The models served by gateways with a verified bundle, in first-seen order."""
        seen: dict[str, None] = {}
        for gateway in self.gateways:
            if gateway.bundle is not None:
                seen.update(dict.fromkeys(gateway.bundle.bundle.models))
        return tuple(seen)

    def window(self, model: str) -> int | None:
        """``model``'s context window: the smallest a verified bundle states; None if none does.

        The smallest, as a request for the model may go to any gateway serving it.
        """
        sizes = [
            size
            for gateway in self.gateways
            if gateway.bundle is not None
            and (size := gateway.bundle.bundle.window(model)) is not None
        ]
        return min(sizes, default=None)

    def widest_window(self, model: str) -> int | None:
        """The most prompt tokens a request for ``model`` can be billed, by the bundles.

        The largest window a verified bundle serving ``model`` states (a gateway bills a prompt
        at most its window: a model reads no more, and refuses a longer one); None where one
        serving it states none, or none serves it. A bundle of no models yet (its gateway had
        not heard from its model server) is asked like one serving every model (``candidates``)
        and states no window.
        """
        sizes = [
            gateway.bundle.bundle.window(model)
            for gateway in self.gateways
            if gateway.bundle is not None
            and (not gateway.bundle.bundle.models or model in gateway.bundle.bundle.models)
        ]
        if not sizes or None in sizes:
            return None
        return max(size for size in sizes if size is not None)

    def trust(self) -> list[GatewayTrust]:
        """The verification state of every gateway, for the user to see."""
        result = []
        for gateway in self.gateways:
            signed = gateway.bundle
            result.append(
                GatewayTrust(
                    index=gateway.index,
                    verified=signed is not None,
                    fingerprint=fingerprint(signed) if signed else None,
                    suite=signed.bundle.suite.label if signed else None,
                    not_after=signed.bundle.not_after if signed else None,
                    problem=gateway.problem,
                )
            )
        return result

    def candidates(self, model: str) -> list[Gateway]:
        """The gateways serving ``model``, rotated, those in back-off last."""
        now = self._clock()
        serving = [
            g
            for g in self.gateways
            if g.bundle is not None
            and (not g.bundle.bundle.models or model in g.bundle.bundle.models)
        ]
        if not serving:
            return []
        start = next(self.turn) % len(serving)
        rotated = serving[start:] + serving[:start]
        # Healthy gateways first; those in back-off are still tried as a last resort.
        return sorted(rotated, key=lambda g: max(g.retry_at, g.model_retry_at.get(model, 0)) > now)

    def problems(self) -> list[str]:
        """Why each gateway has no verified bundle (sorted, distinct)."""
        return sorted({g.problem or "unknown" for g in self.gateways if g.bundle is None})

    def any_verified(self) -> bool:
        """True if at least one gateway has a verified bundle."""
        return any(g.bundle is not None for g in self.gateways)

    def failed(
        self, gateway: Gateway, retry_after: float | None = None, *, model: str | None = None
    ) -> None:
        """Put a gateway in back-off: doubling per failure, at least ``retry_after`` seconds.

        ``retry_after`` (the gateway's or its model server's) counts up to ``MAX_RETRY_AFTER``,
        longer than the doubling's most: a server that says when it will take requests again
        is not asked sooner. A model server's wait for one ``model`` holds that model only:
        the gateway may serve others through it (a router before several engines), and is
        asked for them after the doubling. A gateway in back-off is still tried when no other
        is left.
        """
        gateway.failures += 1
        now = self._clock()
        backoff = _doubled(1.0, _MAX_BACKOFF, gateway.failures)
        if retry_after is not None:
            wait = max(backoff, min(MAX_RETRY_AFTER, retry_after))
            if model is not None:
                gateway.model_retry_at[model] = now + wait
            else:
                backoff = wait
        gateway.retry_at = now + backoff

    def succeeded(self, gateway: Gateway, model: str | None = None) -> None:
        """The gateway answered (``model``): out of back-off (that model's wait too).

        One that had refused a request's time says its clock agrees again (once).
        """
        gateway.failures = 0
        gateway.retry_at = 0.0
        if model is not None:
            gateway.model_retry_at.pop(model, None)
        if gateway.skewed:
            gateway.skewed, gateway.skew = False, None
            log.info("inference.clock_skew_over", gateway=gateway.index)

    def skewed(self, gateway: Gateway, skew: tuple[int, int] | None) -> None:
        """The gateway refused a request's time (``stale_request``): warn its operator once.

        Every request to it fails alike until a clock is set, each one a failover line
        already; the skew itself (``ahead_s``: this bot's clock less the gateway's, and
        ``allowed_s``, as the refusal names them) is told once, again only when it changes
        (a clock stepped again), and its end once the gateway answers (``succeeded``).
        """
        ahead = None if skew is None else skew[0]
        if gateway.skewed and (
            ahead is None or gateway.skew is None or abs(ahead - gateway.skew) <= _SKEW_JITTER
        ):
            return
        gateway.skewed, gateway.skew = True, ahead
        log.warning("inference.clock_skew", gateway=gateway.index, **skew_figures(skew))


def _doubled(first: float, most: float, failures: int) -> float:
    """``first`` doubled once a failure in a row, at most ``most`` (a back-off's seconds)."""
    return min(most, first * 2.0 ** min(failures, _MAX_DOUBLINGS))
