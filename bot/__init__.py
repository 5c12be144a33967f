"""The Telegram bot: entry point, settings, wiring, answer sinks, texts."""
