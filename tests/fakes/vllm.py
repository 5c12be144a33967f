"""A fake vLLM OpenAI-compatible server that speaks vLLM 0.32's wire format over real HTTP.

It serves `GET /health`, `GET /v1/models`, `POST /tokenize` and `POST /v1/chat/completions`
(streamed as SSE or as one JSON reply), records every chat and tokenize call, and can be told to
fail the ways a real server does: unhealthy, a JSON error before the stream (nested or the old
flat form), an SSE `error` event mid-stream, a connection dropped without `[DONE]`, or a stream
that stalls and holds the connection open until the client gives up. It can also play a
different OpenAI-compatible server (llama-cpp-python's: no `/health`, no `/tokenize`, no usage)
or answer `/v1/models` with garbage. Run it in-process with `async with FakeVLLM() as fake:` or
as a process with `python -m tests.fakes.vllm --port 0`.

Copyright 2026 the Veil authors. Licensed under the Apache License 2.0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import re
import signal
import sys
import time
import uuid
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from playground.served import Served

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

DEFAULT_MAX_COMPLETION_TOKENS = 256
MESSAGE_TOKENS = 4  # the chat template's tokens around each message (role, separators)
_TOKEN_RE = re.compile(r"\s*\S+|\s+$")
_ERROR_TYPES = {
    400: "BadRequestError",
    401: "Unauthorized",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}
# How often a stalled reply looks whether its client hung up; aiohttp has no event for that.
_HANGUP_POLL_S = 0.005
_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


class _ApiError(Exception):
    """An error vLLM reports as a JSON reply before any stream starts."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.message = message
        self.param = param
        self.body = body  # the whole reply, where the server played does not speak vLLM's
        self.headers = headers or {}  # more header fields of the reply


def split_tokens(text: str) -> list[str]:
    """Split an answer into the deltas the fake streams; joined they give the text back."""
    return _TOKEN_RE.findall(text)


