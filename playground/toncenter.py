"""An emulated toncenter v3 indexer: an account's transactions and jetton transfers over HTTP.

The test suite's fake toncenter (``tests/fakes/toncenter.py`` re-exports it) and the
playground's chain: ``python -m playground`` serves it under ``/toncenter`` on its own port,
and the page's "simulate payment" pays a Gram (or USDT) invoice on it (``pay_link``).

It serves ``GET /api/v3/transactions`` (``account``, ``start_lt``, ``end_lt``, ``start_utime``,
``sort``, ``limit``, ``offset``) and ``GET /api/v3/jetton/transfers`` (``owner_address``,
``direction``, ``jetton_master``, the same paging), with toncenter's JSON shapes: hashes in
base64, ``lt`` and amounts as strings, ``description.aborted``, ``in_msg`` with ``source``,
``destination``, ``value``, ``bounced`` and ``message_content`` whose ``body`` is a real BoC
built with ``pytoniq-core`` (and ``decoded.comment`` for a text comment), and jetton transfers
with a ``forward_payload`` BoC. Addresses are given back in whatever form the test put them in.
``POST /api/v3/runGetMethod`` runs one get-method, a jetton master's ``get_wallet_address``
(``{"address", "method", "stack": [{"type": "slice", "value": <BoC>}]}`` answered ``{"gas_used",
"exit_code", "stack"}``): every master computes its wallets deterministically
(``jetton_wallet``), and a jetton transfer comes from the sender's wallet of its master unless
``forged`` (a fake wallet contract that names the real master).

Tests add records with ``add_transaction`` / ``add_jetton_transfer`` / ``send_jettons`` (the
account's own jetton transfer out, and its ``excesses`` back; lt numbers grow by
themselves, from the clock's microseconds at the start (so also across starts), or are given;
a ``late`` jetton transfer is indexed now with an lt below the newest one already listed, as
toncenter can; with ``forward_ton`` the receiving jetton wallet's
``transfer_notification`` carries that Gram to the owner's account: see ``add_jetton_transfer``),
or pay a ``ton://transfer/…`` or Tonkeeper transfer link as a wallet would (``pay_link``: its
address, exact amount and comment; a ``jetton`` link as a jetton transfer), and can make it
answer 429
(``rate_limit_next``, with a ``Retry-After`` if asked), fail with another status
(``fail_next``), answer a page that is no JSON
(``garbage_next``; each of them for every endpoint or one ``path``) or answer slowly
(``delay``), and make the masters' ``get_wallet_address`` throw for one owner
(``refuse_owner``), answer exactly what a test gives (``answer_next``), list newest first
whatever was asked (``newest_first``; each page then put back in order: ``sort_pages``), or
date its answers as a caching proxy's copy (``cache_age``). ``requests`` records every request.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from pytoniq_core.boc.address import Address, AddressError
from pytoniq_core.boc.builder import Builder
from pytoniq_core.boc.cell import Cell

from playground.served import Served

__all__ = [
    "PLAY_PAYER",
    "USDT_MASTER",
    "FakeToncenter",
    "Request",
    "Transfer",
    "comment_boc",
    "hex_hash",
    "jetton_wallet",
    "new_hash",
    "notification_boc",
    "op_boc",
    "raw",
    "transfer_of_link",
]

USDT_MASTER = "EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDs"
MAX_LIMIT = 1000
RATE_LIMITED = {"ok": False, "result": "Ratelimit exceed", "code": 429}
TRANSFER_NOTIFICATION = 0x7362D09C  # TEP-74: the receiver's jetton wallet tells its owner
EXCESSES = 0xD53276DB  # TEP-74: it returns a transfer's Gram left over to the response address
PLAY_PAYER = "0:" + "ab" * 32  # the wallet a simulated payment comes from
# The forward amount a wallet attaches to a jetton transfer so that the receiver's owner is
# told (docs.ton.org, "Jetton processing": set ``forward_ton_amount`` to 1 nanoton at least,
# else no ``transfer_notification`` is sent and services cannot see the transfer).
WALLET_FORWARD_TON = 1
_TRANSFER_PREFIXES = ("ton://transfer/", "https://app.tonkeeper.com/transfer/")


@dataclass(frozen=True)
class Transfer:
    """What a transfer link asks for: pay ``amount`` to ``address`` with ``comment``."""

    address: str
    amount: int
    comment: str | None
    jetton: str | None


def transfer_of_link(link: str) -> Transfer | None:
    """The transfer a ``ton://transfer/…`` or Tonkeeper link asks for; None if it is not one."""
    prefix = next((p for p in _TRANSFER_PREFIXES if link.startswith(p)), None)
    if prefix is None:
        return None
    parts = urlsplit(link)
    address = link[len(prefix) :].split("?", 1)[0]
    query = parse_qs(parts.query)
    try:
        Address(address)
        amount = int(query["amount"][0])
    except (KeyError, ValueError, AddressError):
        return None
    if amount <= 0:
        return None
    comment = query.get("text", [None])[0]
    jetton = query.get("jetton", [None])[0]
    return Transfer(address, amount, comment, jetton)


