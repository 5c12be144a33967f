"""``async with`` for the emulated servers and the test fakes: start on entry, close on exit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType


class Served:
    """A server with ``start()`` and ``close()``; subclasses implement both."""

    async def start(self) -> str:
        """Listen; return the base URL."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listening."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
