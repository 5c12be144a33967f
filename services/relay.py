"""The Mini App's relay: bill and pass on questions sealed in the user's browser, unread.

The Mini App (docs/miniapp.md) seals each question to a gateway's key in the browser, so the
bot holds ciphertext only. For one request the relay:

1. holds credit before anything is sent: the prompt's ceiling is the sealed plaintext's size
   (every token of the prompt is at least one byte of it: ``services.tokens``), the answer as
   many tokens as the page says it sealed as ``max_completion_tokens``, all of them or nothing
   (``prepare`` tells the page how many the user can pay for);
2. countersigns the sealed bytes with the bot's client key and sends them to the gateway the
   page sealed to, with a relay key (``sealed.relay``) so the gateway also returns the receipt
   sealed to the bot after the final chunk;
3. hands the gateway's chunks on to the page whole, as they come, and never the relay receipt;
4. settles from the relay receipt, verified like any receipt (the gateway's receipt key, the
   request id and model the page declared); if the stream broke first, from the late receipt
   fetched with the receipt proof the page sent (only it can make one); with neither, it charges
   the hold when anything was handed on (logged) and nothing otherwise.

Stopping is metered: only the page can make the cancel proof, so it sends it here and the relay
forwards it; the stream then ends with a ``stopped`` receipt within ``stop_grace`` seconds, or
the relay hangs up and fetches it. A gateway that has not replied within the grace of a stop
is hung up on too, and settled from its late receipt if it had begun after all. A page that
goes away, an answer past ``max_answer_seconds`` and shutdown hang up too (the gateway stops
the model and keeps the receipt). On shutdown the relay first takes no new answers
(``stop_taking``) and the bot waits for the running ones within its grace (``wait_idle``,
``bot.shutdown``) before ``close`` hangs up on the rest. One answer at a time per user (a
question waits, briefly, for an answer its page left to be settled). Nothing here sees or
logs text: ids, counts and outcomes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import aiohttp
import structlog

from common.waits import retry_after as read_retry_after
from sealed.auth import client_auth_headers
from sealed.encoding import REQUEST_BUCKETS
from sealed.errors import MalformedMessage, ReceiptInvalid, SealedError
from sealed.receipt import ReceiptStatus
from sealed.relay import (
    RELAY_KEY_HEADER,
    RELAY_TERMS_HEADER,
    RelayTerms,
    StreamFramer,
    body_hash,
    new_relay_key,
    open_relay_receipt,
    seal_relay_key,
)
from sealed.request import REQUEST_ID_SIZE, RequestHeader
from sealed.stream import ACCEPT_HEADER, ACCEPT_RETRY_AFTER
from services.audit import proof_for
from services.closing import CloseDeadline
from services.control import STOPPING, UNDELIVERED
from services.errors import (
    AnswerInProgress,
    BadRelayRequest,
    BillingError,
    GatewayRefused,
    InferenceUnavailable,
    InsufficientCredit,
    StoppedBeforeAnswer,
    UntrustedGateway,
)
from services.gateways import (
    UNREACHABLE,
    named_skew,
    refusal_code,
    refusal_reply,
    skew_figures,
)
from services.relayed import (
    Account,
    GatewayOffer,
    Offer,
    RelayedAnswer,
    Ticket,
    prompt_ceiling,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from models.holds import Charge
    from sealed.receipt import SignedReceipt
    from services.control import ControlClient
    from services.credit import Credit, Hold
    from services.gateways import Gateway, GatewayPool

log = structlog.get_logger("veil.relay")

SEALED_REQUEST_TYPE = "application/vnd.veil.sealed-request"
_HTTP_OK = 200
_HTTP_BAD_REQUEST = 400  # with ``stale_request``: the gateway's clock and the bot's disagree
_FAILOVER_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# After the page (or shutdown) gives up: how long the late receipt may take to be had.
CLOSE_SLACK_S = 30.0


class RelayService:
    """Relays Mini App requests: ``prepare``, ``relay``, ``stop``; ``account`` for the page."""

    def __init__(  # noqa: PLR0913 -- the relay's parts and its limits
        self,
        pool: GatewayPool,
        credit: Credit,
        session: aiohttp.ClientSession,
        control: ControlClient,
        *,
        client_key: ed25519.Ed25519PrivateKey,
        default_model: str | None = None,
        context_tokens: int = 4096,
        max_answer_tokens: int = 1024,
        min_answer_tokens: int = 64,
        max_answer_seconds: float = 600.0,
        stop_grace: float = 10.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        pool_wait: float = 10.0,
    ) -> None:
        self._pool = pool
        self._credit = credit
        self._session = session
        self._control = control
        self._client_key = client_key
        self.default_model = default_model
        self.context_tokens = context_tokens  # the bot's window limit, for the page to fit
        self.max_answer_tokens = max_answer_tokens
        self.min_answer_tokens = min_answer_tokens
        self.max_answer_seconds = max_answer_seconds  # the page tells an answer cut at it
        self._stop_grace = stop_grace
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=pool_wait, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._running: dict[int, RelayedAnswer] = {}
        self._idle = asyncio.Event()  # set while no answer is being relayed
        self._idle.set()
        self._taking = True  # False once shutdown began: no new answers
        self._close_deadline = CloseDeadline()

    # -- what the page asks before sealing ---------------------------------------------------

    async def account(self, user_id: int) -> Account:
        """The user's balance and the models the verified gateways serve."""
        await self._pool.refresh()
        models = self._pool.models()
        default = self.default_model if self.default_model in models else None
        return Account(
            await self._credit.balance(user_id), models, default or next(iter(models), None)
        )

    async def prepare(self, user_id: int, model: str, size: int) -> Offer:
        """The gateways to seal to for ``model`` and the answer tokens the user can pay for.

        ``size`` is the padded plaintext the page will seal (a request bucket): the prompt's
        ceiling, at most the widest window the gateways bill a prompt by. Raises
        ``InsufficientCredit`` when not even ``min_answer_tokens`` fit, and
        ``InferenceUnavailable``/``UntrustedGateway`` when no verified gateway serves the model.
        """
        if size not in REQUEST_BUCKETS:
            raise BadRelayRequest("the size is not a request bucket")
        gateways = await self._candidates(model)
        balance = await self._credit.balance(user_id)
        price = self._credit.prices.for_model(model)
        free = balance.free_tokens_left
        window = self._pool.widest_window(model)
        prompt = size if window is None else min(size, window)
        affordable = price.affordable(prompt, free, balance.units, self.max_answer_tokens)
        shortest = min(self.min_answer_tokens, self.max_answer_tokens)
        if affordable < shortest:
            raise InsufficientCredit(price.payable(prompt, shortest, free), balance.units, free)
        offers = [GatewayOffer(g.index, g.bundle.to_wire()) for g in gateways if g.bundle]
        return Offer(offers, affordable)

    async def _candidates(self, model: str) -> list[Gateway]:
        await self._pool.refresh()
        candidates = self._pool.candidates(model)
        if candidates:
            return candidates
        if not self._pool.any_verified():
            if self._pool.problems() == [UNREACHABLE]:
                raise InferenceUnavailable("no gateway is reachable")
            raise UntrustedGateway("no gateway served a bundle that verifies")
        raise InferenceUnavailable("no gateway serves this model")

    # -- relaying ----------------------------------------------------------------------------

    def busy(self, user_id: int) -> bool:
        """True while the user has an answer being relayed."""
        return user_id in self._running

    @property
    def running(self) -> int:
        """How many answers are being relayed now."""
        return len(self._running)

    def holding(self) -> frozenset[str]:
        """The holds (request ids, hex) of the answers being relayed: the sweep spares them."""
        return frozenset(a.ticket.request_id.hex() for a in self._running.values())

    def _ended(self, answer: RelayedAnswer) -> None:
        if self._running.get(answer.user_id) is answer:
            del self._running[answer.user_id]
        answer.mark_settled()
        if not self._running:
            self._idle.set()

    async def relay(
        self,
        user_id: int,
        ticket: Ticket,
        body: bytes,
        page: asyncio.BaseTransport | None = None,
    ) -> RelayedAnswer:
        """Hold, countersign and send ``body``; the answer to iterate once the gateway took it.

        ``page``: the connection the page asked on; one closed while the gateway is still being
        asked tells a question the user sends next that no one waits for this answer.

        Raises ``AnswerInProgress``, ``BadRelayRequest``, ``RequestIdTaken``,
        ``InsufficientCredit``, ``GatewayRefused`` (the hold is then released),
        ``StoppedBeforeAnswer`` (a stop gave up on a gateway that had not begun within the
        stop's grace: charged only what the gateway's receipt says, if it had begun after all;
        its ``charge`` says, or ``settling`` that it is still being settled) or
        ``InferenceUnavailable``; nothing is charged for the others.
        """
        if not self._taking:
            raise InferenceUnavailable("the bot is shutting down")
        await self._left_settled(user_id)
        gateway = self._gateway(ticket)
        signed = gateway.bundle
        if signed is None:
            raise InferenceUnavailable("the gateway has no verified bundle now")
        # The gateway bills a prompt at most the window its bundle states (a long paste's
        # bytes can be far more).
        prompt = prompt_ceiling(body)
        window = signed.bundle.window(ticket.model)
        prompt = prompt if window is None else min(prompt, window)
        answer = RelayedAnswer(user_id, ticket, gateway, signed, body_hash(body), new_relay_key())
        answer.asked_on(page)
        self._running[user_id] = answer
        self._idle.clear()
        try:
            hold = await self._credit.hold(
                user_id,
                ticket.request_id.hex(),
                ticket.model,
                prompt,
                ticket.max_completion_tokens,
                min_completion_tokens=ticket.max_completion_tokens,
                fresh=True,
            )
            try:
                response = await self._posted(answer, body)
            except StoppedBeforeAnswer as exc:
                # The page is told what was charged (a gateway that had begun after all is
                # charged from its receipt): waited for ``stop_grace`` at most, else told that
                # it is still being settled, not that nothing was charged.
                settling = self._settle_given_up(answer, hold)
                task = answer.run(settling)
                await asyncio.wait({task}, timeout=self._stop_grace)
                exc.settling = not task.done()
                exc.charge = None if exc.settling else answer.charge
                raise
            except BaseException:
                await self._credit.release(hold)
                raise
        except BaseException:
            if not answer.started:  # (else its task ends it)
                self._ended(answer)
            raise
        answer.replied(response)
        if answer.reason:  # abandoned (shutdown) while the gateway was asked: hang up at once
            response.close()
        answer.run(self._pump(answer, response, hold))
        log.info(
            "relay.started",
            user_id=user_id,
            request_id=ticket.request_id.hex(),
            gateway=gateway.index,
            model=ticket.model,
            prompt_ceiling=prompt,
            max_completion_tokens=ticket.max_completion_tokens,
        )
        return answer

    async def _left_settled(self, user_id: int) -> None:
        """Wait until an answer of the user's that its page left is settled; ``AnswerInProgress``.

        An answer whose page went away (reopened, closed) is written to no one: it is hung up
        on and settled from its late receipt, which can take a moment. A question asked
        meanwhile (from the page opened again) waits for that, ``stop_grace`` seconds at most
        (``InferenceUnavailable`` if shutdown began meanwhile); an answer still being written
        to a page (another one of the user's) refuses it. An answer whose page went while
        nothing was written to it (the gateway still being asked, or the model still reading
        the prompt) is hung up on here: nothing else would notice before the next piece came
        to be written. The gateway stops the model and keeps the receipt.
        """
        answer = self._running.get(user_id)
        if answer is None:
            return
        gone = answer.page_gone()
        if not answer.reason and gone:
            answer.abandon("page_gone")
            answer.give_up()
        if answer.reason or gone:
            cut = answer.reason or "page_gone"  # (its stream had ended: being settled)
            log.info("relay.waits_for_settling", user_id=user_id, cut=cut)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._stop_grace):
                    await answer.wait_settled()
            if not self._taking:  # shutdown began while it waited
                raise InferenceUnavailable("the bot is shutting down")
        if user_id in self._running:
            raise AnswerInProgress("an answer is already being relayed")

    def _gateway(self, ticket: Ticket) -> Gateway:
        """The gateway the page sealed to, after checking what the page declared."""
        if len(ticket.request_id) != REQUEST_ID_SIZE:
            raise BadRelayRequest("bad request id")
        if not 1 <= ticket.max_completion_tokens <= self.max_answer_tokens:
            raise BadRelayRequest("max_completion_tokens out of range")
        if not 1 <= ticket.gateway <= len(self._pool.gateways):
            raise BadRelayRequest("no such gateway")
        gateway = self._pool.gateways[ticket.gateway - 1]
        if gateway.bundle is not None and ticket.model not in gateway.bundle.bundle.models:
            raise BadRelayRequest("the gateway does not serve this model")
        return gateway

    async def _posted(self, answer: RelayedAnswer, body: bytes) -> aiohttp.ClientResponse:
        """``_post``; ``StoppedBeforeAnswer`` once a stop gave up on a gateway yet to begin.

        A stop whose grace ended while the hold was still being taken sends nothing at all.
        """
        if answer.given_up:
            _log_stopped_before(answer, sent=False)
            raise StoppedBeforeAnswer("the answer was stopped before it was sent")
        posting = asyncio.ensure_future(self._post(answer, body))
        answer.posting(posting)
        try:
            return await posting
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if posting.cancelled() and (task is None or not task.cancelling()):
                _log_stopped_before(answer, sent=True)
                raise StoppedBeforeAnswer("the gateway had not begun the answer") from None
            raise

    async def _post(self, answer: RelayedAnswer, body: bytes) -> aiohttp.ClientResponse:
        """Countersign and send; a refusal raises ``GatewayRefused`` (the gateway backs off)."""
        gateway = answer.gateway
        headers = {
            "Content-Type": SEALED_REQUEST_TYPE,
            **client_auth_headers(self._client_key, body),
            RELAY_KEY_HEADER: seal_relay_key(answer.signed.bundle, body, answer.relay_key),
            # What the hold is for: the gateway answers no more, and nothing else (``_terms``).
            RELAY_TERMS_HEADER: _terms(answer.ticket).to_header(),
        }
        if answer.ticket.retry_after:  # the page reads the model server's wait (``Ticket``)
            headers[ACCEPT_HEADER] = ACCEPT_RETRY_AFTER
        try:
            response = await self._session.post(
                f"{gateway.url}/v1/sealed/chat/completions",
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect's target is no gateway we were given
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._pool.failed(gateway)
            log.warning(
                "relay.gateway_unreachable", gateway=gateway.index, error=type(exc).__name__
            )
            raise GatewayRefused(502, "unreachable") from exc
        if response.status == _HTTP_OK:
            return response
        async with response:
            reply = await refusal_reply(response)
        code = refusal_code(reply)
        retry_after = read_retry_after(response.headers.get("Retry-After"), time.time())
        if response.status in _FAILOVER_STATUSES:
            self._pool.failed(gateway, retry_after)
        elif response.status == 410 and (sealed_to := _key_id(body)) is not None:  # noqa: PLR2004
            # Sealed to a key the gateway no longer holds: fetched again if it is the one the
            # bot offers (rotated out), not for any other key a page named (``refresh_one``).
            # The bot does not refuse such keys itself before the post: a key it offered before
            # a rotation (or before a restart) is still good at the gateway during its overlap,
            # and a page set on waste can seal to the offered key bytes that fail to open
            # (check 7), refused as cheaply; an honest page seals only to a bundle it was offered.
            await self._pool.refresh_one(gateway, refused=sealed_to)
        elif response.status == _HTTP_BAD_REQUEST and code == "stale_request":
            # The page stamped the request by the bot's clock (its replies' Date) and sealed it
            # to this gateway's key alone: no other gateway can open it, so it is not failed
            # over as the bot's own are. Backed off, the gateway is offered last to the page's
            # next question; the page tells its user the clocks disagree.
            self._pool.failed(gateway)
            log.warning(
                "relay.clock_skew", gateway=gateway.index, **skew_figures(named_skew(reply))
            )
            raise GatewayRefused(response.status, code)
        log.warning("relay.refused", gateway=gateway.index, status=response.status, code=code)
        raise GatewayRefused(response.status, code, retry_after=retry_after)

    async def _settle_given_up(self, answer: RelayedAnswer, hold: Hold) -> None:
        """Settle an answer given up on before the gateway replied: from its receipt, if any.

        Given up for a stop, or because the page went. The question may well have reached the
        gateway, which began the answer while its reply was on its way (a slow network, a proxy
        holding it): a stop's cancel is sent once more, so that the gateway stops the model now
        (else it stops once it finds the bot hung up), and the ``stopped`` receipt it keeps is
        fetched and charged. A gateway that never had the question has no receipt: nothing is
        charged. Ends the answer: until then a next question of the user's waits for it.
        """
        ticket = answer.ticket
        try:
            receipt = None
            if answer.sent:
                proof = answer.stop_proof
                if proof is not None:
                    await self._control.cancel_proven(answer.gateway, ticket.request_id, proof)
                receipt = await self._late_receipt(answer)
            answer.charge = await self._settle(answer, hold, receipt)
        except BillingError:
            log.exception("relay.settle_failed", request_id=ticket.request_id.hex())
        finally:
            self._ended(answer)

    async def _pump(
        self, answer: RelayedAnswer, response: aiohttp.ClientResponse, hold: Hold
    ) -> None:
        """Hand the chunks on, then settle; always ends the answer's iteration."""
        framer = StreamFramer(expect_receipt=True)
        gateway = answer.gateway
        gateway.in_flight += 1
        try:
            try:
                async with asyncio.timeout(self.max_answer_seconds) as scope:
                    answer.bounded_by(scope)
                    if answer.stop_proof is not None:  # stopped before it began
                        await self._cancel(answer, answer.stop_proof)
                    async for data in response.content.iter_any():
                        before = framer.chunks
                        ready = framer.feed(data)
                        if ready:
                            answer.hand_on(ready, framer.chunks - before, final=framer.finished)
                    framer.close()
                self._pool.succeeded(gateway)
            except (SealedError, aiohttp.ClientError) as exc:
                # (First: no byte within the read timeout, aiohttp's ServerTimeoutError, is a
                # TimeoutError too, but the gateway's stream stalled, not the bot's limit.)
                if not answer.reason:  # (not cut by the bot: the gateway's stream broke)
                    answer.reason = type(exc).__name__
                    answer.broken = True
            except TimeoutError:
                answer.reason = answer.reason or answer.timed_out
            finally:
                answer.stream_ended()
                response.close()
                gateway.in_flight -= 1
            receipt = await self._receipt(answer, framer)
            answer.charge = await self._settle(answer, hold, receipt)
        except BillingError:
            log.exception("relay.settle_failed", request_id=answer.ticket.request_id.hex())
        finally:
            self._ended(answer)
            answer.end_chunks()

    async def _receipt(self, answer: RelayedAnswer, framer: StreamFramer) -> SignedReceipt | None:
        """The verified receipt: the relay receipt, else the late one; None if neither."""
        ticket = answer.ticket
        if framer.relay_receipt is not None:
            try:
                receipt = open_relay_receipt(answer.relay_key, answer.digest, framer.relay_receipt)
                return self._verified(answer, receipt)
            except (ReceiptInvalid, MalformedMessage):
                log.warning("relay.relay_receipt_invalid", request_id=ticket.request_id.hex())
        return await self._late_receipt(answer)

    async def _late_receipt(self, answer: RelayedAnswer) -> SignedReceipt | None:
        """The receipt the gateway kept, fetched with the page's proof and verified; or None."""
        ticket = answer.ticket
        final = await self._control.fetch_receipt_proven(
            answer.gateway, ticket.request_id, ticket.receipt_proof
        )
        if final is None or final.receipt is None:
            return None
        try:
            return self._verified(answer, final.receipt)
        except (ReceiptInvalid, MalformedMessage):
            log.warning("relay.late_receipt_invalid", request_id=ticket.request_id.hex())
            return None

    @staticmethod
    def _verified(answer: RelayedAnswer, receipt: SignedReceipt) -> SignedReceipt:
        receipt.verify(
            answer.signed.bundle.receipt_verify_key(),
            request_id=answer.ticket.request_id,
            model=answer.ticket.model,
        )
        return receipt

    async def _settle(
        self, answer: RelayedAnswer, hold: Hold, receipt: SignedReceipt | None
    ) -> Charge:
        """Charge the receipt; without one, the hold if anything was handed on, else nothing."""
        ticket = answer.ticket
        if receipt is not None and _no_answer(receipt):
            # The model finished without writing a token: as in the chat, no answer costs
            # nothing (the page tells the user, who may ask again).
            log.info("relay.empty_answer", request_id=ticket.request_id.hex())
            charge = await self._credit.release(hold)
        elif receipt is not None:
            proof = proof_for(receipt, answer.signed)  # ``_verified`` checked it under this one
            usage = receipt.receipt
            charge = await self._credit.settle(
                hold,
                usage.prompt_tokens,
                usage.completion_tokens,
                receipt_valid=True,
                status=usage.status,
                proof=proof,
            )
        elif answer.forwarded:
            log.warning("relay.no_receipt", request_id=ticket.request_id.hex())
            charge = await self._credit.settle(hold, 0, 0, receipt_valid=False)
        else:
            charge = await self._credit.release(hold)
        log.info(
            "relay.settled",
            user_id=answer.user_id,
            request_id=ticket.request_id.hex(),
            gateway=answer.gateway.index,
            outcome=charge.outcome,
            status=charge.receipt_status,
            prompt_tokens=charge.prompt_tokens,
            completion_tokens=charge.completion_tokens,
            units=charge.units,
            chunks=answer.forwarded,
            cut=answer.reason or None,
        )
        return charge

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self, user_id: int, request_id: bytes, proof: str) -> str | None:
        """Forward the page's cancel proof for its running answer; the gateway's state or None.

        None when the user has no such answer running or the gateway did not accept the cancel
        (a wrong proof). A stop for an answer the gateway has not taken yet (the sealed bytes
        still on their way) is kept and sent as soon as it has: ``"stopping"`` at once.
        """
        answer = self._running.get(user_id)
        if answer is None or answer.ticket.request_id != request_id:
            return None
        if not answer.has_reply:  # the gateway has no stream to stop yet
            answer.keep_stop(proof)  # sent once it has (``_pump``)
            # A gateway that has not begun the answer within the stop's grace (stalled, or a
            # proxy holding the question) is no longer waited for: nothing is charged.
            asyncio.get_running_loop().call_later(self._stop_grace, answer.give_up)
            log.info("relay.stop_pending", user_id=user_id, request_id=request_id.hex())
            return STOPPING
        return await self._cancel(answer, proof)

    async def _cancel(self, answer: RelayedAnswer, proof: str) -> str | None:
        """Forward a cancel proof to the gateway running ``answer``; its state, or None.

        A cancel the gateway never got (the network, a proxy) is not lost: the relay hangs up
        instead, as a chat's stop does; the gateway stops the model and keeps the ``stopped``
        receipt, which settles the answer.
        """
        request_id = answer.ticket.request_id
        state = await self._control.cancel_proven(answer.gateway, request_id, proof)
        if state == UNDELIVERED:
            log.info("relay.stop_hung_up", user_id=answer.user_id, request_id=request_id.hex())
            answer.abandon("stop_undelivered")
            return STOPPING
        if state is not None:
            answer.limit(self._stop_grace)
            log.info(
                "relay.stop_sent",
                user_id=answer.user_id,
                request_id=request_id.hex(),
                state=state,
            )
        return state

    def stop_taking(self) -> None:
        """Refuse new answers from now on (shutdown); the ones being relayed go on."""
        self._taking = False

    async def wait_idle(self, within: float) -> bool:
        """Wait until no answer is being relayed, at most ``within`` seconds; True if none is."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._idle.wait()
        return not self._running

    async def close(self, within: float = CLOSE_SLACK_S) -> None:
        """Take no new answers; hang up on every one still relayed; wait until each is settled.

        The gateway stops each model and keeps a ``stopped`` receipt, which the relay fetches
        with the page's receipt proof and settles from: a stop, metered. Waits at most
        ``within`` seconds, then cancels what is left. The first call sets the deadline: a
        later one (the Mini App's teardown after ``drain``) waits only for what is left of it.
        """
        self._taking = False
        self._close_deadline.start(within)
        for answer in list(self._running.values()):
            answer.abandon("shutdown")
        # Answers still being held or sent are waited for too: they hang up once started.
        if await self.wait_idle(self._close_deadline.left()):
            return
        left = list(self._running.values())
        if self._close_deadline.overrun():
            log.warning("relay.close_timed_out", answers=len(left))
        for answer in left:
            answer.abandon("shutdown")
            await answer.cancel()


def _log_stopped_before(answer: RelayedAnswer, *, sent: bool) -> None:
    """One line for a stop that gave up on a gateway yet to begin; ``sent``: the question was."""
    log.info(
        "relay.stopped_before_answer",
        user_id=answer.user_id,
        request_id=answer.ticket.request_id.hex(),
        gateway=answer.gateway.index,
        sent=sent,
        cut=answer.reason,
    )


def _key_id(body: bytes) -> bytes | None:
    """The key id the request ``body`` names in its header; None if it has no such header."""
    try:
        return RequestHeader.parse(body).key_id
    except SealedError:  # (the gateway would not have said 410)
        return None


def _terms(ticket: Ticket) -> RelayTerms:
    """The page's declaration, which the hold and the receipt's checks are made by.

    The page seals what the bot cannot read: a page that sealed another request id or model
    than it declared would have a receipt the bot cannot bill by (charged the hold: one answer
    token, say, for a whole answer), and one that sealed more answer tokens would be answered
    past its hold. The gateway refuses the first and clamps the second.
    """
    return RelayTerms(ticket.request_id, ticket.model, ticket.max_completion_tokens)


def _no_answer(receipt: SignedReceipt) -> bool:
    """True when the model finished (not stopped, not failed) without a single token."""
    usage = receipt.receipt
    return usage.status is ReceiptStatus.COMPLETE and usage.completion_tokens == 0
