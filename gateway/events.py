"""What the model server said, as the gateway takes it: events, and failures.

``ContentDelta``, ``ReasoningDelta``, ``Finish`` and ``Usage`` are the events of a streamed
chat completion (a reasoning model's thinking arrives in the delta's ``reasoning_content``, or
``reasoning`` in newer vLLM, beside ``content``);
``decode_events`` turns a batch of ``data:`` payloads into them, each one JSON value;
``TextChunks`` does the same for one stream, but takes the plain text chunks (nearly all of
them) without parsing JSON at all. ``BackendFailure`` is every way the model server can fail;
nothing that parses its replies raises anything else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sealed.encoding import MAX_JSON_INT, may_hold_lone_surrogate, well_formed
from sealed.stream import MAX_ERROR_MESSAGE, MAX_FINISH_REASON

if TYPE_CHECKING:
    from collections.abc import Callable

# What a model server's refusal of a prompt too long for the window says: vLLM's older and
# current words ("This model's maximum context length is …"), its renderer's (0.16 on: "…
# However, the model's context length is only …") and llama.cpp's "request (N tokens) exceeds
# the available context size".
CONTEXT_LENGTH_MARKERS = (
    "maximum context length",
    "context length is only",
    "exceeds the available context size",
)


@dataclass(frozen=True)
class ContentDelta:
    """A piece of generated text (``pieces``: how many of the model server's, joined)."""

    text: str
    pieces: int = 1


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of a reasoning model's thinking (vLLM's ``reasoning_content`` / ``reasoning``).

    ``pieces``: how many of the model server's pieces it joins.
    """

    text: str
    pieces: int = 1


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
# A delta's text field and its string value, as raw bytes (a candidate for ``TextChunks``).
_TEXT_FIELD = re.compile(
    rb'"(?:content|reasoning_content|reasoning)"[ \t\r\n]*:[ \t\r\n]*"((?:[^"\\]|\\.)*)"'
)
# What a JSON string's body cannot hold as it is (a quote, an escape, a control character).
_NOT_PLAIN = re.compile(rb'["\\\x00-\x1f]')
# An SSE ``data:`` line's field name, and the blank line that ends the event after it.
_FIELD = b"data:"
_BLANK_LINE = b"\n\n"
# What a string body cannot hold but the line feed that joins the bodies of a run.
_NOT_PLAIN_BUT_LF = re.compile(rb'["\\\x00-\x09\x0b-\x1f]')
# How many of a stream's chunks may be tried as forms (the first ones with text; a server
# whose chunks never fit costs this many tries, then nothing more).
_MAX_LEARN = 4
# The longest chunk a form is learnt from (vLLM's are a few hundred bytes, a few kilobytes
# with log-probabilities): a form is kept for the stream's life, and a hostile model server's
# megabyte chunks must not be, four a stream.
_MAX_FORM_BYTES = 16 << 10


class BackendFailure(Exception):
    """vLLM failed; ``kind`` is one of unavailable, context_length, stalled, backend.

    ``message`` is cut to the sealed error record's limit, each lone surrogate in it read as
    U+FFFD (``sealed.encoding.well_formed``): an error reply's JSON may escape half an emoji,
    which the error record must not pass on (the record's text is well-formed, as a delta's).
    """

    def __init__(
        self, kind: str, status: int, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{kind} ({status})")
        self.kind = kind
        self.status = status
        self.message = well_formed(message[:MAX_ERROR_MESSAGE])
        self.retry_after = retry_after  # an ``unavailable`` reply's Retry-After, whole seconds


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
    kind = "context_length" if any(m in message for m in CONTEXT_LENGTH_MARKERS) else "backend"
    return BackendFailure(kind, status, message)


def stalled() -> BackendFailure:
    """The failure of a model server that sent nothing for the backend idle timeout."""
    return BackendFailure("stalled", 504, "the model server stopped responding")


def decode_events(payloads: list[bytes]) -> tuple[list[Event], BackendFailure | None]:
    """The events in a batch of ``data:`` payloads, and the failure that cut it short, if any.

    Each payload is decoded by itself (``json.loads``), up to the first that is not one JSON
    value. An ``error`` chunk is a failure too. The events before a failure are returned with
    it (none of the failing chunk's).
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


class TextChunks:
    """One stream's ``data:`` payloads into events, its plain text chunks without parsing JSON.

    A model server streams each piece of text in a chunk whose bytes are all the same but for
    the text: vLLM's ``{"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,
    "model":…,"choices":[{"index":0,"delta":{"content":"…"},…}]}``. The first such chunks are
    decoded as JSON like any other, and the bytes of one before and after its text's string
    body are kept as a form. A later payload made of a form's two parts around a well-formed
    JSON string body is that chunk with another text: its event is taken from the string alone.
    Anything else (the role chunk, the finish, usage, errors, a server whose chunks change) is
    decoded as JSON (``decode_events``), in order. Forms are learnt from chunks of at most
    ``_MAX_FORM_BYTES`` (they are kept for the stream's life), the first ``_MAX_LEARN`` tried.

    A form is kept only when the text is the chunk's only event whatever it says: the chunk
    with the text replaced by ``zq`` and by nothing must decode to exactly ``[Kind("zq")]`` and
    ``[]`` (so no other text field, finish reason, usage or error rides along, and none takes
    over when the text is empty). A string body is well-formed when it has no quote, backslash
    or control character (then its UTF-8 is the text) or, with escapes, when ``json.loads``
    reads it as one string; otherwise the payload goes the JSON way, which says what is wrong.
    """

    __slots__ = ("_forms", "_tries")

    def __init__(self) -> None:
        self._forms: list[_Form] = []
        self._tries = 0

    def run(self, lines: bytes) -> list[Event] | None:
        """The text of SSE lines that are all plain text chunks of one form, as one event.

        ``lines`` are whole lines (LF ends, ``[DONE]`` not among them). When every byte of
        them is ``data:`` + one form's chunk + a blank line, with string bodies that need no
        unescaping, the event joins their texts and counts them (``pieces``; empty texts are
        not counted, as they give no event): what ``decode`` gives piece by piece, in one.
        Anything else (another line, a chunk of no form or with escapes, text that is not
        UTF-8 on its own): None, and the lines go ``decode``'s way.
        """
        for form in self._forms:
            head, tail = form.head, form.tail
            end = len(lines) - len(tail)  # where the last line's tail starts
            if end < len(head) or not lines.startswith(head) or not lines.endswith(tail):
                continue
            # Each line's data less the form's two parts is a body, if putting the parts back
            # around the bodies gives every byte again (so no line is anything else). Split at
            # the short ``data:`` joint: a split at the whole joint between two bodies costs
            # more than cutting the parts off each piece.
            start, cut = len(form.prefix), len(form.suffix)
            datas = lines[len(_FIELD) : -len(_BLANK_LINE)].split(_BLANK_LINE + _FIELD)
            bodies = [data[start : len(data) - cut] for data in datas]
            if (tail + head).join(bodies) != lines[len(head) : end]:
                continue
            # Each must be a plain string body: no quote, backslash or control character (the
            # line feeds are the join's), and UTF-8 on its own (the line feed before a body
            # stops one starting inside a character from passing).
            joined = b"\n".join(bodies)
            if _NOT_PLAIN_BUT_LF.search(joined) or joined.count(b"\n") != len(bodies) - 1:
                continue  # not this form's run of lines
            try:
                text = joined.decode("utf-8")
            except UnicodeDecodeError:
                return None
            pieces = len(bodies) - bodies.count(b"")
            return [form.kind(text.replace("\n", ""), pieces)] if pieces else []
        return None

    def decode(self, payloads: list[bytes]) -> tuple[list[Event], BackendFailure | None]:
        """The events of a batch of payloads, and the failure that cut it short.

        The same as ``decode_events`` gives for the batch.
        """
        events: list[Event] = []
        forms = self._forms
        rest: list[bytes] = []  # payloads to decode as JSON, in order
        for payload in payloads:
            found = _in_form(payload, forms) if forms else None
            if found is None:
                rest.append(payload)
                continue
            if rest:
                failure = self._decode_json(rest, events)
                if failure is not None:
                    return events, failure
                rest = []
            kind, text = found
            if text:
                events.append(kind(text))
        return events, self._decode_json(rest, events) if rest else None

    def _decode_json(self, payloads: list[bytes], events: list[Event]) -> BackendFailure | None:
        """Decode ``payloads`` as JSON onto ``events``; learn forms from them while allowed."""
        found, failure = decode_events(payloads)
        events += found
        for payload in payloads:
            if self._tries >= _MAX_LEARN:
                break
            if len(payload) > _MAX_FORM_BYTES:
                continue
            matches = list(_TEXT_FIELD.finditer(payload))
            if len(matches) == 1 and matches[0].end(1) > matches[0].start(1):
                self._tries += 1
                self._learn(payload, *matches[0].span(1))
        return failure

    def _learn(self, payload: bytes, start: int, end: int) -> None:
        """Keep ``payload``'s form around ``[start:end]`` if it is a plain text chunk."""
        prefix, suffix = payload[:start], payload[end:]
        probe, failure = decode_events([prefix + b"zq" + suffix])
        empty, empty_failure = decode_events([prefix + suffix])
        if failure is not None or empty_failure is not None or empty or len(probe) != 1:
            return
        event = probe[0]
        if isinstance(event, ContentDelta | ReasoningDelta) and event.text == "zq":
            self._forms.append(
                _Form(prefix, suffix, type(event), _FIELD + prefix, suffix + _BLANK_LINE)
            )


class _Form(NamedTuple):
    """A stream's plain text chunk: the bytes around its text's string body, and its event.

    ``head`` and ``tail`` are the rest of such a chunk's SSE line around the body: ``data:``
    and the prefix, the suffix and the blank line (``TextChunks.run``).
    """

    prefix: bytes
    suffix: bytes
    kind: type[ContentDelta | ReasoningDelta]
    head: bytes
    tail: bytes


def _in_form(
    payload: bytes, forms: list[_Form]
) -> tuple[type[ContentDelta | ReasoningDelta], str] | None:
    """The event kind and text of a payload in one of ``forms``; None if in none of them."""
    for prefix, suffix, kind, _, _ in forms:
        end = len(payload) - len(suffix)
        if end < len(prefix) or not payload.startswith(prefix) or not payload.endswith(suffix):
            continue
        body = payload[len(prefix) : end]
        try:
            if _NOT_PLAIN.search(body) is None:
                return kind, body.decode("utf-8")
            text = json.loads(b'"' + body + b'"')
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return None
        return kind, well_formed(text) if may_hold_lone_surrogate(body) else text
    return None


def _decode(payloads: list[bytes]) -> tuple[list[Any], BackendFailure | None]:
    """The JSON values of events' payloads, and the failure of the first malformed one.

    Each payload must be one JSON value by itself (``json.loads``); a lone surrogate in it (half
    an emoji, escaped or in its UTF-8 form) is read as U+FFFD (``sealed.encoding.well_formed``),
    since no UTF-8 encoder takes it and the text is sealed as UTF-8. Not one ``json.loads`` over
    the payloads joined with commas: a value begun in one payload and ended in a later one (an
    array, an object, a string running on across the comma) would pass as well-formed, and
    whether it did would turn on which payloads are in the batch.
    """
    values: list[Any] = []
    for payload in payloads:
        try:
            value = _loads(payload)
            values.append(well_formed(value) if may_hold_lone_surrogate(payload) else value)
        except (ValueError, RecursionError, StopIteration):
            return values, BackendFailure("backend", 502, "model server sent a malformed event")
    return values, None


def _loads(payload: bytes) -> Any:  # noqa: ANN401 -- parsed JSON of unknown shape
    """``json.loads(payload)``, without its per-call work for the usual payload.

    A payload starting with ``{`` or a blank and no NUL after it is UTF-8 to ``json.loads``
    (no byte-order mark, not UTF-16 or UTF-32); it is decoded so and scanned as ``json.loads``
    does: blanks, one value, blanks to the end. Raises what ``json.loads`` raises, or
    ``StopIteration`` where there is no value.
    """
    if payload[:1] not in _UTF8_STARTS or payload[1:2] == b"\x00":
        return json.loads(payload)
    text = payload.decode("utf-8", "surrogatepass")
    start = 0 if text[:1] == "{" else len(text) - len(text.lstrip(_BLANKS))
    value, end = _scan(text, start)
    if end != len(text) and text[end:].strip(_BLANKS):
        raise ValueError("extra data after the value")
    return value


# What ``json.loads`` does for a ``str`` after its encoding is known: skip JSON's blanks,
# scan one value (``StopIteration`` when there is none).
_BLANKS = " \t\n\r"
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_UTF8_STARTS = frozenset((b"{", b" "))


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
        stated = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
        counts = [_count(value) for value in stated if value is not None]
        # Both counts or none: one left out (or null) was read as 0, and a whole answer was
        # signed as free and exact. Without them the receipt is estimated, as with no usage.
        if len(counts) == len(stated):
            events.append(Usage(*counts))
