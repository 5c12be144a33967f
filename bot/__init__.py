"""The Telegram bot: entry point, settings, wiring, answer sinks, texts."""

from bot.aiogram_types import defer_builds

defer_builds()  # before anything imports aiogram: its models built on first use
