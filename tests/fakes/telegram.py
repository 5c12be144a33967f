"""The fake Telegram Bot API server the tests use: the playground's emulator, re-exported.

The emulator lives in the dev-only package ``playground`` (never in the product wheel), which the
local playground serves to a browser and the benchmarks use too; tests import it from here. The
docstring of ``playground.botapi`` describes its API and its parts.
"""

from __future__ import annotations

from playground.botapi import Call, FakeTelegram
from playground.delivery import CONFLICT_POLLER, CONFLICT_WEBHOOK

__all__ = ["CONFLICT_POLLER", "CONFLICT_WEBHOOK", "Call", "FakeTelegram"]
