"""The folder's tests do run on uvloop (else they would only repeat the others)."""

import asyncio


async def test_the_tests_here_run_on_uvloop() -> None:
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
