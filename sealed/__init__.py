"""The sealed wire protocol shared by the bot and the gateway.

Pure functions and small records over bytes; the only dependency is ``cryptography``.
``docs/protocol.md`` is the specification, and ``tests/test_protocol_vectors.py`` checks its
test vectors against this code.
"""