def estimate_prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Count prompt tokens the way the fake does: its tokens of each content + 4 a message.

    A text's tokens are the pieces ``split_tokens`` makes of it, the same pieces the fake
    streams an answer in and counts as completion tokens: a model server counts a text the same
    way whether it wrote it or reads it back in a later prompt.
    """
    return sum(
        len(split_tokens(_content_text(m.get("content")))) + MESSAGE_TOKENS for m in messages
    )


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class FakeVLLM(Served):
    """A small aiohttp app that answers like vLLM's OpenAI server and records what it was sent.

    The behaviour switches are plain attributes a test may flip at any time; they take effect
    on the next request:

    - `healthy`: False makes `/health` answer 503; `has_health` False makes it a 404, as on a
      server without the route.
    - `fail_before_stream` `(status, message)`: a JSON error instead of any reply;
      `flat_error` uses the old flat error form; `retry_after`, if set, is that reply's
      `Retry-After` field as given (vLLM sends none; a proxy before it, or llama.cpp's, may).
    - `error_mid_stream_after` / `drop_after` / `stall_after` (content deltas sent first):
      an SSE `error` event then `[DONE]`; a cut connection; or silence with the connection
      held open until the client hangs up or the fake closes. The earliest one wins (on a
      tie: drop, stall, error). A non-streamed call with one of them set fails the same way
      before its reply. `mid_stream_error` `(status, message)`: what that SSE `error` event
      says (vLLM's streaming generator reports whatever failed once the stream started this
      way, in the failure's own words: REFERENCE.md, "After the stream started"); an
      internal error by default.
    - `send_usage`: False never sends usage, even when `stream_options.include_usage` asks.
      `usage_fields`: the streamed usage object's fields kept (None: all), as a server that
      states only some of them (or a proxy that drops some) sends it.
    - `split_deltas`: True streams each token of more than one character in two content
      deltas (its first character, then the rest), as a server that sends a token's text as it
      decodes: more deltas than tokens.
    - `tokenize_available`: False makes `/tokenize` a 404, as on a server without the route.
    - `chat_hold`: an event every chat call waits for, recorded in `requests` at once, before
      it is checked or answered (a busy server's front, or one tokenizing a long prompt).
    - `tokenize_hold`: an event every `/tokenize` waits for before it answers (a busy server's
      tokenizer, or one that stalls), recorded in `tokenize_requests` at once.
    - `models_reply` / `models_status`: the exact JSON and status `/v1/models` answers.
    - `token_delay`: seconds before each content delta.
    - `reasoning`: text a reasoning model thinks before its answer (None: no reasoning), streamed
      as vLLM's reasoning parser does, in deltas of their own before the content, in the field
      `reasoning_field` names: `reasoning_content` (older vLLM), `reasoning` (newer), or `both`
      (vLLM versions that send both, the same text). Its tokens count as completion tokens.

    Its tokenizer (`text_tokens`) counts a text the same whether it streams it or reads it in a
    prompt, as a real model server does: one token a piece of `split_tokens`, the pieces it
    streams; the chat template adds `MESSAGE_TOKENS` a message.

    What it saw: `requests` holds each chat call's JSON body (only chat calls, so
    `len(fake.requests) == 0` proves the model was never asked), `request_headers` their
    headers with lower-cased names, `tokenize_requests` each `/tokenize` body (recorded in
    404 mode too), `prompt_counts` the prompt tokens it counted for each chat call that reached
    the window check (the window is enforced as vLLM does, in its words: a 400 when the prompt's
    tokens reach `max_model_len`, or they and the completion asked for exceed it; with
    `counts_at_least` set, as later vLLM versions do: in one refusal stating only "at least" the
    prompt's tokens, since they stop counting one past what the answer asked for leaves; with
    `counts_passed`, in the words of vLLM's renderer (0.16 on): "You passed N input tokens and
    requested A output tokens. However, the model's context length is only W tokens", N again
    counted only one past the input's room, so no exact count). A stall
    counts in `stalled_streams` and sets `stall_started`; a client hanging up on one counts in
    `stalled_closed` and sets `stall_released`. `pauses` holds token
    positions where every stream waits, before sending that token, until `resume()`; `paused`
    counts the streams waiting now. A planned SSE error stands in for the token at its position
    and its `[DONE]` for the next: a pause there holds the error, sent, before its end.
    """

    def __init__(  # noqa: PLR0913 - the constructor's keyword options are the fake's public API
        self,
        *,
        answer: str | Callable[[dict[str, Any]], str] = "Hello from the fake model.",
        models: Sequence[str] = ("veil-test",),
        api_key: str | None = None,
        token_delay: float = 0.0,
        max_model_len: int = 4096,
        finish_on_extra_chunk: bool = True,
    ) -> None:
        self.answer = answer
        self.models = tuple(models)
        self.api_key = api_key
        self.token_delay = token_delay
        self.max_model_len = max_model_len
        self.finish_on_extra_chunk = finish_on_extra_chunk
        self.healthy = True
        self.fail_before_stream: tuple[int, str] | None = None
        self.flat_error = False
        self.error_mid_stream_after: int | None = None
        self.mid_stream_error: tuple[int, str] = (500, "Internal server error")
        self.drop_after: int | None = None
        self.stall_after: int | None = None
        self.send_usage = True
        self.split_deltas = False
        self.usage_fields: tuple[str, ...] | None = None
        self.reasoning: str | None = None
        self.reasoning_field = "reasoning_content"
        self.counts_at_least = False
        self.counts_passed = False
        self.has_health = True
        self.tokenize_available = True
        self.tokenize_hold: asyncio.Event | None = None
        self.chat_hold: asyncio.Event | None = None
        self.models_reply: object | None = None
        self.listings = 0  # GET /v1/models requests served
        self.models_status = 200
        self.retry_after: str | None = None
        self.requests: list[dict[str, Any]] = []
        self.tokenize_requests: list[dict[str, Any]] = []
        self.prompt_counts: list[int] = []
        self.stalled_streams = 0
        self.stalled_closed = 0
        self.stall_started = asyncio.Event()
        self.stall_released = asyncio.Event()
        self.pauses: set[int] = set()
        self.paused = 0
        self._resume = asyncio.Event()
        # (index into requests, monotonic time of the first and of the last content token sent)
        self.token_times: list[tuple[int, float, float]] = []
        self.request_headers: list[dict[str, str]] = []
        self.url = ""
        self.created = int(time.time())
        self.app = web.Application()
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_post("/tokenize", self._tokenize)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    def resume(self) -> None:
        """Let the streams waiting at a pause go on (to the next pause, if any)."""
        self.paused = 0
        self._resume.set()
        self._resume = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 picks a free port) and return the base url."""
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def close(self) -> None:
        """Stop listening and close open connections, stalled ones included."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers -----------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        if not self.has_health:
            return _not_found()
        return web.Response(status=200 if self.healthy else 503)

    async def _models(self, request: web.Request) -> web.Response:
        self.listings += 1
        try:
            self._check_key(request)
        except _ApiError as exc:
            return self._error_response(exc)
        if self.models_reply is not None:
            return web.json_response(self.models_reply, status=self.models_status, dumps=_dumps)
        if self.models_status != HTTPStatus.OK:
            return self._error_response(_ApiError(self.models_status, "Models unavailable."))
        data: list[dict[str, Any]] = [
            {
                "id": name,
                "object": "model",
                "created": self.created,
                "owned_by": "vllm",
                "root": name,
                "parent": None,
                "max_model_len": self.max_model_len,
                "permission": [],
            }
            for name in self.models
        ]
        return web.json_response({"object": "list", "data": data}, dumps=_dumps)

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self.tokenize_requests.append(body if isinstance(body, dict) else {})
        if self.tokenize_hold is not None:
            await self.tokenize_hold.wait()
        if not self.tokenize_available:
            return _not_found()
        try:
            count = self._count_tokens(body)
        except _ApiError as exc:
            return self._error_response(exc)
        reply = {
            "count": count,
            "max_model_len": self.max_model_len,
            "tokens": [0] * count,
            "token_strs": None,
        }
        return web.json_response(reply, dumps=_dumps)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        self.requests.append(body if isinstance(body, dict) else {})
        self.request_headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.chat_hold is not None:
            await self.chat_hold.wait()
        try:
            body, model, prompt_tokens, max_tokens = self._admit(request, body)
            tokens = split_tokens(self._answer_text(body))
        except _ApiError as exc:
            return self._error_response(exc)
        kept = self._within(tokens, max_tokens)
        finish = "length" if len(kept) < len(tokens) else "stop"
        tokens = kept
        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            include_usage = self.send_usage and bool(options.get("include_usage"))
            return await self._stream(
                request, model, tokens, finish, prompt_tokens, include_usage=include_usage
            )
        return await self._complete(request, model, tokens, finish, prompt_tokens)

    # -- request checks -----------------------------------------------------------------------

    def _check_key(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
            raise _ApiError(401, "Unauthorized")

    def _admit(self, request: web.Request, body: object) -> tuple[dict[str, Any], str, int, int]:
        """Apply the key check, a planned failure and validation, in vLLM's order.

        Returns the body as a JSON object with (model, prompt tokens, max tokens).
        """
        self._check_key(request)
        if self.fail_before_stream is not None:
            status, message = self.fail_before_stream
            wait = {} if self.retry_after is None else {"Retry-After": self.retry_after}
            raise _ApiError(status, message, headers=wait)
        if not isinstance(body, dict):
            raise _ApiError(400, "The request body must be a JSON object.")
        return (body, *self._validate(body))

    def _validate(self, body: dict[str, Any]) -> tuple[str, int, int]:
        """Check the request like vLLM does; return (model, prompt tokens, max tokens)."""
        model = self._model(body)
        messages = _messages(body)
        stream_options = body.get("stream_options")
        if stream_options is not None and not isinstance(stream_options, dict):
            raise _ApiError(400, "stream_options must be an object.", "stream_options")
        if stream_options is not None and body.get("stream") is not True:
            raise _ApiError(
                400, "Stream options can only be defined when `stream=True`.", "stream_options"
            )
        # vLLM takes max_completion_tokens when it is set, else the older max_tokens.
        field = "max_completion_tokens"
        if body.get(field) is None:
            field = "max_tokens"
        requested = body.get(field)
        if requested is None:
            requested = DEFAULT_MAX_COMPLETION_TOKENS
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
            raise _ApiError(400, f"{field} must be a positive integer.", field)
        self._check_answer_cap(field, requested)
        prompt_tokens = self.prompt_tokens(messages)
        self.prompt_counts.append(prompt_tokens)
        return model, prompt_tokens, self._check_window(prompt_tokens, requested)

    def _check_answer_cap(self, field: str, requested: int) -> None:
        """Refuse an answer cap over the window, as vLLM does before it reads the prompt."""
        if requested > self.max_model_len:
            raise _ApiError(
                400, f"{field} must be at most {self.max_model_len}, got {requested}.", field
            )

    def _check_window(self, prompt_tokens: int, requested: int) -> int:
        """Refuse a prompt and answer the window cannot hold, in the words of the vLLM played.

        Returns the answer tokens the model may write: vLLM's, all that were asked for.
        """
        window = self.max_model_len
        if self.counts_at_least and prompt_tokens + requested > window:
            # Later vLLM: the prompt tokenized only up to one token past what the answer leaves.
            counted = min(prompt_tokens, window - requested + 1)
            raise _ApiError(
                400,
                f"This model's maximum context length is {window} tokens. However, you requested "
                f"{requested} output tokens and your prompt contains at least {counted} input "
                f"tokens, for a total of at least {counted + requested} tokens. Please reduce the "
                "length of the input prompt or the number of requested output tokens.",
                "input_tokens",
            )
        if self.counts_passed and prompt_tokens + requested > window:
            # vLLM's renderer: the prompt tokenized up to one token past the input's room.
            room = window - requested
            raise _ApiError(
                400,
                f"You passed {min(prompt_tokens, room + 1)} input tokens and requested "
                f"{requested} output tokens. However, the model's context length is only "
                f"{window} tokens, resulting in a maximum input length of {room} tokens. "
                "Please reduce the length of the input messages.",
                "input_tokens",
            )
        # vLLM's two refusals (since 0.10.2): the prompt alone must leave a token, and the
        # prompt with the answer asked for must fit the window.
        if prompt_tokens >= window:
            raise _ApiError(
                400,
                f"This model's maximum context length is {window} tokens. However, your "
                f"request has {prompt_tokens} input tokens. Please reduce the length of the "
                "input messages.",
            )
        if prompt_tokens + requested > window:
            raise _ApiError(
                400,
                f"'max_tokens' or 'max_completion_tokens' is too large: {requested}. This model's "
                f"maximum context length is {window} tokens and your request has {prompt_tokens} "
                f"input tokens ({requested} > {window} - {prompt_tokens}).",
            )
        return requested

    def _model(self, body: dict[str, Any]) -> str:
        """The requested model (the first served one when none is named), or vLLM's 404."""
        model = body.get("model") or self.models[0]
        if model not in self.models:
            raise _ApiError(404, f"The model `{model}` does not exist.", "model")
        return str(model)

    def _count_tokens(self, body: object) -> int:
        """Count a `/tokenize` body's tokens: the chat form like a chat call's prompt."""
        if not isinstance(body, dict):
            raise _ApiError(400, "The request body must be a JSON object.")
        self._model(body)
        if "messages" in body:
            return self.prompt_tokens(_messages(body))
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise _ApiError(400, "Either messages or a prompt string is required.", "prompt")
        return self.text_tokens(prompt) + 1  # and the begin-of-text token

    # -- the tokenizer ------------------------------------------------------------------------

    def text_tokens(self, text: str) -> int:
        """The tokens the fake's tokenizer makes of ``text``: the pieces ``split_tokens`` gives.

        The same count whether the model wrote the text (its completion tokens) or reads it in
        a prompt, as a real model server's tokenizer counts. A fake playing another tokenizer
        overrides this (and ``prompt_tokens`` for another chat template).
        """
        return len(split_tokens(text))

    def prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        """A chat prompt's tokens: each message's text by ``text_tokens`` and the template's."""
        return sum(
            self.text_tokens(_content_text(m.get("content"))) + MESSAGE_TOKENS for m in messages
        )

    def _within(self, pieces: list[str], max_tokens: int) -> list[str]:
        """The answer's first pieces whose tokens fit ``max_tokens`` (vLLM's length limit)."""
        kept: list[str] = []
        used = 0
        for piece in pieces:
            used += self.text_tokens(piece)
            if used > max_tokens:
                break
            kept.append(piece)
        return kept

    def _answer_text(self, body: dict[str, Any]) -> str:
        return self.answer(body) if callable(self.answer) else self.answer

    def _error_body(self, status: int, message: str, param: str | None) -> dict[str, Any]:
        err_type = _ERROR_TYPES.get(status, HTTPStatus(status).phrase.replace(" ", ""))
        error = {"message": message, "type": err_type, "param": param, "code": status}
        if self.flat_error:
            return {"object": "error", **error}
        return {"error": error}

    def _error_response(self, exc: _ApiError) -> web.Response:
        body = exc.body or self._error_body(exc.status, exc.message, exc.param)
        return web.json_response(body, status=exc.status, headers=exc.headers, dumps=_dumps)

    # -- replies ------------------------------------------------------------------------------

    async def _stream(  # noqa: PLR0913 - one reply's facts, passed once from _chat
        self,
        request: web.Request,
        model: str,
        tokens: list[str],
        finish: str,
        prompt_tokens: int,
        *,
        include_usage: bool,
    ) -> web.StreamResponse:
        request_index = len(self.requests) - 1  # read before any await: _chat just appended it
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }

        async def send(payload: object) -> None:
            await response.write(_sse(payload))

        def chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
                "token_ids": None,
            }
            if finish_reason is not None:
                choice["stop_reason"] = None
            return {**head, "choices": [choice]}

        failure = _planned_failure(self.drop_after, self.stall_after, self.error_mid_stream_after)
        cut = len(tokens) if failure is None else min(len(tokens), failure[1])
        await send(chunk({"role": "assistant", "content": ""}))
        thoughts = await self._think(send, chunk)
        first_at = last_at = 0.0
        for index, token in enumerate(tokens[:cut]):
            await self._pause_at(index)
            if self.token_delay > 0:
                await asyncio.sleep(self.token_delay)
            last = failure is None and index == len(tokens) - 1 and not self.finish_on_extra_chunk
            await self._send_token(send, chunk, token, finish if last else None)
            last_at = time.monotonic()
            first_at = first_at or last_at
        self.token_times.append((request_index, first_at, last_at))
        if failure is not None:
            return await self._fail_stream(request, response, failure[0], cut)
        if self.finish_on_extra_chunk or not tokens:
            await send(chunk({"content": ""}, finish))
        if include_usage:
            written = sum(self.text_tokens(piece) for piece in [*thoughts, *tokens])
            usage = _usage(prompt_tokens, written)
            if self.usage_fields is not None:
                usage = {name: value for name, value in usage.items() if name in self.usage_fields}
            await send({**head, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _send_token(
        self,
        send: Callable[[object], Awaitable[None]],
        chunk: Callable[[dict[str, str], str | None], dict[str, Any]],
        token: str,
        finish: str | None,
    ) -> None:
        """One token's content delta; two with ``split_deltas`` (its first character, the rest)."""
        if self.split_deltas and len(token) > 1:
            await send(chunk({"content": token[:1]}, None))
            token = token[1:]
        await send(chunk({"content": token}, finish))

    async def _think(
        self,
        send: Callable[[object], Awaitable[None]],
        chunk: Callable[[dict[str, str]], dict[str, Any]],
    ) -> list[str]:
        """Stream the reasoning, if any, before the answer; the reasoning's tokens."""
        thoughts = split_tokens(self.reasoning) if self.reasoning else []
        for thought in thoughts:
            if self.token_delay > 0:
                await asyncio.sleep(self.token_delay)
            await send(chunk(self._reasoning_delta(thought)))
        return thoughts

    def _reasoning_delta(self, text: str) -> dict[str, str]:
        """A reasoning delta as vLLM's reasoning parser streams it (no ``content`` key)."""
        if self.reasoning_field == "both":
            return {"reasoning_content": text, "reasoning": text}
        return {self.reasoning_field: text}

    async def _pause_at(self, position: int) -> None:
        """Wait for ``resume()`` if ``position`` is one of ``pauses``."""
        if position in self.pauses:
            gate = self._resume
            self.paused += 1
            await gate.wait()

    async def _fail_stream(
        self, request: web.Request, response: web.StreamResponse, kind: str, position: int
    ) -> web.StreamResponse:
        """End a started stream the planned way: cut, stalled then cut, or an SSE error.

        ``position``: the token the failure stands in for (a pause after it holds an error).
        """
        if kind == "stall":
            await self._stall(request)
        if kind in {"drop", "stall"}:
            return _drop(request, response)
        status, message = self.mid_stream_error
        error = {"message": message, "type": _ERROR_TYPES.get(status, "BadRequestError")}
        await response.write(_sse({"error": {**error, "param": None, "code": status}}))
        await self._pause_at(position + 1)
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _complete(
        self, request: web.Request, model: str, tokens: list[str], finish: str, prompt_tokens: int
    ) -> web.StreamResponse:
        if self.drop_after is not None:
            return _drop(request, web.Response())
        if self.stall_after is not None:
            await self._stall(request)
            return _drop(request, web.Response())
        if self.error_mid_stream_after is not None:
            return self._error_response(_ApiError(500, "Internal server error"))
        if self.token_delay > 0:
            await asyncio.sleep(self.token_delay * len(tokens))
        message = {"role": "assistant", "content": "".join(tokens), "tool_calls": []}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish,
            "stop_reason": None,
        }
        reply: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": _usage(prompt_tokens, sum(self.text_tokens(piece) for piece in tokens)),
            "system_fingerprint": None,
        }
        if not self.send_usage:
            del reply["usage"]
        return web.json_response(reply, dumps=_dumps)

    async def _stall(self, request: web.Request) -> None:
        """Send nothing; return once the client hangs up or the fake starts closing."""
        self.stalled_streams += 1
        self.stall_started.set()
        while not self._closing.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                self.stalled_closed += 1
                self.stall_released.set()
                return
            await asyncio.sleep(_HANGUP_POLL_S)


def _planned_failure(
    drop_after: int | None, stall_after: int | None, error_after: int | None
) -> tuple[str, int] | None:
    """Which failure comes first, and after how many tokens: ("drop" | "stall" | "error", n).

    None when no failure is planned; on a tie the earlier argument wins.
    """
    planned = [
        (after, kind)
        for kind, after in (("drop", drop_after), ("stall", stall_after), ("error", error_after))
        if after is not None
    ]
    if not planned:
        return None
    after, kind = min(planned, key=lambda plan: plan[0])
    return (kind, after)


def _sse(payload: object) -> bytes:
    """One SSE `data:` event carrying `payload` as compact JSON."""
    return f"data: {_dumps(payload)}\n\n".encode()


async def _json_body(request: web.Request) -> object:
    """The request's JSON body, or None when it is not JSON."""
    try:
        body: object = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The body's chat messages, or vLLM's 400 when they are not a list of {role, content}."""
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m
            for m in messages
        )
    ):
        raise _ApiError(400, "messages must be a non-empty list of {role, content}.", "messages")
    return messages


def _not_found() -> web.Response:
    """FastAPI's answer for a route the server does not have."""
    return web.json_response({"detail": "Not Found"}, status=404, dumps=_dumps)


def _drop(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Close the connection mid-reply so the client sees a truncated response.

    aiohttp's attempt to finish `response` on the closed transport fails with a
    ConnectionError, which it treats as a client that went away: nothing is logged.
    """
    if request.transport is not None:
        request.transport.close()
    return response


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fake = FakeVLLM(
        answer=args.answer,
        models=args.model or ("veil-test",),
        api_key=args.api_key,
        token_delay=args.token_delay,
        max_model_len=args.max_model_len,
    )
    url = await fake.start(args.host, args.port)
    sys.stdout.write(f"listening on {url}\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await fake.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake as a process until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.vllm", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--answer", default="Hello from the fake model.")
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--model", action="append", help="served model name (repeatable)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--max-model-len", type=int, default=4096)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
