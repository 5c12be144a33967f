"""How a stream ends for the books: its signed receipt, kept for fetches, and its metrics.

Counts are the model server's usage when it sent one; otherwise the prompt is counted by its
``/tokenize`` or, failing that, by ``estimate_prompt_tokens`` (at most the model's window, where
the bundle states it), the completion is the deltas relayed (at most the ``max_tokens`` asked
for), and the receipt is marked
estimated. A failure before any delta bills nothing. Log
lines and metrics carry ids, counts and outcomes, never text. The final record kept for a late
receipt fetch, which travels in clear, carries no error message: the model server's words may
quote the prompt, and only the sealed stream may carry them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import structlog

from gateway.chat import estimate_prompt_tokens
from sealed.encoding import canonical_json
from sealed.receipt import ReceiptStatus, UsageReceipt, sign_receipt
from sealed.stream import Final

if TYPE_CHECKING:
    from gateway.events import BackendFailure, Usage
    from gateway.relay import Admitted
    from gateway.server import Gateway

log = structlog.get_logger("veil.gateway")

_FINISH_REASONS = {"stopped": "stopped", "time_limit": "time_limit"}


@dataclass
class Tally:
    """What one stream relayed so far."""

    asked: bool = False  # the model server was sent the request
    deltas: int = 0
    finish: str | None = None
    usage: Usage | None = None


async def settle(
    gateway: Gateway,
    admitted: Admitted,
    tally: Tally,
    outcome: str,
    failure: BackendFailure | None,
) -> Final:
    """Sign the receipt, build the final record and keep its payload for receipt fetches."""
    prompt, completion, estimated = await _usage(gateway, admitted, tally, failure)
    if failure is not None:
        status = ReceiptStatus.ERROR
    elif outcome == "ok":
        status = ReceiptStatus.COMPLETE
    else:
        status = ReceiptStatus.STOPPED
    receipt = UsageReceipt(
        request_id=admitted.opened.request_id,
        model=str(admitted.chat["model"]),
        prompt_tokens=prompt,
        completion_tokens=completion,
        status=status,
        estimated=estimated,
        client=admitted.client.client_id,
    )
    signed = sign_receipt(receipt, gateway.ring.receipt_key)
    if failure is not None:
        final = Final(
            signed,
            error_kind=failure.kind,
            error_status=failure.status,
            error_message=failure.message,
        )
    else:
        reason = (tally.finish or "stop") if outcome == "ok" else _FINISH_REASONS.get(outcome)
        final = Final(signed, finish_reason=reason or "stopped")
    kept = replace(final, error_message="") if final.is_error else final
    gateway.receipts.finish(admitted.opened.request_id, canonical_json(kept.payload()))
    gateway.limiter.charge(admitted.client, gateway.monotonic(), prompt + completion)
    gateway.metrics.prompt_tokens.inc(prompt)
    gateway.metrics.completion_tokens.inc(completion)
    return final


async def _usage(
    gateway: Gateway, admitted: Admitted, tally: Tally, failure: BackendFailure | None
) -> tuple[int, int, bool]:
    """(prompt tokens, completion tokens, estimated) for the receipt."""
    if tally.usage is not None:
        return tally.usage.prompt_tokens, tally.usage.completion_tokens, False
    if not tally.asked or (failure is not None and tally.deltas == 0):
        return 0, 0, tally.asked
    model = str(admitted.chat["model"])
    prompt = await counted_prompt(gateway, model, admitted.chat["messages"])
    # No model reads more than its window at once: a prompt longer than that (stopped before
    # the model server refused it) is billed the window at most.
    window = gateway.ring.windows.get(model)
    # A completion counted by its deltas: no model writes more tokens than it was asked for, and
    # a server that sends a token's text over several deltas would have them counted each.
    completion = min(tally.deltas, int(admitted.chat["max_tokens"]))
    return (prompt if window is None else min(prompt, window)), completion, True


async def counted_prompt(
    gateway: Gateway, model: str, messages: list[dict[str, Any]], estimate: int | None = None
) -> int:
    """A prompt's tokens by the model server's ``/tokenize``, else ``estimate``.

    Where ``/tokenize`` cannot say and no ``estimate`` is given: ``estimate_prompt_tokens``,
    never below the count.
    """
    counted = await gateway.vllm.count_prompt_tokens(model, messages)
    if counted is not None:
        return counted
    return estimate_prompt_tokens(messages) if estimate is None else estimate


def record_outcome(
    gateway: Gateway, admitted: Admitted, tally: Tally, outcome: str, chunks: int
) -> None:
    """Metrics and one log line for a finished stream (ids and counts only, never text)."""
    gateway.metrics.requests.labels(outcome).inc()
    if outcome == "stalled":
        gateway.metrics.stalls.inc()
    elif outcome == "client_stalled":
        gateway.metrics.client_stalls.inc()
    log.info(
        "gateway.relayed",
        outcome=outcome,
        client=admitted.client.name,
        deltas=tally.deltas,
        chunks=chunks,
        usage_reported=tally.usage is not None,
        seconds=round(time.monotonic() - admitted.received, 4),
    )
