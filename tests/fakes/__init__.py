"""Small real servers that speak Telegram's, vLLM's and toncenter's protocols for the tests."""
