"""A client for vLLM's OpenAI-compatible server, written against the wire format.

``stream_chat`` turns vLLM's server-sent events into ``ContentDelta``, ``Finish`` and ``Usage``
events and its errors, before or inside the stream, into ``BackendFailure``. It works the same
against any OpenAI-compatible server (llama.cpp's server included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

CONTEXT_LENGTH_MARKER = "maximum context length"


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
    """vLLM failed; ``kind`` is one of unavailable, context_length, backend."""

    def __init__(self, kind: str, status: int, message: str) -> None:
        super().__init__(f"{kind} ({status})")
        self.kind = kind
        self.status = status
        self.message = message


def _error_message(body: Any) -> str:  # noqa: ANN401 -- parsed JSON of unknown shape
    """VLLM's error message from ``{"error": {...}}``, ``{"error": "..."}`` or a flat object."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or "unknown error")
        return str(error)
    return "unknown error"


def _failure(status: int, message: str) -> BackendFailure:
    kind = "context_length" if CONTEXT_LENGTH_MARKER in message else "backend"
    return BackendFailure(kind, status, message)


class VLLMClient:
    """Talks to one vLLM server over HTTP."""

    def __init__(self, base_url: str, api_key: str | None, session: aiohttp.ClientSession) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session = session

    async def healthy(self) -> bool:
        """True when vLLM's ``/health`` answers 200."""
        try:
            async with self._session.get(
                f"{self._base}/health", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                return response.status == 200  # noqa: PLR2004 -- HTTP OK
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def models(self) -> tuple[str, ...]:
        """The model ids vLLM serves."""
        try:
            async with self._session.get(
                f"{self._base}/v1/models",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                if response.status != 200:  # noqa: PLR2004 -- HTTP OK
                    raise BackendFailure("backend", response.status, "cannot list models")
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BackendFailure("unavailable", 503, "model server unreachable") from exc
        return tuple(str(m["id"]) for m in body.get("data", []) if isinstance(m, dict))

    async def stream_chat(self, request: dict[str, Any]) -> AsyncGenerator[Event, None]:
        """POST a streaming chat completion and yield its events as they arrive."""
        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        try:
            async with self._session.post(
                f"{self._base}/v1/chat/completions",
                json=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
            ) as response:
                if response.status != 200:  # noqa: PLR2004 -- HTTP OK
                    try:
                        payload = await response.json(content_type=None)
                    except ValueError:
                        payload = None
                    raise _failure(response.status, _error_message(payload))
                async for event in _parse_sse(response):
                    yield event
        except aiohttp.ClientPayloadError as exc:
            raise BackendFailure("backend", 502, "model server closed the stream") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendFailure("unavailable", 503, "model server unreachable") from exc


async def _parse_sse(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """Read ``data:`` lines until ``[DONE]``; a stream that ends without it is a failure."""
    async for raw in response.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError as exc:
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
    return code if isinstance(code, int) and 400 <= code < 600 else 500  # noqa: PLR2004


def _events_of(chunk: dict[str, Any]) -> list[Event]:
    events: list[Event] = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            events.append(ContentDelta(str(content)))
        if choice.get("finish_reason"):
            events.append(Finish(str(choice["finish_reason"])))
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        events.append(
            Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        )
    return events
