"""Untrusted middlemen between the bot and the gateway, as real servers on 127.0.0.1.

- ``RecordingProxy``: a TCP proxy that forwards bytes both ways and keeps a copy, to prove what
  the network sees.
- ``TamperingRelay``: an HTTP reverse proxy that forwards requests to the gateway and rewrites
  the sealed body on the way (in either direction), to prove that every change is caught.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from tests.fakes.served import Served

if TYPE_CHECKING:
    from collections.abc import Callable


class RecordingProxy(Served):
    """Forwards TCP connections to ``target`` and records every byte in both directions."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.upstream = bytearray()  # client → server
        self.downstream = bytearray()  # server → client
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> str:
        """Listen on a free port; return ``http://127.0.0.1:PORT``."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening and cut open connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def captured(self) -> bytes:
        """Everything that crossed the proxy."""
        return bytes(self.upstream) + bytes(self.downstream)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        one = asyncio.create_task(self._pipe(reader, up_writer, self.upstream))
        two = asyncio.create_task(self._pipe(up_reader, writer, self.downstream))
        self._tasks.update((one, two))
        try:
            await asyncio.gather(one, two, return_exceptions=True)
        finally:
            self._tasks.difference_update((one, two))
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray
    ) -> None:
        try:
            while data := await reader.read(65536):
                record += data
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()


class TamperingRelay(Served):
    """An HTTP relay to ``target`` that may rewrite sealed bodies.

    ``rewrite_request`` / ``rewrite_response`` take the whole body and return what to send on;
    ``None`` forwards unchanged. Other paths (``/v1/keys``, ``/health``) pass through untouched.
    """

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.rewrite_request: Callable[[bytes], bytes] | None = None
        self.rewrite_response: Callable[[bytes], bytes] | None = None
        self.replay_last = False
        self.last_request: bytes | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        """Listen on a free port; return its base URL."""
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop the relay."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        sealed = request.path.startswith("/v1/sealed/")
        if sealed:
            if self.replay_last and self.last_request is not None:
                body = self.last_request
            self.last_request = body
            if self.rewrite_request is not None:
                body = self.rewrite_request(body)
        async with self._session.request(
            request.method,
            self.target + request.path_qs,
            data=body or None,
            headers={"Content-Type": request.headers.get("Content-Type", "")},
        ) as upstream:
            payload = await upstream.read()
            if sealed and upstream.status == 200 and self.rewrite_response is not None:
                payload = self.rewrite_response(payload)
            return web.Response(
                body=payload,
                status=upstream.status,
                content_type=upstream.content_type,
            )
