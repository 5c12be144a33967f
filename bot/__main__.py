"""``python -m bot``: run Veil's Telegram bot (long polling, or a webhook when configured)."""

from __future__ import annotations

import asyncio
import sys

from bot.settings import BotSettings
from gateway.logs import configure_logging
from gateway.settings import SettingsError, load_settings
from models import StorageError


def main() -> int:
    """Entry point."""
    try:
        settings = load_settings(BotSettings)
    except SettingsError as exc:
        print(exc.code, file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return 2
    configure_logging(settings.log_level)
    # Imported after the settings check, so a bad setting fails fast, before aiogram loads.
    from bot.app import run_polling, run_webhook  # noqa: PLC0415

    serve = run_webhook if settings.webhook_url else run_polling
    try:
        asyncio.run(serve(settings))
    except StorageError as exc:
        print(f"veil: cannot open the data store: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except ValueError as exc:
        print(f"veil: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
