"""Helpers shared by the bot and the gateway: settings, logging, the container entry point."""
