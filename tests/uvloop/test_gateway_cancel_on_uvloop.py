"""tests/test_gateway_cancel.py on uvloop: a client's stop, a stream cut at every point."""

from tests.test_gateway_cancel import *  # noqa: F403 -- the same tests, collected here again
