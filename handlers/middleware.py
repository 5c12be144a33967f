"""Update middleware: hands every handler the user's ``texts`` in their language."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiogram.types import TelegramObject, User

    from common.texts import Catalogs


class TextsMiddleware(BaseMiddleware):
    """Put ``texts`` (a ``Texts``) into the handler data."""

    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:  # noqa: ANN401 -- whatever the handler returns
        """Pick the catalog from the user's ``language_code``."""
        user: User | None = data.get("event_from_user")
        data["texts"] = self.catalogs.for_language(user.language_code if user else None)
        return await handler(event, data)
