"""The fake Telegram Bot API server the tests use: the playground's emulator, re-exported.

The emulator lives in the dev-only package ``playground`` (never in the product wheel), which the
local playground serves to a browser and the benchmarks use too; tests import it from here. The
docstring of ``playground.botapi`` describes its API and its parts.
"""

from __future__ import annotations

from typing import Any

from playground.botapi import Call, FakeTelegram
from playground.delivery import CONFLICT_POLLER, CONFLICT_WEBHOOK

__all__ = ["CONFLICT_POLLER", "CONFLICT_WEBHOOK", "Call", "FakeTelegram", "FakeTelegramWithChats"]


class FakeTelegramWithChats(FakeTelegram):
    """The fake Telegram answering ``getChat`` too: a group's linked channel and join rule.

    ``linked``: group id → (its channel's id, ``join_to_send_messages``), for the groups that
    are a channel's discussion group; any other group is linked to none. A group upgraded to
    a supergroup is refused as every call naming it is.
    """

    def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 -- FakeTelegram's own arguments
        super().__init__(**kwargs)
        self.linked: dict[int, tuple[int, bool]] = {}
        self._methods["getChat"] = self._get_chat
        self._canonical["getchat"] = "getChat"

    def _get_chat(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self.state.chat(p, sending=False)
        full: dict[str, Any] = {
            "id": chat["id"],
            "type": chat["type"],
            "title": chat.get("title"),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }
        if chat["id"] in self.linked:
            channel, join_to_send = self.linked[chat["id"]]
            full["linked_chat_id"] = channel
            if join_to_send:
                full["join_to_send_messages"] = True
        return full
