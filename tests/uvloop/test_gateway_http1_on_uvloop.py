"""tests/test_gateway_http1.py on uvloop: the model server's replies split, cut, stalled."""

from tests.test_gateway_http1 import *  # noqa: F403 -- the same tests, collected here again
