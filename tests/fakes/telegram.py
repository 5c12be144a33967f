"""The fake Telegram Bot API server the tests use: the playground's emulator, re-exported.

The emulator is product code in ``playground.botapi`` (the local playground serves it to a
browser); tests keep importing it from here. Its docstring describes the API.
"""

from __future__ import annotations

from playground.botapi import Call, FakeTelegram

__all__ = ["Call", "FakeTelegram"]
