"""The model server's streamed reply, read in batches: the ``ChatStream``.

A ``ChatStream`` turns the ``data:`` lines of an OpenAI-compatible streaming chat completion
into events (``gateway.events``): every event the bytes received so far complete, either after
waiting for more (``read``) or at the reader's own times (``collect``, what a shaped stream
does once a tick; with ``gather`` the bytes wait in the kernel until then, so a token does not
wake the gateway). Events are parsed straight from the received bytes, one ``json.loads`` over
a batch's events; nothing is re-encoded. It keeps its own watch for silence (``stalled``), so
bytes that came before a silence are still read. ``gateway.vllm`` opens the requests.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from typing import TYPE_CHECKING

from gateway.events import BackendFailure, decode_events, stalled, translated

if TYPE_CHECKING:
    from collections.abc import Callable

    import aiohttp

    from gateway.events import Event

# The longest SSE line read (one event): far above any one token's delta.
MAX_EVENT_BYTES = 4 << 20
# SO_RCVLOWAT while a reply's bytes gather (``ChatStream.gather``): the kernel wakes the
# gateway for them only at the reply's end or once this much is waiting.
GATHER_BYTES = 256 << 10
# How early the event loop may run a timer (its clock's resolution, and then some).
_CLOCK_SLACK = 0.001
_INT = struct.Struct("i")


class ChatStream:
    """One streaming reply being read: ``data:`` lines parsed into events until ``[DONE]``.

    ``finished`` turns true at ``[DONE]``. A reply that ends, fails or falls silent for the
    idle timeout before it raises ``BackendFailure``, but only after the events that came
    before were returned.
    """

    def __init__(
        self,
        content: aiohttp.StreamReader,
        *,
        idle_timeout: float,
        sock: socket.socket | None = None,
    ) -> None:
        self._content = content
        self._sock = sock  # the connection's socket, where bytes may gather
        self._gathering = False
        self._idle = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._partial = bytearray()  # the start of a line whose end has not arrived
        self._failure: BackendFailure | None = None
        self._taken = 0  # bytes of the reply read so far
        self._last = self._loop.time()  # when bytes were last read
        self._silent = False  # nothing came for the idle timeout
        self._timer: asyncio.TimerHandle | None = None
        self.finished = False

    @property
    def ended(self) -> bool:
        """True when nothing more will come: ``[DONE]``, a failure, silence, the reply's end."""
        content = self._content
        return (
            self.finished
            or self._failure is not None
            or self._silent
            or content.exception() is not None
            or content.at_eof()
        )

    async def read(self) -> list[Event]:
        """Wait for more of the reply; the events it completes (maybe none: half an event)."""
        self._raise_failure()
        try:
            async with asyncio.timeout(self._idle):
                with translated():
                    data = await self._content.readany()
        except TimeoutError as exc:
            self._failure = stalled()
            raise self._failure from exc
        return self._take(data)

    def gather(self) -> None:
        """From now on let the reply's bytes wait in the kernel until ``collect`` takes them.

        The gateway is then not woken for each token, only when ``collect`` asks, at the
        reply's end (its connection closes), or when ``GATHER_BYTES`` are waiting (Linux's
        ``SO_RCVLOWAT``). Without a socket that allows it, bytes are taken in as they come.
        """
        self._gathering = self._sock is not None and self._low_water(GATHER_BYTES)

    async def collect(self) -> list[Event]:
        """The events completed by what has arrived, without waiting for more.

        Bytes the kernel holds (``gather``) are taken in first: the only wait, and a short one.
        """
        self._raise_failure()
        with translated():
            data = self._content.read_nowait()
        if self._gathering and self._held():
            self._low_water(1)  # the event loop takes them in on its next turn
            try:
                async with asyncio.timeout(self._idle):
                    with translated():
                        data += await self._content.readany()
            except TimeoutError as exc:
                self._failure = stalled()
                raise self._failure from exc
            finally:
                self._low_water(GATHER_BYTES)
            with translated():
                data += self._content.read_nowait()
        return self._take(data)

    def _low_water(self, size: int) -> bool:
        """Set the socket's SO_RCVLOWAT; False where it cannot be (no socket, closed, not Linux)."""
        if self._sock is None:
            return False
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
        except OSError:
            return False
        return True

    def _held(self) -> int:
        """Bytes the kernel holds for the reply, not yet taken in (0 where it cannot say)."""
        if self._sock is None:
            return 0
        try:
            held = fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, bytes(_INT.size))
        except (OSError, ValueError):
            return 0
        return int(_INT.unpack(held)[0])

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever the reader, reading at its own times, must read now.

        That is when the reply has ended or failed, when it has been silent for the idle
        timeout (the next read raises ``stalled``), and when bytes have waited unread that
        long. Returns the function that stops watching.
        """
        waiting = asyncio.ensure_future(self._content.wait_eof())

        def ended(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                future.exception()  # the failure itself is raised by the next read
                callback()

        waiting.add_done_callback(ended)
        self._timer = self._loop.call_at(self._last + self._idle, self._check_silence, callback)

        def stop() -> None:
            waiting.cancel()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        return stop

    def _check_silence(self, callback: Callable[[], None]) -> None:
        now = self._loop.time()
        if self._content.total_bytes > self._taken or self._held():
            callback()  # bytes wait: have them read; the watch goes on from now
            self._timer = self._loop.call_at(now + self._idle, self._check_silence, callback)
        elif now + _CLOCK_SLACK < self._last + self._idle:
            at = self._last + self._idle
            self._timer = self._loop.call_at(at, self._check_silence, callback)
        else:
            self._timer = None
            self._silent = True
            callback()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _take(self, data: bytes) -> list[Event]:
        if data:
            self._taken += len(data)
            self._last = self._loop.time()
        return self._parse(data)

    def _parse(self, data: bytes) -> list[Event]:
        """The events of the whole lines in what was kept plus ``data``.

        A failure after some events is kept and raised by the next read, so the events that
        came before it are not lost.
        """
        if self.finished:
            return []
        payloads, done, oversized = self._payloads(data)
        events, failure = decode_events(payloads)
        try:
            self._check_end(done=done, failure=failure or oversized)
        except BackendFailure as exc:
            self._failure = exc
            if not events:
                raise
        return events

    def _payloads(self, data: bytes) -> tuple[list[bytes], bool, BackendFailure | None]:
        """The ``data:`` payloads of the whole lines, whether ``[DONE]`` came, an oversize."""
        payloads: list[bytes] = []
        for line in self._lines(data):
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    return payloads, True, None
                if len(payload) > MAX_EVENT_BYTES:
                    oversized = BackendFailure(
                        "backend", 502, "model server sent an oversized event"
                    )
                    return payloads, False, oversized
                payloads.append(payload)
        return payloads, False, None

    def _check_end(self, *, done: bool, failure: BackendFailure | None) -> None:
        """Raise what ends the reply here, if anything; at ``[DONE]``, mark it finished."""
        if failure is not None:
            raise failure
        if done:
            self.finished = True
        elif len(self._partial) > MAX_EVENT_BYTES:
            raise BackendFailure("backend", 502, "model server sent an oversized event")
        elif self._content.at_eof():
            raise BackendFailure("backend", 502, "model server closed the stream")
        elif self._silent:
            raise stalled()

    def _lines(self, data: bytes) -> list[bytes]:
        """The whole lines in what was kept plus ``data`` (at the reply's end, the rest too)."""
        cut = len(data) if self._content.at_eof() else data.rfind(b"\n") + 1
        partial = self._partial
        if not partial:
            if cut < len(data):
                partial += data[cut:]
            return data[:cut].splitlines()
        kept = len(partial)
        partial += data
        if not cut:
            return []
        whole = bytes(partial[: kept + cut])
        del partial[: kept + cut]
        return whole.splitlines()
