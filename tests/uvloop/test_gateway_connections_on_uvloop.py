"""tests/test_gateway_connections.py on uvloop: half-open heads, slow bodies, floods."""

from tests.test_gateway_connections import *  # noqa: F403 -- the same tests, collected here again
