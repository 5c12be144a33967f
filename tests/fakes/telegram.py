"""The fake Telegram Bot API server the tests use: the playground's emulator, re-exported.

The emulator lives in the dev-only package ``playground`` (never in the product wheel), which the
local playground serves to a browser and the benchmarks use too; tests import it from here. The
docstring of ``playground.botapi`` describes its API and its parts.
"""

from __future__ import annotations

from playground.botapi import Call, FakeTelegram
from playground.delivery import CONFLICT_POLLER, CONFLICT_WEBHOOK

__all__ = ["CONFLICT_POLLER", "CONFLICT_WEBHOOK", "Call", "FakeTelegram"]


def user_deletes(fake: FakeTelegram, chat_id: int, message_id: int) -> None:
    """The user deletes their message ``message_id`` in ``chat_id``: gone, the bot told nothing.

    As Telegram does it for a private chat (no update); a reply to it then needs
    ``allow_sending_without_reply``. The emulator has no user action for it.
    """
    del fake.state._messages[chat_id, message_id]
