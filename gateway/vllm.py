"""A client for vLLM's OpenAI-compatible server, written against the wire format.

``open_chat`` starts a streaming chat completion and hands back a ``ChatStream``
(``gateway.upstream``), which reads vLLM's server-sent events into ``ContentDelta``,
``Finish`` and ``Usage`` events in batches; ``stream_chat`` yields the same events one by one.
Errors before or inside the stream become ``BackendFailure``. It works the same against any
OpenAI-compatible server (llama.cpp's server included): ``/health`` and ``/tokenize`` are used
where the server has them. ``served`` learns each model's context window: vLLM's ``/v1/models``
states ``max_model_len`` per model; llama.cpp's ``llama-server`` serves one model and states its
window (a slot's context, ``--ctx-size``) as ``/props``' ``default_generation_settings.n_ctx``
(its ``/v1/models`` has only ``n_ctx_train``, the window the model was trained with). Whatever
the model server sends, nothing here raises anything but ``BackendFailure``: a garbled reply is
the model server's failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from common.waits import retry_after as read_retry_after
from gateway import http1
from gateway.events import (
    BackendFailure,
    ContentDelta,
    Event,
    Finish,
    Usage,
    error_message,
    failure_for,
)
from gateway.upstream import ChatStream
from sealed.bundle import MAX_WINDOW
from sealed.encoding import MAX_JSON_INT
from sealed.stream import MAX_RETRY_AFTER

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

__all__ = [
    "BackendFailure",
    "ChatStream",
    "ContentDelta",
    "Event",
    "Finish",
    "Usage",
    "VLLMClient",
]

# The most of an error reply read: enough for any real message, which is then cut.
MAX_ERROR_BODY = 1 << 20
# The most of a ``/tokenize``, ``/v1/models`` or ``/props`` reply read: ``/tokenize`` lists the
# prompt's token ids, a few bytes each for at most the largest sealed request's megabyte.
MAX_REPLY_BODY = 16 << 20
_HTTP_OK = 200
_HTTP_NOT_FOUND = 404
# A model server (or a proxy before it) that is overloaded or not ready says so before its
# stream with one of these: the gateway's model cannot be had now, as when it is unreachable.
_UNAVAILABLE = frozenset({429, 503})
# What a streamed reply is (one without a Content-Type is read as one).
_EVENT_STREAM = "text/event-stream"


async def _json_reply(response: aiohttp.ClientResponse) -> Any:  # noqa: ANN401 -- any JSON
    """The JSON of a side reply (``response.json()``'s), read to at most ``MAX_REPLY_BODY``.

    ``ValueError`` past it: the connection is dropped with the rest unread. A blank body is
    None; a charset no text codec has is ``LookupError``, as with ``response.json()``.
    """
    body = bytearray()
    while data := await response.content.readany():
        body += data
        if len(body) > MAX_REPLY_BODY:
            raise ValueError("the model server's reply is too long")
    if not body.strip():
        return None
    charset = response.charset
    return json.loads(body.decode(charset) if charset else bytes(body))


async def _error_reply(reply: http1.Reply, idle_timeout: float) -> BackendFailure:
    """The failure a non-200 reply states, reading at most ``MAX_ERROR_BODY`` of it.

    A 429 or 503 is ``unavailable`` (the client may fail over, as when the model server cannot
    be reached) unless its words say the conversation does not fit.

    A body that breaks off (cut, malformed, silent for ``idle_timeout``) is read as far as it
    came: the status still says what failed.
    """
    body = bytearray()
    try:
        async with asyncio.timeout(idle_timeout):
            while len(body) <= MAX_ERROR_BODY and not reply.at_eof:
                await reply.wait()
                body += reply.take()
            body += reply.take()
    except (BackendFailure, TimeoutError):
        pass
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    failure = failure_for(reply.status, error_message(payload))
    if failure.kind == "backend" and reply.status in _UNAVAILABLE:
        wait = retry_after(reply.fields.get("retry-after"), time.time())
        return BackendFailure("unavailable", reply.status, failure.message, retry_after=wait)
    return failure


def retry_after(value: str | None, now: float) -> int | None:
    """The whole seconds a ``Retry-After`` asks to wait from ``now`` (a Unix time), if readable.

    As ``common.waits`` reads it, at most ``MAX_RETRY_AFTER``: a model server cannot send its
    clients away for longer. None for a value that is no wait: the client's own back-off (a
    date of fields too large for one was an ``OverflowError``, which cut the stream: the bot
    read a truncated stream, not a busy model server, and did not fail over).
    """
    seconds = read_retry_after(value, now)
    return None if seconds is None else math.ceil(min(MAX_RETRY_AFTER, seconds))


def _target(base_url: str, context: ssl.SSLContext | None) -> http1.Target:
    """Where ``base_url`` (``http`` or ``https``) sends requests."""
    url = URL(base_url)
    if url.scheme not in {"http", "https"} or not url.raw_host:
        raise ValueError("the model server's URL is http:// or https:// with a host")
    host = url.raw_host
    authority = f"[{host}]" if ":" in host else host
    if url.explicit_port is not None:
        authority += f":{url.explicit_port}"
    https = url.scheme == "https"
    context = (context or ssl.create_default_context()) if https else None
    port = url.port or (443 if context is not None else 80)
    return http1.Target(host, port, context, url.raw_path.rstrip("/"), authority)


def _window(value: object) -> int | None:
    """``value`` if it is a context window a bundle can state, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WINDOW:
        return value
    return None


