"""The model server's streamed reply, read in batches: the ``ChatStream``.

A ``ChatStream`` turns the ``data:`` lines of an OpenAI-compatible streaming chat completion
into events (``gateway.events``): every event the bytes received so far complete, either after
waiting for more (``read``) or at the reader's own times (``collect``, what a shaped stream
does once a tick; with ``gather`` the bytes wait in the kernel until then and are read straight
from the socket, so a token does not wake the gateway). The bytes are the body of a
``gateway.http1`` reply; its ``data:`` lines are found with one regular expression over a
batch, the plain text chunks taken without parsing JSON (at a tick, a run of them all at
once) and the rest decoded as JSON, each by itself
(``gateway.events.TextChunks``); nothing is re-encoded. It keeps its own watch for silence
(``stalled``), so bytes that came before a silence are still read; lines without a ``data:``
field (SSE comments) do not break a silence.
``gateway.vllm`` opens the requests.
"""

from __future__ import annotations

import asyncio
import fcntl
import re
import socket
import struct
import termios
from typing import TYPE_CHECKING

from gateway.events import BackendFailure, TextChunks, stalled

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.events import Event
    from gateway.http1 import Reply

# The longest SSE line read (one event): far above any one token's delta.
MAX_EVENT_BYTES = 4 << 20
# SO_RCVLOWAT while a reply's bytes gather (``ChatStream.gather``): the kernel wakes the
# gateway for them only at the reply's end or once this much is waiting.
GATHER_BYTES = 256 << 10
# How early the event loop may run a timer (its clock's resolution, and then some).
_CLOCK_SLACK = 0.001
_INT = struct.Struct("i")
# An SSE ``data:`` field's value (to its line's end), and the stream's last event.
_DATA = re.compile(rb"^data:([^\n]*)", re.MULTILINE)
_DONE = re.compile(rb"^data:[ \t]*\[DONE\][ \t]*$", re.MULTILINE)


def _progress(text: bytes) -> bool:
    """Whether whole SSE lines hold a ``data:`` field: the only lines that carry the answer.

    A model server that sends only comments (``: ping``) or other lines is as stalled as a
    silent one (a comment flood kept a stream open until the time limit, then billed it).
    """
    if text.startswith(b"data:"):
        return True  # the usual case, at once
    return b"data:" in text and any(line.startswith(b"data:") for line in text.splitlines())


