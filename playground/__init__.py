"""A local Telegram: a Bot API emulator and a web page that plays the user's side of the chat.

``playground.botapi.FakeTelegram`` serves the Bot API for one bot over HTTP (tests and
benchmarks use it as Telegram); ``playground.web`` adds a page at ``/`` that looks and behaves
like a Telegram chat, so a person can talk to a bot with no Telegram account, in a browser.
Dev-only: not in the product wheel or the runtime image (the Dockerfile's ``playground`` target
adds it on top of the product image).
"""
