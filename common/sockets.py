"""Socket helpers shared by the listeners that face clients (the gateway, the Mini App's server)."""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


def reset_connection(transport: asyncio.Transport | None) -> None:
    """Drop a connection at once with a TCP reset, discarding what its peer never read.

    A plain close would leave the unread bytes queued in the kernel behind a FIN the peer
    cannot see, holding memory for as long as the peer keeps its window shut.
    """
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already gone: abort() closes what is left
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()
