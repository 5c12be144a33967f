"""Every async test under this folder runs on uvloop's event loop instead of asyncio's own.

``python -m gateway`` runs on uvloop unless ``VEIL_GATEWAY_LOOP=asyncio``: its processes in
the other tests run there already, and the modules here import the in-process tests of the
parts that touch the loop's transports and sockets directly (reading the model server's bytes
at a tick, ``SO_RCVLOWAT``, the write's flow control) so that they run on both loops.
A star import leaves out a module's names that start with ``_``: a private autouse fixture
(``_quick_tries``, say) must be imported by name as well, or its tests run without it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvloop

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Mapping

    import pytest


def pytest_asyncio_loop_factories(
    config: pytest.Config,  # noqa: ARG001 -- the hook's signature
    item: pytest.Item,  # noqa: ARG001
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop of every test collected here: uvloop."""
    return {"uvloop": uvloop.new_event_loop}