def _authorization(base_url: str, api_key: str | None) -> dict[str, str]:
    """The chat request's credentials: the API key, or a user and password in the URL.

    Every request sends these headers; the URL the requests go to has no user and password
    (aiohttp refuses a URL's credentials beside an ``Authorization`` header).
    """
    url = URL(base_url)
    if url.user is not None and api_key:
        raise ValueError("the model server's URL has a user name and there is an API key: use one")
    if url.user is not None:  # latin-1, as aiohttp encodes a URL's credentials
        return {"Authorization": aiohttp.encode_basic_auth(url.user, url.password or "", "latin1")}
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class VLLMClient:
    """Talks to one vLLM server over HTTP.

    ``idle_timeout`` is the longest wait for the next byte of a reply (``stalled`` after it).
    Chat completions go over ``gateway.http1``, a connection each; the rest over ``session``.
    ``ssl_context`` is for an ``https`` model server (default: the system's trusted roots).
    A redirect is never followed: the prompt (``/tokenize``) goes to this server or nowhere.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        session: aiohttp.ClientSession,
        *,
        idle_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._base = str(URL(base_url).with_user(None)).rstrip("/")
        self._headers = _authorization(base_url, api_key)
        self._session = session
        self._idle_timeout = idle_timeout
        self._target = _target(base_url, ssl_context)

    async def healthy(self) -> bool:
        """True when ``/health`` answers 200, or, where there is no ``/health``, the models do."""
        try:
            async with self._session.get(
                f"{self._base}/health",
                headers=self._headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=5),
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
        return tuple(entry["id"] for entry in await self._listing())

    async def served(self) -> dict[str, int | None]:
        """The model ids the server lists, each with its context window where the server says.

        ``max_model_len`` of the model's entry (vLLM); else, for a server listing one model,
        ``/props``' ``n_ctx`` (llama.cpp). A window that is not an integer in
        ``[1, MAX_WINDOW]`` is not known. ``BackendFailure`` as ``models``.
        """
        windows = {
            entry["id"]: _window(entry.get("max_model_len")) for entry in await self._listing()
        }
        if len(windows) == 1 and None in windows.values():
            windows = dict.fromkeys(windows, await self._props_window())
        return windows

    async def _listing(self) -> list[dict[str, Any]]:
        """``/v1/models``' entries, each an object with a string ``id``."""
        try:
            async with self._session.get(
                f"{self._base}/v1/models",
                headers=self._headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                if response.status != _HTTP_OK:
                    raise BackendFailure("backend", response.status, "cannot list models")
                body = await _json_reply(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendFailure("unavailable", 503, "model server unreachable") from exc
        except (ValueError, RecursionError, LookupError) as exc:  # LookupError: a bad charset
            raise BackendFailure("backend", 502, "model list is not JSON") from exc
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise BackendFailure("backend", 502, "model list has no data array")
        entries = [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if len(entries) != len(data):
            raise BackendFailure("backend", 502, "model list has entries without an id")
        return entries

    async def _props_window(self) -> int | None:
        """llama.cpp's ``/props`` context size; None where the server has no such answer."""
        try:
            async with self._session.get(
                f"{self._base}/props",
                headers=self._headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                if response.status != _HTTP_OK:
                    return None
                body = await _json_reply(response)
        except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError, LookupError):
            return None
        settings = body.get("default_generation_settings") if isinstance(body, dict) else None
        return _window(settings.get("n_ctx")) if isinstance(settings, dict) else None

    async def count_prompt_tokens(self, model: str, messages: list[dict[str, Any]]) -> int | None:
        """The prompt's tokens by the server's ``POST /tokenize``; None where it cannot say."""
        try:
            async with self._session.post(
                f"{self._base}/tokenize",
                json={"model": model, "messages": messages},
                headers=self._headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=min(5.0, self._idle_timeout)),
            ) as response:
                if response.status != _HTTP_OK:
                    return None
                body = await _json_reply(response)
        except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError, LookupError):
            return None
        count = body.get("count") if isinstance(body, dict) else None
        if isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= MAX_JSON_INT:
            return count
        return None

    @contextlib.asynccontextmanager
    async def open_chat(
        self, request: dict[str, Any], *, sent: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[ChatStream]:
        """POST a streaming chat completion; the reply is read through the ``ChatStream``.

        ``sent`` runs once the request is on its way, before its reply's head is waited for.

        Each request has a connection of its own (``gateway.http1``), closed by the model
        server at the reply's end; leaving the block before then closes it, so the model
        server stops generating. No byte for ``idle_timeout`` (before the reply's head, or in
        it) is ``stalled``; the ``ChatStream`` keeps that watch itself, so that bytes which
        arrived before the silence are still read. Because the reply's end closes the
        connection, ``ChatStream.gather`` can leave its bytes in the kernel between reads.
        """
        body = json.dumps(
            {**request, "stream": True, "stream_options": {"include_usage": True}},
            separators=(",", ":"),
        ).encode("utf-8")
        reply = await http1.post(
            self._target,
            "/v1/chat/completions",
            body,
            self._headers,
            idle_timeout=self._idle_timeout,
            sent=sent,
        )
        try:
            if reply.status != _HTTP_OK:
                raise await _error_reply(reply, self._idle_timeout)
            media = reply.fields.get("content-type", _EVENT_STREAM).partition(";")[0]
            if media.strip(" \t").lower() != _EVENT_STREAM:
                # (a login page, a JSON reply not streamed: not "closed the stream" at its end)
                what = media.strip(" \t")[:64]
                raise BackendFailure("backend", 502, f"model server sent no event stream ({what})")
            yield ChatStream(reply, idle_timeout=self._idle_timeout)
        finally:
            reply.close()

    async def stream_chat(self, request: dict[str, Any]) -> AsyncGenerator[Event, None]:
        """POST a streaming chat completion and yield its events as they arrive."""
        async with self.open_chat(request) as chat:
            while not chat.finished:
                for event in await chat.read():
                    yield event