def comment_boc(comment: str | None) -> str:
    """A message body as toncenter shows it: base64 BoC, a text comment cell or an empty one."""
    builder = Builder()
    if comment is not None:
        builder = builder.store_uint(0, 32).store_snake_string(comment)
    return base64.b64encode(builder.end_cell().to_boc()).decode()


def op_boc(op: int, payload: bytes = b"") -> str:
    """A body with another op (not a text comment): an encrypted comment, a jetton notice..."""
    cell = Builder().store_uint(op, 32).store_bytes(payload).end_cell()
    return base64.b64encode(cell.to_boc()).decode()


def notification_boc(amount: int, sender: str, comment: str | None, *, inline: bool = False) -> str:
    """A ``transfer_notification`` body (TEP-74) as toncenter shows it: a base64 BoC.

    Its ``forward_payload`` (``Either Cell ^Cell``) is the transfer's: the comment cell in a
    reference (bit 1), or inline (bit 0) for an ``inline`` one; none at all for no comment.
    """
    builder = (
        Builder()
        .store_uint(TRANSFER_NOTIFICATION, 32)
        .store_uint(0, 64)
        .store_coins(amount)
        .store_address(Address(sender))
    )
    if comment is None:
        builder = builder.store_bit(0)
    elif inline:
        builder = builder.store_bit(0).store_uint(0, 32).store_snake_string(comment)
    else:
        text = Builder().store_uint(0, 32).store_snake_string(comment).end_cell()
        builder = builder.store_bit(1).store_ref(text)
    return base64.b64encode(builder.end_cell().to_boc()).decode()


def raw(address: str) -> str:
    """An address in toncenter's raw form (upper-case hex), for comparing."""
    return str(Address(address).to_str(is_user_friendly=False)).upper()


def jetton_wallet(master: str, owner: str) -> str:
    """The jetton wallet (raw, upper-case hex) ``master`` computes for ``owner``: a fixed hash.

    A real master derives it from the wallet code and the owner; any fixed function of the two
    stands in for that here.
    """
    digest = hashlib.sha256(f"jetton-wallet:{raw(master)}:{raw(owner)}".encode()).hexdigest()
    return "0:" + digest.upper()


