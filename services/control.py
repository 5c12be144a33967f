"""Control requests about a running answer: stop it, or fetch its signed receipt afterwards.

Both are proven with keys derived from the request's response key (``sealed.auth``), which
only the asker knows, so nobody else can stop an answer or read its usage:

- ``POST /v1/sealed/cancel`` ``{"request_id", "proof"}``: 202 ``stopping`` (the open stream then
  ends with a ``stopped`` final record counting what was delivered), 200 ``finished`` (it had
  already ended), 404 unknown request, 403 bad proof.
- ``GET /v1/sealed/receipts/{request_id}`` with ``Veil-Proof``: 200 and the stream's final
  record (as JSON), 409 while the stream is still running, 404, 403. A gateway whose client
  hung up stops the model and keeps the receipt for a while.

A relay that holds no response key (the bot relaying a Mini App's request) sends the proofs
the asker made: ``cancel_proven`` and ``fetch_receipt_proven``.

These requests use their own small connection pool, so a stop is never queued behind new
answers waiting for a stream slot.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import structlog

from sealed.auth import PROOF_HEADER, cancel_proof, receipt_proof
from sealed.encoding import b64e
from sealed.errors import MalformedMessage
from sealed.stream import Final
from services.gateways import REFUSAL_MOST, json_reply, refusal_code

if TYPE_CHECKING:
    from services.gateways import Gateway

log = structlog.get_logger("veil.inference")

STOPPING = "stopping"
FINISHED = "finished"
# A cancel that never reached the gateway: the network failed, or a proxy (or the gateway's
# own trouble, 5xx/429) answered for it. The caller hangs up instead, which stops the model.
UNDELIVERED = "undelivered"
_HTTP_OK = 200
_HTTP_ACCEPTED = 202
_HTTP_CONFLICT = 409  # the receipt is not there yet: the stream is still running
_HTTP_SERVER_ERROR = 500
_HTTP_TOO_MANY = 429


@dataclass(frozen=True)
class ControlClient:
    """Sends cancels and fetches receipts; ``retry_delays`` are the pauses between fetches."""

    session: aiohttp.ClientSession
    timeout: float = 5.0
    retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)

    async def cancel(self, gateway: Gateway, request_id: bytes, response_key: bytes) -> str | None:
        """Ask the gateway to stop the answer; its state (``stopping``/``finished``) or None.

        None means the gateway refused the cancel (a wrong proof, an unknown request: its JSON
        error with a code); ``UNDELIVERED`` that it never got it (unreachable, a proxy's reply of
        any status that is not the gateway's, or its own 5xx or 429).
        Either way the caller should hang up, which stops the model too.
        """
        return await self.cancel_proven(
            gateway, request_id, b64e(cancel_proof(response_key, request_id))
        )

    async def cancel_proven(self, gateway: Gateway, request_id: bytes, proof: str) -> str | None:
        """``cancel`` with a proof made elsewhere (a Mini App's, which holds the response key)."""
        body = {"request_id": request_id.hex(), "proof": proof}
        try:
            async with self.session.post(
                f"{gateway.url}/v1/sealed/cancel",
                json=body,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,  # the proof goes to the gateway we were given, only
            ) as response:
                status = response.status
                try:
                    reply = await json_reply(response, REFUSAL_MOST)
                # Not the gateway's JSON: a proxy's page, one too long, nested past the parser's
                # depth, or in a charset that is no text encoding (``charset=hex``).
                except (ValueError, RecursionError, LookupError):
                    reply = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("inference.cancel_failed", gateway=gateway.index, error=type(exc).__name__)
            return UNDELIVERED
        state = reply.get("state") if isinstance(reply, dict) else None
        if status in {_HTTP_OK, _HTTP_ACCEPTED} and state in {STOPPING, FINISHED}:
            log.info("inference.cancel_sent", gateway=gateway.index, state=state)
            return str(state)
        log.warning("inference.cancel_refused", gateway=gateway.index, status=status)
        if status >= _HTTP_SERVER_ERROR or status == _HTTP_TOO_MANY:
            return UNDELIVERED
        # The gateway refuses a cancel (a wrong proof, an unknown request) with its JSON error
        # and a code; any other reply is a proxy's (a firewall's 403 page, a page with a 200).
        return None if refusal_code(reply) != "unknown" else UNDELIVERED

    async def fetch_receipt(
        self, gateway: Gateway, request_id: bytes, response_key: bytes
    ) -> Final | None:
        """The stream's final record as the gateway kept it, or None if none can be had.

        Retried after each of ``retry_delays`` while the gateway says the stream is still
        running, fails, or cannot be reached; not after a 404 or 403. The receipt inside is not
        verified here.
        """
        return await self.fetch_receipt_proven(
            gateway, request_id, b64e(receipt_proof(response_key, request_id))
        )

    async def fetch_receipt_proven(
        self, gateway: Gateway, request_id: bytes, proof: str
    ) -> Final | None:
        """``fetch_receipt`` with a proof made elsewhere (a Mini App's)."""
        url = f"{gateway.url}/v1/sealed/receipts/{request_id.hex()}"
        problem = "no_attempt"
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            if delay:
                await asyncio.sleep(delay)
            try:
                async with self.session.get(
                    url,
                    headers={PROOF_HEADER: proof},
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                    allow_redirects=False,  # the proof goes to the gateway we were given, only
                ) as response:
                    status = response.status
                    reply = await json_reply(response, REFUSAL_MOST) if status == _HTTP_OK else None
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
                continue
            # Not the gateway's JSON: too long, nested past the parser's depth, or in a charset
            # that is no text encoding (``charset=hex``) too.
            except (ValueError, RecursionError, LookupError):
                problem = "malformed"
                break
            if status == _HTTP_OK:
                try:
                    if not isinstance(reply, dict):
                        raise MalformedMessage("receipt reply is not an object")
                    final = Final.from_payload(reply)
                except MalformedMessage:
                    problem = "malformed"
                    break
                log.info("inference.receipt_fetched", gateway=gateway.index, attempts=attempt + 1)
                return final
            problem = f"HTTP {status}"
            if status not in {_HTTP_CONFLICT, _HTTP_TOO_MANY} and status < _HTTP_SERVER_ERROR:
                break
        log.warning("inference.receipt_unavailable", gateway=gateway.index, problem=problem)
        return None
