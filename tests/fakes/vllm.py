"""A fake vLLM OpenAI-compatible server that speaks vLLM 0.32's wire format over real HTTP.

It serves `GET /health`, `GET /v1/models` and `POST /v1/chat/completions` (streamed as SSE or
as one JSON reply), records every chat call, and can be told to fail the ways a real server
does: unhealthy, a JSON error before the stream (nested or the old flat form), an SSE `error`
event mid-stream, or a connection dropped without `[DONE]`. Run it in-process with
`async with FakeVLLM() as fake:` or as a process with `python -m tests.fakes.vllm --port 0`.

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

from tests.fakes.served import Served

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

DEFAULT_MAX_COMPLETION_TOKENS = 256
_TOKEN_RE = re.compile(r"\s*\S+|\s+$")
_ERROR_TYPES = {
    400: "BadRequestError",
    401: "Unauthorized",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}
_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


class _ApiError(Exception):
    """An error vLLM reports as a JSON reply before any stream starts."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.message = message
        self.param = param


def split_tokens(text: str) -> list[str]:
    """Split an answer into the deltas the fake streams; joined they give the text back."""
    return _TOKEN_RE.findall(text)


def estimate_prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Estimate prompt tokens the way the fake counts them: len(content)//4 + 4 a message."""
    return sum(len(_content_text(m.get("content"))) // 4 + 4 for m in messages)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class FakeVLLM(Served):
    """A small aiohttp app that answers like vLLM's OpenAI server and records what it was sent.

    The behaviour switches (`healthy`, `fail_before_stream`, `flat_error`,
    `error_mid_stream_after`, `drop_after`, `token_delay`) are plain attributes a test may
    flip at any time; they take effect on the next request. `request_headers` holds each
    chat call's headers with lower-cased names.
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
        self.drop_after: int | None = None
        self.requests: list[dict[str, Any]] = []
        # (index into requests, monotonic time of the first and of the last content token sent)
        self.token_times: list[tuple[int, float, float]] = []
        self.request_headers: list[dict[str, str]] = []
        self.url = ""
        self.created = int(time.time())
        self.app = web.Application()
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 picks a free port) and return the base url."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def close(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers -----------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _models(self, request: web.Request) -> web.Response:
        try:
            self._check_key(request)
        except _ApiError as exc:
            return self._error_response(exc)
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

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        self.requests.append(body if isinstance(body, dict) else {})
        self.request_headers.append({k.lower(): v for k, v in request.headers.items()})
        try:
            model, prompt_tokens, max_tokens = self._admit(request, body)
            tokens = split_tokens(self._answer_text(body))
        except _ApiError as exc:
            return self._error_response(exc)
        finish = "length" if len(tokens) > max_tokens else "stop"
        tokens = tokens[:max_tokens]
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
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

    def _admit(self, request: web.Request, body: object) -> tuple[str, int, int]:
        """Apply the key check, a planned failure and validation, in vLLM's order."""
        self._check_key(request)
        if self.fail_before_stream is not None:
            status, message = self.fail_before_stream
            raise _ApiError(status, message)
        if not isinstance(body, dict):
            raise _ApiError(400, "The request body must be a JSON object.")
        return self._validate(body)

    def _validate(self, body: dict[str, Any]) -> tuple[str, int, int]:
        """Check the request like vLLM does; return (model, prompt tokens, max tokens)."""
        model = body.get("model") or self.models[0]
        if model not in self.models:
            raise _ApiError(404, f"The model `{model}` does not exist.", "model")
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m
                for m in messages
            )
        ):
            raise _ApiError(
                400, "messages must be a non-empty list of {role, content}.", "messages"
            )
        stream_options = body.get("stream_options")
        if stream_options is not None and not isinstance(stream_options, dict):
            raise _ApiError(400, "stream_options must be an object.", "stream_options")
        if stream_options is not None and body.get("stream") is not True:
            raise _ApiError(
                400, "Stream options can only be defined when `stream=True`.", "stream_options"
            )
        requested = body.get("max_completion_tokens", body.get("max_tokens"))
        if requested is None:
            requested = DEFAULT_MAX_COMPLETION_TOKENS
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
            raise _ApiError(
                400, "max_completion_tokens must be a positive integer.", "max_completion_tokens"
            )
        if requested > self.max_model_len:
            raise _ApiError(
                400,
                f"max_completion_tokens must be at most {self.max_model_len}, got {requested}.",
                "max_completion_tokens",
            )
        prompt_tokens = estimate_prompt_tokens(messages)
        total = prompt_tokens + requested
        if total > self.max_model_len:
            raise _ApiError(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. However, "
                f"you requested {total} tokens ({prompt_tokens} in the messages, {requested} in "
                "the completion). Please reduce the length of the messages or completion.",
            )
        return model, prompt_tokens, requested

    def _answer_text(self, body: dict[str, Any]) -> str:
        return self.answer(body) if callable(self.answer) else self.answer

    def _error_body(self, status: int, message: str, param: str | None) -> dict[str, Any]:
        err_type = _ERROR_TYPES.get(status, HTTPStatus(status).phrase.replace(" ", ""))
        error = {"message": message, "type": err_type, "param": param, "code": status}
        if self.flat_error:
            return {"object": "error", **error}
        return {"error": error}

    def _error_response(self, exc: _ApiError) -> web.Response:
        return web.json_response(
            self._error_body(exc.status, exc.message, exc.param), status=exc.status, dumps=_dumps
        )

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
            await response.write(f"data: {_dumps(payload)}\n\n".encode())

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

        drop_after, error_after = self.drop_after, self.error_mid_stream_after
        failure = _planned_failure(drop_after, error_after)
        cut = len(tokens) if failure is None else min(len(tokens), failure[1])
        await send(chunk({"role": "assistant", "content": ""}))
        first_at = last_at = 0.0
        for index, token in enumerate(tokens[:cut]):
            if self.token_delay > 0:
                await asyncio.sleep(self.token_delay)
            last = failure is None and index == len(tokens) - 1 and not self.finish_on_extra_chunk
            await send(chunk({"content": token}, finish if last else None))
            last_at = time.monotonic()
            first_at = first_at or last_at
        self.token_times.append((request_index, first_at, last_at))
        if failure is not None and failure[0] == "drop":
            return _drop(request, response)
        if failure is not None:
            error = {"message": "Internal server error", "type": "InternalServerError"}
            await send({"error": {**error, "param": None, "code": 500}})
            await response.write(b"data: [DONE]\n\n")
            return response
        if self.finish_on_extra_chunk or not tokens:
            await send(chunk({"content": ""}, finish))
        if include_usage:
            usage = _usage(prompt_tokens, len(tokens))
            await send({**head, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _complete(
        self, request: web.Request, model: str, tokens: list[str], finish: str, prompt_tokens: int
    ) -> web.StreamResponse:
        if self.drop_after is not None:
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
        reply = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": _usage(prompt_tokens, len(tokens)),
            "system_fingerprint": None,
        }
        return web.json_response(reply, dumps=_dumps)


def _planned_failure(drop_after: int | None, error_after: int | None) -> tuple[str, int] | None:
    """Which failure comes first, and after how many tokens: ("drop" | "error", n) or None."""
    if drop_after is not None and (error_after is None or drop_after <= error_after):
        return ("drop", drop_after)
    if error_after is not None:
        return ("error", error_after)
    return None


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
