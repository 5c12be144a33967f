"""A stand-in for llama.cpp's ``llama-server`` binary: its command line, the fake vLLM's wire.

``python -m tests.fakes.llama_server --model F --alias NAME --port N --ctx-size C --n-predict P``
takes the options the launcher passes to ``llama-server``, prints them (``args: …``), and serves
the fake model server (``tests.fakes.vllm``: ``/health``, chat completions) with the alias as
its one model and the context size as its window, judged as llama-server judges it (the build
``launcher.llama`` pins, ``tools/server/server-context.cpp``): a prompt of the window or more is
refused with its 400 (``exceed_context_size_error``: "request (N tokens) exceeds the available
context size (C tokens), try increasing it", with ``n_prompt_tokens`` and ``n_ctx``), while a
prompt that leaves less than the answer asked for is answered, the answer stopping (``length``)
where the window is full, as llama-server does without context shift (its default). An answer
cap over the window is taken too. Its ``/v1/models`` and ``/props`` are llama-server's
(``FakeLlamaServer``): the model list states no ``max_model_len``, only the trained window in
``meta.n_ctx_train``, and ``/props`` states the served window as
``default_generation_settings.n_ctx``; its ``/tokenize`` answers ``{"tokens": [...]}`` of a
``content`` string and no tokens for a chat's ``messages`` (no ``count``: a gateway cannot
count a chat's prompt on llama-server). For each chat it prints the answer cap the
request carried (``max_tokens: N``), never the messages. A test installs it where the launcher
looks for the built binary, as a two-line shell script that runs this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.vllm import FakeVLLM, _ApiError, _json_body

if TYPE_CHECKING:
    from collections.abc import Sequence

ANSWER = "Hello from the local model."
TRAINED_CONTEXT = 131072  # the window the model was trained with: never the one it serves


class FakeLlamaServer(FakeVLLM):
    """The fake model server with llama-server's ``/v1/models`` and ``/props`` replies."""

    def __init__(self, **options: Any) -> None:  # noqa: ANN401 -- FakeVLLM's options
        super().__init__(**options)
        self.app.router.add_get("/props", self._props)

    async def _models(self, request: web.Request) -> web.Response:
        if self.models_reply is not None or self.models_status != web.HTTPOk.status_code:
            return await super()._models(request)
        meta = {"vocab_type": 2, "n_vocab": 49152, "n_ctx_train": TRAINED_CONTEXT, "n_embd": 576}
        entries = [
            {"id": name, "object": "model", "created": self.created, "owned_by": "llamacpp"}
            for name in self.models
        ]
        return web.json_response(
            {
                "models": [{"name": name, "model": name, "type": "model"} for name in self.models],
                "object": "list",
                "data": [{**entry, "meta": meta} for entry in entries],
            }
        )

    async def _tokenize(self, request: web.Request) -> web.Response:
        """llama-server's ``/tokenize``: ``{"tokens": [...]}`` of a body's ``content``, no count.

        As ``post_tokenize`` (``tools/server/server-context.cpp``) answers: a body with no
        ``content`` (a chat's ``messages``) gets no tokens, so a gateway cannot count a chat's
        prompt by it (vLLM's ``count`` is not in the reply).
        """
        body = await _json_body(request)
        self.tokenize_requests.append(body if isinstance(body, dict) else {})
        content = body.get("content") if isinstance(body, dict) else None
        tokens = [0] * self.text_tokens(content) if isinstance(content, str) else []
        return web.json_response({"tokens": tokens})

    def _check_answer_cap(self, field: str, requested: int) -> None:
        """Take any answer cap, as llama-server does: the window stops the answer."""

    def _check_window(self, prompt_tokens: int, requested: int) -> int:
        """Refuse a prompt that fills the window; else the answer stops where the window is full."""
        window = self.max_model_len
        if prompt_tokens >= window:
            message = (
                f"request ({prompt_tokens} tokens) exceeds the available context size ({window}"
                " tokens), try increasing it"
            )
            error = {
                "code": 400,
                "message": message,
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt_tokens,
                "n_ctx": window,
            }
            raise _ApiError(400, message, body={"error": error})
        # It sends each token, then stops once the prompt and the tokens before it reach the
        # window less one (``process_token``): the last token fills the window.
        return min(requested, window - prompt_tokens)

    async def _props(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "default_generation_settings": {
                    "id": 0,
                    "id_task": -1,
                    "n_ctx": self.max_model_len,
                    "params": {"n_predict": -1, "temperature": 0.8},
                },
                "total_slots": 1,
                "model_path": f"/models/{self.models[0]}.gguf",
                "build_info": "b0-fake",
            }
        )


def answer(body: dict[str, Any]) -> str:
    """The fixed answer, noting the cap the request carried."""
    print(f"max_tokens: {body.get('max_tokens')}", flush=True)  # noqa: T201 -- the fake's log
    return ANSWER


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    fake = FakeLlamaServer(answer=answer, models=(args.alias,), max_model_len=args.ctx_size)
    url = await fake.start(args.host, args.port)
    print(f"listening on {url}", flush=True)  # noqa: T201
    try:
        await stop.wait()
    finally:
        await fake.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``llama-server``'s options (the ones the launcher passes) and serve."""
    given = list(sys.argv[1:] if argv is None else argv)
    print(f"args: {shlex.join(given)}", flush=True)  # noqa: T201
    parser = argparse.ArgumentParser(prog="llama-server")
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--ctx-size", type=int, default=4096)
    parser.add_argument("--n-predict", type=int, default=-1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-webui", action="store_true")
    parser.add_argument("--no-slots", action="store_true")
    args = parser.parse_args(given)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
