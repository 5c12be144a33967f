"""tests/test_listener_edges.py on uvloop (the gateway's loop): codings, drains, pipelines."""

from tests.test_listener_edges import *  # noqa: F403 -- the same tests, collected here again