def new_hash() -> str:
    """A random transaction hash in toncenter's base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def hex_hash(b64: str) -> str:
    """A base64 hash as the bot stores it (hex)."""
    return base64.b64decode(b64).hex()


@dataclass
class Request:
    """One request the fake answered: path, query parameters, the API key it carried."""

    path: str
    params: dict[str, str]
    api_key: str | None
    status: int


@dataclass
class _Fault:
    status: int
    remaining: int
    path: str | None = None  # only requests to this endpoint (None: any)
    garbage: bool = False  # a 200 whose body is an HTML page, as a proxy in the way gives
    body: bytes | None = None  # this body as it is (``answer_next``), with these headers
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 0  # requests (to ``path``) served before the fault begins


def _first_lt() -> int:
    """Where a new chain's lts begin: the clock's microseconds, so lts go on across starts.

    The chain's lts only ever grow; the emulated chain starts empty at every start of the
    playground while the bot keeps its cursors. Lts that began at one fixed number each time
    put the next run's first payments below the cursor an earlier run left: never read, never
    credited.
    """
    return time.time_ns() // 1000


@dataclass
class FakeToncenter(Served):
    """The fake indexer; see the module docstring."""

    api_key: str | None = None
    delay: float = 0.0
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    keep_requests: int | None = None  # the last N requests kept in ``requests`` (None: all)
    ignore_offset: bool = False  # answer every page as if ``offset`` were 0 (a broken indexer)
    newest_first: bool = False  # answer every list newest first, whatever ``sort`` asks
    # Each page put back oldest first once cut (with ``newest_first``: a proxy that asks for the
    # newest records and sorts what it got, so a full page looks in order).
    sort_pages: bool = False
    transactions: list[dict[str, Any]] = field(default_factory=list)
    jetton_transfers: list[dict[str, Any]] = field(default_factory=list)
    # owner (raw) -> the exit code every master's get_wallet_address throws for it
    refused_owners: dict[str, int] = field(default_factory=dict)
    # Answers as a caching proxy gives them (served by ``start`` only): ``Age: <cache_age>``,
    # and for a whole number a ``Date`` that many seconds old (the copy's).
    cache_age: int | str | None = None
    # Every answer's ``Date`` header as given, junk too (a hostile proxy's); None: aiohttp's.
    date: str | None = None
    _faults: list[_Fault] = field(default_factory=list)
    _lts: itertools.count[int] = field(default_factory=lambda: itertools.count(_first_lt(), 7))
    _runner: web.AppRunner | None = None

    # -- what tests put on the chain ---------------------------------------------------------

    def add_transaction(  # noqa: PLR0913 -- the fields of a transaction a test may set
        self,
        account: str,
        *,
        value: int,
        comment: str | None = None,
        source: str = PLAY_PAYER,
        destination: str | None = None,
        comment_in: str = "both",
        body: str | None = None,
        bounced: bool = False,
        aborted: bool = False,
        bounce: bool | None = None,
        now: int | None = None,
        lt: int | None = None,
    ) -> dict[str, Any]:
        """An incoming transaction of ``account``; returns the record as served.

        ``comment_in`` is where the comment shows: ``both`` (body BoC and decoded), ``body``
        (BoC only) or ``decoded`` (decoded only, the body being some other BoC). ``body``
        replaces the body BoC outright. ``bounce`` is the message's bounce flag (by default
        set only on an ``aborted`` one). An aborted transaction of a bounceable message sends
        the value back (a bounce phase); of a non-bounceable one, as to a wallet not deployed
        yet (its compute phase skipped, ``no_state``), it keeps the value, as the chain does.
        """
        bounce = aborted if bounce is None else bounce
        boc = (
            body if body is not None else comment_boc(comment if comment_in != "decoded" else None)
        )
        decoded = None
        if comment is not None and comment_in in {"both", "decoded"}:
            decoded = {"type": "text_comment", "comment": comment}
        lt = next(self._lts) if lt is None else lt
        record: dict[str, Any] = {
            "account": raw(account),
            "hash": new_hash(),
            "lt": str(lt),
            "now": int(time.time()) if now is None else now,
            "mc_block_seqno": 40_000_000 + len(self.transactions),
            "trace_id": new_hash(),
            "prev_trans_hash": self.transactions[-1]["hash"] if self.transactions else None,
            "prev_trans_lt": self.transactions[-1]["lt"] if self.transactions else None,
            "orig_status": "active",
            "end_status": "active",
            "total_fees": "2329",
            "description": {
                "type": "ord",
                "aborted": aborted,
                "destroyed": False,
                "credit_first": not bounced,
                "storage_ph": {"storage_fees_collected": "1", "status_change": "unchanged"},
                "credit_ph": {"credit": str(value)},
                "compute_ph": {"skipped": False, "success": not aborted, "exit_code": 0},
            },
            "block_ref": {"workchain": 0, "shard": "8000000000000000", "seqno": 50_000_000},
            "in_msg": {
                "hash": new_hash(),
                "source": source,
                "destination": destination or account,
                "value": str(value),
                "fwd_fee": "266669",
                "ihr_fee": "0",
                "created_lt": str(lt - 1),
                "created_at": str(int(time.time())),
                "opcode": "0x00000000" if comment is not None else None,
                "ihr_disabled": True,
                "bounce": bounce,
                "bounced": bounced,
                "import_fee": None,
                "message_content": {"hash": new_hash(), "body": boc, "decoded": decoded},
                "init_state": None,
            },
            "out_msgs": [],
        }
        if aborted and bounce:
            record["description"]["bounce"] = {"type": "ok", "msg_size": {"cells": "1"}}
        elif aborted:
            record["description"]["compute_ph"] = {"skipped": True, "reason": "no_state"}
            record["orig_status"] = record["end_status"] = "uninit"
        self.transactions.append(record)
        return record

    def add_outgoing(self, account: str) -> dict[str, Any]:
        """A transaction the account's owner started (an external message: no source)."""
        record = self.add_transaction(account, value=0)
        record["in_msg"] |= {"source": None, "value": None, "opcode": None}
        return record

    def add_jetton_transfer(  # noqa: PLR0913 -- the fields of a transfer a test may set
        self,
        owner: str,
        *,
        amount: int,
        comment: str | None = None,
        master: str = USDT_MASTER,
        source: str = "0:" + "cd" * 32,
        aborted: bool = False,
        lt: int | None = None,
        now: int | None = None,
        forged: bool = False,
        inline: bool = False,
        late: bool = False,
        forward_ton: int | None = None,
    ) -> dict[str, Any]:
        """A jetton transfer to ``owner`` (the receiving wallet's owner); returns the record.

        It comes from ``source``'s wallet of ``master``; a ``forged`` one from a wallet that
        is not the master's (a fake contract that answers ``get_wallet_data`` with the real
        master, so the indexer lists it under that master all the same). The comment travels
        in a reference cell, as wallets send it, and ton-indexer gives that cell's BoC and
        decodes it (``decoded_forward_payload``); an ``inline`` one (the payload in the
        transfer's own cell) the indexer does not read, so it lists both as null.

        A ``late`` one is indexed now although its lt is just below the newest transfer listed
        so far (and its time that one's, unless ``now`` is given). toncenter does list such
        transfers: a jetton transfer's lt is that of the sender's jetton wallet's transaction,
        an account on the sender's shard; lt orders only the messages and transactions of one
        trace, causally (docs.ton.org, "foundations/traces": logical time is a partial order),
        not the transactions of independent senders' wallets. Of two payments a few seconds
        apart, the one with the lower lt can be committed to the masterchain, and so indexed,
        after the other is listed.

        With ``forward_ton`` (nanotons, its ``forward_ton_amount``), the owner's jetton wallet
        also sends the owner that much Gram in a ``transfer_notification`` (op ``0x7362d09c``
        ``query_id amount sender forward_payload``, TEP-74: sent whenever the forward amount is
        not zero): a transaction of ``owner``'s account, listed by ``/api/v3/transactions``
        like any other, from the owner's wallet of ``master``, its body that message.
        """
        if late:
            newest = max(self.jetton_transfers, key=lambda t: int(t["transaction_lt"]))
            lt = int(newest["transaction_lt"]) - 1 if lt is None else lt
            now = int(newest["transaction_now"]) if now is None else now
        payload = None if comment is None or inline else comment_boc(comment)
        decoded = None if payload is None else {"@type": "text_comment", "text": comment}
        wallet = jetton_wallet("0:" + "66" * 32 if forged else master, source)
        record = {
            "query_id": "0",
            "source": raw(source),
            "destination": raw(owner),
            "amount": str(amount),
            "source_wallet": wallet,
            "jetton_master": raw(master),
            "transaction_hash": new_hash(),
            "transaction_lt": str(next(self._lts) if lt is None else lt),
            "transaction_now": int(time.time()) if now is None else now,
            "transaction_aborted": aborted,
            "response_destination": raw(source),
            "custom_payload": None,
            "forward_ton_amount": "1" if forward_ton is None else str(forward_ton),
            "forward_payload": payload,
            "decoded_forward_payload": decoded,
            "trace_id": new_hash(),
        }
        self.jetton_transfers.append(record)
        if forward_ton:
            notice = self.add_transaction(
                owner,
                value=forward_ton,
                source=jetton_wallet(master, owner),
                body=notification_boc(amount, source, comment, inline=inline),
            )
            notice["in_msg"]["opcode"] = f"0x{TRANSFER_NOTIFICATION:08x}"
            notice["trace_id"] = record["trace_id"]
        return record

    def send_jettons(  # noqa: PLR0913 -- the fields of a transfer a test may set
        self,
        owner: str,
        *,
        amount: int,
        destination: str,
        change: int,
        master: str = USDT_MASTER,
        query_id: int = 0,
    ) -> dict[str, Any]:
        """``owner`` sends jettons out (its wallet app, naming itself the response address).

        One trace, as on the chain (TEP-74): the owner's own transaction (an external message)
        sends ``transfer`` to its jetton wallet, listed by ``/api/v3/jetton/transfers`` with
        ``direction=out`` for ``owner``; the receiver's jetton wallet then returns what is
        left of the attached Gram (``change``) to the response address in an ``excesses``
        message (op ``0xd53276db query_id``), a transaction of ``owner``'s account from that
        wallet. All three carry the trace's one ``trace_id``. Returns the excesses transaction.
        """
        outgoing = self.add_outgoing(owner)
        trace = outgoing["trace_id"]
        self.jetton_transfers.append(
            {
                "query_id": str(query_id),
                "source": raw(owner),
                "destination": raw(destination),
                "amount": str(amount),
                "source_wallet": jetton_wallet(master, owner),
                "jetton_master": raw(master),
                "transaction_hash": new_hash(),
                "transaction_lt": str(next(self._lts)),
                "transaction_now": outgoing["now"],
                "transaction_aborted": False,
                "response_destination": raw(owner),
                "custom_payload": None,
                "forward_ton_amount": "0",
                "forward_payload": None,
                "decoded_forward_payload": None,
                "trace_id": trace,
            }
        )
        excesses = self.add_transaction(
            owner,
            value=change,
            source=jetton_wallet(master, destination),
            body=op_boc(EXCESSES, query_id.to_bytes(8, "big")),
        )
        excesses["in_msg"]["opcode"] = f"0x{EXCESSES:08x}"
        excesses["trace_id"] = trace
        return excesses

    def pay_link(self, link: str, *, source: str = PLAY_PAYER) -> dict[str, Any] | None:
        """Pay a transfer link as a wallet would: its exact amount and comment, now.

        A ``jetton`` link becomes a jetton transfer of that master, with the forward amount a
        wallet attaches (``WALLET_FORWARD_TON``), so the owner's account also gets its jetton
        wallet's ``transfer_notification``, as on the chain; any other a transaction of the
        address. Returns the record as served, or None when ``link`` is no transfer link.
        """
        transfer = transfer_of_link(link)
        if transfer is None:
            return None
        if transfer.jetton is not None:
            return self.add_jetton_transfer(
                transfer.address,
                amount=transfer.amount,
                comment=transfer.comment,
                master=transfer.jetton,
                source=source,
                forward_ton=WALLET_FORWARD_TON,
            )
        return self.add_transaction(
            transfer.address, value=transfer.amount, comment=transfer.comment, source=source
        )

    # -- failures ----------------------------------------------------------------------------

    def refuse_owner(self, owner: str, exit_code: int = 333) -> None:
        """Make the masters' ``get_wallet_address`` throw for ``owner``, every time it is asked.

        toncenter answers a get-method the contract threw in with 200 and its exit code
        (``RunGetMethodResponse``: ``{"gas_used", "exit_code", "stack": []}``). The USDT master
        (``stablecoin-contract``'s ``jetton-minter.fc``) computes a wallet for any address
        today, but it is upgradable (``op::upgrade``), and a master that checks the owner's
        workchain, as that contract's wallets already do on a transfer (``check_same_workchain``,
        ``error::wrong_workchain`` = 333), throws for a masterchain owner.
        """
        self.refused_owners[raw(owner)] = exit_code

    def rate_limit_next(
        self,
        count: int = 1,
        *,
        path: str | None = None,
        after: int = 0,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path``) 429 with toncenter's body.

        ``after`` requests are served first, as toncenter without a key serves about one a
        second and refuses the one that follows at once. ``retry_after``: the ``Retry-After``
        header sent with each, as given (seconds, an HTTP-date, or junk); None sends none.
        """
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        fault = _Fault(HTTPStatus.TOO_MANY_REQUESTS, count, path, after=after, headers=headers)
        self._faults.append(fault)

    def fail_next(
        self,
        count: int = 1,
        status: int = HTTPStatus.INTERNAL_SERVER_ERROR,
        *,
        path: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``count`` requests (to ``path``) with ``status``, ``after`` served."""
        self._faults.append(_Fault(status, count, path, after=after))

    def garbage_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``path``) 200 with an HTML page."""
        self._faults.append(_Fault(HTTPStatus.OK, count, path, garbage=True))

    def answer_next(
        self,
        count: int = 1,
        *,
        status: int = HTTPStatus.OK,
        body: bytes,
        headers: dict[str, str] | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path``) with ``status`` and ``body`` as is.

        ``{"ok": false}`` with a 200, a 429 with ``Retry-After``, a page cut off mid-JSON.
        """
        fault = _Fault(status, count, path, body=body, headers=dict(headers or {}))
        self._faults.append(fault)

    # -- serving -----------------------------------------------------------------------------

    def routes(self, prefix: str = "") -> list[web.AbstractRouteDef]:
        """Its two endpoints under ``prefix`` (``/toncenter`` in the playground)."""
        return [
            web.get(f"{prefix}/api/v3/transactions", self._transactions),
            web.get(f"{prefix}/api/v3/jetton/transfers", self._jetton_transfers),
            web.post(f"{prefix}/api/v3/runGetMethod", self._run_get_method),
        ]

    async def start(self) -> str:
        """Listen on a free port of 127.0.0.1; return the base URL."""
        app = web.Application()
        app.router.add_routes(self.routes())
        app.on_response_prepare.append(self._cached)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _cached(self, _request: web.Request, response: web.StreamResponse) -> None:
        """Date an answer as a cache's copy ``cache_age`` old (when set), with its ``Age``."""
        if self.date is not None:
            response.headers["Date"] = self.date
        if self.cache_age is None:
            return
        response.headers["Age"] = str(self.cache_age)
        if isinstance(self.cache_age, int):
            dated = time.time() - self.cache_age
            response.headers["Date"] = email.utils.formatdate(dated, usegmt=True)

    def calls(self, path: str) -> list[Request]:
        """The requests to ``path`` that were answered 200."""
        return [r for r in self.requests if r.path == path and r.status == HTTPStatus.OK]

    async def _answer(self, request: web.Request) -> web.Response | None:
        """The refusal this request gets (key, injected fault), or None to serve it."""
        if self.delay:
            await asyncio.sleep(self.delay)
        key = request.headers.get("X-API-Key")
        status: int = HTTPStatus.OK
        reply: web.Response | None = None
        if self.api_key is not None and key != self.api_key:
            status = HTTPStatus.UNAUTHORIZED
            reply = web.json_response({"error": "API key does not exist"}, status=status)
        elif (fault := self._fault_for(request.path)) is not None:
            status = fault.status
            body = RATE_LIMITED if status == HTTPStatus.TOO_MANY_REQUESTS else {"error": "fault"}
            reply = web.json_response(body, status=status, headers=fault.headers)
            if fault.garbage:
                page = "<html><body>502 Bad Gateway</body></html>"
                reply = web.Response(text=page, content_type="text/html")
            if fault.body is not None:
                reply = web.Response(
                    body=fault.body,
                    status=status,
                    headers=fault.headers,
                    content_type="application/json",
                )
        params = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            params |= _posted(await request.read())
        self.requests.append(Request(request.path, params, key, status))
        if self.keep_requests is not None:
            del self.requests[: -self.keep_requests or None]
        return reply

    def _fault_for(self, path: str) -> _Fault | None:
        """The first fault waiting for a request to ``path`` (counted), or None."""
        for fault in self._faults:
            if fault.path is None or path.endswith(fault.path):
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _run_get_method(self, request: web.Request) -> web.Response:
        """A master's ``get_wallet_address``, as toncenter runs it on the contract."""
        if (refusal := await self._answer(request)) is not None:
            return refusal
        try:
            body = json.loads(await request.read())
            master = raw(body["address"])
            method, stack = body["method"], body["stack"]
            if not isinstance(stack, list):
                raise TypeError
        except (ValueError, KeyError, TypeError, AddressError):
            return web.json_response({"error": "invalid request"}, status=422)
        owner = None
        if method == "get_wallet_address" and len(stack) == 1 and isinstance(stack[0], dict):
            item = stack[0]
            if item.get("type") == "slice" and isinstance(item.get("value"), str):
                owner = _address_in(item["value"])
        if owner is None:  # no such method, or a stack it cannot take: the TVM's exit code
            return web.json_response({"gas_used": 700, "exit_code": 11, "stack": []})
        if (refused := self.refused_owners.get(raw(owner))) is not None:  # the contract threw
            return web.json_response({"gas_used": 1_200, "exit_code": refused, "stack": []})
        wallet = Builder().store_address(Address(jetton_wallet(master, owner))).end_cell()
        answer = {"type": "slice", "value": base64.b64encode(wallet.to_boc()).decode()}
        return web.json_response({"gas_used": 4_260, "exit_code": 0, "stack": [answer]})

    async def _transactions(self, request: web.Request) -> web.Response:
        if (refusal := await self._answer(request)) is not None:
            return refusal
        query = request.query
        try:
            account = raw(query["account"])
        except (KeyError, AddressError, ValueError):
            return web.json_response({"error": "invalid account"}, status=422)
        found = [tx for tx in self.transactions if tx["account"] == account]
        page = _page(
            found,
            query,
            "lt",
            "now",
            ignore_offset=self.ignore_offset,
            newest_first=self.newest_first,
            sort_page=self.sort_pages,
        )
        book = {tx["account"]: {"user_friendly": account, "domain": None} for tx in page}
        return web.json_response({"transactions": page, "address_book": book})

    async def _jetton_transfers(self, request: web.Request) -> web.Response:
        if (refusal := await self._answer(request)) is not None:
            return refusal
        query = request.query
        found = self.jetton_transfers
        if "owner_address" in query:
            owner = raw(query["owner_address"])
            side = "source" if query.get("direction") == "out" else "destination"
            found = [t for t in found if t[side] == owner]
        if "jetton_master" in query:
            found = [t for t in found if t["jetton_master"] == raw(query["jetton_master"])]
        page = _page(
            found,
            query,
            "transaction_lt",
            "transaction_now",
            ignore_offset=self.ignore_offset,
            newest_first=self.newest_first,
            sort_page=self.sort_pages,
        )
        return web.json_response({"jetton_transfers": page, "address_book": {}, "metadata": {}})


