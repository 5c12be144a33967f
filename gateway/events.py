"""What the model server said, as the gateway takes it: events, and failures.

``ContentDelta``, ``ReasoningDelta``, ``Finish`` and ``Usage`` are the events of a streamed
chat completion (a reasoning model's thinking arrives in the delta's ``reasoning_content``, or
``reasoning`` in newer vLLM, beside ``content``);
``decode_events`` turns a batch of ``data:`` payloads into them with one ``json.loads``.
``BackendFailure`` is every way the model server can fail; nothing that parses its replies
raises anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sealed.encoding import MAX_JSON_INT
from sealed.stream import MAX_ERROR_MESSAGE, MAX_FINISH_REASON

CONTEXT_LENGTH_MARKER = "maximum context length"


@dataclass(frozen=True)
class ContentDelta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of a reasoning model's thinking (vLLM's ``reasoning_content`` / ``reasoning``)."""

    text: str


@dataclass(frozen=True)
class Finish:
    """Why generation stopped (``stop``, ``length``, …)."""

    reason: str


@dataclass(frozen=True)
class Usage:
    """Token counts from the stream's usage chunk."""

    prompt_tokens: int
    completion_tokens: int


Event = ContentDelta | ReasoningDelta | Finish | Usage
# The delta fields vLLM streams reasoning in: ``reasoning_content`` (older), ``reasoning``.
REASONING_FIELDS = ("reasoning_content", "reasoning")


class BackendFailure(Exception):
    """vLLM failed; ``kind`` is one of unavailable, context_length, stalled, backend.

    ``message`` is cut to the sealed error record's limit.
    """

    def __init__(self, kind: str, status: int, message: str) -> None:
        super().__init__(f"{kind} ({status})")
        self.kind = kind
        self.status = status
        self.message = message[:MAX_ERROR_MESSAGE]


def error_message(body: Any) -> str:  # noqa: ANN401 -- parsed JSON of unknown shape
    """VLLM's error message from ``{"error": {...}}``, ``{"error": "..."}`` or a flat object."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or "unknown error"
            return message if isinstance(message, str) else "unknown error"
        return error if isinstance(error, str) else "unknown error"
    return "unknown error"


def failure_for(status: int, message: str) -> BackendFailure:
    """The failure a model server's error ``message`` states (``context_length`` or ``backend``)."""
    kind = "context_length" if CONTEXT_LENGTH_MARKER in message else "backend"
    return BackendFailure(kind, status, message)


def stalled() -> BackendFailure:
    """The failure of a model server that sent nothing for the backend idle timeout."""
    return BackendFailure("stalled", 504, "the model server stopped responding")


def decode_events(payloads: list[bytes]) -> tuple[list[Event], BackendFailure | None]:
    """The events in a batch of ``data:`` payloads, and the failure that cut it short, if any.

    Well-formed payloads (the usual case) are decoded in one ``json.loads`` over all of them;
    otherwise one by one, up to the first that is not JSON. An ``error`` chunk is a failure
    too. The events before a failure are returned with it (none of the failing chunk's).
    """
    chunks, failure = _decode(payloads)
    events: list[Event] = []
    for chunk in chunks:
        if type(chunk) is not dict:  # JSON objects decode to exact dicts
            continue
        before = len(events)
        try:
            _add_events(chunk, events)
        except BackendFailure as exc:
            del events[before:]
            return events, exc
    return events, failure


def _decode(payloads: list[bytes]) -> tuple[list[Any], BackendFailure | None]:
    """The JSON values of events' payloads, and the failure of the first malformed one.

    Well-formed payloads (the usual case) are decoded in one ``json.loads`` over all of them;
    otherwise one by one, up to the first that is not JSON.
    """
    if not payloads:
        return [], None
    try:
        values = json.loads(b"[" + b",".join(payloads) + b"]")
    except (ValueError, RecursionError):
        values = None
    if isinstance(values, list) and len(values) == len(payloads):
        return values, None  # a payload holding more than one value would change the count
    values = []
    for payload in payloads:
        try:
            values.append(json.loads(payload))
        except (ValueError, RecursionError):
            return values, BackendFailure("backend", 502, "model server sent a malformed event")
    return values, None


def _status_of(error: Any) -> int:  # noqa: ANN401 -- parsed JSON of unknown shape
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:  # noqa: PLR2004
        return code
    return 500


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_JSON_INT:
        return value
    raise BackendFailure("backend", 502, "model server sent a malformed usage count")


def _add_events(chunk: dict[str, Any], events: list[Event]) -> None:  # noqa: C901 -- per token
    """Add one decoded chunk's events; an ``error`` chunk raises its ``BackendFailure``.

    A choice's reasoning comes before its content, then its finish reason; the usage last.
    """
    if "error" in chunk:
        raise failure_for(_status_of(chunk["error"]), error_message(chunk))
    choices = chunk.get("choices") or []
    if type(choices) is not list:
        raise BackendFailure("backend", 502, "model server sent a malformed event")
    for choice in choices:
        if type(choice) is not dict:
            raise BackendFailure("backend", 502, "model server sent a malformed event")
        delta = choice.get("delta")
        if type(delta) is dict:
            for name in REASONING_FIELDS:
                thought = delta.get(name)
                if type(thought) is str and thought:
                    events.append(ReasoningDelta(thought))
                    break  # a server that fills both sends the same text twice
            content = delta.get("content")
            if type(content) is str and content:
                events.append(ContentDelta(content))
        reason = choice.get("finish_reason")
        if type(reason) is str and reason:
            events.append(Finish(reason[:MAX_FINISH_REASON]))
    usage = chunk.get("usage")
    if type(usage) is dict:
        events.append(
            Usage(
                _count(usage.get("prompt_tokens") or 0), _count(usage.get("completion_tokens") or 0)
            )
        )
