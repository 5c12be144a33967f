"""Veil's tests: fakes of Telegram, vLLM and toncenter in fakes/, end-to-end and unit tests."""
