"""A client for vLLM's OpenAI-compatible server, written against the wire format.

``stream_chat`` turns vLLM's server-sent events into ``ContentDelta``, ``Finish`` and ``Usage``
events and its errors, before or inside the stream, into ``BackendFailure``. It works the same
against any OpenAI-compatible server (llama.cpp's server included): ``/health`` and
``/tokenize`` are used where the server has them. Whatever the model server sends, nothing
here raises anything but ``BackendFailure``: a garbled reply is the model server's failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from sealed.encoding import MAX_JSON_INT
from sealed.stream import MAX_ERROR_MESSAGE, MAX_FINISH_REASON

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

CONTEXT_LENGTH_MARKER = "maximum context length"
# The longest SSE line read (one event): far above any one token's delta.
MAX_EVENT_BYTES = 4 << 20
# The most of an error reply read: enough for any real message, which is then cut.
MAX_ERROR_BODY = 1 << 20
_HTTP_OK = 200
_HTTP_NOT_FOUND = 404


@dataclass(frozen=True)
class ContentDelta:
    """A piece of generated text."""

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


Event = ContentDelta | Finish | Usage


class BackendFailure(Exception):
    """vLLM failed; ``kind`` is one of unavailable, context_length, stalled, backend.

    ``message`` is cut to the sealed error record's limit.
    """

    def __init__(self, kind: str, status: int, message: str) -> None:
        super().__init__(f"{kind} ({status})")
        self.kind = kind
        self.status = status
        self.message = message[:MAX_ERROR_MESSAGE]


def _error_message(body: Any) -> str:  # noqa: ANN401 -- parsed JSON of unknown shape
    """VLLM's error message from ``{"error": {...}}``, ``{"error": "..."}`` or a flat object."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or "unknown error"
            return message if isinstance(message, str) else "unknown error"
        return error if isinstance(error, str) else "unknown error"
    return "unknown error"


def _failure(status: int, message: str) -> BackendFailure:
    kind = "context_length" if CONTEXT_LENGTH_MARKER in message else "backend"
    return BackendFailure(kind, status, message)


async def _error_reply(response: aiohttp.ClientResponse) -> BackendFailure:
    """The failure a non-200 reply states, reading at most ``MAX_ERROR_BODY`` of it."""
    body = bytearray()
    while len(body) <= MAX_ERROR_BODY and (data := await response.content.readany()):
        body += data
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    return _failure(response.status, _error_message(payload))


class VLLMClient:
    """Talks to one vLLM server over HTTP.

    ``idle_timeout`` is the longest wait for the next byte of a reply (``stalled`` after it).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        session: aiohttp.ClientSession,
        *,
        idle_timeout: float = 60.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session = session
        self._idle_timeout = idle_timeout

    async def healthy(self) -> bool:
        """True when ``/health`` answers 200, or, where there is no ``/health``, the models do."""
        try:
            async with self._session.get(
                f"{self._base}/health", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            return False
        if status != _HTTP_NOT_FOUND:
            return status == _HTTP_OK
        try:
            return bool(await self.models())
        except BackendFailure:
            return False

    async def models(self) -> tuple[str, ...]:
        """The model ids the server lists; ``BackendFailure`` for anything but a model list."""
        try:
            async with self._session.get(
                f"{self._base}/v1/models",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                if response.status != _HTTP_OK:
                    raise BackendFailure("backend", response.status, "cannot list models")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendFailure("unavailable", 503, "model server unreachable") from exc
        except (ValueError, RecursionError) as exc:
            raise BackendFailure("backend", 502, "model list is not JSON") from exc
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise BackendFailure("backend", 502, "model list has no data array")
        ids = tuple(m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str))
        if len(ids) != len(data):
            raise BackendFailure("backend", 502, "model list has entries without an id")
        return ids

    async def count_prompt_tokens(self, model: str, messages: list[dict[str, Any]]) -> int | None:
        """The prompt's tokens by the server's ``POST /tokenize``; None where it cannot say."""
        try:
            async with self._session.post(
                f"{self._base}/tokenize",
                json={"model": model, "messages": messages},
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=min(5.0, self._idle_timeout)),
            ) as response:
                if response.status != _HTTP_OK:
                    return None
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError):
            return None
        count = body.get("count") if isinstance(body, dict) else None
        if isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= MAX_JSON_INT:
            return count
        return None

    async def stream_chat(self, request: dict[str, Any]) -> AsyncGenerator[Event, None]:
        """POST a streaming chat completion and yield its events as they arrive."""
        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self._idle_timeout)
        try:
            async with self._session.post(
                f"{self._base}/v1/chat/completions",
                json=body,
                headers=self._headers,
                timeout=timeout,
            ) as response:
                if response.status != _HTTP_OK:
                    raise await _error_reply(response)
                async for event in _parse_sse(response):
                    yield event
        except aiohttp.SocketTimeoutError as exc:
            raise BackendFailure("stalled", 504, "the model server stopped responding") from exc
        except aiohttp.ClientPayloadError as exc:
            raise BackendFailure("backend", 502, "model server closed the stream") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendFailure("unavailable", 503, "model server unreachable") from exc


async def _parse_sse(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """Read ``data:`` lines until ``[DONE]``; a stream that ends without it is a failure."""
    while True:
        try:
            raw = await response.content.readuntil(b"\n", max_size=MAX_EVENT_BYTES)
        except LineTooLong as exc:
            raise BackendFailure("backend", 502, "model server sent an oversized event") from exc
        if not raw:
            break
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise BackendFailure("backend", 502, "model server sent a malformed event") from exc
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            raise _failure(_status_of(chunk["error"]), _error_message(chunk))
        for event in _events_of(chunk):
            yield event
    raise BackendFailure("backend", 502, "model server closed the stream")


def _status_of(error: Any) -> int:  # noqa: ANN401 -- parsed JSON of unknown shape
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:  # noqa: PLR2004
        return code
    return 500


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_JSON_INT:
        return value
    raise BackendFailure("backend", 502, "model server sent a malformed usage count")


def _events_of(chunk: dict[str, Any]) -> list[Event]:
    events: list[Event] = []
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise BackendFailure("backend", 502, "model server sent a malformed event")
    for choice in choices:
        if not isinstance(choice, dict):
            raise BackendFailure("backend", 502, "model server sent a malformed event")
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            events.append(ContentDelta(content))
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            events.append(Finish(reason[:MAX_FINISH_REASON]))
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        events.append(
            Usage(
                _count(usage.get("prompt_tokens") or 0), _count(usage.get("completion_tokens") or 0)
            )
        )
    return events
