"""tests/test_stream_shaping.py on uvloop: ticks, bytes gathered in the kernel, padded records."""

from tests.test_stream_shaping import *  # noqa: F403 -- the same tests, collected here again