def _posted(raw_body: bytes) -> dict[str, str]:
    """The get-method request's address and method, to record (empty for a body not JSON)."""
    try:
        body = json.loads(raw_body)
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    return {k: v for k in ("address", "method") if isinstance(v := body.get(k), str)}


def _address_in(boc: str) -> str | None:
    """The address a slice argument (base64 BoC) holds, raw; None when it holds none."""
    try:
        address = Cell.one_from_boc(base64.b64decode(boc)).begin_parse().load_address()
    except Exception:  # noqa: BLE001 -- a test's bad argument: the get-method fails
        return None
    return None if address is None else str(address.to_str(is_user_friendly=False))


def _page(  # noqa: PLR0913 -- the records, the query, its two keys, and three quirks
    records: list[dict[str, Any]],
    query: Any,  # noqa: ANN401 -- a query mapping
    lt_key: str,
    time_key: str,
    *,
    ignore_offset: bool = False,
    newest_first: bool = False,
    sort_page: bool = False,
) -> list[Any]:
    """Filter by lt and time, sort, then ``offset`` and ``limit`` as toncenter does."""
    if "start_lt" in query:
        records = [r for r in records if int(r[lt_key]) >= int(query["start_lt"])]
    if "end_lt" in query:
        records = [r for r in records if int(r[lt_key]) <= int(query["end_lt"])]
    if "start_utime" in query:
        records = [r for r in records if int(r[time_key]) >= int(query["start_utime"])]
    newest_first = newest_first or query.get("sort") == "desc"
    records = sorted(records, key=lambda r: int(r[lt_key]), reverse=newest_first)
    limit = min(int(query.get("limit", "10")), MAX_LIMIT)
    offset = 0 if ignore_offset else int(query.get("offset", "0"))
    page = records[offset : offset + limit]
    if sort_page:
        page.sort(key=lambda r: int(r[lt_key]), reverse=query.get("sort") == "desc")
    return page
