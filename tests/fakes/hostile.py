"""A fake Telegram behind a hostile network: chosen calls get what a broken path answers.

``HostileTelegram`` is the Bot API emulator (``FakeTelegram``) whose chosen calls are answered
the ways a misbehaving network or proxy answers them, not as Telegram would. The modes:

- ``malformed``: the call runs, but its result comes back without its ``chat`` (a ``Message``
  that does not validate, the text it echoes included);
- ``unnamed``: the call runs, but its result comes back without its ``message_id`` (a
  ``Message`` that does not validate and does not say which message was sent);
- ``undescribed``: the call is refused with a 400 whose JSON has the Bot API's shape but no
  ``description`` (``{"ok": false, "error_code": 400}``), as a proxy that rewrites error bodies
  answers; the call does not run;
- ``undescribed_502``: the same with a 502 (``{"ok": false, "error_code": 502}``), a proxy's
  gateway error in the Bot API's shape; the call does not run;
- ``nested_502``: a 502 whose body is JSON nested 100,000 deep (``[[[…]]]``), past any
  parser's depth: a broken or hostile proxy's error body; the call does not run;
- ``page``: a 200 HTML page quoting the request: its path (with the token) and its text, as a
  proxy's error page does;
- ``login``: a 302 to a login page (``/login?next=<the request's path>``) that quotes ``next``;
- ``loop``: a 307 back to the same path (``?hop=n``), for ever;
- ``away``: a 307 (which keeps the method and the body) to the same path on another host,
  ``elsewhere`` (a base URL the test sets): a proxy sending the call somewhere else;
- ``moved``: a 301 to the same path on another host (``elsewhere``) whose body has the Bot
  API's shape (``{"ok": false, "error_code": 301, "description": "Moved Permanently"}``), as
  an API gateway's redirect may; the call does not run;
- ``cut``: a 200 whose body stops short of its ``Content-Length`` (the connection closed);
- ``latin1``: a 200 whose body is not UTF-8 (the text quoted in Latin-1 bytes);
- ``charset``: a 200 page whose ``Content-Type`` names a codec that is no text encoding
  (``charset=hex``: Python finds it, and refuses to decode text with it);
- ``silent``: the request is read, and never answered (until the fake closes): a Telegram, or
  a path to it, that takes the connection and says nothing. ``unanswered`` keeps when each
  such call came (``time.monotonic()``);
- ``late``: the call runs (Telegram takes it: a message is sent), but its reply is held until
  ``answer_late()`` (or the fake closes): a slow Telegram, whose reply comes after the client
  gave up on it. ``held`` counts the replies held so far;
- ``flood``: a 429 in Telegram's own words (``parameters.retry_after`` of ``flood_s``
  seconds), as flood control refuses one call it picks; the call does not run.

``misbehave(method, mode, when=...)`` arms one call of ``method`` (the next whose parameters
``when`` accepts); the calls answered so are counted in ``misbehaved``. ``method`` ``DOWNLOAD``
arms the next file download (``/file/bot<token>/<file_path>``), in ``login`` mode only.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from playground.botapi import DOWNLOAD
from tests.fakes.telegram import FakeTelegram

if TYPE_CHECKING:
    from collections.abc import Callable

MODES = (
    "malformed",
    "unnamed",
    "undescribed",
    "undescribed_502",
    "nested_502",
    "page",
    "login",
    "loop",
    "away",
    "moved",
    "cut",
    "latin1",
    "charset",
    "silent",
    "late",
)
# Telegram's own refusal, beside the network's ways: not among ``MODES``, which a test runs
# each of expecting the call to fail (a flood wait is waited out, and the call goes through).
FLOOD = "flood"
# The modes answered in the Bot API's shape, a part missing or refused (``_mangled``).
_IN_SHAPE = frozenset(
    {"malformed", "unnamed", "undescribed", "undescribed_502", "nested_502", FLOOD}
)


@dataclass
class _Armed:
    method: str
    mode: str
    when: Callable[[dict[str, Any]], bool]


class HostileTelegram(FakeTelegram):
    """``FakeTelegram`` whose armed calls get a hostile network's answer (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's keywords
        super().__init__(routes=[web.get("/login", self._login)], **kwargs)
        self._armed: list[_Armed] = []
        self.misbehaved: list[tuple[str, str]] = []
        self.unanswered: list[float] = []  # when each ``silent`` call came
        self._closing = asyncio.Event()  # lets the silent calls go when the fake closes
        self._answering = asyncio.Event()  # lets the late replies go
        self.held = 0  # late replies held so far
        self.elsewhere = ""  # where ``away`` sends a call
        self.flood_s = 3  # the flood wait a ``flood`` call is told

    async def close(self) -> None:
        """Let the silent calls go, then close as the emulator does."""
        self._closing.set()
        self._answering.set()
        await super().close()

    def answer_late(self) -> None:
        """Send the ``late`` replies held, and any still to come, at once."""
        self._answering.set()

    def misbehave(
        self, method: str, mode: str, *, when: Callable[[dict[str, Any]], bool] = lambda _p: True
    ) -> None:
        """Answer the next call of ``method`` whose parameters ``when`` accepts in ``mode``."""
        if mode not in {*MODES, FLOOD} or (method == DOWNLOAD and mode != "login"):
            raise ValueError(f"unknown mode {mode}")
        self._armed.append(_Armed(method, mode, when))

    async def _handle(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]  # a cut reply streams
        name = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json" and request.can_read_body:
            params |= await request.json()
        if "hop" in request.query:  # a loop, once started, never ends
            raise web.HTTPTemporaryRedirect(f"{request.path}?hop={int(request.query['hop']) + 1}")
        armed = next(
            (a for a in self._armed if a.method.lower() == name.lower() and a.when(params)), None
        )
        if armed is None:
            return await super()._handle(request)
        self._armed.remove(armed)
        self.misbehaved.append((name, armed.mode))
        quoted = html.escape(str(params.get("text", "")))
        if armed.mode in _IN_SHAPE:
            return await self._mangled(armed.mode, request)
        if armed.mode == "page":
            page = f"<html><p>Blocked: {html.escape(request.path)}</p><p>{quoted}</p></html>"
            return web.Response(text=page, content_type="text/html")
        if armed.mode in {"login", "loop", "away", "moved"}:
            raise self._redirect(armed.mode, request)
        if armed.mode == "latin1":
            page = f'{{"ok":true,"result":"{params.get("text", "")}é"}}'
            return web.Response(
                body=page.encode("latin-1", "replace"), content_type="application/json"
            )
        if armed.mode == "charset":
            page = f"<html><p>Blocked: {html.escape(request.path)}</p><p>{quoted}</p></html>"
            return web.Response(
                body=page.encode(), headers={"Content-Type": "text/html; charset=hex"}
            )
        return await self._unfinished(armed.mode, request, params)

    def _redirect(self, mode: str, request: web.Request) -> web.HTTPException:
        """The redirect a ``login``, ``loop``, ``away`` or ``moved`` call is answered with."""
        if mode == "moved":
            refusal = {"ok": False, "error_code": 301, "description": "Moved Permanently"}
            return web.HTTPMovedPermanently(
                self.elsewhere + request.path,
                text=json.dumps(refusal),
                content_type="application/json",
            )
        if mode == "login":
            return web.HTTPFound(f"/login?next={request.path}")
        if mode == "loop":
            return web.HTTPTemporaryRedirect(f"{request.path}?hop=1")
        return web.HTTPTemporaryRedirect(self.elsewhere + request.path)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """A file download; an armed one is sent to the login page, as a proxy's would be."""
        armed = next((a for a in self._armed if a.method == DOWNLOAD), None)
        if armed is None:
            return await super()._file(request)
        self._armed.remove(armed)
        self.misbehaved.append((DOWNLOAD, armed.mode))
        raise web.HTTPFound(f"/login?next={request.path}")

    async def _mangled(self, mode: str, request: web.Request) -> web.Response:
        """A reply in the Bot API's shape with a part missing: its result's, or its refusal's.

        ``nested_502``: a refusal in no shape at all, nested past any parser's depth.
        ``flood``: no part missing, Telegram's own 429 (``_flood``).
        """
        if mode == FLOOD:
            return _flood(self.flood_s)
        if mode == "nested_502":
            depth = 100_000
            return web.Response(
                status=502, text="[" * depth + "]" * depth, content_type="application/json"
            )
        if mode.startswith("undescribed"):
            status = 502 if mode == "undescribed_502" else 400
            return web.json_response({"ok": False, "error_code": status}, status=status)
        reply = await super()._handle(request)
        assert isinstance(reply, web.Response)
        assert reply.text is not None
        body = json.loads(reply.text)
        body["result"].pop("chat" if mode == "malformed" else "message_id", None)
        return web.json_response(body)

    async def _unfinished(
        self, mode: str, request: web.Request, params: dict[str, Any]
    ) -> web.StreamResponse:
        """A reply cut short, (``late``) held back, or (``silent``) none until the fake closes."""
        if mode == "cut":
            return await self._cut(request, params)
        if mode == "late":
            reply = await super()._handle(request)  # taken: the message is in the chat
            self.held += 1
            await self._answering.wait()
            return reply
        self.unanswered.append(time.monotonic())
        await self._closing.wait()
        raise web.HTTPServiceUnavailable  # nobody reads it: the caller gave up long ago

    async def _cut(self, request: web.Request, params: dict[str, Any]) -> web.StreamResponse:
        """A reply that promises more than it sends, then closes the connection."""
        start = json.dumps({"ok": True, "result": {"text": params.get("text", "")}})
        reply = web.StreamResponse(headers={"Content-Length": str(len(start) + 4096)})
        reply.content_type = "application/json"
        await reply.prepare(request)
        await reply.write(start.encode()[: len(start) // 2 + 1])
        assert request.transport is not None
        request.transport.close()
        return reply

    async def _login(self, request: web.Request) -> web.Response:
        wanted = html.escape(request.query.get("next", "/"))
        page = f'<html><form action="/login?next={wanted}">Sign in to continue</form></html>'
        return web.Response(text=page, content_type="text/html")


def _flood(seconds: int) -> web.Response:
    """Telegram's refusal of a call under flood control: wait ``seconds``, then try again."""
    refusal = {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {seconds}",
        "parameters": {"retry_after": seconds},
    }
    return web.json_response(refusal, status=429, headers={"Retry-After": str(seconds)})
