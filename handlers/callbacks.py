"""Every inline button's callback data, one typed class a kind (aiogram's ``CallbackData``).

A class packs to ``prefix:field:…`` and parses back; routers filter with ``Kind.filter()`` and
receive the parsed object as ``callback_data``. The packed forms are those the bot has always
sent (``buy:<pack>``, ``model:<digest>``), so buttons already in users' chats keep working; a
Retry button names its question now (``retry:<key>``), and one from before (``retry``,
``RetryBefore``) says it expired, as it did after any restart (Retry is kept in memory only).
Telegram caps callback data at 64 bytes: fields are short ids, never names or text.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from aiogram.filters.callback_data import CallbackData


class Retry(CallbackData, prefix="retry"):
    """Ask the failed question kept under ``question`` (16 hex: ``ChatService``'s key) again."""

    question: str


class RetryBefore(CallbackData, prefix="retry"):
    """A Retry button from before buttons named their question: nothing it could ask is kept."""


class Continue(CallbackData, prefix="continue"):
    """Go on with the cut answer of request ``request`` (32 hex), if it is still the latest."""

    request: str


class ModelChoice(CallbackData, prefix="model"):
    """Switch to the model whose name hashes to ``digest`` (names may exceed 64 bytes)."""

    digest: str

    @classmethod
    def of(cls, name: str) -> ModelChoice:
        """The button data for model ``name``."""
        return cls(digest=hashlib.sha256(name.encode()).hexdigest()[:16])


class BuyPack(CallbackData, prefix="buy"):
    """Buy the Stars pack ``pack_id``."""

    pack_id: str


class BuyPlan(CallbackData, prefix="buy-plan"):
    """Subscribe to the monthly plan."""


class BuyGram(CallbackData, prefix="gram"):
    """Buy the Gram pack ``pack_id`` (its price in nanotons) from a TON wallet."""

    pack_id: str


class BuyUsdt(CallbackData, prefix="usdt"):
    """Buy the USDT-on-TON pack ``pack_id`` (its price in µUSDT) from a TON wallet."""

    pack_id: str


class ForgetAnswer(CallbackData, prefix="forget"):
    """The answer to /forget's question: ``yes`` erases the history, ``no`` keeps it."""

    choice: Literal["yes", "no"]


class StopAnswer(CallbackData, prefix="stop"):
    """Stop the inline, guest or group answer whose stop tag is ``tag`` (only its asker can)."""

    tag: str


class GroupToggle(CallbackData, prefix="group"):
    """A group admin flips one group setting (the settings panel's buttons before ``GroupSet``).

    Still taken, for panels already in groups; a press flips what is stored now, so a second
    tap before the panel is redrawn flips it back: new panels carry ``GroupSet``.
    """

    setting: Literal["answers", "reply_context"]


class GroupSet(CallbackData, prefix="group-set"):
    """A group admin turns one group setting ``on`` (``yes``) or off (``no``), as the button said.

    The button carries the state it offers, not a flip: pressed twice, or by two admins at
    once, the setting ends as pressed.
    """

    setting: Literal["answers", "reply_context"]
    on: Literal["yes", "no"]


class InlineHistory(CallbackData, prefix="inline-history"):
    """The user's /settings choice: keep inline answers in their history (``on``) or not."""

    on: Literal["yes", "no"]


class SwitchConversation(CallbackData, prefix="conv"):
    """/history's choice: continue the user's conversation ``conversation`` (its id)."""

    conversation: int
