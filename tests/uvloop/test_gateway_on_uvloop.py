"""tests/test_gateway.py on uvloop: the sealed exchange end to end through a gateway in-process."""

from tests.test_gateway import *  # noqa: F403 -- the same tests, collected here again