class ChatStream:
    """One streaming reply being read: ``data:`` lines parsed into events until ``[DONE]``.

    ``finished`` turns true at ``[DONE]``. A reply that ends, fails or falls silent for the
    idle timeout before it raises ``BackendFailure``, but only after the events that came
    before were returned.
    """

    def __init__(self, reply: Reply, *, idle_timeout: float) -> None:
        self._reply = reply
        self._sock = reply.socket  # the connection's socket, where bytes may gather
        self._gathering = False
        self._idle = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._partial = bytearray()  # the start of a line whose end has not arrived
        self._chunks = TextChunks()  # the payloads' decoder, quick for plain text chunks
        self._failure: BackendFailure | None = None
        self._last = self._loop.time()  # when lines other than comments were last read
        self._silent = False  # nothing came for the idle timeout
        self._timer: asyncio.TimerHandle | None = None
        self.finished = False

    @property
    def ended(self) -> bool:
        """True when nothing more will come: ``[DONE]``, a failure, silence, the reply's end."""
        return self.finished or self._failure is not None or self._silent or self._reply.at_eof

    async def read(self) -> list[Event]:
        """Wait for more of the reply; the events it completes (maybe none: half an event)."""
        self._raise_failure()
        try:
            async with asyncio.timeout(self._idle):
                await self._reply.wait()
        except TimeoutError as exc:
            self._failure = stalled()
            raise self._failure from exc
        return self._take()

    def gather(self) -> None:
        """From now on let the reply's bytes wait in the kernel until ``collect`` takes them.

        The gateway is then not woken for each token, only when ``collect`` asks, at the
        reply's end (its connection closes), or when ``GATHER_BYTES`` are waiting (Linux's
        ``SO_RCVLOWAT``). Without a socket that allows it (TLS, not Linux), bytes are taken in
        as they come, and ``collect`` finds them waiting.
        """
        self._gathering = self._sock is not None and self._low_water(GATHER_BYTES)

    def collect(self) -> list[Event]:
        """The events completed by what has arrived, without waiting for more.

        Bytes the kernel holds (``gather``) are read first, straight from the socket: no wait,
        no turn of the event loop. A run of plain text chunks comes as one event that joins
        their texts (``pieces`` counts them).
        """
        self._raise_failure()
        if self._gathering:
            self._reply.read_now()
        return self._take(runs=True)

    def _low_water(self, size: int) -> bool:
        """Set the socket's SO_RCVLOWAT; False where it cannot be (no socket, closed, not Linux)."""
        if self._sock is None:
            return False
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
        except (OSError, ValueError):
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

        That is when the reply's connection has closed, when the reply has been silent for
        the idle timeout (the next read raises ``stalled``), and when bytes have waited unread
        that long. Returns the function that stops watching.
        """
        reply = self._reply
        reply.on_close(callback)
        self._timer = self._loop.call_at(self._last + self._idle, self._check_silence, callback)

        def stop() -> None:
            reply.on_close(None)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        return stop

    def _check_silence(self, callback: Callable[[], None]) -> None:
        now = self._loop.time()
        if self._reply.held or self._held():
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

    def _take(self, *, runs: bool = False) -> list[Event]:
        """The events of the reply's body bytes received so far (``runs``: see ``_parse``)."""
        framing: BackendFailure | None = None
        try:
            data = self._reply.take()
        except BackendFailure as exc:
            data, framing = b"", exc
        return self._parse(data, framing, runs=runs)

    def _parse(
        self, data: bytes, framing: BackendFailure | None = None, *, runs: bool = False
    ) -> list[Event]:
        """The events of the whole lines in what was kept plus ``data``.

        A failure after some events is kept and raised by the next read, so the events that
        came before it are not lost. ``framing`` is the body's own failure (the bytes before
        it are all in ``data``'s earlier reads). With ``runs``, lines that are all plain text
        chunks of one form come as one event (``TextChunks.run``).
        """
        if self.finished:
            return []
        text = self._lines(data, at_eof=framing is not None or self._reply.at_eof)
        if _progress(text):
            self._last = self._loop.time()
        elif data and self._loop.time() >= self._last + self._idle:
            framing = framing or stalled()  # comments alone, for as long as silence is allowed
        events = None
        if runs and text and len(text) <= MAX_EVENT_BYTES and b"\r" not in text:
            events = self._chunks.run(text)  # (no [DONE] among them: it is no form's chunk)
        if events is None:
            payloads, done, oversized = self._payloads(text)
            events, failure = self._chunks.decode(payloads)
            failure = failure or oversized
        else:
            done, failure = False, None
        try:
            self._check_end(done=done, failure=failure or framing)
        except BackendFailure as exc:
            self._failure = exc
            if not events:
                raise
        return events

    def _payloads(self, text: bytes) -> tuple[list[bytes], bool, BackendFailure | None]:
        """The ``data:`` payloads of whole lines, whether ``[DONE]`` came, an oversize.

        Bytes operations over all the lines at once: ``[DONE]`` is looked for first and what
        follows it is not read; a payload keeps its blanks (JSON allows them).
        """
        if not text:
            return [], False, None
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        done = _DONE.search(text) if b"[DONE]" in text else None  # (a byte search is quicker)
        if done is not None:
            text = text[: done.start()]
        payloads = _DATA.findall(text)
        if payloads and max(map(len, payloads)) > MAX_EVENT_BYTES:
            oversized = BackendFailure("backend", 502, "model server sent an oversized event")
            kept: list[bytes] = []
            for payload in payloads:
                if len(payload.strip()) > MAX_EVENT_BYTES:
                    return kept, False, oversized
                kept.append(payload)
        return payloads, done is not None, None

    def _check_end(self, *, done: bool, failure: BackendFailure | None) -> None:
        """Raise what ends the reply here, if anything; at ``[DONE]``, mark it finished."""
        if failure is not None:
            raise failure
        if done:
            self.finished = True
        elif len(self._partial) > MAX_EVENT_BYTES:
            raise BackendFailure("backend", 502, "model server sent an oversized event")
        elif self._reply.at_eof:
            raise BackendFailure("backend", 502, "model server closed the stream")
        elif self._silent:
            raise stalled()

    def _lines(self, data: bytes, *, at_eof: bool) -> bytes:
        """The whole lines in what was kept plus ``data`` (at the reply's end, the rest too)."""
        cut = len(data) if at_eof else max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        partial = self._partial
        if not partial:
            if cut < len(data):
                partial += data[cut:]
            return data[:cut]
        kept = len(partial)
        partial += data
        if not cut and not at_eof:
            return b""
        whole = bytes(partial[: kept + cut])
        del partial[: kept + cut]
        return whole
