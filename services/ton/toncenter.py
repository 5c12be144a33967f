"""A small client for toncenter's v3 indexer API: an account's transactions, jetton transfers.

``GET /api/v3/transactions?account=…&start_lt=…&sort=asc&limit=…&offset=…`` and
``GET /api/v3/jetton/transfers?owner_address=…&direction=in&start_lt=…&sort=asc&limit=…`` (each
with ``end_lt=…`` too, to ask what lies between the cursor and a page; or, to read again behind
the cursor, ``start_utime=…&end_lt=…``: both bounds inclusive; with
``direction=out&sort=desc``, the account's own transfers out, newest first), and
one get-method: ``POST /api/v3/runGetMethod`` with ``{"address": <master>, "method":
"get_wallet_address", "stack": [{"type": "slice", "value": <BoC of the owner's address>}]}``,
answered ``{"gas_used": …, "exit_code": 0, "stack": [{"type": "slice", "value": <BoC>}]}`` (the
shapes of toncenter's ton-indexer API, ``RunGetMethodRequest`` / ``RunGetMethodResponse``; a
slice may come back typed ``cell``, as ton-http-api gives it). The API key (if any) goes in
``X-API-Key``. toncenter lists only finalized transactions. A 429
(``{"ok":false,"result":"Ratelimit exceed","code":429}``) raises ``ToncenterRateLimited``, with
the wait its ``Retry-After`` asks for (seconds, or an HTTP-date read against the answer's own
``Date``; at most ``MAX_RETRY_AFTER_S``; a value that is neither is not used); any
other failure (network, timeout, HTTP error, a body that is not the expected JSON)
``ToncenterUnavailable`` (a redirect too: it is not followed, so the key never goes to another
host; an answer past ``MAX_BODY`` its subclass ``ToncenterTooLarge``, which a page of fewer
records may not be), and an HTTP 4xx its subclass ``ToncenterRefused`` (asked again, the same
answer; not 408, 421 or 425, which ask to be asked again); a
get-method that ran and failed (an ``exit_code`` other than 0) ``GetMethodFailed``.
The key never appears in a log line or an error. Each good answer's ``Date`` header tells how
far this machine's clock is ahead of toncenter's (``ahead``), for a stream's first read
(``services.ton.reader``): a clock that is wrong must not make the watcher pass over a payment.
A caching proxy's copy keeps toncenter's ``Date``: its ``Age`` is added to it (up to
``MAX_AGE_S``; a junk one is not used, ``ton.clock_age_ignored``, once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeGuard

import aiohttp
import structlog

from services.ton.chain import address_boc, address_from_boc
from services.ton.errors import (
    GetMethodFailed,
    ToncenterRateLimited,
    ToncenterRefused,
    ToncenterTooLarge,
    ToncenterUnavailable,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from models.ton import TonCursor

__all__ = ["MAINNET_URL", "MAX_AGE_S", "MAX_RETRY_AFTER_S", "TESTNET_URL", "ToncenterClient"]

log = structlog.get_logger("veil.ton")

MAINNET_URL = "https://toncenter.com"
TESTNET_URL = "https://testnet.toncenter.com"
REQUEST_TIMEOUT_S = 20.0
# Read at most this much of an answer. A page of 100 transactions with small bodies is far
# smaller, but a payer can send bodies of up to 256 KiB (TON's message limit): a page past it
# is asked again with fewer records (``ToncenterTooLarge``, ``services.ton.reader``).
MAX_BODY = 8 * 1024 * 1024
# A cached answer's ``Age`` past this (seconds) is not used. A cache keeps toncenter's ``Date``
# (RFC 9111), but a proxy that dates its copies by its own clock and adds their age makes
# toncenter look ahead by that age, and so hides as much of our lead: counted up to half the
# first read's margin (``services.ton.shop.CURSOR_MARGIN_S``), a lead so hidden is still
# inside the margin; beyond, the lead can only look larger (review25c). A caching proxy in
# front of toncenter keeps a page seconds.
MAX_AGE_S = 300
# A 429's ``Retry-After`` past this (seconds) is cut to it: the reader waits it within a pass
# (``services.ton.reader``), and the watcher backs off on its own when the 429s go on.
MAX_RETRY_AFTER_S = 60.0
# The 4xx that say the same request may pass when sent again (RFC 9110 §15.5.9: 408, the
# request took too long, often a proxy's; §15.5.20: 421; RFC 8470: 425): not a refusal.
_PASSING_4XX = frozenset(
    {HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.MISDIRECTED_REQUEST, HTTPStatus.TOO_EARLY}
)
# The exit codes a contract can throw: 0 and 1 are successes, and a throw outside 0..65535 is
# exit code 5 (TVM), so lower ones are the VM's or the liteserver's own.
_LOWEST_THROWN, _HIGHEST_THROWN = 2, 65_535


class ToncenterClient:
    """Reads pages of toncenter v3 records; one method a kind of record."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._session = session
        self._headers = {"X-API-Key": api_key} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        # Seconds this machine's clock was ahead of toncenter's (its last good answer's
        # ``Date``, whole seconds: up to a second more); None before one that had it.
        self.ahead: float | None = None
        self._age_ignored = False  # whether a junk ``Age`` was logged

    def __repr__(self) -> str:
        return f"ToncenterClient({self._base!r})"

    async def transactions(
        self,
        account: str,
        cursor: TonCursor,
        *,
        limit: int,
        offset: int = 0,
        end_lt: int | None = None,
    ) -> list[Any]:
        """The account's transactions from the cursor on (its own included), oldest first.

        Before the cursor has a transaction, from the time the watcher began (``since``);
        up to lt ``end_lt`` (included) when given.
        """
        params = {"account": account, "sort": "asc", "limit": str(limit), "offset": str(offset)}
        params |= _start(cursor, end_lt)
        return await self._list("/api/v3/transactions", params, "transactions")

    async def jetton_transfers(
        self,
        owner: str,
        cursor: TonCursor,
        *,
        limit: int,
        offset: int = 0,
        end_lt: int | None = None,
    ) -> list[Any]:
        """Jetton transfers to ``owner`` from the cursor on, oldest first (every jetton).

        Up to lt ``end_lt`` (included) when given.
        """
        params = {
            "owner_address": owner,
            "direction": "in",
            "sort": "asc",
            "limit": str(limit),
            "offset": str(offset),
        }
        params |= _start(cursor, end_lt)
        return await self._list("/api/v3/jetton/transfers", params, "jetton_transfers")

    async def jetton_transfers_behind(
        self, owner: str, *, start_utime: int, end_lt: int, limit: int, offset: int = 0
    ) -> list[Any]:
        """Jetton transfers to ``owner`` of chain time ``start_utime`` on, up to lt ``end_lt``.

        Oldest (lowest lt) first, both bounds included: the stream behind a cursor, read again
        for a transfer indexed after the cursor had passed its lt.
        """
        params = {
            "owner_address": owner,
            "direction": "in",
            "start_utime": str(start_utime),
            "end_lt": str(end_lt),
            "sort": "asc",
            "limit": str(limit),
            "offset": str(offset),
        }
        return await self._list("/api/v3/jetton/transfers", params, "jetton_transfers")

    async def jetton_transfers_sent(
        self, owner: str, *, start_utime: int, end_lt: int, limit: int, offset: int = 0
    ) -> list[Any]:
        """Jetton transfers ``owner`` sent (any jetton), newest first, up to lt ``end_lt``.

        Of chain time ``start_utime`` on; both bounds included.
        """
        params = {
            "owner_address": owner,
            "direction": "out",
            "start_utime": str(start_utime),
            "end_lt": str(end_lt),
            "sort": "desc",
            "limit": str(limit),
            "offset": str(offset),
        }
        return await self._list("/api/v3/jetton/transfers", params, "jetton_transfers")

    async def jetton_wallet(self, master: str, owner: str) -> str:
        """The jetton wallet (raw form) ``master`` computes for ``owner``: its get-method.

        ``GetMethodFailed`` when the contract threw (toncenter answers 200 with its
        ``exit_code``, and the same again however often asked); ``ToncenterUnavailable`` for
        any other answer that is not one address (garbage, no result, an exit code no contract
        throws: see ``_thrown``).
        """
        path = "/api/v3/runGetMethod"
        request = {
            "address": master,
            "method": "get_wallet_address",
            "stack": [{"type": "slice", "value": address_boc(owner)}],
        }
        body = await self._send(path, json_body=request)
        stack, exit_code = body.get("stack"), body.get("exit_code")
        if _thrown(exit_code):
            raise GetMethodFailed(exit_code)
        if exit_code != 0 or not isinstance(stack, list) or len(stack) != 1:
            raise ToncenterUnavailable(f"toncenter: get_wallet_address did not run ({path})")
        item = stack[0]
        wallet = None
        if isinstance(item, dict) and item.get("type") in {"slice", "cell"}:
            wallet = address_from_boc(item.get("value"))
        if wallet is None:
            raise ToncenterUnavailable(f"toncenter: get_wallet_address gave no address ({path})")
        return wallet

    async def _list(self, path: str, params: dict[str, str], key: str) -> list[Any]:
        body = await self._get(path, params)
        records = body.get(key)
        if not isinstance(records, list):
            raise ToncenterUnavailable(f"toncenter's {path} answer has no {key} list")
        return records

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        return await self._send(path, params=params)

    async def _send(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """GET with ``params``, or POST ``json_body``; the answer's JSON object."""
        try:
            async with self._session.request(
                "GET" if json_body is None else "POST",
                self._base + path,
                params=params,
                json=json_body,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect would carry X-API-Key to the host it names
            ) as response:
                if response.status == HTTPStatus.TOO_MANY_REQUESTS:
                    wait = self._retry_after(response.headers)
                    raise ToncenterRateLimited("toncenter: rate limited (429)", retry_after=wait)
                if (
                    HTTPStatus.BAD_REQUEST <= response.status < HTTPStatus.INTERNAL_SERVER_ERROR
                    and response.status not in _PASSING_4XX
                ):
                    raise ToncenterRefused(f"toncenter: HTTP {response.status} for {path}")
                if response.status != HTTPStatus.OK:
                    raise ToncenterUnavailable(f"toncenter: HTTP {response.status} for {path}")
                raw = await _body(response)
                self._note_date(response.headers.get("Date"), response.headers.getall("Age", []))
        except (aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise ToncenterUnavailable(f"toncenter: {type(exc).__name__} for {path}") from exc
        if len(raw) > MAX_BODY:
            raise ToncenterTooLarge(f"toncenter: the answer for {path} is too large")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # nested past the parser's depth too
            raise ToncenterUnavailable(f"toncenter: the answer for {path} is not JSON") from exc
        if not isinstance(body, dict):
            raise ToncenterUnavailable(f"toncenter: the answer for {path} is not an object")
        if body.get("ok") is False:
            if body.get("code") == HTTPStatus.TOO_MANY_REQUESTS:
                raise ToncenterRateLimited("toncenter: rate limited (429)")
            raise ToncenterUnavailable(f"toncenter: an error answer for {path}")
        return body

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        """The seconds a 429's ``Retry-After`` asks to wait, at most ``MAX_RETRY_AFTER_S``.

        Either whole seconds or an HTTP-date (RFC 9110 §10.2.3); a date is read against the
        answer's own ``Date`` where it has one, so this machine's clock being off does not
        stretch or shrink the wait. None without one, or for one that is neither.
        """
        text = headers.get("Retry-After", "").strip()
        if not text:
            return None
        if text.isascii() and text.isdigit():
            return min(float(text), MAX_RETRY_AFTER_S)
        try:
            until = parsedate_to_datetime(text)
        except (TypeError, ValueError, OverflowError):  # neither: not used (logged, not shown)
            log.debug("ton.retry_after_ignored")
            return None
        now = self._clock()
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            now = _utc(parsedate_to_datetime(headers.get("Date", ""))).timestamp()
        return min(max(_utc(until).timestamp() - now, 0.0), MAX_RETRY_AFTER_S)

    def _note_date(self, header: str | None, ages: list[str]) -> None:
        """Keep how far our clock is ahead of the one that dated toncenter's answer.

        A cache's copy keeps the ``Date`` toncenter gave it and says in ``Age`` how long it
        has held it (RFC 9111 §5.1): toncenter's clock read then is ``Date`` plus ``Age``.
        """
        if header is None:
            return
        try:
            dated = _utc(parsedate_to_datetime(header))
        except (TypeError, ValueError, OverflowError):  # not an HTTP date: nothing learnt
            return
        self.ahead = self._clock() - dated.timestamp() - self._age(ages)

    def _age(self, ages: list[str]) -> int:
        """The answer's ``Age`` in seconds: 0 when none, or when it is junk.

        Junk (not one count of seconds, or past ``MAX_AGE_S``) is not used, and logged once
        (``ton.clock_age_ignored``): an Age too large could hide a lead of our clock (a proxy
        that dates its copies now), and the first read would start in the chain's future;
        without it the lead can only look larger, and the read start earlier (it books what it
        reads once, never passes over a payment).
        """
        if not ages:
            return 0
        text = ages[0].strip()
        if len(set(ages)) == 1 and text.isascii() and text.isdigit() and int(text) <= MAX_AGE_S:
            return int(text)
        if not self._age_ignored:
            self._age_ignored = True
            log.warning("ton.clock_age_ignored", age=", ".join(ages)[:64], most_s=MAX_AGE_S)
        return 0


async def _body(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, up to one byte past ``MAX_BODY`` (then the caller refuses it).

    ``read(n)`` gives what has arrived so far, at most ``n`` bytes, not the whole body: a page
    of a few hundred kilobytes comes in many pieces.
    """
    body = bytearray()
    while len(body) <= MAX_BODY:
        piece = await response.content.read(MAX_BODY + 1 - len(body))
        if not piece:
            break
        body += piece
    return bytes(body)


def _utc(dated: datetime) -> datetime:
    """An HTTP date of no stated zone ("-0000": UTC, RFC 5322) as UTC; others as they are."""
    return dated.replace(tzinfo=UTC) if dated.tzinfo is None else dated


def _start(cursor: TonCursor, end_lt: int | None = None) -> dict[str, str]:
    bounds = {} if end_lt is None else {"end_lt": str(end_lt)}
    if cursor.lt is None:
        return bounds | {"start_utime": str(cursor.since)}
    return bounds | {"start_lt": str(cursor.lt)}


def _thrown(exit_code: object) -> TypeGuard[int]:
    """Whether a get-method's ``exit_code`` is one its contract threw (2 to 65535).

    0 and 1 are the TVM's two successes. A contract cannot throw outside 0..65535 (such a throw
    is exit code 5), so a negative code is the VM's or the liteserver's own (-14 out of gas,
    tonlib's -13, -256 for an account the liteserver holds no active state of): the server's
    trouble, which may pass, never the contract's answer.
    """
    return (
        isinstance(exit_code, int)
        and not isinstance(exit_code, bool)
        and _LOWEST_THROWN <= exit_code <= _HIGHEST_THROWN
    )
