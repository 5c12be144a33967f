"""``python -m bot``: run Veil's Telegram bot (long polling, or a webhook when configured)."""

from __future__ import annotations

import asyncio
import sys

from bot.settings import BotSettings
from gateway.logs import configure_logging
from gateway.settings import SettingsError, load_settings
from models import StorageError


def main(argv: list[str] | None = None) -> int:
    """Entry point: serve the bot, or ``reconcile`` the ledger with Telegram."""
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["reconcile"]):
        print("usage: python -m bot [reconcile]", file=sys.stderr)  # noqa: T201
        return 2
    try:
        settings = load_settings(BotSettings)
    except SettingsError as exc:
        print(exc.code, file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return 2
    configure_logging(settings.log_level)
    if args == ["reconcile"]:
        return run_reconcile(settings)
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


def run_reconcile(settings: BotSettings) -> int:
    """Print every difference between the ledger and Telegram; exit 1 if there is any."""
    from bot.reconcile import reconcile  # noqa: PLC0415 -- see main

    count, differences = asyncio.run(reconcile(settings))
    for line in differences:
        print(line)  # noqa: T201 -- the command's report
    if differences:
        print(f"{len(differences)} difference(s) in {count} transaction(s)")  # noqa: T201
        return 1
    print(f"ledger and Telegram agree on {count} transaction(s)")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
